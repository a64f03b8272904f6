"""Benchmark the hand-written PNG writer against Pillow's, alone and inside the simulator.

Run as ``python benchmarks/bench_png.py [--images N] [--per-class N]``.

1. Encoding: milliseconds per view (569x479 RGBA, simulated) for ``glitchnet.omega.png.encode_png`` and for
   Pillow's ``Image.save(format="PNG", compress_level=1)``, its fastest setting that still compresses; mean file size.
2. End to end: glitches per second of ``simulate_dataset`` (one process) writing with each encoder.
Each figure is the best of several interleaved runs; both encoders are measured in the same run.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from glitchnet.classes import CLASSES  # noqa: E402
from glitchnet.omega.png import encode_png  # noqa: E402
from glitchnet.simulate import dataset as sim_dataset  # noqa: E402


def pillow_png(rgba: np.ndarray) -> bytes:
    """The library baseline: Pillow's PNG encoder at its fastest compressing level."""
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def encode_ms(encoder, views: list[np.ndarray], repeats: int) -> float:
    """Best-of-``repeats`` milliseconds per view."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for v in views:
            encoder(v)
        best = min(best, time.perf_counter() - start)
    return best / len(views) * 1000


def simulate_rate(encoder, per_class: int) -> float:
    """Glitches per second of ``simulate_dataset`` in one process, writing PNGs with ``encoder``."""
    saved = sim_dataset.encode_png
    sim_dataset.encode_png = encoder
    try:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            sim_dataset.simulate_dataset(Path(tmp) / "bench", per_class=per_class, seed=123, workers=1)
            elapsed = time.perf_counter() - start
    finally:
        sim_dataset.encode_png = saved
    return per_class * len(CLASSES) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8, help="simulated glitches whose four views are encoded")
    parser.add_argument("--per-class", type=int, default=1, help="glitches per class for the end-to-end runs")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    views = []
    for i in range(args.images):
        rgba, _ = sim_dataset._glitch_rgba(CLASSES[i % len(CLASSES)], 500 + i, None)
        views.extend(rgba.values())
    for v in views[:4]:  # the two encoders agree on every pixel
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_png(v)))), v)
    ours = encode_ms(encode_png, views, args.repeats)
    theirs = encode_ms(pillow_png, views, args.repeats)
    size_ours = np.mean([len(encode_png(v)) for v in views]) / 1024
    size_theirs = np.mean([len(pillow_png(v)) for v in views]) / 1024
    print(f"machine: {os.cpu_count()} cores; {len(views)} views of {views[0].shape[1]}x{views[0].shape[0]} RGBA")
    print(f"encode one view: encode_png {ours:.1f} ms ({size_ours:.0f} KiB), Pillow compress_level=1 {theirs:.1f} ms "
          f"({size_theirs:.0f} KiB); Pillow / encode_png = {theirs / ours:.2f}x")

    sim_dataset.simulate_glitch("Blip", 0)  # warm imports and caches outside the timings
    rates = {"encode_png": 0.0, "Pillow": 0.0}
    for _ in range(args.repeats):
        rates["encode_png"] = max(rates["encode_png"], simulate_rate(encode_png, args.per_class))
        rates["Pillow"] = max(rates["Pillow"], simulate_rate(pillow_png, args.per_class))
    print(f"simulator, one process, {args.per_class * len(CLASSES)} glitches x 4 PNGs: encode_png "
          f"{rates['encode_png']:.1f} glitches/s, Pillow {rates['Pillow']:.1f} glitches/s; "
          f"encode_png / Pillow = {rates['encode_png'] / rates['Pillow']:.2f}x")


if __name__ == "__main__":
    main()
