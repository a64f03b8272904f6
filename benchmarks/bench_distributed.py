"""torch.distributed on one machine: training 2 ranks x 1 thread against 1 process x 2 threads, prediction 1 -> 2
ranks, and the per-image costs (one core) from which benchmarks/RESULTS.md estimates GPU-scale runs."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_dataset, machine  # noqa: E402

from glitchnet.augment import make_augmenter  # noqa: E402
from glitchnet.checkpoint import Checkpoint, load_checkpoint, save_checkpoint  # noqa: E402
from glitchnet.data import scan_dataset  # noqa: E402
from glitchnet.images import canonical_uint8, normalize  # noqa: E402
from glitchnet.model import GlitchNet  # noqa: E402
from glitchnet.train import last_checkpoint_path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GLOBAL_BATCH = 32


def _env(threads: int, cache: str) -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS=str(threads), GLITCHNET_CACHE_DIR=cache,
                PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def _command(ranks: int) -> list[str]:
    if ranks == 1:
        return [sys.executable, "-m", "glitchnet"]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks), "-m", "glitchnet"]


def train_rate(ranks: int, threads: int, data: Path, tmp: str) -> float:
    """Training images/s (all ranks) of epoch 2, the global batch fixed at 32, from the run's own history."""
    out = f"{tmp}/train-{ranks}x{threads}.pt"
    subprocess.run([*_command(ranks), "train", "--data", str(data), "--out", out, "--epochs", "2", "--view", "all",
                    "--batch-size", str(GLOBAL_BATCH // ranks), "--precise-bn", "0", "--workers", "0", "--overwrite"],
                   env=_env(threads, f"{tmp}/cache"), check=True, capture_output=True)
    return load_checkpoint(last_checkpoint_path(out)).metrics["history"][-1]["images_per_s"]


def predict_seconds(ranks: int, threads: int, folder: Path, model: str, tmp: str) -> float:
    """Wall time of ``glitchnet predict --out`` over the folder (start-up, listing, decoding, merging included)."""
    out = f"{tmp}/pred-{ranks}x{threads}.csv"  # a fresh name per run: predict --out never replaces silently
    t0 = time.perf_counter()
    subprocess.run([*_command(ranks), "predict", "--model", model, "--out", out, str(folder)],
                   env=_env(threads, f"{tmp}/cache"), check=True, capture_output=True)
    return time.perf_counter() - t0


def per_image_costs(paths: list[str]) -> dict[str, float]:
    """Milliseconds per image on one core: decoding, class-specific augmentation, forward pass, training step."""
    torch.set_num_threads(1)
    sample = paths[:48]
    t0 = time.perf_counter()
    images = np.stack([canonical_uint8(p) for p in sample])
    decode = (time.perf_counter() - t0) / len(sample)
    augment = make_augmenter("class")
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for i, img in enumerate(images):
        augment(img, "Blip" if i % 2 else "Scattered_Light", rng)
    augmentation = (time.perf_counter() - t0) / len(images)
    model = GlitchNet().to(memory_format=torch.channels_last)
    x = normalize(images[:GLOBAL_BATCH])
    y = torch.randint(0, 22, (GLOBAL_BATCH,))
    opt = torch.optim.AdamW(model.parameters())
    for step in range(3):
        if step == 1:
            t0 = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    training = (time.perf_counter() - t0) / (2 * GLOBAL_BATCH)
    model.eval()
    with torch.no_grad():
        model(x)
        t0 = time.perf_counter()
        model(x)
        model(x)
    forward = (time.perf_counter() - t0) / (2 * GLOBAL_BATCH)
    return {"decode": 1e3 * decode, "augment": 1e3 * augmentation, "forward": 1e3 * forward,
            "train_step": 1e3 * training}


def main() -> None:
    data = bench_dataset(glitches_per_class=12)
    paths = scan_dataset(data, view="all").manifest["path"].tolist()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at the start")
    print(f"data: {data} ({len(paths)} PNGs: {len(paths) // 4} glitches x 4 views)")
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        model = f"{tmp}/random.pt"
        save_checkpoint(Checkpoint(state_dict=GlitchNet().state_dict()), model)

        one = train_rate(1, 2, data, tmp)  # the first run also fills the decoded-image cache
        one = max(one, train_rate(1, 2, data, tmp))
        two = train_rate(2, 1, data, tmp)
        print(f"training, global batch {GLOBAL_BATCH}, epoch 2, class-specific augmentation:")
        print(f"  baseline  1 process  x 2 threads (batch 32):        {one:6.1f} img/s")
        print(f"  measured  2 ranks    x 1 thread  (batch 16 each):   {two:6.1f} img/s   ratio {two / one:.2f}")

        folder = Path(data)
        n = len(paths)
        p11 = predict_seconds(1, 1, folder, model, tmp)
        p12 = predict_seconds(1, 2, folder, model, tmp)
        p21 = predict_seconds(2, 1, folder, model, tmp)
        print(f"prediction of {n} PNGs into one CSV (wall time of the command, start-up included):")
        print(f"  baseline  1 rank  x 1 thread:  {p11:6.1f} s  {n / p11:6.1f} img/s")
        print(f"  measured  1 rank  x 2 threads: {p12:6.1f} s  {n / p12:6.1f} img/s   ratio {p11 / p12:.2f}")
        print(f"  measured  2 ranks x 1 thread:  {p21:6.1f} s  {n / p21:6.1f} img/s   ratio {p11 / p21:.2f} "
              f"(against 2 threads: {p12 / p21:.2f})")

    costs = per_image_costs(paths)
    print("per-image costs on one core (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in costs.items()))


if __name__ == "__main__":
    main()
