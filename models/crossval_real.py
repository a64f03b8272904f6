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

BASE = FinetuneConfig()
TTA_SHIFTS_PX = (-6, 0, 6)
LEVERS = {
    "zero-shot": dict(config=None, what="the starting model as it is"),
    "bn-adapt": dict(config=None, bn_adapt=True, what="BatchNorm statistics re-estimated on unlabelled real images"),
    "tta": dict(config=None, tta=True, what="test-time augmentation: time shifts of -6, 0, +6 px, logits averaged"),
    "finetune-real-only": dict(config=replace(BASE, sim_per_real=0.0), what="fine-tune on real images only"),
    "finetune": dict(config=BASE, what="fine-tune on real + simulated images, class-specific augmentation"),
    "finetune-generic": dict(config=replace(BASE, augment="generic"), what="same, generic augmentation"),
    "finetune-none": dict(config=replace(BASE, augment="none"), what="same, no augmentation"),
    "finetune-freq": dict(config=replace(BASE, arch="glitchnet-freq"),
                          what="same, frequency-aware GlitchNet (log-frequency coordinate channel)"),
    "finetune-tta": dict(config=BASE, tta=True, what="fine-tune + time-shift test-time augmentation"),
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
    parser.add_argument("--real", help="the real pool (default ../shared/data/real)")
    parser.add_argument("--levers", default="all", help=f"comma list of: {', '.join(LEVERS)}; or all")
    parser.add_argument("--k", type=int, default=5, help="folds")
    parser.add_argument("--seed", type=int, default=0, help="fold assignment seed")
    parser.add_argument("--out", default="models/real_crossval.json")
    args = parser.parse_args()

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
        res = cross_validate(name, pool, folds, start, x_sim, y_sim, config, bn_adapt=lever.get("bn_adapt", False),
                             tta_shifts_px=TTA_SHIFTS_PX if lever.get("tta") else (0,), progress=print)
        scores = summarize(pool, res.probabilities)
        entry = {"what": lever["what"], "config": res.config, "seconds": round(res.seconds, 1), **scores}
        if baseline is not None and name != "zero-shot":
            a = {r["glitch"]: r["label"] == r["predicted"] for r in scores["verified"]["rows"]}
            b = {r["glitch"]: r["label"] == r["predicted"] for r in baseline["verified"]["rows"]}
            keys = sorted(a)
            entry["mcnemar_vs_zero_shot"] = mcnemar_exact(np.array([a[k] for k in keys]),
                                                          np.array([b[k] for k in keys]))
        if name == "zero-shot":
            baseline = entry
        results["levers"][name] = entry
        out.write_text(json.dumps(results, indent=1))
        v, g, h = scores["verified"], scores["golden"], scores["hobbyist"]
        low = [c for c, r in v["recall"].items() if r["correct"] / r["glitches"] < 2 / 3]
        print(f"{name:20s} verified {v['correct']}/{v['glitches']} = {v['accuracy']:.1%} "
              f"[{v['wilson95'][0]:.1%}, {v['wilson95'][1]:.1%}]  golden {g['accuracy']:.1%}  "
              f"hobbyist {h['accuracy']:.1%}  {res.seconds:.0f} s  below 2/3: {', '.join(low) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
