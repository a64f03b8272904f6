"""Train the same GlitchNet three ways (class-specific, generic, no augmentation) and score each on real figures.

    python models/compare_augmentation.py --data data/sim-shipped --epochs 6 --golden ../shared/data/real/golden

Same simulated data, view, epochs, seed and learning rate for all three; writes models/augmentation_comparison.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from glitchnet.config import AUGMENTATION_MODES, VIEWS
from glitchnet.evaluate import evaluate_labelled_folder
from glitchnet.inference import Predictor
from glitchnet.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--golden", help="real labelled figures, <Class>/<file>, scored but never trained on")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--view", default=TrainConfig.view, choices=VIEWS)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--out", default="models/augmentation_comparison.json")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in AUGMENTATION_MODES:
            t0 = time.perf_counter()
            ckpt = train(TrainConfig(data=args.data, out=f"{tmp}/{mode}.pt", epochs=args.epochs, lr=args.lr,
                                     view=args.view, augment=mode, seed=0))
            row = {"augment": mode, "epochs": args.epochs, "view": args.view,
                   "best_val_accuracy": ckpt.metrics["validation"]["accuracy"],
                   "best_val_macro_f1": ckpt.metrics["validation"]["macro_f1"],
                   "train_seconds": round(time.perf_counter() - t0, 1)}
            if args.golden:
                real = evaluate_labelled_folder(Predictor(f"{tmp}/{mode}.pt"), args.golden)
                row.update(golden_per_image=real["per_image"]["accuracy"],
                           golden_per_glitch=real["per_glitch"]["accuracy"],
                           golden_macro_f1_per_glitch=real["per_glitch"]["macro_f1"])
            rows.append(row)
            print(json.dumps(row), flush=True)
    Path(args.out).write_text(json.dumps({"data": args.data, "runs": rows}, indent=1))
    print(f"{'augment':<9}{'val acc':>9}{'golden/img':>12}{'golden/glitch':>15}")
    for r in rows:
        print(f"{r['augment']:<9}{r['best_val_accuracy']:>9.3f}{r.get('golden_per_image', float('nan')):>12.3f}"
              f"{r.get('golden_per_glitch', float('nan')):>15.3f}")


if __name__ == "__main__":
    main()
