"""Validation accuracy of a checkpoint with its stored BatchNorm statistics and with them recomputed ("precise BN").

    python models/check_batchnorm.py --data data/sim-shipped-stage3 --model models/glitchnet-sim.pt

The two figures differ when the running averages lag the weights (high learning rates, mid-schedule checkpoints);
``--seed`` picks the images the statistics are recomputed over (training uses ``(seed, epoch)``).
"""

from __future__ import annotations

import argparse

from glitchnet.checkpoint import load_checkpoint
from glitchnet.data import load_split, scan_dataset
from glitchnet.evaluate import predict_logits
from glitchnet.train import recompute_batchnorm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the dataset the model was trained on")
    parser.add_argument("--model", default="models/glitchnet.pt")
    parser.add_argument("--images", type=int, default=2048, help="training images to recompute the statistics over")
    parser.add_argument("--seed", type=int, nargs="+", help="default: the run's (seed, epoch), as training does")
    args = parser.parse_args()

    ckpt = load_checkpoint(args.model)
    scan = scan_dataset(args.data, view=ckpt.scan_view)
    x_train, _, _ = load_split(scan, "train", None, 2)
    x_val, y_val, _ = load_split(scan, "validation", None, 2)
    model = ckpt.build_model()

    def accuracy() -> float:
        return float((predict_logits(model, x_val, 128).argmax(1) == y_val).mean())

    stored = accuracy()
    seed = tuple(args.seed) if args.seed else (int(ckpt.config.get("seed", 0)), ckpt.epoch)
    recompute_batchnorm(model, x_train, args.images, int(ckpt.config.get("batch_size", 32)), seed=seed)
    precise = accuracy()
    print(f"{args.model} (epoch {ckpt.epoch}), {len(y_val)} validation images: accuracy {stored:.4f} with the stored "
          f"BatchNorm statistics, {precise:.4f} recomputed over {min(args.images, len(x_train))} training images "
          f"(seed {seed})")


if __name__ == "__main__":
    main()
