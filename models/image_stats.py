"""Per-class image statistics, real against simulated: where the simulator departs from real Gravity Spy scans.

    python models/image_stats.py --sim data/sim-mix                  # a simulated dataset in Kaggle layout
    python models/image_stats.py --per-class 3 --json stats.json     # simulate a small one on the fly

The real side is the verified pool (golden subjects, Gravity Spy examples, Scratchy fixtures). Every image, real or
simulated, goes through the same ``canonical_uint8`` path, so the statistics compare what the model sees. A '*' marks
a statistic whose simulated median falls outside the real interquartile range of its class.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from glitchnet.data import load_split, scan_dataset
from glitchnet.imagestats import STATISTICS, class_statistics, compare_classes
from glitchnet.realpool import VERIFIED_SOURCES, load_real_pool

SHORT = {"saturated_fraction": "sat", "bright_fraction": "bright", "peak_energy": "peak",
         "frequency_centroid_hz": "f_cent", "dominant_frequency_hz": "f_dom", "frequency_extent_octaves": "oct",
         "time_extent_fraction": "t_ext", "median_energy": "bg"}
"""Column headings of the printed table."""


def simulated(sim: str | None, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images and label indices of every split of the simulated dataset (simulated into a temp dir when ``sim`` is
    None)."""
    if sim is None:
        from glitchnet.simulate.dataset import simulate_dataset

        tmp = tempfile.mkdtemp(prefix="glitchnet-imagestats-")
        print(f"simulating {per_class} glitches per class into {tmp}", file=sys.stderr)
        sim = str(simulate_dataset(tmp, per_class=per_class, balanced=True, seed=seed, workers=1))
    scan = scan_dataset(sim, view="all")
    parts = [load_split(scan, split, None, workers=1) for split in ("train", "validation", "test")
             if len(scan.split(split))]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def format_table(table: pd.DataFrame) -> str:
    """One line per class: counts, then ``real/sim`` medians per statistic, '*' where the simulated one is off."""
    def fmt(v: float) -> str:
        return "nan" if not np.isfinite(v) else f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"

    cells = [["class", "n_real", "n_sim"] + [f"{SHORT[s]} real/sim" for s in STATISTICS]]
    for label, row in table.iterrows():
        cells.append([str(label), str(row["real_count"]), str(row["sim_count"])]
                     + [f"{fmt(row[f'{s}_real'])}/{fmt(row[f'{s}_sim'])}{'*' if row[f'{s}_off'] else ''}"
                        for s in STATISTICS])
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in cells]
    off = table[[f"{s}_off" for s in STATISTICS]].sum()
    lines.append("departures per statistic: " + ", ".join(f"{SHORT[s]} {int(off[f'{s}_off'])}" for s in STATISTICS))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sim", help="simulated dataset (Kaggle layout); all splits, all four views")
    parser.add_argument("--per-class", type=int, default=3, help="without --sim: glitches per class to simulate")
    parser.add_argument("--seed", type=int, default=0, help="without --sim: simulation seed")
    parser.add_argument("--real", help="the real pool (default ../shared/data/real)")
    parser.add_argument("--json", help="also write the table here")
    args = parser.parse_args()

    pool = load_real_pool(args.real, sources=VERIFIED_SOURCES)
    real = class_statistics(pool.images, pool.table["label"])
    sim_images, sim_labels = simulated(args.sim, args.per_class, args.seed)
    sim = class_statistics(sim_images, sim_labels)
    table = compare_classes(real, sim)
    print(f"real: {len(pool.images)} images (verified pool); simulated: {len(sim_images)} images")
    print("medians real/sim per class; '*': simulated median outside the real interquartile range")
    print(format_table(table))
    if args.json:
        out = {"real": real.reset_index(names="label").to_dict("records"),
               "sim": sim.reset_index(names="label").to_dict("records"),
               "comparison": table.reset_index().to_dict("records")}
        Path(args.json).write_text(json.dumps(out, indent=1, default=float, allow_nan=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
