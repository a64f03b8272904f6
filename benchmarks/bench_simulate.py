"""Benchmark the simulator: glitches per second written to disk, and its Q-transform against gwpy's.

Run as ``python benchmarks/bench_simulate.py [--per-class N] [--workers W] [--gwpy-glitches M]``.

1. Throughput: ``simulate_dataset`` into a temporary folder (strain, whitening, Q scan, four views, four PNGs per
   glitch) with ``--workers`` processes (default: all cores).
2. Transform: on the same whitened blocks, the time to go from the whitened spectrum to the four views' energies,
   for this project's batched Q scan and pixel-grid interpolation, and for gwpy's ``TimeSeries.q_transform`` called
   once per view as Gravity Spy does (``tres`` 2 ms, ``fres`` 0.5 Hz, ``outseg`` the view). Both single-process.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from glitchnet.classes import CLASSES, DURATIONS_S  # noqa: E402
from glitchnet.omega.qtransform import (  # noqa: E402
    FRANGE_HZ,
    FRES_HZ,
    QRANGE,
    SAMPLE_RATE_HZ,
    TRES_S,
    make_tiling,
    q_scan,
)
from glitchnet.omega.render import view_energies  # noqa: E402
from glitchnet.simulate import simulate_dataset, simulate_strain  # noqa: E402
from glitchnet.simulate.noise import SEGMENT_S, whiten_known  # noqa: E402


def throughput(per_class: int, workers: int) -> float:
    """Glitches per second of ``simulate_dataset`` (four views and PNGs each)."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        simulate_dataset(Path(tmp) / "bench", per_class=per_class, seed=123, workers=workers)
        elapsed = time.perf_counter() - start
    return per_class * len(CLASSES) / elapsed


def transform_times(n_glitches: int) -> tuple[float, float]:
    """Seconds per glitch for (this project's path, gwpy's path) from whitened data to the four views."""
    from gwpy.segments import Segment
    from gwpy.timeseries import TimeSeries

    blocks = []
    for i in range(n_glitches):
        label = CLASSES[i % len(CLASSES)]
        strain, row = simulate_strain(label, 1000 + i)
        blocks.append(whiten_known(strain, SAMPLE_RATE_HZ, row["ifo"]))
    tiling = make_tiling(SEGMENT_S, SAMPLE_RATE_HZ)
    c = SEGMENT_S / 2
    half = max(DURATIONS_S) / 2 + 0.05

    start = time.perf_counter()
    for fseries in blocks:
        scan = q_scan(fseries, tiling, c, (c - half, c + half), norm="median")
        view_energies(scan, c, DURATIONS_S)
    ours = (time.perf_counter() - start) / n_glitches

    series = [TimeSeries(np.fft.irfft(f, n=int(SEGMENT_S * SAMPLE_RATE_HZ)), sample_rate=SAMPLE_RATE_HZ, t0=0)
              for f in blocks]
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for ts in series:
            for d in DURATIONS_S:
                ts.q_transform(qrange=QRANGE, frange=FRANGE_HZ, gps=c, search=0.5, tres=TRES_S, fres=FRES_HZ,
                               outseg=Segment(c - d / 2, c + d / 2), whiten=False)
    theirs = (time.perf_counter() - start) / n_glitches
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=4, help="glitches per class for the throughput run")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--gwpy-glitches", type=int, default=6, help="glitches for the transform comparison")
    args = parser.parse_args()

    print(f"machine: {os.cpu_count()} cores; simulating at {SAMPLE_RATE_HZ:g} Hz, {SEGMENT_S:g} s blocks")
    simulate_strain("Blip", 0)  # warm imports and caches outside the timings
    make_tiling(SEGMENT_S, SAMPLE_RATE_HZ)
    rate = throughput(args.per_class, args.workers)
    print(f"throughput: {rate:.1f} glitches/s ({args.per_class * len(CLASSES)} glitches, 4 views + 4 PNGs each, "
          f"{args.workers} workers)")
    ours, theirs = transform_times(args.gwpy_glitches)
    print(f"Q transform, whitened data -> four views' energies, per glitch, one process: "
          f"this project {ours * 1000:.0f} ms, gwpy q_transform {theirs * 1000:.0f} ms; "
          f"gwpy / ours = {theirs / ours:.1f}x")


if __name__ == "__main__":
    main()
