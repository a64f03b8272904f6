"""Predictor: any image in, top-k classes, view fusion and Grad-CAM out, with torch running the forward pass; safe to
share between threads. Everything around the forward pass is ``engine.Engine``'s, shared with the ONNX Runtime
engine a hosted server uses."""

from __future__ import annotations

import copy
import os
import threading
from typing import Any

import numpy as np
import torch

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint
from .engine import (  # noqa: F401  (re-exported: the names callers have always imported from here)
    LOW_CONFIDENCE,
    MIN_VIRIDIS_FRACTION,
    Engine,
    Prediction,
    format_probability,
    overlay,
)
from .images import to_model_input
from .model import forward_uint8
from .shipped import DEFAULT_MODEL, MODELS_DIR, default_model_path  # noqa: F401  (re-exported)


class Predictor(Engine):
    """A loaded GlitchNet ready to classify images, its forward pass in torch.

    Plain forward passes share one eval-mode model (read-only, thread-safe). The heatmaps of ``explain`` and
    ``classify`` come from the Grad-CAM layer's activations of the same forward pass, caught by a hook that only
    records inside the calling thread. ``gradcam`` (pytorch-grad-cam's forward and backward) needs hooks and
    gradients, so each thread gets its own copy of the model and its own ``GradCAM`` object: sessions never see each
    other's activations.
    """

    kind = "torch"

    def __init__(self, checkpoint: Checkpoint | str | os.PathLike | None = None) -> None:
        if checkpoint is None:
            path = default_model_path()
            if not path.is_file():
                raise CheckpointError(f"no model at {path}: train one with `glitchnet train` or pass --model")
            checkpoint = path
        self.checkpoint = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
        self.classes = list(self.checkpoint.classes)
        self.model = self.checkpoint.build_model()
        self.temperature = float(self.checkpoint.temperature or 1.0)
        self._local = threading.local()
        self._digest: str | None = None
        local = self._local

        def keep_activations(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> None:
            if getattr(local, "capture", False):  # only inside this thread's forward pass that asked for them
                local.activations = output.detach()

        # A plain function, not a bound method: Grad-CAM deep-copies the model, and with it this hook.
        self.model.cam_layer.register_forward_hook(keep_activations)

    # ---------------------------------------------------------------------------------------- forward pass

    @torch.no_grad()
    def _forward(self, images_uint8: np.ndarray, activations: bool) -> tuple[np.ndarray, np.ndarray | None]:
        self._local.capture = activations
        try:
            logits = forward_uint8(self.model, images_uint8).float().cpu().numpy()
            acts = self._local.activations.float().cpu().numpy() if activations else None
            return logits, acts
        finally:
            self._local.capture, self._local.activations = False, None

    @torch.no_grad()
    def embedding_features(self, images_uint8: np.ndarray) -> np.ndarray:
        return forward_uint8(self.model, images_uint8, features=True).float().cpu().numpy()

    @property
    def fc_weight(self) -> np.ndarray:
        return self.model.fc.weight.detach().float().cpu().numpy()

    @property
    def weights_digest(self) -> str:
        if self._digest is None:
            from .similar import weights_digest

            self._digest = weights_digest(self.checkpoint)
        return self._digest

    # --------------------------------------------------------------------------------------------- Grad-CAM

    def _cam(self):
        cam = getattr(self._local, "cam", None)
        if cam is None:
            from pytorch_grad_cam import GradCAM

            model = copy.deepcopy(self.model).eval()
            cam = GradCAM(model=model, target_layers=[model.cam_layer])
            self._local.cam = cam
        return cam

    def gradcam(self, image_uint8: np.ndarray, class_index: int | None = None) -> np.ndarray:
        """Grad-CAM heatmap in [0, 1], same height and width as the image, for ``class_index`` (default: top-1),
        by pytorch-grad-cam itself (forward and backward): the reference ``explain`` is checked against."""
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        # float32 whatever the device: pytorch-grad-cam hands activations to numpy, which has no bfloat16
        x = to_model_input(image_uint8[None], next(self.model.parameters()).device)
        if class_index is None:
            class_index = int(self.probabilities(image_uint8[None])[0].argmax())
        with torch.enable_grad():
            heat = self._cam()(input_tensor=x, targets=[ClassifierOutputTarget(class_index)])
        return np.asarray(heat[0], dtype=np.float32)
