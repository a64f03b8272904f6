"""Write the shipped models' metrics JSON: the leave-source-out estimate first, then the other figures.

    python models/write_metrics.py --data data/sim-mix --sim-model models/glitchnet-sim.pt \\
        --model models/glitchnet.pt --o3-model models/glitchnet-o3.pt --golden ../shared/data/real/golden

The real figure is leave-source-out (``models/leave_source_out.json``, written by ``models/leave_source_out.py``):
each real source scored by a model made with the shipped recipe without it. The shipped models themselves have
trained on every real pool image, so scoring them on the pool would say nothing. The simulated-only model (the
fine-tunes' starting point, trained on no real image) is scored on the golden set, which is what the simulator alone
achieves; the O1/O2 models are scored on the simulated test split too. The previous shipped model's stratified
leave-glitch-out cross-validation (``models/real_crossval.json``) is kept as the second line it was.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from glitchnet.checkpoint import load_checkpoint
from glitchnet.evaluate import evaluate_checkpoint, evaluate_labelled_folder, top_confusions, wilson_interval
from glitchnet.inference import Predictor

SCORE_KEYS = ("glitches", "correct", "accuracy", "wilson95", "macro_f1", "recall", "wrong_confident", "wrong_unsure",
              "unsure_below")


def simulated_test(model: str, data: str) -> dict:
    sim = evaluate_checkpoint(model, data, split="test", fallback_split=None).metrics
    return {"data": data, **{k: sim[k] for k in ("n", "accuracy", "macro_f1")}}


def golden(model: str, folder: str) -> dict:
    real = evaluate_labelled_folder(Predictor(model), folder)
    g = real["per_glitch"]
    correct = round(g["accuracy"] * g["n"])
    return {
        "source": "Gravity Spy golden subjects (600x450 figures; GIF frames = the four views)",
        "per_image": {k: real["per_image"][k] for k in ("n", "accuracy", "macro_f1")},
        "per_glitch_fused": {**{k: g[k] for k in ("n", "accuracy", "macro_f1")}, "correct": correct,
                             "wilson95": list(wilson_interval(correct, g["n"]))},
        "recall_per_class": {c: {"per_glitch": g["per_class"][c]["recall"], "glitches": g["per_class"][c]["support"]}
                             for c in g["classes"] if g["per_class"][c]["support"]},
        "confusions_per_glitch": top_confusions(g, k=12),
    }


def leave_source_out(entry: dict) -> dict:
    """One class set's leave-source-out figures, without the per-glitch rows."""
    out = {"what": "leave-source-out: each real source scored per glitch (views fused) by a model fine-tuned with the "
                   "shipped recipe on every other source (and on no glitch joined to it)",
           "recipe": entry["recipe"], "sim": entry["sim"],
           "sources": {name: {k: s[k] for k in SCORE_KEYS if k in s} for name, s in entry["sources"].items()},
           "mean_over_sources": entry["mean_over_sources"], "pooled": entry["pooled"]}
    wrong = sum(s["wrong_confident"] + s["wrong_unsure"] for s in entry["sources"].values())
    confident = sum(s["wrong_confident"] for s in entry["sources"].values())
    out["wrong_answers"] = {"all": wrong, "without_not_sure": confident,
                            "fraction_without_not_sure": confident / wrong if wrong else 0.0}
    if "levers" in entry:
        out["levers"] = {name: {src: {k: s[k] for k in ("glitches", "correct", "accuracy", "wilson95")}
                                for src, s in lever["sources"].items()} | {"trained_on": lever.get("trained_on", [])}
                         for name, lever in entry["levers"].items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a simulated dataset whose test split neither model trained on")
    parser.add_argument("--model", default="models/glitchnet.pt")
    parser.add_argument("--o3-model", default="models/glitchnet-o3.pt")
    parser.add_argument("--sim-model", default="models/glitchnet-sim.pt", help="the simulated-only model")
    parser.add_argument("--golden", help="real golden figures, <Class>/<file>")
    parser.add_argument("--lso", default="models/leave_source_out.json")
    parser.add_argument("--crossval", default="models/real_crossval.json",
                        help="the previous model's stratified cross-validation (kept as its second line)")
    parser.add_argument("--out", default="models/metrics.json")
    args = parser.parse_args()

    ckpt = load_checkpoint(args.model)
    lso = json.loads(Path(args.lso).read_text())
    result = {"model": Path(args.model).name,
              "real_leave_source_out": leave_source_out(lso["gravityspy-o1o2"])}
    if Path(args.crossval).is_file():
        table = json.loads(Path(args.crossval).read_text())
        lever = table["levers"]["finetune-freq"]
        result["previous_model_stratified_crossval"] = {
            "what": "the previous shipped model's recipe (no O3 pool) by stratified leave-glitch-out 5-fold "
                    "cross-validation on the verified O1/O2 pool: images like the pool's on both sides",
            **{k: lever["verified"][k] for k in ("glitches", "correct", "accuracy", "wilson95", "macro_f1")}}
    result.update({
        "training": {"real_fine_tune": ckpt.config, "real_training": {
            k: ckpt.metrics.get(k) for k in ("real_training_images", "real_training_glitches",
                                             "real_training_sources")}},
        "calibration": ckpt.metrics.get("calibration"),
        "simulated_test": simulated_test(args.model, args.data),
        "simulated_only_model": {"model": Path(args.sim_model).name,
                                 "simulated_test": simulated_test(args.sim_model, args.data)},
    })
    if "gravityspy-o3" in lso and Path(args.o3_model).is_file():
        o3 = lso["gravityspy-o3"]
        o3_ckpt = load_checkpoint(args.o3_model)
        result["o3_model"] = {"model": Path(args.o3_model).name, "classes": list(o3_ckpt.classes),
                              "real_leave_source_out": leave_source_out(o3),
                              "o3_time_blocks": {k: o3["o3_time_blocks"][k] for k in (*SCORE_KEYS, "folds", "groups")
                                                 if k in o3["o3_time_blocks"]},
                              "calibration": o3_ckpt.metrics.get("calibration")}
    if args.golden and Path(args.golden).is_dir():
        result["simulated_only_model"]["real_golden"] = golden(args.sim_model, args.golden)
    Path(args.out).write_text(json.dumps(result, indent=1, default=float))
    r = result["real_leave_source_out"]
    print(f"leave-source-out (O1/O2 set): mean over sources {r['mean_over_sources']:.1%}; pooled "
          f"{r['pooled']['correct']}/{r['pooled']['glitches']} = {r['pooled']['accuracy']:.1%}")
    for name, s in r["sources"].items():
        print(f"  {name}: {s['correct']}/{s['glitches']} = {s['accuracy']:.1%} "
              f"[{s['wilson95'][0]:.1%}, {s['wilson95'][1]:.1%}]")
    if "o3_model" in result:
        t = result["o3_model"]["o3_time_blocks"]
        print(f"O3 model, leave-time-block-out on the O3 pool: {t['correct']}/{t['glitches']} = {t['accuracy']:.1%}; "
              f"Fast_Scattering {t['recall'].get('Fast_Scattering')}")
    print(f"simulated test: shipped {result['simulated_test']['accuracy']:.1%}, simulated-only "
          f"{result['simulated_only_model']['simulated_test']['accuracy']:.1%}")
    if "real_golden" in result["simulated_only_model"]:
        print(f"simulated-only model on golden, per glitch: "
              f"{result['simulated_only_model']['real_golden']['per_glitch_fused']['accuracy']:.1%}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
