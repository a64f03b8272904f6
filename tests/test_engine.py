"""The ONNX Runtime serving engine: the same answers as the torch Predictor, exports that are checked and refused
when stale, and a hosted app that never imports torch."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from glitchnet import engine
from glitchnet.checkpoint import Checkpoint, read_description, save_checkpoint
from glitchnet.cli import main
from glitchnet.engine import ExportError, OnnxEngine, read_sidecar
from glitchnet.export import export
from glitchnet.images import normalize_array, to_model_input
from glitchnet.inference import Predictor
from glitchnet.model import build_architecture
from glitchnet.serving import serving_engine

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "streamlit_app.py"
TOLERANCE = 1e-4


def _random_checkpoint(path: Path, arch: str, classes: int, seed: int) -> Path:
    """A checkpoint of random weights, BatchNorm statistics and scales included, so that every layer matters."""
    torch.manual_seed(seed)
    model = build_architecture(arch, num_classes=classes)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    from glitchnet.classes import get_class_set

    names = list(get_class_set("gravityspy-o3" if classes == 23 else "gravityspy-o1o2").names)
    ckpt = Checkpoint(state_dict=model.state_dict(), classes=names, arch=arch, temperature=1.7,
                      views=["0.5", "1.0", "2.0", "4.0"], metrics={"validation": {"accuracy": 0.5, "n": 10}})
    return save_checkpoint(ckpt, path)


@pytest.fixture(scope="module", params=[("glitchnet", 22), ("glitchnet-freq", 23)], ids=["glitchnet", "freq"])
def exported(request, tmp_path_factory) -> Path:
    arch, classes = request.param
    path = _random_checkpoint(tmp_path_factory.mktemp("export") / "random.pt", arch, classes, seed=classes)
    export(path)
    return path


def _real_views(real: Path) -> list:
    files = sorted((real / "golden").glob("*/*-2.gif"))[:6] + sorted((real / "golden").glob("*/*-1.jpg"))[:6]
    return [v for f in files for v in engine.Engine.decode(f.name, f.read_bytes()) if v.error is None]


def test_numpy_normalization_is_the_torch_one_bit_for_bit() -> None:
    images = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    ours = normalize_array(images)
    assert ours.dtype == np.float32 and ours.shape == (3, 3, 224, 224) and ours.flags.c_contiguous
    assert np.array_equal(ours, to_model_input(images).numpy())
    with pytest.raises(ValueError, match="RGB images"):
        normalize_array(images[..., :2])


def test_heatmap_post_processing_is_pytorch_grad_cams() -> None:
    from pytorch_grad_cam.utils.image import scale_cam_image

    cam = np.random.default_rng(1).random((3, 56, 56)).astype(np.float32) * 5
    assert np.array_equal(engine.scale_cam(cam, (224, 224)), scale_cam_image(cam, (224, 224)))
    assert np.array_equal(engine.scale_cam(cam), scale_cam_image(cam))


def test_onnx_engine_answers_as_torch_on_real_images(exported: Path, real: Path) -> None:
    predictor, onnx = Predictor(exported), OnnxEngine.beside(exported)
    assert onnx.kind == "onnxruntime" and onnx.classes == predictor.classes and onnx.temperature == 1.7
    views = _real_views(real)
    images = np.stack([v.image for v in views])
    assert len(images) >= 20
    p_torch, h_torch = predictor.explain(images)
    p_onnx, h_onnx = onnx.explain(images, p_torch.argmax(1))
    assert np.abs(p_torch - p_onnx).max() <= TOLERANCE
    assert np.abs(h_torch - h_onnx).max() <= TOLERANCE and h_onnx.shape == (len(images), 224, 224)
    assert h_onnx.min() >= 0 and h_onnx.max() <= 1 + 1e-6 and h_onnx.std() > 0.01  # real heatmaps, not blanks
    assert np.abs(predictor.embed(images) - onnx.embed(images)).max() <= TOLERANCE
    assert onnx.weights_digest == predictor.weights_digest  # the similarity index is shared by both
    # whole glitches: the same verdicts, fused probabilities and heatmaps per view
    by_torch, by_onnx = predictor.classify(copy.deepcopy(views)), onnx.classify(copy.deepcopy(views))
    assert [g.key for g in by_torch] == [g.key for g in by_onnx]
    for a, b in zip(by_torch, by_onnx):
        assert a.verdict.label == b.verdict.label
        assert np.abs(a.verdict.probabilities - b.verdict.probabilities).max() <= TOLERANCE
        for va, vb in zip(a.readable, b.readable):
            assert np.abs(va.heat - vb.heat).max() <= TOLERANCE


def test_onnx_heatmaps_are_pytorch_grad_cams_gradcam(exported: Path, real: Path) -> None:
    """The reference: pytorch-grad-cam's GradCAM (forward and backward) on the torch model."""
    predictor, onnx = Predictor(exported), OnnxEngine.beside(exported)
    images = np.stack([v.image for v in _real_views(real)[:3]])
    classes = [0, 5, 11]
    _, heats = onnx.explain(images, classes)
    for image, c, heat in zip(images, classes, heats):
        assert np.abs(predictor.gradcam(image, c) - heat).max() <= TOLERANCE


def test_sidecar_describes_the_checkpoint(exported: Path) -> None:
    onnx = OnnxEngine.beside(exported)
    ckpt = read_description(exported)
    assert onnx.checkpoint.classes == ckpt.classes and onnx.checkpoint.views == ckpt.views
    assert onnx.checkpoint.arch == ckpt.arch and onnx.checkpoint.quality() == ckpt.quality()
    assert engine.describe(exported).metrics == ckpt.metrics


def test_shipped_exports_are_current_and_describe_their_models() -> None:
    """A retrained shipped model needs `glitchnet export` again: its ONNX export must come from the very file."""
    from glitchnet.shipped import SHIPPED_MODELS

    for path in SHIPPED_MODELS.values():
        onnx_path, _ = engine.export_paths(path)
        meta = read_sidecar(onnx_path, path)  # raises if stale
        described, ckpt = engine.description_from_sidecar(meta), read_description(path)
        assert described.classes == ckpt.classes and described.temperature == ckpt.temperature
        assert described.quality() == ckpt.quality() and described.config == ckpt.config


def test_a_stale_or_damaged_export_is_refused_and_torch_serves(exported: Path, tmp_path: Path) -> None:
    copy = tmp_path / "model.pt"
    shutil.copyfile(exported, copy)
    for suffix in (".onnx", ".onnx.json"):
        shutil.copyfile(str(exported.with_suffix("")) + suffix, str(copy.with_suffix("")) + suffix)
    meta = json.loads(engine.sidecar_path(copy.with_suffix(".onnx")).read_text())
    assert meta["checkpoint"] == "random.pt"
    assert serving_engine(copy).kind == "onnxruntime"
    _random_checkpoint(copy, "glitchnet", 22, seed=99)  # retrained: the export is stale
    with pytest.raises(ExportError, match="is stale: model.pt has changed since it was exported"):
        OnnxEngine.beside(copy)
    assert serving_engine(copy).kind == "torch"
    copy.with_suffix(".onnx").write_bytes(b"not onnx")
    with pytest.raises(ExportError, match="is not the model model.onnx.json describes"):
        read_sidecar(copy.with_suffix(".onnx"))
    copy.with_suffix(".onnx").unlink()
    with pytest.raises(ExportError, match="no ONNX export of the model"):
        OnnxEngine.beside(copy)


def test_export_command_and_its_bad_input(exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "elsewhere" / "m.onnx"
    assert main(["export", "--model", str(exported), "--out", str(out)]) == 0
    assert out.is_file() and read_sidecar(out, exported)["checkpoint"] == "random.pt"
    assert main(["export", "--model", str(exported), "--out", str(tmp_path / "m.txt")]) == 2
    assert main(["export", "--model", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["glitchnet: error: the export must be a .onnx file, not m.txt",
                   f"glitchnet: error: no checkpoint at {tmp_path / 'missing.pt'}"]


def test_hosted_app_classifies_without_importing_torch(exported: Path, real: Path, tmp_path: Path) -> None:
    """The hosted server's whole path in a fresh process: Home, Explore with its map and label audit, the
    Augmentations page, a link to /train, then a glitch uploaded on Predict (verdict, Grad-CAM, similar glitches of
    the server's dataset): torch is never imported."""
    from test_app import make_golden_kaggle

    data = make_golden_kaggle(tmp_path / "data", real, classes=("Blip", "Whistle", "Koi_Fish", "Tomte"))
    gif = real / "golden" / "Whistle" / "whistle-2.gif"
    code = f"""
import sys, time
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(APP)!r}, default_timeout=120).run()
assert not at.exception and not at.error, [e.value for e in at.exception]
for page in ("explore", "augment", "train"):
    at.switch_page(f"pages/{{page}}.py").run()
    assert not at.exception and not at.error, (page, [e.value for e in at.exception], [e.value for e in at.error])
    print(page, "torch" in sys.modules)
at.switch_page("pages/explore.py").run()
at.toggle(key="similar_map_on").set_value(True).run()
assert not at.exception and not at.error, ([e.value for e in at.exception], [e.value for e in at.error])
assert "Label audit" in [h.value for h in at.subheader], [h.value for h in at.subheader]
print("map", "torch" in sys.modules)
at.switch_page("pages/predict.py").run()
at.file_uploader[0].set_value([("whistle-2.gif", open({str(gif)!r}, "rb").read(), "image/gif")]).run()
assert not at.exception and not at.error, ([e.value for e in at.exception], [e.value for e in at.error])
table = at.dataframe[0].value
assert list(table["name"])[-1] == "whistle-2.gif (combined, 4 views)", list(table["name"])
for _ in range(60):  # the similarity index builds in the background; the card shows it once built
    if "Open" in [b.label for b in at.button]:
        break
    time.sleep(1)
    at.run()
assert "Open" in [b.label for b in at.button], [b.label for b in at.button]
import pages._ui as ui
loaded = ui._loading(*ui._model_key(ui.shipped_model_path(ui.DEFAULT_SHIPPED)))  # the cached engine
print("KIND", type(loaded.result()).__name__)
print("TORCH", "torch" in sys.modules)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GLITCHNET_HOSTED": "1", "GLITCHNET_MODEL": str(exported),
           "GLITCHNET_DATA": str(data), "GLITCHNET_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "KIND OnnxEngine" in out.stdout and "TORCH False" in out.stdout, out.stdout[-2000:]
