"""Shared helpers for the benchmark scripts: a Kaggle-layout folder of simulated PNGs, timing, machine info."""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

import torch


def bench_dataset(glitches_per_class: int = 6, seed: int = 7) -> Path:
    """A simulated Kaggle-layout dataset for benchmarks, made once and reused (``$GLITCHNET_DATA_HOME``)."""
    from glitchnet.simulate import simulate_dataset

    home = Path(os.environ.get("GLITCHNET_DATA_HOME", Path.home() / ".cache" / "glitchnet"))
    out = home / f"bench-sim-{glitches_per_class}pc-seed{seed}"
    return simulate_dataset(out, per_class=glitches_per_class, seed=seed, balanced=True)


def machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, {gpu}")


def best_rate(fn, n_items: int, repeats: int = 3) -> float:
    """Items per second of the fastest of ``repeats`` calls of ``fn`` (each processes ``n_items``)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n_items / best


def median_ms(fn, repeats: int = 15) -> float:
    """Median wall time of ``repeats`` calls of ``fn``, in ms."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)
