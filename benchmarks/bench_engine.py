"""The serving engine: ONNX Runtime (``glitchnet.engine.OnnxEngine``) against the torch ``Predictor``, same run.

Each engine runs in a fresh process (so its resident memory is its own), in turns, twice: the shipped model, the
app's call (``explain``: probabilities and Grad-CAM heatmaps from one forward pass) on a batch of 1 and of 32
canonical images, on ``--threads`` threads. Prints per engine: milliseconds per call (best of the repeats), RSS after
the import, after loading and at the peak; then the speed ratios ONNX/torch, and how far apart their answers are.

    python benchmarks/bench_engine.py [--threads 2] [--repeats 20] [--model models/glitchnet.pt]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import ROOT  # noqa: E402

CHILD = r"""
import json, sys, time
import numpy as np

def rss(field="VmRSS"):
    return int(next(l for l in open("/proc/self/status") if l.startswith(field + ":")).split()[1]) / 1024

kind, model, threads, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
base = rss()
if kind == "torch":
    import torch
    torch.set_num_threads(threads)
    from glitchnet.inference import Predictor
    imported = rss()
    engine = Predictor(model)
else:
    from glitchnet.engine import OnnxEngine
    imported = rss()
    engine = OnnxEngine.beside(model, threads=threads)
loaded = rss()
from glitchnet.images import viridis_lut
rng = np.random.default_rng(0)
images = viridis_lut()[rng.integers(0, 256, (32, 224, 224))]
classes = list(range(32))
classes = [c % len(engine.classes) for c in classes]
engine.explain(images[:1], classes[:1]); engine.explain(images, classes)  # warm-up
out = {"kind": kind, "torch_loaded": "torch" in sys.modules, "base_mb": base, "imported_mb": imported,
       "loaded_mb": loaded}
for n in (1, 32):
    best = float("inf")
    for _ in range(repeats if n == 1 else max(3, repeats // 5)):
        t = time.perf_counter()
        probs, heats = engine.explain(images[:n], classes[:n])
        best = min(best, time.perf_counter() - t)
    out[f"ms_{n}"] = best * 1000
    np.save(sys.argv[5] + f"-{n}-probs.npy", probs)
    np.save(sys.argv[5] + f"-{n}-heats.npy", heats)
out["peak_mb"] = rss("VmHWM")
print(json.dumps(out))
"""


def run(kind: str, args: argparse.Namespace, prefix: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(args.threads)}
    out = subprocess.run([sys.executable, "-c", CHILD, kind, str(args.model), str(args.threads), str(args.repeats),
                          prefix], capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"{kind} run failed: {out.stderr.strip().splitlines()[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    import tempfile

    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "glitchnet.pt")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} at start; {args.threads} threads; model {args.model.name}")
    with tempfile.TemporaryDirectory() as tmp:
        runs: dict[str, list[dict]] = {"torch": [], "onnx": []}
        for _ in range(2):  # in turns, so that a change in the machine's load does not land on one side only
            for kind in runs:
                runs[kind].append(run(kind, args, f"{tmp}/{kind}"))
        best = {k: {key: min(r[key] for r in rs) if key.startswith("ms_") else max(r[key] for r in rs)
                    for key in rs[0] if key != "kind"} for k, rs in runs.items()}
        diff = {n: max(float(np.abs(np.load(f"{tmp}/torch-{n}-{w}.npy") - np.load(f"{tmp}/onnx-{n}-{w}.npy")).max())
                       for w in ("probs", "heats")) for n in (1, 32)}
    for kind, b in best.items():
        print(f"{kind:5s}: batch 1 {b['ms_1']:.1f} ms, batch 32 {b['ms_32']:.0f} ms; RSS {b['imported_mb']:.0f} MB "
              f"after the import, {b['loaded_mb']:.0f} MB loaded, {b['peak_mb']:.0f} MB peak; torch imported: "
              f"{b['torch_loaded']}")
    t, o = best["torch"], best["onnx"]
    print(f"ONNX Runtime vs torch: {t['ms_1'] / o['ms_1']:.2f}x faster at batch 1, {t['ms_32'] / o['ms_32']:.2f}x at "
          f"batch 32; peak RSS {o['peak_mb']:.0f} MB against {t['peak_mb']:.0f} MB "
          f"({t['peak_mb'] - o['peak_mb']:.0f} MB less); largest difference in probabilities or heatmaps "
          f"{max(diff.values()):.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
