"""Predictor: any image in, top-k classes, view fusion and Grad-CAM out; safe to share between threads."""

from __future__ import annotations

import copy
import dataclasses
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint
from .glitches import Glitch, Prediction, View, frame_duration, fuse_log_probabilities, group_views, parse_name
from .images import (
    INPUT_SIZE,
    MAX_FRAMES,
    MIN_VIRIDIS_FRACTION,
    ImageError,
    Source,
    canonical_checked,
    frame_count,
    open_frames,
    to_model_input,
)
from .model import forward_uint8
from .shipped import DEFAULT_MODEL, MODELS_DIR, default_model_path  # noqa: F401  (re-exported)

LOW_CONFIDENCE = 0.6
"""Below this (calibrated) probability a result is reported as uncertain. Chosen on real glitches from sources the
model never saw (leave-source-out, 631 verified held-out glitches; ``models/confidence_curve.py``,
docs/confidence_curve.png): at 0.6 the shipped model flags 79% of its mistakes (at most 1 in 4 unflagged, the goal)
and answers 38% of glitches, right on 78% of them; at 0.5 it flagged 59%."""


def format_probability(p: float) -> str:
    """A probability as a person should read it: whole percents, but never "100%" for a model's belief nor "0%"
    for a label it gives some weight (0.998 -> "> 99%", 0.003 -> "< 1%")."""
    if p >= 0.995:
        return "> 99%"
    if 0.0 < p < 0.005:
        return "< 1%"
    return f"{p:.0%}"


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
        local = self._local

        def keep_activations(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> None:
            if getattr(local, "capture", False):  # only inside this thread's ``explain``
                local.activations = output.detach()

        # A plain function, not a bound method: Grad-CAM deep-copies the model, and with it this hook.
        self.model.cam_layer.register_forward_hook(keep_activations)

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
                batch_size: int = 32, max_frames: int = MAX_FRAMES) -> list[Prediction]:
        """Classify every source, one answer per file (``verdict``: a multi-frame GIF's frames fused, as the app
        does); unreadable ones get a ``Prediction`` with ``error`` set, the rest go on."""
        return list(self.predict_stream(sources, names, batch_size, max_frames=max_frames))

    def predict_stream(self, sources: Iterable[Source], names: Iterable[str] | None = None,
                       batch_size: int = 32, decode_threads: int = 2,
                       max_frames: int = MAX_FRAMES) -> Iterator[Prediction]:
        """Like ``predict`` but lazy, for a folder of any size in constant memory.

        Files are decoded (``decode``) by a small thread pool one batch ahead of the model (PNG inflate, resizing and
        the colour lookups release the GIL), so decoding batch k+1 overlaps the forward pass of batch k; at most
        two batches of files are held at once.
        """
        names_iter = iter(names) if names is not None else None

        def named(source: Source) -> tuple[str, Source]:
            if names_iter is not None:
                return next(names_iter), source
            return (str(source) if isinstance(source, (str, os.PathLike)) else "upload"), source

        def decode(item: tuple[str, Source]) -> tuple[str, list[View]]:
            name, source = item
            return name, self.decode(name, source, max_frames)

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

    def _flush(self, pending: list[tuple[str, list[View]]]) -> Iterator[Prediction]:
        readable = [v for _, views in pending for v in views if v.error is None]
        probs = self.probabilities(np.stack([v.image for v in readable])) if readable else []
        for v, p in zip(readable, probs):
            v.prediction = self._result(v.name, p, warning=v.warning)
        for name, views in pending:
            yield self.verdict([v.prediction or Prediction(name=v.name, error=v.error) for v in views], name)

    def verdict(self, frames: list[Prediction], name: str) -> Prediction:
        """The one answer for a file, in the CLI and the app alike: a still image's own; a multi-frame file's frames
        are the views of one glitch (Gravity Spy's golden GIFs), so they are fused (``fuse``), as ``classify``
        fuses a glitch's views."""
        if len(frames) == 1:
            return dataclasses.replace(frames[0], name=name)
        answer = self.fuse(frames, name=name)
        if answer.error is not None:
            answer.error = next((p.error for p in frames if p.error), answer.error)
        return answer

    # ------------------------------------------------------------------------------------ glitches, explained

    @staticmethod
    def decode(name: str, source: Source, max_frames: int | None = MAX_FRAMES) -> list[View]:
        """Every view in one file, decoded once: one ``View`` per frame (a golden GIF holds a glitch's four views),
        or one ``View`` with ``error`` set when the file cannot be read. At most ``max_frames`` frames are decoded
        (``MAX_FRAMES`` when None); when a file holds more, each view's warning says how many were read."""
        if isinstance(source, (str, os.PathLike)) and Path(source).is_file():
            source = Path(source).read_bytes()  # one read from disk, whatever the number of frames
        _, _, duration = parse_name(name)
        try:
            frames = open_frames(source, max_frames)
        except ImageError as exc:
            return [View(name=name, file=name, duration_s=duration, error=str(exc))]
        total = frame_count(source)
        unread = (f"only the first {len(frames)} of its {total} frames were read (a Gravity Spy GIF has 4)"
                  if total > len(frames) else None)
        views = []
        for k, frame in enumerate(frames):
            view = View(name=f"{name}#frame{k}" if len(frames) > 1 else name, file=name, frame=k,
                        duration_s=frame_duration(k, len(frames)) if len(frames) > 1 else duration)
            try:
                view.image, view.warning = Predictor.load_checked(frame)
                view.warning = unread or view.warning
            except ImageError as exc:
                view.error = str(exc)
            views.append(view)
        return views

    def explain(self, images_uint8: np.ndarray, class_indices: Sequence[int] | None = None,
                ) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities (N, C) and Grad-CAM heatmaps (N, H, W) in [0, 1] from one forward pass.

        ``class_indices`` gives the class each heatmap explains (default: each image's top class). The network ends
        in global average pooling and one linear layer after ``cam_layer``, so Grad-CAM's gradient weights are that
        layer's weights divided by the map area, known without a backward pass: the heatmaps come from the
        activations of the forward pass that gave the probabilities. ``gradcam`` (pytorch-grad-cam, forward and
        backward) gives the same maps; a test checks it, ``benchmarks/bench_glitch.py`` measures the speed-up
        (``benchmarks/RESULTS.md``: 2.7× on four views).
        """
        probs, activations = self._probabilities_and_activations(images_uint8)
        if class_indices is None:
            class_indices = probs.argmax(1)
        return probs, self._heatmaps(activations, class_indices, images_uint8.shape[1:3])

    def _probabilities_and_activations(self, images_uint8: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        """``probabilities`` and the ``cam_layer`` activations (N, K, h, w) of the same forward pass."""
        self._local.capture = True
        try:
            probs = self.probabilities(images_uint8)
            return probs, self._local.activations
        finally:
            self._local.capture, self._local.activations = False, None

    def classify(self, views: Sequence[View], batch_size: int = 32, explain: bool = True) -> list[Glitch]:
        """Classify decoded views and group them into glitches, each with its combined verdict.

        Every readable view goes through the model once, in batches of ``batch_size``; each view gets its
        ``prediction`` and, with ``explain``, a Grad-CAM ``heat`` for its glitch's combined label (from the same
        forward pass). A glitch's verdict fuses its views' probabilities (``glitches.fuse_log_probabilities``).
        """
        glitches = group_views(views)
        readable = [v for g in glitches for v in g.readable]
        activations_of: dict[int, torch.Tensor] = {}
        for start in range(0, len(readable), batch_size):
            chunk = readable[start:start + batch_size]
            images = np.stack([v.image for v in chunk])
            if explain:
                probs, acts = self._probabilities_and_activations(images)
                activations_of.update((id(v), a) for v, a in zip(chunk, acts))
            else:
                probs = self.probabilities(images)
            for v, p in zip(chunk, probs):
                v.prediction = self._result(v.name, p, warning=v.warning)
                if v.duration_s is not None and v.prediction.duration is None:
                    v.prediction.duration = v.duration_s
        for glitch in glitches:
            for v in glitch.errors:
                v.prediction = Prediction(name=v.name, error=v.error)
            glitch.verdict = self.fuse([v.prediction for v in glitch.readable], name=glitch.key)
            if explain and glitch.readable and glitch.verdict.error is None:
                views_ = glitch.readable
                acts = torch.stack([activations_of[id(v)] for v in views_])
                label = self.classes.index(glitch.verdict.label)
                for v, heat in zip(views_, self._heatmaps(acts, [label] * len(acts), views_[0].image.shape[:2])):
                    v.heat = heat
        return glitches

    def _heatmaps(self, activations: torch.Tensor, class_indices: Sequence[int],
                  size: tuple[int, int]) -> np.ndarray:
        """Grad-CAM heatmaps (N, H, W) from ``cam_layer`` activations (N, K, h, w); see ``explain``."""
        from pytorch_grad_cam.utils.image import scale_cam_image

        area = activations.shape[-2] * activations.shape[-1]
        weights = self.model.fc.weight.detach()[torch.as_tensor(np.asarray(class_indices, dtype=np.int64))] / area
        cam = torch.einsum("nk,nkhw->nhw", weights.float(), activations.float()).clamp_min(0).numpy()
        # pytorch-grad-cam's own post-processing: scaled to [0, 1] and resized, then scaled again across layers
        return scale_cam_image(np.maximum(scale_cam_image(cam, (size[1], size[0])), 0))

    def classify_files(self, files: Iterable[tuple[str, Source]], explain: bool = True) -> list[Glitch]:
        """``decode`` every (name, source) and ``classify`` the views: the glitches among the files."""
        return self.classify([v for name, source in files for v in self.decode(name, source)], explain=explain)

    def warm_up(self) -> None:
        """Pay the one-off costs (the colour lookup tables, Grad-CAM's imports) before the first real image."""
        from .images import viridis_fraction

        viridis_fraction(np.zeros((1, 1, 3), np.uint8))
        self.explain(np.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), np.uint8))

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
