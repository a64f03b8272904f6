"""Write the shipped model's metrics JSON: real cross-validation first, then the simulated-only figures.

    python models/write_metrics.py --data data/sim-mix --sim-model models/glitchnet-sim.pt \\
        --model models/glitchnet.pt --golden ../shared/data/real/golden --lever finetune

The real figure is the chosen lever's leave-glitch-out cross-validation (``models/real_crossval.json``, written by
``models/crossval_real.py``): the shipped model itself has trained on every real pool image, so scoring it on them
would say nothing. The simulated-only model (the fine-tune's starting point, trained on no real image) is scored on
the golden set, which is what the simulator alone achieves; both models are scored on the simulated test split.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from glitchnet.checkpoint import load_checkpoint
from glitchnet.evaluate import evaluate_checkpoint, evaluate_labelled_folder, top_confusions, wilson_interval
from glitchnet.inference import Predictor


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a simulated dataset whose test split neither model trained on")
    parser.add_argument("--model", default="models/glitchnet.pt")
    parser.add_argument("--sim-model", default="models/glitchnet-sim.pt", help="the simulated-only model")
    parser.add_argument("--golden", help="real golden figures, <Class>/<file>")
    parser.add_argument("--crossval", default="models/real_crossval.json")
    parser.add_argument("--lever", default="finetune", help="the lever the shipped model's recipe is")
    parser.add_argument("--out", default="models/metrics.json")
    args = parser.parse_args()

    ckpt = load_checkpoint(args.model)
    table = json.loads(Path(args.crossval).read_text())
    lever = table["levers"][args.lever]
    zero = table["levers"]["zero-shot"]
    keep = ("glitches", "correct", "accuracy", "wilson95", "macro_f1", "per_image_accuracy", "recall")
    result = {
        "model": Path(args.model).name,
        "real_crossval": {
            "what": "leave-glitch-out k-fold cross-validation on the real pool: every glitch scored by a model "
                    "fine-tuned without it (nor any near-duplicate of it); views fused per glitch",
            "setup": table["setup"], "lever": args.lever, "recipe": lever["config"],
            **{key: {k: lever[key][k] for k in keep} for key in ("verified", "golden", "hobbyist", "all")},
            "mcnemar_vs_simulated_only": lever.get("mcnemar_vs_zero_shot"),
            "simulated_only_same_glitches": {k: zero["verified"][k] for k in ("glitches", "correct", "accuracy",
                                                                                 "wilson95")},
        },
        "training": {"real_fine_tune": ckpt.config, "real_training": {
            k: ckpt.metrics.get(k) for k in ("real_training_images", "real_training_glitches",
                                             "real_training_sources")}},
        "calibration": ckpt.metrics.get("calibration"),
        "simulated_test": simulated_test(args.model, args.data),
        "simulated_only_model": {"model": Path(args.sim_model).name,
                                 "simulated_test": simulated_test(args.sim_model, args.data)},
    }
    if args.golden and Path(args.golden).is_dir():
        result["simulated_only_model"]["real_golden"] = golden(args.sim_model, args.golden)
    Path(args.out).write_text(json.dumps(result, indent=1, default=float))
    v = result["real_crossval"]["verified"]
    print(f"real cross-validation ({args.lever}): {v['correct']}/{v['glitches']} = {v['accuracy']:.1%} "
          f"[{v['wilson95'][0]:.1%}, {v['wilson95'][1]:.1%}]")
    print(f"simulated test: shipped {result['simulated_test']['accuracy']:.1%}, simulated-only "
          f"{result['simulated_only_model']['simulated_test']['accuracy']:.1%}")
    if "real_golden" in result["simulated_only_model"]:
        print(f"simulated-only model on golden, per glitch: "
              f"{result['simulated_only_model']['real_golden']['per_glitch_fused']['accuracy']:.1%}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
