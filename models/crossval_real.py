"""The lever table: each way of using the real pool, scored by leave-glitch-out k-fold cross-validation on real images.

    python models/crossval_real.py --sim data/sim-mix --levers all          # every lever (about an hour on 2 cores)
    python models/crossval_real.py --sim data/sim-mix --levers finetune     # one lever; results merge into the JSON

Every figure is per glitch (views fused) on images whose glitch the scoring model never trained on. The headline
pool is the verified one (golden, Gravity Spy examples, Scratchy fixtures); hobbyist-labelled images train in every
fold and are scored separately, since their labels are unverified. Each lever is compared with the shipped model
used as it is (McNemar's exact test on the same verified glitches).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from glitchnet.checkpoint import load_checkpoint
from glitchnet.crossval import FinetuneConfig, cross_validate, glitch_scores
from glitchnet.data import load_split, scan_dataset
from glitchnet.evaluate import mcnemar_exact
from glitchnet.realpool import VERIFIED_SOURCES, glitch_folds, load_real_pool
from glitchnet.scores import fuse_log_probabilities

BASE = FinetuneConfig()
TTA_SHIFTS_PX = (-6, 0, 6)
LEVERS = {
    "zero-shot": dict(config=None, what="the starting model as it is"),
    "bn-adapt": dict(config=None, bn_adapt=True, what="BatchNorm statistics re-estimated on unlabelled real images"),
    "tta": dict(config=None, tta=True, what="test-time augmentation: time shifts of -6, 0, +6 px, logits averaged"),
    "finetune-real-only": dict(config=replace(BASE, sim_per_real=0.0), what="fine-tune on real images only"),
    "finetune": dict(config=BASE, what="fine-tune on real + simulated images, class-specific augmentation"),
    "finetune-long": dict(config=replace(BASE, epochs=10, class_balance=1.0),
                          what="fine-tune 10 epochs (not 6), every class equally likely among the real images"),
    "ensemble": dict(config=None, ensemble=("finetune", "finetune-freq"),
                     what="the geometric mean of the fine-tuned seed and frequency-aware networks"),
    "finetune-generic": dict(config=replace(BASE, augment="generic"), what="same, generic augmentation"),
    "finetune-none": dict(config=replace(BASE, augment="none"), what="same, no augmentation"),
    "finetune-freq": dict(config=replace(BASE, arch="glitchnet-freq"),
                          what="same, frequency-aware GlitchNet (log-frequency coordinate channel)"),
    "finetune-calibrated-sim": dict(config=BASE, sim="calibrated",
                                    what="same, mixing simulated images from the simulator calibrated to real image "
                                         "statistics (Power_Line per detector, Air_Compressor range)"),
    "finetune-render": dict(config=replace(BASE, render_prob=0.3),
                            what="same, plus rendering variation (JPEG, GIF palette, rescaling) on 30% of images"),
}


def summarize(pool, probs: np.ndarray) -> dict:
    verified = pool.table["source"].isin(VERIFIED_SOURCES).to_numpy()
    golden = (pool.table["source"] == "golden").to_numpy()
    return {"verified": glitch_scores(pool, probs, verified), "golden": glitch_scores(pool, probs, golden),
            "hobbyist": glitch_scores(pool, probs, ~verified), "all": glitch_scores(pool, probs)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/glitchnet.pt", help="the starting checkpoint")
    parser.add_argument("--sim", help="simulated dataset (Kaggle layout) mixed into fine-tuning: its train split")
    parser.add_argument("--calibrated-sim", default="data/sim-mix-v4",
                        help="the same simulated dataset made by the calibrated simulator (for that lever)")
    parser.add_argument("--real", help="the real pool (default ../shared/data/real)")
    parser.add_argument("--levers", default="all", help=f"comma list of: {', '.join(LEVERS)}; or all")
    parser.add_argument("--k", type=int, default=5, help="folds")
    parser.add_argument("--seed", type=int, default=0, help="fold assignment seed")
    parser.add_argument("--out", default="models/real_crossval.json")
    parser.add_argument("--oof-dir", default="runs/crossval",
                        help="where each lever's out-of-fold probabilities go (the temperature is fitted on them)")
    parser.add_argument("--table", action="store_true", help="print the lever table (markdown) from --out and stop")
    args = parser.parse_args()
    if args.table:
        print(markdown_table(json.loads(Path(args.out).read_text())))
        return 0

    names = list(LEVERS) if args.levers == "all" else args.levers.split(",")
    unknown = [n for n in names if n not in LEVERS]
    if unknown:
        print(f"unknown lever(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    start = load_checkpoint(args.model)
    pool = load_real_pool(args.real)
    folds = glitch_folds(pool, args.k, args.seed)
    x_sim = y_sim = None
    if args.sim:
        scan = scan_dataset(args.sim, view="all")
        x_sim, y_sim, _ = load_split(scan, "train", None, workers=2)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    results.setdefault("levers", {})
    results["setup"] = {"start": args.model, "k": args.k, "fold_seed": args.seed, "sim": args.sim,
                        "sim_train_images": 0 if y_sim is None else int(len(y_sim)), "pool_images": len(pool.table),
                        "pool_glitches": int(pool.table["glitch"].nunique()),
                        "verified_sources": list(VERIFIED_SOURCES)}
    baseline = results["levers"].get("zero-shot")
    for name in names:
        lever = LEVERS[name]
        config = lever["config"]
        if config is not None and config.sim_per_real > 0 and x_sim is None:
            print(f"{name}: needs --sim", file=sys.stderr)
            return 2
        if lever.get("ensemble"):
            members = [np.load(Path(args.oof_dir) / f"{m}.npz", allow_pickle=True)["probabilities"]
                       for m in lever["ensemble"]]
            probs = np.stack([fuse_log_probabilities(np.stack(per_image)) for per_image in zip(*members)])
            baseline = record(results, name, lever["what"], {"members": list(lever["ensemble"])}, 0.0, pool, probs,
                              baseline, args.oof_dir)
            out.write_text(json.dumps(results, indent=1))
            continue
        if lever.get("sim") == "calibrated":
            x_lever, y_lever, _ = load_split(scan_dataset(args.calibrated_sim, view="all"), "train", None, workers=2)
        else:
            x_lever, y_lever = x_sim, y_sim
        res = cross_validate(name, pool, folds, start, x_lever, y_lever, config, bn_adapt=lever.get("bn_adapt", False),
                             tta_shifts_px=TTA_SHIFTS_PX if lever.get("tta") else (0,),
                             variants={"tta": TTA_SHIFTS_PX} if config is not None else None,
                             progress=lambda m: print(m, flush=True))
        outcomes = [(name, lever["what"], res.probabilities, res.config)]
        outcomes += [(f"{name}+{v}", f"{lever['what']}; time-shift test-time augmentation", p,
                      {**res.config, "tta_shifts_px": list(TTA_SHIFTS_PX)}) for v, p in res.variants.items()]
        for key, what, probs, config_used in outcomes:
            baseline = record(results, key, what, config_used, res.seconds, pool, probs, baseline, args.oof_dir)
            out.write_text(json.dumps(results, indent=1))
    return 0


def markdown_table(results: dict) -> str:
    """The lever table as the model card shows it."""
    lines = ["| lever | verified real glitches, per glitch [Wilson 95%] | golden | hobbyist (unverified) | "
             "classes below 2/3 | McNemar vs simulated-only (only this right / only that right, p) |",
             "|---|---|---|---|---|---|"]
    for name, e in results["levers"].items():
        v, g, h = e["verified"], e["golden"], e["hobbyist"]
        low = [c for c, r in v["recall"].items() if r["correct"] / r["glitches"] < 2 / 3]
        m = e.get("mcnemar_vs_zero_shot")
        test = f"{m['only_a']} / {m['only_b']}, p = {m['p_value']:.2g}" if m else "–"
        lines.append(f"| `{name}`: {e['what']} | {v['correct']}/{v['glitches']} = **{v['accuracy']:.1%}** "
                     f"[{v['wilson95'][0]:.1%}, {v['wilson95'][1]:.1%}] | {g['accuracy']:.1%} | {h['accuracy']:.1%} "
                     f"| {', '.join(low) or 'none'} | {test} |")
    return "\n".join(lines)


def record(results: dict, name: str, what: str, config: dict, seconds: float, pool, probs: np.ndarray,
           baseline: dict | None, oof_dir: str) -> dict | None:
    """Score one lever's out-of-fold probabilities, compare with the zero-shot baseline, print its table row."""
    scores = summarize(pool, probs)
    for key in ("golden", "hobbyist", "all"):  # their glitches' rows repeat or extend "verified"'s: keep one copy
        scores[key].pop("rows")
    entry = {"what": what, "config": config, "seconds": round(seconds, 1), **scores}
    if baseline is not None and name != "zero-shot":
        a = {r["glitch"]: r["label"] == r["predicted"] for r in scores["verified"]["rows"]}
        b = {r["glitch"]: r["label"] == r["predicted"] for r in baseline["verified"]["rows"]}
        keys = sorted(a)
        entry["mcnemar_vs_zero_shot"] = mcnemar_exact(np.array([a[k] for k in keys]), np.array([b[k] for k in keys]))
    results["levers"][name] = entry
    Path(oof_dir).mkdir(parents=True, exist_ok=True)
    np.savez_compressed(Path(oof_dir) / f"{name}.npz", probabilities=probs, glitch=pool.table["glitch"].to_numpy(),
                        label=pool.table["label"].to_numpy())
    v, g, h = scores["verified"], scores["golden"], scores["hobbyist"]
    low = [c for c, r in v["recall"].items() if r["correct"] / r["glitches"] < 2 / 3]
    print(f"{name:22s} verified {v['correct']}/{v['glitches']} = {v['accuracy']:.1%} "
          f"[{v['wilson95'][0]:.1%}, {v['wilson95'][1]:.1%}]  golden {g['accuracy']:.1%}  "
          f"hobbyist {h['accuracy']:.1%}  {seconds:.0f} s  below 2/3: {', '.join(low) or 'none'}", flush=True)
    return entry if name == "zero-shot" else baseline


    return 0


if __name__ == "__main__":
    sys.exit(main())
