"""One uploaded image, file bytes to top-5 and Grad-CAM heatmap (ms), against a bare forward pass."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_dataset, machine  # noqa: E402

from glitchnet.checkpoint import Checkpoint  # noqa: E402
from glitchnet.data import scan_dataset  # noqa: E402
from glitchnet.inference import Predictor  # noqa: E402
from glitchnet.model import GlitchNet  # noqa: E402


def median_ms(fn, repeats: int = 30) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    torch.manual_seed(0)
    predictor = Predictor(Checkpoint(state_dict=GlitchNet().state_dict()))
    path = scan_dataset(bench_dataset(), view="1.0").manifest["path"].iloc[0]
    data = Path(path).read_bytes()
    x = torch.randn(1, 3, 224, 224)

    @torch.no_grad()
    def forward() -> None:
        predictor.model(x)

    def upload() -> None:  # the app's path: decode once, one forward pass for top-5 and the heatmap
        predictor.classify_files([("upload.png", data)])

    upload()  # warm up (lookup tables, imports)
    base = median_ms(forward)
    full = median_ms(upload)
    print(f"machine: {machine()}")
    print(f"baseline  one forward pass (tensor in):            {base:6.1f} ms")
    print(f"measured  bytes -> top-5 + Grad-CAM heatmap:       {full:6.1f} ms  ratio {full / base:.2f}  "
          f"(target < 60 ms: {'met' if full < 60 else 'NOT met'})")


if __name__ == "__main__":
    main()
