"""Classifying without torch: the forward-pass-independent half of prediction, and an ONNX Runtime engine.

``Engine`` holds everything a classifier does around its forward pass: decoding a file into canonical views,
calibrated probabilities, view fusion, the verdict, Grad-CAM heatmaps from the last feature maps and the similarity
embedding. ``inference.Predictor`` runs the forward pass in torch (training, the CLI, a local app); ``OnnxEngine``
runs an exported copy of the same network in ONNX Runtime, which needs no torch in the process (``import torch``
alone is ~500 MB of resident memory with the CUDA build): a hosted server (``GLITCHNET_HOSTED=1``) serves with it.

An export is two files beside the checkpoint, written by ``glitchnet export`` (``glitchnet.export``): ``M.onnx``
(input: the normalized batch; outputs: logits, the Grad-CAM layer's feature maps and the pooled embedding) and
``M.onnx.json`` (classes, calibration temperature, preprocessing, the classifier's weights for Grad-CAM, the model's
description and metrics, and the SHA-256 of the checkpoint it was made from). A serving process reads only these;
an export whose checkpoint has changed since is stale and not used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import Checkpoint, CheckpointError
from .errors import GlitchNetError
from .glitches import Glitch, Prediction, View, frame_duration, group_views
from .images import (
    INPUT_SIZE,
    MAX_FRAMES,
    MEAN,
    MIN_VIRIDIS_FRACTION,
    STD,
    ImageError,
    Source,
    canonical_checked,
    frame_count,
    normalize_array,
    open_frames,
)
from .names import parse_name
from .scores import fuse_log_probabilities, normalise, softmax

LOG = logging.getLogger("glitchnet.engine")

LOW_CONFIDENCE = 0.6
"""Below this (calibrated) probability a result is reported as uncertain. Chosen on real glitches from sources the
model never saw (leave-source-out, 631 verified held-out glitches; ``models/confidence_curve.py``,
docs/confidence_curve.png): at 0.6 the shipped model flags 79% of its mistakes (at most 1 in 4 unflagged, the goal)
and answers 38% of glitches, right on 78% of them; at 0.5 it flagged 59%."""
EXPORT_FORMAT = "glitchnet-onnx"
EXPORT_VERSION = 1
OUTPUTS = ("logits", "activations", "embedding")
"""The exported model's outputs: logits (N, C), the Grad-CAM layer's maps (N, K, h, w), pooled features (N, K)."""
ENGINE_BATCH = 8
"""Most images one ONNX Runtime call runs: the activations of a batch of 64 (the index build's) would take 200 MB
at the stem; 8 keeps the peak small and costs nothing in speed on a few cores."""


class ExportError(GlitchNetError):
    """An ONNX export that is missing, stale or unreadable; the message is one line."""


def format_probability(p: float) -> str:
    """A probability as a person should read it: whole percents, but never "100%" for a model's belief nor "0%"
    for a label it gives some weight (0.998 -> "> 99%", 0.003 -> "< 1%")."""
    if p >= 0.995:
        return "> 99%"
    if 0.0 < p < 0.005:
        return "< 1%"
    return f"{p:.0%}"


def scale_cam(cam: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """pytorch-grad-cam's ``scale_cam_image`` without torch: each map shifted to 0, divided by (1e-7 + its max)
    and, with ``size`` (width, height), resized by OpenCV's bilinear ``resize``; float32 (N, H, W). A test checks
    it against the library's own."""
    out = []
    for img in np.asarray(cam):
        img = img - np.min(img)
        img = img / (1e-7 + np.max(img))
        if size is not None:
            import cv2  # pytorch-grad-cam's own resize (opencv-python-headless, its dependency)

            img = cv2.resize(np.float32(img), size)
        out.append(img)
    return np.float32(out)


def gradcam_heatmaps(activations: np.ndarray, fc_weight: np.ndarray, class_indices: Sequence[int],
                     size: tuple[int, int]) -> np.ndarray:
    """Grad-CAM heatmaps (N, H, W) in [0, 1] for a network that ends in global average pooling and one linear layer.

    For such a head the gradient of class c's logit with respect to the maps A_k (h x w) is W[c, k] / (h w) at every
    pixel, so Grad-CAM's channel weights are the classifier's row over the map area, known without a backward pass:
    the map is ReLU(sum_k W[c, k] A_k / (h w)), then pytorch-grad-cam's post-processing (scaled to [0, 1], resized
    to the image, scaled again). ``activations`` are (N, K, h, w); ``size`` the image's (height, width).
    """
    acts = np.asarray(activations, dtype=np.float32)
    area = acts.shape[-2] * acts.shape[-1]
    weights = np.asarray(fc_weight, dtype=np.float32)[np.asarray(class_indices, dtype=np.int64)] / np.float32(area)
    cam = np.maximum(np.einsum("nk,nkhw->nhw", weights, acts), 0)
    return scale_cam(np.maximum(scale_cam(cam, (size[1], size[0])), 0))


def overlay(image_uint8: np.ndarray, heatmap: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """Blend a [0, 1] heatmap (jet colours) over an RGB uint8 image; ``opacity`` 0 shows only the image."""
    from matplotlib import colormaps

    heat_rgb = colormaps["jet"](np.clip(heatmap, 0.0, 1.0))[..., :3] * 255.0
    out = (1.0 - opacity) * image_uint8.astype(np.float32) + opacity * heat_rgb
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


class Engine:
    """A loaded GlitchNet ready to classify images, whatever runs its forward pass; safe to share between threads.

    A subclass provides ``_forward`` (logits, and the Grad-CAM layer's maps when asked), ``embedding_features``,
    ``fc_weight`` and ``weights_digest``; everything else (decoding, calibration, fusion, verdicts, heatmaps) is
    here, once, so the torch ``Predictor`` and the ``OnnxEngine`` answer alike.
    """

    kind = "abstract"
    """What runs the forward pass: "torch" or "onnxruntime" (the app's logs and the README say which)."""
    checkpoint: Checkpoint
    """The model's description (classes, views, metrics); the torch Predictor's also holds the weights."""
    classes: list[str]
    temperature: float

    # ------------------------------------------------------------------------------------ the forward pass

    def _forward(self, images_uint8: np.ndarray, activations: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits (N, C) and, with ``activations``, the Grad-CAM layer's maps (N, K, h, w), as numpy float32."""
        raise NotImplementedError

    def embedding_features(self, images_uint8: np.ndarray) -> np.ndarray:
        """The pooled features (N, K) the classifier reads (``GlitchNet.features``), not yet normalised."""
        raise NotImplementedError

    @property
    def fc_weight(self) -> np.ndarray:
        """The classifier's weights (C, K), for Grad-CAM."""
        raise NotImplementedError

    @property
    def weights_digest(self) -> str:
        """``similar.weights_digest`` of the model: the similarity index's cache key."""
        raise NotImplementedError

    def embed(self, images_uint8: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings (N, K): what ``similar`` compares."""
        return normalise(self.embedding_features(images_uint8))

    # ---------------------------------------------------------------------------------------------- inputs

    @staticmethod
    def load(source: Source, frame: int = 0) -> np.ndarray:
        """``canonical_uint8`` of the source (the very input training saw), or ``ImageError`` if it is unreadable
        or not a spectrogram."""
        return Engine.load_checked(source, frame)[0]

    @staticmethod
    def load_checked(source: Source, frame: int = 0) -> tuple[np.ndarray, str | None]:
        """``load`` and the view's ``images.uniformity_warning`` (None for an ordinary view)."""
        img, frac, warning = canonical_checked(source, frame)
        if frac < MIN_VIRIDIS_FRACTION:
            raise ImageError(f"this does not look like a Gravity Spy spectrogram (only {frac:.0%} of its "
                             "pixels are on the viridis colour scale)")
        return img, warning

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
                view.image, view.warning = Engine.load_checked(frame)
                view.warning = unread or view.warning
            except ImageError as exc:
                view.error = str(exc)
            views.append(view)
        return views

    # ------------------------------------------------------------------------------------------ prediction

    def probabilities(self, images_uint8: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities (N, C), float64, for canonical uint8 images (N, H, W, 3)."""
        return softmax(self._forward(images_uint8, activations=False)[0], self.temperature)

    def _probabilities_and_activations(self, images_uint8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``probabilities`` and the Grad-CAM layer's maps (N, K, h, w) of the same forward pass."""
        logits, activations = self._forward(images_uint8, activations=True)
        return softmax(logits, self.temperature), activations

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

    # ------------------------------------------------------------------------------------ glitches, explained

    def explain(self, images_uint8: np.ndarray, class_indices: Sequence[int] | None = None,
                ) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities (N, C) and Grad-CAM heatmaps (N, H, W) in [0, 1] from one forward pass.

        ``class_indices`` gives the class each heatmap explains (default: each image's top class). The network ends
        in global average pooling and one linear layer after its Grad-CAM layer, so Grad-CAM's gradient weights are
        that layer's weights divided by the map area (``gradcam_heatmaps``), known without a backward pass: the
        heatmaps come from the activations of the forward pass that gave the probabilities. ``Predictor.gradcam``
        (pytorch-grad-cam, forward and backward) gives the same maps; a test checks it.
        """
        probs, activations = self._probabilities_and_activations(images_uint8)
        if class_indices is None:
            class_indices = probs.argmax(1)
        return probs, gradcam_heatmaps(activations, self.fc_weight, class_indices, images_uint8.shape[1:3])

    def classify(self, views: Sequence[View], batch_size: int = 32, explain: bool = True) -> list[Glitch]:
        """Classify decoded views and group them into glitches, each with its combined verdict.

        Every readable view goes through the model once, in batches of ``batch_size``; each view gets its
        ``prediction`` and, with ``explain``, a Grad-CAM ``heat`` for its glitch's combined label (from the same
        forward pass). A glitch's verdict fuses its views' probabilities (``scores.fuse_log_probabilities``).
        """
        glitches = group_views(views)
        readable = [v for g in glitches for v in g.readable]
        activations_of: dict[int, np.ndarray] = {}
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
                acts = np.stack([activations_of[id(v)] for v in views_])
                label = self.classes.index(glitch.verdict.label)
                heats = gradcam_heatmaps(acts, self.fc_weight, [label] * len(acts), views_[0].image.shape[:2])
                for v, heat in zip(views_, heats):
                    v.heat = heat
        return glitches

    def classify_files(self, files: Iterable[tuple[str, Source]], explain: bool = True,
                       frames: Sequence[int | None] | None = None) -> list[Glitch]:
        """``decode`` every (name, source) and ``classify`` the views: the glitches among the files. ``frames`` gives
        each file's frame limit (None: the reader's own, ``MAX_FRAMES``); a visitor's budget sets it
        (``serving.admit``)."""
        files = list(files)
        limits = list(frames) if frames is not None else [None] * len(files)
        if len(limits) != len(files):
            raise ValueError(f"{len(files)} files but {len(limits)} frame limits")
        views = [v for (name, source), limit in zip(files, limits) for v in self.decode(name, source, limit)]
        return self.classify(views, explain=explain)

    def warm_up(self) -> None:
        """Pay the one-off costs (the colour lookup tables, the heatmaps' imports) before the first real image."""
        from .images import viridis_fraction

        viridis_fraction(np.zeros((1, 1, 3), np.uint8))
        self.explain(np.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), np.uint8))


# --------------------------------------------------------------------------------------------- ONNX Runtime


def export_paths(checkpoint: str | os.PathLike) -> tuple[Path, Path]:
    """Where the export of a checkpoint ``M.pt`` lives: ``M.onnx`` and its description ``M.onnx.json``."""
    onnx_path = Path(checkpoint).with_suffix(".onnx")
    return onnx_path, sidecar_path(onnx_path)


def sidecar_path(onnx_path: str | os.PathLike) -> Path:
    """The description file beside an exported model: ``M.onnx`` -> ``M.onnx.json``."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(onnx_path.name + ".json")


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_sidecar(onnx_path: str | os.PathLike, checkpoint: str | os.PathLike | None = None) -> dict[str, Any]:
    """An export's description, checked: its format, that ``M.onnx`` is the file it describes and, given the
    ``checkpoint`` it should come from, that this checkpoint is the one it was made from (unchanged since).
    ``ExportError`` in one line otherwise."""
    onnx_path = Path(onnx_path)
    side = sidecar_path(onnx_path)
    if not onnx_path.is_file() or not side.is_file():
        raise ExportError(f"no ONNX export of the model ({onnx_path.name} and {side.name}): run "
                          f"`glitchnet export --model {Path(checkpoint).name if checkpoint else 'M.pt'}`")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"{side.name} is not readable ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or (meta.get("format"), meta.get("format_version")) != (EXPORT_FORMAT,
                                                                                          EXPORT_VERSION):
        raise ExportError(f"{side.name} is not a GlitchNet ONNX export description (format {EXPORT_FORMAT} "
                          f"{EXPORT_VERSION})")
    if file_sha256(onnx_path) != meta.get("onnx_sha256"):
        raise ExportError(f"{onnx_path.name} is not the model {side.name} describes: export it again")
    if checkpoint is not None and Path(checkpoint).is_file() \
            and file_sha256(checkpoint) != meta.get("checkpoint_sha256"):
        raise ExportError(f"{onnx_path.name} is stale: {Path(checkpoint).name} has changed since it was exported; "
                          "run `glitchnet export` again")
    return meta


def description_from_sidecar(meta: dict[str, Any]) -> Checkpoint:
    """The model's description (no weights) from an export's sidecar: what ``checkpoint.read_description`` gives for
    the checkpoint it was made from, checked by the same header checks."""
    from .checkpoint import _check_header

    header = _check_header(meta, str(meta.get("checkpoint", "export")), check_weights=False)
    config, metrics = meta.get("config") or {}, meta.get("metrics") or {}
    return Checkpoint(state_dict={}, classes=header["classes"], width=header["width"], input_size=INPUT_SIZE,
                      views=header["views"], mean=list(MEAN), std=list(STD), temperature=header["temperature"],
                      config=config, metrics=metrics, epoch=header["epoch"],
                      library_version=str(meta.get("library_version", "?"))[:40], arch=header["arch"])


def describe(checkpoint: str | os.PathLike) -> Checkpoint:
    """A checkpoint's description for the app's pages: from its export's sidecar when a current one lies beside it
    (nothing is unpickled), else ``checkpoint.read_description``."""
    onnx_path, _ = export_paths(checkpoint)
    if onnx_path.is_file():
        try:
            return description_from_sidecar(read_sidecar(onnx_path, checkpoint))
        except (ExportError, CheckpointError) as exc:
            LOG.warning("not using the ONNX export's description: %s", exc)
    from .checkpoint import read_description

    return read_description(checkpoint)


def cpu_threads() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class OnnxEngine(Engine):
    """GlitchNet exported to ONNX (``glitchnet export``), run by ONNX Runtime on the CPU: no torch in the process.

    Answers as ``inference.Predictor`` does on the same checkpoint (probabilities and heatmaps within 1e-4; a test
    checks real images and random weights). One ``InferenceSession`` serves every thread; a call runs at most
    ``ENGINE_BATCH`` images at once, on as many threads as the process has cores (at most ``threads``).
    """

    kind = "onnxruntime"

    def __init__(self, onnx_path: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
                 threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ExportError("onnxruntime is not installed: `pip install onnxruntime`") from None
        self.path = Path(onnx_path)
        self.meta = read_sidecar(self.path, checkpoint)
        self.checkpoint = description_from_sidecar(self.meta)
        self.classes = list(self.checkpoint.classes)
        self.temperature = float(self.checkpoint.temperature or 1.0)
        weight = np.asarray(self.meta.get("fc_weight"), dtype=np.float32)
        if weight.shape != (len(self.classes), self.checkpoint.width) or not np.isfinite(weight).all():
            raise ExportError(f"{sidecar_path(self.path).name}: its classifier weights do not fit the model")
        self._fc_weight = weight
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(4, cpu_threads())
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # no busy-waiting between calls: in a server the page-drawing threads need the cores the pool would spin on
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # a damaged file: one line
            raise ExportError(f"{self.path.name} is not a loadable ONNX model ({str(exc).splitlines()[0][:120]})") \
                from None
        self._input = self._session.get_inputs()[0].name
        names = [o.name for o in self._session.get_outputs()]
        if tuple(names) != OUTPUTS:
            raise ExportError(f"{self.path.name} has outputs {names}, not {list(OUTPUTS)}")

    @classmethod
    def beside(cls, checkpoint: str | os.PathLike, threads: int | None = None) -> OnnxEngine:
        """The engine of the export beside ``checkpoint`` (``export_paths``), which must be current."""
        return cls(export_paths(checkpoint)[0], checkpoint, threads)

    @property
    def fc_weight(self) -> np.ndarray:
        return self._fc_weight

    @property
    def weights_digest(self) -> str:
        return str(self.meta["weights_digest"])

    def _run(self, images_uint8: np.ndarray, outputs: Sequence[str]) -> list[np.ndarray]:
        parts: list[list[np.ndarray]] = [[] for _ in outputs]
        for start in range(0, len(images_uint8), ENGINE_BATCH):
            got = self._session.run(list(outputs), {self._input: normalize_array(images_uint8[start:start
                                                                                            + ENGINE_BATCH])})
            for part, value in zip(parts, got):
                part.append(value)
        return [np.concatenate(p) if len(p) > 1 else p[0] for p in parts]

    def _forward(self, images_uint8: np.ndarray, activations: bool) -> tuple[np.ndarray, np.ndarray | None]:
        if activations:
            logits, acts = self._run(images_uint8, ["logits", "activations"])
            return logits, acts
        return self._run(images_uint8, ["logits"])[0], None

    def embedding_features(self, images_uint8: np.ndarray) -> np.ndarray:
        return self._run(images_uint8, ["embedding"])[0]


def finite_or_none(value: Any) -> Any:
    """A JSON-safe copy of a description table: NaN and infinities become None (the sidecar is strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, np.generic):
        return finite_or_none(value.item())
    return str(value)
