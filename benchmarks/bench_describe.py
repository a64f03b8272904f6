"""The app's first page names the model without torch: ``read_description`` against ``load_checkpoint``, each in a
fresh Python process (what a newly started server pays), so the figure includes every import."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "glitchnet.pt"
TIMED = """
import sys, time
t0 = time.perf_counter()
from glitchnet.checkpoint import {fn}
ckpt = {fn}({path!r})
assert ckpt.quality() and len(ckpt.classes) == 22
print(time.perf_counter() - t0, "torch" in sys.modules)
"""


def fresh_process_s(fn: str, repeats: int = 5) -> tuple[float, bool]:
    """Median seconds from the first import to the checkpoint's description, and whether torch was imported."""
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", TIMED.format(fn=fn, path=str(MODEL))], cwd=ROOT, check=True,
                             capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": ""})
        seconds, torch_loaded = out.stdout.split()
        runs.append((float(seconds), torch_loaded == "True"))
    return statistics.median(s for s, _ in runs), runs[0][1]


def main() -> None:
    described_s, described_torch = fresh_process_s("read_description")
    loaded_s, loaded_torch = fresh_process_s("load_checkpoint")
    print(f"{MODEL.name}: read_description {described_s * 1000:.0f} ms (torch imported: {described_torch}); "
          f"load_checkpoint {loaded_s * 1000:.0f} ms (torch imported: {loaded_torch}); "
          f"{loaded_s / described_s:.1f}x faster (median of 5 fresh processes each)")


if __name__ == "__main__":
    main()
