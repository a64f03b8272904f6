"""One uploaded image, file bytes to top-5 and Grad-CAM heatmap (ms), against a bare forward pass."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_dataset, machine, median_ms  # noqa: E402

from glitchnet.checkpoint import Checkpoint  # noqa: E402
from glitchnet.data import scan_dataset  # noqa: E402
from glitchnet.inference import Predictor  # noqa: E402
from glitchnet.model import GlitchNet  # noqa: E402


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
    base = median_ms(forward, 30)
    full = median_ms(upload, 30)
    print(f"machine: {machine()}")
    print(f"baseline  one forward pass (tensor in):            {base:6.1f} ms")
    print(f"measured  bytes -> top-5 + Grad-CAM heatmap:       {full:6.1f} ms  ratio {full / base:.2f}  "
          f"(target < 60 ms: {'met' if full < 60 else 'NOT met'})")


if __name__ == "__main__":
    main()
