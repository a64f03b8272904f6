"""``glitchnet export``: a checkpoint to ONNX for the torch-free serving engine (``engine.OnnxEngine``).

Writes ``M.onnx`` (the network with three outputs: logits, the Grad-CAM layer's maps, the pooled embedding; the batch
size free) and ``M.onnx.json`` (what the engine and the app's pages need besides: ``engine.read_sidecar``), both
atomically, then loads the export in ONNX Runtime and checks it against torch on a batch of the canonical inputs:
an export that does not answer as the checkpoint does (probabilities or heatmaps more than ``TOLERANCE`` apart) is
not written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .checkpoint import load_checkpoint
from .engine import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    OUTPUTS,
    ExportError,
    OnnxEngine,
    export_paths,
    file_sha256,
    finite_or_none,
    sidecar_path,
)
from .files import atomic_path, write_text_atomic
from .images import INPUT_SIZE, MEAN, STD

OPSET = 17
TOLERANCE = 1e-4
"""Largest difference in probabilities or heatmaps an export may have against torch on the check batch."""


class _Outputs(torch.nn.Module):
    """The network with the outputs the engine reads: logits, the Grad-CAM layer's maps and the pooled features."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        caught: list[torch.Tensor] = []
        hook = self.model.cam_layer.register_forward_hook(lambda m, i, out: caught.append(out))
        try:
            features = self.model.features(x)
        finally:
            hook.remove()
        return self.model.fc(features), caught[0], features


def export(checkpoint: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Export ``checkpoint`` to ``out`` (default: beside it, ``M.onnx``) and its sidecar; returns the ONNX path."""
    from .similar import weights_digest

    checkpoint = Path(checkpoint)
    ckpt = load_checkpoint(checkpoint)
    onnx_path = Path(out) if out is not None else export_paths(checkpoint)[0]
    if onnx_path.suffix != ".onnx":
        raise ExportError(f"the export must be a .onnx file, not {onnx_path.name}")
    if onnx_path.resolve() == checkpoint.resolve():
        raise ExportError("the export would replace the checkpoint itself")
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    model = ckpt.build_model().to(memory_format=torch.contiguous_format).float().eval()
    example = torch.zeros(2, 3, INPUT_SIZE, INPUT_SIZE)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=onnx_path.parent) as work:
        tmp = Path(work) / onnx_path.name
        with warnings.catch_warnings():  # the TorchScript exporter: stable, dependency-free, and deprecated
            warnings.simplefilter("ignore")
            torch.onnx.export(_Outputs(model), (example,), str(tmp), input_names=["input"], output_names=list(OUTPUTS),
                              dynamic_axes={name: {0: "batch"} for name in ("input", *OUTPUTS)},
                              opset_version=OPSET, dynamo=False)
        payload = ckpt.to_payload()
        meta = {
            "format": EXPORT_FORMAT, "format_version": EXPORT_VERSION, "library_version": __version__,
            "checkpoint": checkpoint.name, "checkpoint_sha256": file_sha256(checkpoint),
            "onnx_sha256": file_sha256(tmp),
            "weights_digest": weights_digest(ckpt), "opset": OPSET,
            **{k: payload[k] for k in ("classes", "class_set", "width", "input_size", "views", "normalization",
                                        "temperature", "epoch", "arch")},
            "config": finite_or_none(ckpt.config), "metrics": finite_or_none(ckpt.metrics),
            "fc_weight": model.fc.weight.detach().double().tolist(),
        }
        text = json.dumps(meta, allow_nan=False)
        sidecar_path(tmp).write_text(text, encoding="utf-8")
        worst = check_export(ckpt, OnnxEngine(tmp))
        if not worst <= TOLERANCE:
            raise ExportError(f"the ONNX export differs from torch by {worst:.2g} (more than {TOLERANCE:g}); "
                              "not written")
        with atomic_path(onnx_path) as final:
            shutil.copyfile(tmp, final)
        write_text_atomic(sidecar_path(onnx_path), text)
    return onnx_path


def check_export(ckpt, engine: OnnxEngine, n: int = 4, seed: int = 0) -> float:
    """Largest difference between the torch Predictor and ``engine`` in probabilities and heatmaps, on ``n`` images
    of random viridis colours (the canonical inputs' colours)."""
    from .images import viridis_lut
    from .inference import Predictor

    rng = np.random.default_rng(seed)
    images = viridis_lut()[rng.integers(0, 256, (n, INPUT_SIZE, INPUT_SIZE))]
    predictor = Predictor(ckpt)
    p_torch, h_torch = predictor.explain(images)
    p_onnx, h_onnx = engine.explain(images, p_torch.argmax(1))
    return float(max(np.abs(p_torch - p_onnx).max(), np.abs(h_torch - h_onnx).max()))


assert tuple(MEAN) == tuple(STD) == (0.5, 0.5, 0.5)  # the sidecar records the one normalization in use
