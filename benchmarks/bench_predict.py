"""Batch prediction from PNG files (images/s, constant memory), against the model's forward pass on tensors."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_dataset, best_rate, machine  # noqa: E402

from glitchnet.checkpoint import Checkpoint  # noqa: E402
from glitchnet.data import scan_dataset  # noqa: E402
from glitchnet.inference import Predictor  # noqa: E402
from glitchnet.model import GlitchNet  # noqa: E402


def main() -> None:
    torch.manual_seed(0)
    predictor = Predictor(Checkpoint(state_dict=GlitchNet().state_dict()))
    paths = scan_dataset(bench_dataset(), view="all").manifest["path"].tolist()
    n = len(paths)
    x = torch.randn(32, 3, 224, 224)

    @torch.no_grad()
    def forward_only() -> None:
        for _ in range(n // 32):
            predictor.model(x)

    def from_files() -> None:
        for _ in predictor.predict_stream(paths, batch_size=32):
            pass

    list(predictor.predict_stream(paths[:64]))  # warm up lookup tables and threads
    compute = best_rate(forward_only, (n // 32) * 32)
    files = best_rate(from_files, n)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in predictor.predict_stream(paths * 4, batch_size=32):
        pass
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"machine: {machine()}")
    print(f"files: {n} simulated Kaggle PNGs (569x479)")
    print(f"baseline  model forward on in-memory tensors: {compute:7.1f} img/s")
    print(f"measured  predict_stream from PNG files:      {files:7.1f} img/s  "
          f"ratio {files / compute:.2f}  (target >= 100 img/s: {'met' if files >= 100 else 'NOT met'})")
    growth_mib = (rss1 - rss0) / 1024
    print(f"memory    peak RSS growth over {4 * n} more files: {growth_mib:.1f} MiB (constant-memory streaming)")


if __name__ == "__main__":
    main()
