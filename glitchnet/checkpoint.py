"""Self-describing GlitchNet checkpoints: weights plus everything needed to use them, written atomically."""

from __future__ import annotations

import collections
import os
import pickle
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .architectures import DEFAULT_ARCH
from .classes import CLASSES
from .images import INPUT_SIZE, MEAN, STD

if TYPE_CHECKING:  # torch is imported where weights are read or written: ``read_description`` does without it
    import torch

    from .model import GlitchNet

FORMAT = "glitchnet-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a usable GlitchNet checkpoint; the message is one line, fit for a user."""


@dataclass
class Checkpoint:
    """A trained GlitchNet and its description."""

    state_dict: dict[str, torch.Tensor]
    classes: list[str] = field(default_factory=lambda: list(CLASSES))
    width: int = 64
    input_size: int = INPUT_SIZE
    views: list[str] = field(default_factory=lambda: ["1.0"])
    mean: list[float] = field(default_factory=lambda: list(MEAN))
    std: list[float] = field(default_factory=lambda: list(STD))
    temperature: float = 1.0
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    training_state: dict[str, Any] | None = None
    """Optimizer, scheduler and history for ``--resume``; None in a shipped model."""
    library_version: str = __version__
    arch: str = DEFAULT_ARCH
    """Which of ``model.ARCHITECTURES`` the weights belong to; older checkpoints, without the key, are the seed's."""

    @property
    def scan_view(self) -> str:
        """The ``view`` to scan a dataset with for this model: "all" if it was trained on every view, else its one."""
        return "all" if len(self.views) > 1 else self.views[0]

    def quality(self) -> list[tuple[str, str, str]]:
        """What the checkpoint says about its accuracy, real images first: (label, value, where it was measured).

        A figure on real Gravity Spy glitches leads when the checkpoint carries one (cross-validated, with its
        Wilson 95% interval); figures on simulated images follow and are named as such.
        """
        out = []
        real = (self.metrics.get("real_crossval") or {}).get("verified")
        if real:
            lo, hi = real["wilson95"]
            out.append(("Real glitches (cross-validated)", f"{real['accuracy']:.1%}",
                        f"{real['correct']} of {real['glitches']} real Gravity Spy glitches, each scored by a model "
                        f"that never saw it (leave-glitch-out folds); 95% interval {lo:.0%}–{hi:.0%}"))
        data = Path(str(self.config.get("data") or "its training data")).name
        for key, label, where in (("simulated_test", "Simulated test images", "simulated glitches never trained on"),
                                  ("validation", "Validation split", f"the validation split of {data}")):
            m = self.metrics.get(key) or {}
            if m.get("accuracy") is not None:
                out.append((label, f"{m['accuracy']:.1%}", f"{m.get('n', '?')} images: {where}"))
        return out

    def build_model(self) -> GlitchNet:
        """A GlitchNet in eval mode with these weights, in channels_last memory format (faster on CPU and GPU)."""
        import torch

        from .model import build_architecture

        try:
            model = build_architecture(self.arch, num_classes=len(self.classes), width=self.width)
        except ValueError as exc:
            raise CheckpointError(str(exc)) from None
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise CheckpointError(f"the weights do not fit the GlitchNet architecture ({first[:120]})") from None
        return model.to(memory_format=torch.channels_last).eval()

    def to_payload(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "library_version": self.library_version,
            "state_dict": self.state_dict,
            "classes": list(self.classes),
            "width": self.width,
            "input_size": self.input_size,
            "views": list(self.views),
            "normalization": {"mean": list(self.mean), "std": list(self.std)},
            "temperature": float(self.temperature),
            "config": self.config,
            "metrics": self.metrics,
            "epoch": self.epoch,
            "training_state": self.training_state,
            "arch": self.arch,
        }


def save_checkpoint(ckpt: Checkpoint, path: str | os.PathLike) -> Path:
    """Write ``ckpt`` atomically: a temp file in the same folder, fsync, then rename over ``path``."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(ckpt.to_payload(), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a checkpoint is an ordinary, shareable file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, expected_classes: list[str] | None = None) -> Checkpoint:
    """Read a checkpoint with ``weights_only=True`` (no code can run) and check that it is GlitchNet's."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path.name} was refused: it holds Python objects that could run code, "
                              "so it is not a GlitchNet checkpoint") from None
    except Exception as exc:  # whatever the reader trips on, the file is unusable: say so in one line
        reason = str(exc).splitlines()[0][:100] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path.name} is not a readable checkpoint (truncated or corrupt: {reason})") from None
    ckpt = _from_payload(payload, path, expected_classes)
    ckpt.build_model()  # fail now, with a clear message, if the weights do not fit
    return ckpt


def _from_payload(payload: Any, path: Path, expected_classes: list[str] | None = None) -> Checkpoint:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path.name} is a PyTorch file but not a GlitchNet checkpoint")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path.name} was written by a newer GlitchNet (format {payload['format_version']})")
    classes = list(payload.get("classes") or [])
    if expected_classes is not None and classes != list(expected_classes):
        raise CheckpointError(f"{path.name} was trained on another class list ({len(classes)} classes)")
    norm = payload.get("normalization") or {}
    ckpt = Checkpoint(
        state_dict=payload["state_dict"],
        classes=classes,
        width=int(payload.get("width", 64)),
        input_size=int(payload.get("input_size", INPUT_SIZE)),
        views=[str(v) for v in payload.get("views", ["1.0"])],
        mean=list(norm.get("mean", MEAN)),
        std=list(norm.get("std", STD)),
        temperature=float(payload.get("temperature", 1.0)),
        config=payload.get("config") or {},
        metrics=payload.get("metrics") or {},
        epoch=int(payload.get("epoch", 0)),
        training_state=payload.get("training_state"),
        library_version=str(payload.get("library_version", "?")),
        arch=str(payload.get("arch", DEFAULT_ARCH)),
    )
    if ckpt.input_size != INPUT_SIZE or tuple(ckpt.mean) != MEAN or tuple(ckpt.std) != STD:
        raise CheckpointError(f"{path.name} expects preprocessing this GlitchNet does not provide "
                              f"(input {ckpt.input_size}px, mean {ckpt.mean}, std {ckpt.std})")
    return ckpt


class _DescriptionUnpickler(pickle.Unpickler):
    """Unpickles a ``torch.save`` payload without torch: every tensor becomes None. Like torch's ``weights_only``
    reader it resolves only an allow-list of names, and none of them runs code from the file."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_parameter"):
            return _no_tensor
        if module == "torch" and name.endswith("Storage"):
            return None
        raise pickle.UnpicklingError(f"{module}.{name} is not expected in a GlitchNet checkpoint")

    def persistent_load(self, pid: Any) -> None:  # a tensor's storage, left in the file
        return None


def _no_tensor(*args: Any) -> None:
    return None


def read_description(path: str | os.PathLike) -> Checkpoint:
    """A checkpoint's description (classes, views, config, metrics, ...) without its weights (``state_dict`` is
    empty) and without importing torch: about 1 ms, against about 2 s for torch's import and ``load_checkpoint``
    (``benchmarks/bench_describe.py``), so the app's first page draws at once. A file this reader does not
    understand goes through ``load_checkpoint``, with its checks and its messages."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            pickled = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            with archive.open(pickled[0]) as fh:
                payload = _DescriptionUnpickler(fh).load()
    except Exception:  # not a file this reader understands: torch's own reader says what is wrong with it
        return load_checkpoint(path)
    ckpt = _from_payload(payload, path)
    ckpt.state_dict = {}
    return ckpt
