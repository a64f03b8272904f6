"""One uploaded glitch (four views), file bytes to combined verdict and four Grad-CAM heatmaps, against the path the
app took before (each file decoded twice, Grad-CAM by pytorch-grad-cam one view at a time); and ``Predictor.explain``
(heatmaps from the forward pass) against pytorch-grad-cam's ``GradCAM`` on the same four images."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_dataset, machine, median_ms  # noqa: E402

from glitchnet.checkpoint import Checkpoint  # noqa: E402
from glitchnet.data import scan_dataset  # noqa: E402
from glitchnet.images import to_model_input  # noqa: E402
from glitchnet.inference import Predictor  # noqa: E402
from glitchnet.model import GlitchNet  # noqa: E402


def main() -> None:
    torch.manual_seed(0)
    predictor = Predictor(Checkpoint(state_dict=GlitchNet().state_dict()))
    manifest = scan_dataset(bench_dataset(), view="all").manifest
    first = manifest[manifest["gravityspy_id"] == manifest["gravityspy_id"].iloc[0]].sort_values("duration")
    files = [(Path(p).name, Path(p).read_bytes()) for p in first["path"]]
    assert len(files) == 4, files

    def before() -> None:  # the app's former path: per file, predict (decode), load (decode again), Grad-CAM
        preds = []
        for name, data in files:
            pred = predictor.predict([data], names=[name])[0]
            image = Predictor.load(data)
            predictor.gradcam(image, predictor.classes.index(pred.label))
            preds.append(pred)
        predictor.fuse(preds)

    def now() -> None:
        predictor.classify_files(files)

    images = np.stack([Predictor.load(data) for _, data in files])
    targets = [3] * 4

    def grad_cam_library() -> None:
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        with torch.enable_grad():
            predictor._cam()(input_tensor=to_model_input(images), targets=[ClassifierOutputTarget(t) for t in targets])

    def grad_cam_forward() -> None:
        predictor.explain(images, targets)

    for fn in (before, now, grad_cam_library, grad_cam_forward):
        fn()  # warm up: lookup tables, imports, this thread's Grad-CAM copy of the model
    old, new = median_ms(before), median_ms(now)
    lib, fwd = median_ms(grad_cam_library), median_ms(grad_cam_forward)
    print(f"machine: {machine()}")
    print(f"glitch: {len(files)} simulated Kaggle PNGs (569x479), random weights")
    print(f"baseline  former app path, bytes -> verdict + 4 heatmaps:  {old:7.1f} ms")
    print(f"measured  Predictor.classify_files, same result:           {new:7.1f} ms  ratio {old / new:.1f}x faster")
    print(f"baseline  pytorch-grad-cam GradCAM, 4 views in one batch:  {lib:7.1f} ms")
    print(f"measured  Predictor.explain (probabilities + heatmaps):    {fwd:7.1f} ms  ratio {lib / fwd:.1f}x faster")


if __name__ == "__main__":
    main()
