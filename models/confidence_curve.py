"""How far to trust a confidence: accuracy against coverage on real glitches, from out-of-fold probabilities.

    python models/confidence_curve.py --oof runs/crossval/finetune.npz --model models/glitchnet.pt
    python models/confidence_curve.py --oof runs/leave-source-out/gravityspy-o1o2-sources.npz  # held-out sources

Each real glitch's fused probabilities come from a fold model that never saw it, scaled by the shipped model's
temperature. The table says, for each "not sure" threshold, how many glitches keep an answer and how often those
answers are right, and how many of the mistakes the threshold flags; the figure goes to docs/confidence_curve.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from glitchnet.checkpoint import load_checkpoint
from glitchnet.evaluate import fuse_by_glitch, softmax
from glitchnet.inference import LOW_CONFIDENCE
from glitchnet.realpool import VERIFIED_SOURCES, scan_real_pool

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--oof", required=True, help="out-of-fold probabilities written by crossval_real.py")
    parser.add_argument("--model", default="models/glitchnet.pt", help="whose temperature to apply")
    parser.add_argument("--real", help="the real pool (default ../shared/data/real), to pick the verified glitches")
    parser.add_argument("--figure", default="docs/confidence_curve.png")
    args = parser.parse_args()

    oof = np.load(args.oof, allow_pickle=True)
    model = load_checkpoint(args.model)
    temperature, classes = model.temperature, list(model.classes)
    probs = softmax(np.log(np.clip(oof["probabilities"], 1e-12, 1.0)), temperature)
    table = scan_real_pool(args.real)
    verified_glitches = set(table.loc[table["source"].isin(VERIFIED_SOURCES), "glitch"])
    keys, fused = fuse_by_glitch(probs, oof["glitch"])
    labels = dict(zip(oof["glitch"], oof["label"]))
    keep = np.array([k in verified_glitches and labels[k] in classes for k in keys])
    truth = np.array([classes.index(labels[k]) if labels[k] in classes else -1 for k in keys])[keep]
    conf, pred = fused[keep].max(1), fused[keep].argmax(1)
    right = pred == truth
    print(f"{keep.sum()} verified real glitches, temperature {temperature:.3f}, overall accuracy {right.mean():.1%}")
    print("threshold  answered  accuracy when answered  mistakes flagged")
    for t in THRESHOLDS:
        sure = conf >= t
        flagged = (~right & ~sure).sum() / max(1, (~right).sum())
        mark = "  <- the app's rule" if abs(t - LOW_CONFIDENCE) < 1e-9 else ""
        print(f"{t:9.2f}  {sure.mean():8.1%}  {right[sure].mean() if sure.any() else float('nan'):22.1%}  "
              f"{flagged:16.1%}{mark}")

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    order = np.argsort(-conf)
    coverage = np.arange(1, len(order) + 1) / len(order)
    accuracy = np.cumsum(right[order]) / np.arange(1, len(order) + 1)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(coverage, accuracy, color="#440154")
    for t in THRESHOLDS:
        c = (conf >= t).mean()
        if c > 0:
            ax.plot([c], [right[conf >= t].mean()], "o", color="#21918c")
            ax.annotate(f"{t:.1f}", (c, right[conf >= t].mean()), textcoords="offset points", xytext=(4, 4),
                        fontsize=8)
    ax.set_xlabel("coverage (fraction of glitches answered, most confident first)")
    ax.set_ylabel("accuracy of the answered glitches")
    ax.set_title(f"Real glitches, out-of-fold ({keep.sum()}); dots: confidence thresholds", fontsize=10)
    ax.set_ylim(0.4, 1.01)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.figure)
    print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
