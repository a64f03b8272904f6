"""Predictor: any image in, top-k classes, view fusion and Grad-CAM out; safe to share between threads."""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint
from .data import NAME_RE
from .evaluate import fuse_log_probabilities
from .images import ImageError, Source, canonical_checked, n_frames, to_model_input
from .model import forward_uint8

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
DEFAULT_MODEL = MODELS_DIR / "glitchnet.pt"
LOW_CONFIDENCE = 0.6
"""Below this (calibrated) probability a result is reported as uncertain. Chosen on real glitches the model never saw
(out-of-fold, 127 verified glitches; ``models/confidence_curve.py``, docs/confidence_curve.png): at 0.6 the shipped
recipe answers 79% of glitches at 91% accuracy and flags 57% of its mistakes; at 0.5 it flagged only 29%."""
MIN_VIRIDIS_FRACTION = 0.60
"""Below this fraction of on-colour-map pixels an image is not treated as a Gravity Spy spectrogram."""


def format_probability(p: float) -> str:
    """A probability as a person should read it: whole percents, but never "100%" for a model's belief nor "0%"
    for a label it gives some weight (0.998 -> "> 99%", 0.003 -> "< 1%")."""
    if p >= 0.995:
        return "> 99%"
    if 0.0 < p < 0.005:
        return "< 1%"
    return f"{p:.0%}"


def default_model_path() -> Path:
    """``$GLITCHNET_MODEL`` if set, else the shipped ``models/glitchnet.pt``."""
    env = os.environ.get("GLITCHNET_MODEL")
    return Path(env) if env else DEFAULT_MODEL


@dataclass
class Prediction:
    """The model's answer for one image (or one fused glitch), or the reason there is none."""

    name: str
    label: str | None = None
    confidence: float | None = None
    top5: list[tuple[str, float]] = field(default_factory=list)
    probabilities: np.ndarray | None = None
    gravityspy_id: str | None = None
    ifo: str | None = None
    duration: float | None = None
    error: str | None = None
    low_confidence: bool = False
    views: int = 1
    warning: str | None = None
    """Why this answer deserves less trust than its confidence suggests (a blank or uniformly dark view)."""

    def to_json(self) -> dict[str, Any]:
        if self.error is not None:
            return {"path": self.name, "error": self.error}
        return {"path": self.name, "label": self.label, "confidence": round(float(self.confidence), 6),
                "top5": [[c, round(float(p), 6)] for c, p in self.top5], "low_confidence": self.low_confidence,
                **({"warning": self.warning} if self.warning else {})}


RESULT_COLUMNS = {"name": "string", "label": "string", "confidence": "Float64", "low_confidence": "boolean",
                  "top5": "string", "views": "Int64", "gravityspy_id": "string", "ifo": "string",
                  "duration_s": "Float64", "your_label": "string", "error": "string"}
"""The results table's columns and their (nullable) pandas types: the app's CSV download and ``glitchnet predict
--out`` write the same table."""


def results_table(predictions: Iterable[Prediction], your_labels: dict[str, str] | None = None):
    """One row per prediction (an image, a GIF frame or a fused glitch), with the columns of ``RESULT_COLUMNS``."""
    import pandas as pd

    rows = []
    for p in predictions:
        rows.append({
            "name": p.name,
            "label": p.label,
            "confidence": None if p.confidence is None else round(p.confidence, 4),
            "low_confidence": p.low_confidence if p.error is None else None,
            "top5": "; ".join(f"{c} {q:.3f}" for c, q in p.top5),
            "views": p.views if p.error is None else None,
            "gravityspy_id": p.gravityspy_id,
            "ifo": p.ifo,
            "duration_s": p.duration,
            "your_label": (your_labels or {}).get(p.name),
            "error": p.error,
        })
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS)).astype(RESULT_COLUMNS)


def parse_name(name: str) -> tuple[str | None, str | None, float | None]:
    """(ifo, gravityspy_id, duration_s) from a Gravity Spy file name, or Nones."""
    m = NAME_RE.match(Path(name).stem)
    return (m["ifo"], m["gid"], float(m["dur"])) if m else (None, None, None)


class Predictor:
    """A loaded GlitchNet ready to classify images.

    Plain forward passes share one eval-mode model (read-only, thread-safe). Grad-CAM needs hooks and
    gradients, so each thread gets its own copy of the model and its own ``GradCAM`` object: sessions never
    see each other's activations.
    """

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

    # ---------------------------------------------------------------------------------------------- inputs

    @staticmethod
    def load(source: Source, frame: int = 0) -> np.ndarray:
        """``canonical_uint8`` of the source (the very input training saw), or ``ImageError`` if it is unreadable
        or not a spectrogram."""
        return Predictor.load_checked(source, frame)[0]

    @staticmethod
    def load_checked(source: Source, frame: int = 0) -> tuple[np.ndarray, str | None]:
        """``load`` and the view's ``images.uniformity_warning`` (None for an ordinary view)."""
        img, frac, warning = canonical_checked(source, frame)
        if frac < MIN_VIRIDIS_FRACTION:
            raise ImageError(f"this does not look like a Gravity Spy spectrogram (only {frac:.0%} of its "
                             "pixels are on the viridis colour scale)")
        return img, warning

    # ------------------------------------------------------------------------------------------ prediction

    @torch.no_grad()
    def probabilities(self, images_uint8: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities (N, C) for canonical uint8 images (N, H, W, 3)."""
        logits = forward_uint8(self.model, images_uint8)
        return torch.softmax(logits.double() / self.temperature, dim=1).cpu().numpy()

    def _result(self, name: str, probs: np.ndarray, views: int = 1, warning: str | None = None) -> Prediction:
        ifo, gid, dur = parse_name(name)
        order = np.argsort(-probs)[:5]
        conf = float(probs[order[0]])
        return Prediction(name=name, label=self.classes[order[0]], confidence=conf,
                          top5=[(self.classes[i], float(probs[i])) for i in order], probabilities=probs,
                          gravityspy_id=gid, ifo=ifo, duration=dur,
                          low_confidence=conf < LOW_CONFIDENCE or warning is not None, views=views, warning=warning)

    def predict(self, sources: Iterable[Source], names: Iterable[str] | None = None,
                batch_size: int = 32) -> list[Prediction]:
        """Classify every source; unreadable ones get a ``Prediction`` with ``error`` set, the rest go on."""
        return list(self.predict_stream(sources, names, batch_size))

    def predict_stream(self, sources: Iterable[Source], names: Iterable[str] | None = None,
                       batch_size: int = 32, decode_threads: int = 2) -> Iterator[Prediction]:
        """Like ``predict`` but lazy, for a folder of any size in constant memory.

        Images are decoded by a small thread pool one batch ahead of the model (PNG inflate, resizing and the
        colour lookups release the GIL), so decoding batch k+1 overlaps the forward pass of batch k; at most
        two batches are held at once.
        """
        names_iter = iter(names) if names is not None else None

        def named(source: Source) -> tuple[str, Source]:
            if names_iter is not None:
                return next(names_iter), source
            return (str(source) if isinstance(source, (str, os.PathLike)) else "upload"), source

        def decode(item: tuple[str, Source]) -> tuple[str, np.ndarray | None, str | None, str | None]:
            name, source = item
            try:
                return name, *self.load_checked(source), None
            except ImageError as exc:
                return name, None, None, str(exc)

        def chunks() -> Iterator[list[tuple[str, Source]]]:
            chunk: list[tuple[str, Source]] = []
            for source in sources:
                chunk.append(named(source))
                if len(chunk) == batch_size:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk

        with ThreadPoolExecutor(max_workers=max(1, decode_threads)) as pool:
            pending = None
            for chunk in chunks():
                submitted = [pool.submit(decode, item) for item in chunk]
                if pending is not None:
                    yield from self._flush([f.result() for f in pending])
                pending = submitted
            if pending is not None:
                yield from self._flush([f.result() for f in pending])

    def _flush(self, pending: list[tuple[str, np.ndarray | None, str | None, str | None]]) -> Iterator[Prediction]:
        good = [img for _, img, _, _ in pending if img is not None]
        probs = iter(self.probabilities(np.stack(good))) if good else iter(())
        for name, img, warning, err in pending:
            yield Prediction(name=name, error=err) if img is None else self._result(name, next(probs),
                                                                                      warning=warning)

    def predict_frames(self, source: Source, name: str = "upload") -> list[Prediction]:
        """One prediction per frame: a golden GIF holds the four views of one glitch."""
        if isinstance(source, (str, os.PathLike)) and Path(source).is_file():
            source = Path(source).read_bytes()  # one read from disk, whatever the number of frames
        count = n_frames(source)
        out = []
        for frame in range(count):
            label = f"{name}#frame{frame}" if count > 1 else name
            try:
                img, warning = self.load_checked(source, frame)
                out.append(self._result(label, self.probabilities(img[None])[0], warning=warning))
            except ImageError as exc:
                out.append(Prediction(name=label, error=str(exc)))
        return out

    def fuse(self, predictions: list[Prediction], name: str | None = None) -> Prediction:
        """Combine several views of one glitch by averaging their log-probabilities (a product of experts)."""
        good = [p for p in predictions if p.error is None and p.probabilities is not None]
        if not good:
            return Prediction(name=name or "glitch", error="no readable view to fuse")
        probs = fuse_log_probabilities(np.stack([p.probabilities for p in good]))
        warned = [p for p in good if p.warning]
        warning = None if len(warned) < len(good) else warned[0].warning  # one clear view is enough to trust
        fused = self._result(name or good[0].name, probs, views=len(good), warning=warning)
        fused.gravityspy_id, fused.ifo, fused.duration = good[0].gravityspy_id, good[0].ifo, None
        return fused

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
        """Grad-CAM heatmap in [0, 1], same height and width as the image, for ``class_index`` (default: top-1)."""
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        # float32 whatever the device: pytorch-grad-cam hands activations to numpy, which has no bfloat16
        x = to_model_input(image_uint8[None], next(self.model.parameters()).device)
        if class_index is None:
            class_index = int(self.probabilities(image_uint8[None])[0].argmax())
        with torch.enable_grad():
            heat = self._cam()(input_tensor=x, targets=[ClassifierOutputTarget(class_index)])
        return np.asarray(heat[0], dtype=np.float32)


def overlay(image_uint8: np.ndarray, heatmap: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """Blend a [0, 1] heatmap (jet colours) over an RGB uint8 image; ``opacity`` 0 shows only the image."""
    from matplotlib import colormaps

    heat_rgb = colormaps["jet"](np.clip(heatmap, 0.0, 1.0))[..., :3] * 255.0
    out = (1.0 - opacity) * image_uint8.astype(np.float32) + opacity * heat_rgb
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
