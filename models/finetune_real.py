"""The shipped model's last stage: fine-tune the simulated-data model on the whole real labelled pool.

    python models/finetune_real.py --start models/glitchnet-sim.pt --sim data/sim-mix --lever finetune \\
        --oof runs/crossval/finetune.npz --out models/glitchnet.pt

The recipe is a lever of ``models/crossval_real.py`` (the one that scored best in cross-validation); its honest
figure is that cross-validation, since this model has seen every pool image. The confidence temperature is fitted on
the lever's out-of-fold probabilities: real images, each scored by a model that never saw its glitch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
from crossval_real import LEVERS

from glitchnet.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from glitchnet.classes import CLASS_TO_INDEX
from glitchnet.crossval import finetune
from glitchnet.data import load_split, scan_dataset
from glitchnet.evaluate import expected_calibration_error, fit_temperature, softmax
from glitchnet.realpool import load_real_pool


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", default="models/glitchnet-sim.pt", help="the simulated-data model")
    parser.add_argument("--sim", required=True, help="simulated dataset mixed in (its train split)")
    parser.add_argument("--real", help="the real pool (default ../shared/data/real)")
    parser.add_argument("--lever", default="finetune", help="the crossval_real.py lever whose recipe to use")
    parser.add_argument("--oof", help="that lever's out-of-fold probabilities (.npz) to fit the temperature on")
    parser.add_argument("--crossval", default="models/real_crossval.json",
                        help="the lever table; the lever's scores are stored in the checkpoint for the app to show")
    parser.add_argument("--out", default="models/glitchnet.pt")
    args = parser.parse_args()

    config = LEVERS[args.lever]["config"]
    if config is None:
        print(f"{args.lever} is not a fine-tuning recipe", file=sys.stderr)
        return 2
    start = load_checkpoint(args.start)
    pool = load_real_pool(args.real)
    x_sim, y_sim, _ = load_split(scan_dataset(args.sim, view="all"), "train", None, workers=2)
    model = finetune(start, pool.images, pool.labels, x_sim, y_sim, config,
                     progress=lambda done, total: print(f"\rstep {done}/{total}", end="", flush=True))
    print()
    temperature, calibration = start.temperature, None
    if args.oof:
        oof = np.load(args.oof, allow_pickle=True)
        labels = np.array([CLASS_TO_INDEX[c] for c in oof["label"]])
        logits = np.log(np.clip(oof["probabilities"], 1e-12, 1.0))
        temperature = fit_temperature(logits, labels)
        calibration = {"temperature": temperature, "fitted_on": f"{len(labels)} out-of-fold real images",
                       "ece_before": expected_calibration_error(softmax(logits, 1.0), labels),
                       "ece_after": expected_calibration_error(softmax(logits, temperature), labels)}
        print(f"temperature {temperature:.3f}, fitted on {len(labels)} out-of-fold real images; expected calibration "
              f"error {calibration['ece_before']:.3f} -> {calibration['ece_after']:.3f}")
    crossval = json.loads(Path(args.crossval).read_text())["levers"][args.lever] if args.crossval else None
    sources = sorted(set(pool.table["source"]))
    ckpt = Checkpoint(
        state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        classes=list(start.classes), width=start.width, views=list(start.views), temperature=temperature,
        arch=config.arch, epoch=config.epochs,
        config={**dataclasses.asdict(config), "view": "all", "stage": "real fine-tune", "lever": args.lever,
                "data": f"real Gravity Spy pool ({pool.table['glitch'].nunique()} glitches) + {Path(args.sim).name}",
                "start": args.start, "sim": args.sim, "start_config": start.config},
        metrics={"real_training_images": int(len(pool.table)),
                 "real_training_glitches": int(pool.table["glitch"].nunique()),
                 "real_training_sources": sources, "calibration": calibration,
                 "real_crossval": None if crossval is None else {
                     key: {k: crossval[key][k] for k in ("glitches", "correct", "accuracy", "wilson95", "macro_f1")}
                     for key in ("verified", "golden", "hobbyist")}},
    )
    save_checkpoint(ckpt, args.out)
    print(f"wrote {args.out}: fine-tuned on {len(pool.table)} real images "
          f"({pool.table['glitch'].nunique()} glitches) from {', '.join(sources)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
