"""Self-describing GlitchNet checkpoints: weights plus everything needed to use them, written atomically."""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .architectures import ARCHITECTURE_NAMES, DEFAULT_ARCH, MAX_WIDTH
from .classes import CLASSES, DURATIONS_S, ClassSet, check_class_names, class_set_for
from .errors import GlitchNetError, first_line
from .files import atomic_open
from .images import INPUT_SIZE, MEAN, STD

if TYPE_CHECKING:  # torch is imported where weights are read or written: ``read_description`` does without it
    import torch

    from .model import GlitchNet

FORMAT = "glitchnet-checkpoint"
FORMAT_VERSION = 1


MAX_PICKLE_BYTES = 16 * 2**20
"""Largest ``data.pkl`` (the pickled description: header, config, metrics, history) a checkpoint may unpack to; the
shipped model's is 5 kB. Checked on the zip's declared sizes before unpickling, so a deflated pickle holding a
gigabyte string (a zip bomb) is refused while the file is still a few MB on disk."""

MAX_UNPACKED_BYTES = 512 * 2**20
"""Most bytes all of a checkpoint's entries may unpack to: a width-``MAX_WIDTH`` network's weights (36 MB) with
AdamW's two moments for ``--resume`` fit many times over; the zip's declared sizes bound what the reader inflates."""


class CheckpointError(GlitchNetError):
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
    def class_set(self) -> ClassSet:
        """The taxonomy of this model's outputs: a shipped set when its class list is one (older checkpoints, which
        carry the 22 names only, are ``gravityspy-o1o2``), else a set of its own."""
        return class_set_for(self.classes)

    @property
    def scan_view(self) -> str:
        """The ``view`` to scan a dataset with for this model: "all" if it was trained on every view, else its one."""
        return "all" if len(self.views) > 1 else self.views[0]

    def quality(self) -> list[tuple[str, str, str]]:
        """What the checkpoint says about its accuracy, real images first: (label, value, where it was measured).

        A figure on real Gravity Spy glitches leads when the checkpoint carries one (cross-validated, with its
        Wilson 95% interval); figures on simulated images follow and are named as such. A figure that is not a
        fraction from 0 to 1 (NaN, a string, a number of the wrong kind), or whose counts or interval are not of
        that kind, is left out: the metrics table is free-form and only what reads as a figure is shown.
        """
        out = []
        lso = _table(self.metrics.get("real_leave_source_out"))
        sources = {k: _figure(v) for k, v in _table(lso.get("sources")).items()}
        pooled, mean = _figure(lso.get("pooled")), _fraction(lso.get("mean"))
        if pooled and mean is not None and sources and all(sources.values()):
            acc, lo, hi, correct, glitches = pooled
            worst = min(sources.items(), key=lambda kv: kv[1][0])
            if len(sources) == 1:
                where = (f"{correct} of {glitches} real glitches of {worst[0]}, scored by a model trained without "
                         f"that source (leave-source-out); 95% interval {lo:.0%}–{hi:.0%}")
            else:
                where = (f"mean over {len(sources)} real sources, each scored by a model trained without it "
                         f"(leave-source-out); {correct} of {glitches} glitches in all, 95% interval "
                         f"{lo:.0%}–{hi:.0%}; weakest source {worst[0]} {worst[1][0]:.0%}")
            out.append(("Real glitches from unseen sources", f"{mean:.1%}", where))
        o3 = _table(self.metrics.get("real_o3_time_blocks"))
        if _figure(o3):
            acc, lo, hi, correct, glitches = _figure(o3)
            fast = _table(_table(o3.get("recall")).get("Fast_Scattering"))
            fast_text = f"; Fast_Scattering {fast['correct']} of {fast['glitches']}" \
                if _count(fast.get("correct")) is not None and _count(fast.get("glitches")) else ""
            out.append(("Real O3 glitches (time blocks held out)", f"{acc:.1%}",
                        f"{correct} of {glitches} real O3 Livingston glitches, each scored by a model that never "
                        f"saw its stretch of time; 95% interval {lo:.0%}–{hi:.0%}{fast_text}"))
        real = _figure(_table(self.metrics.get("real_crossval")).get("verified"))
        if real:
            accuracy, lo, hi, correct, glitches = real
            out.append(("Real glitches (cross-validated)", f"{accuracy:.1%}",
                        f"{correct} of {glitches} real Gravity Spy glitches, each scored by a model "
                        f"that never saw it (leave-glitch-out folds); 95% interval {lo:.0%}–{hi:.0%}"))
        data = Path(str(self.config.get("data") or "its training data")).name
        for key, label, where in (("simulated_test", "Simulated test images", "simulated glitches never trained on"),
                                  ("validation", "Validation split", f"the validation split of {data}")):
            m = _table(self.metrics.get(key))
            accuracy, n = _fraction(m.get("accuracy")), _count(m.get("n"))
            if accuracy is not None:
                out.append((label, f"{accuracy:.1%}", f"{'?' if n is None else n} images: {where}"))
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
            raise CheckpointError(f"the weights do not fit the GlitchNet architecture ({first_line(str(exc), 120)})") \
                from None
        return model.to(memory_format=torch.channels_last).eval()

    def to_payload(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "library_version": self.library_version,
            "state_dict": self.state_dict,
            "classes": list(self.classes),
            "class_set": self.class_set.name,
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


def _table(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _fraction(value: Any) -> float | None:
    """``value`` if it is a real number from 0 to 1, else None."""
    number = _number(value)
    return number if number is not None and 0.0 <= number <= 1.0 else None


def _count(value: Any) -> int | None:
    """``value`` if it is a whole number of at least 0, else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _figure(entry: Any) -> tuple[float, float, float, int, int] | None:
    """(accuracy, interval low, interval high, correct, glitches) of a scores table whose figures are all usable
    (fractions from 0 to 1, whole counts), else None: a damaged or crafted table is left out, never shown."""
    entry = _table(entry)
    accuracy, bounds = _fraction(entry.get("accuracy")), entry.get("wilson95")
    interval = [_fraction(b) for b in bounds] if isinstance(bounds, (list, tuple)) and len(bounds) == 2 else []
    correct, glitches = _count(entry.get("correct")), _count(entry.get("glitches"))
    if accuracy is None or not interval or None in interval or correct is None or glitches is None:
        return None
    return accuracy, interval[0], interval[1], correct, glitches


def save_checkpoint(ckpt: Checkpoint, path: str | os.PathLike) -> Path:
    """Write ``ckpt`` atomically (``files.atomic_open``): readers see the old file or the whole new one.

    The payload is serialized in memory first and written with one ``write``: torch's zip writer reports a short
    write (a full disk) as ``RuntimeError: [enforce fail at inline_container.cc] unexpected pos``, while the file's
    own write raises ``OSError`` (ENOSPC) naming the path, which the CLI and the app say in one line."""
    import torch

    path = Path(path)
    with atomic_open(path, "wb") as fh:
        buffer = io.BytesIO()
        torch.save(ckpt.to_payload(), buffer)
        fh.write(buffer.getbuffer())
    return path


def _refuse(name: str, reason: str) -> CheckpointError:
    return CheckpointError(f"{name} is not a usable GlitchNet checkpoint: {reason}")


def _sniff(path: Path) -> str | None:
    """Why ``path`` cannot be a PyTorch file at all (from its first bytes), or None if it might be one."""
    with path.open("rb") as fh:
        head = fh.read(512)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):  # torch.save's zip format, or a raw pickle
        return None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "it is not a PyTorch file (unknown format)"
    return "it is a text file, not a PyTorch file"


def _check_archive(path: Path) -> None:
    """Refuse a ``torch.save`` zip whose pickle or whole contents would unpack to more than ``MAX_PICKLE_BYTES`` or
    ``MAX_UNPACKED_BYTES``, from the sizes its directory declares (the readers inflate no more than those), before
    anything is unpickled. A file that is not a zip is left to the readers."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return
    pickled = sum(e.file_size for e in entries if e.filename.endswith("data.pkl"))
    total = sum(e.file_size for e in entries)
    for size, limit, what in ((pickled, MAX_PICKLE_BYTES, "its description (data.pkl)"),
                              (total, MAX_UNPACKED_BYTES, "it")):
        if size > limit:
            raise _refuse(path.name, f"{what} unpacks to {size / 2**20:,.1f} MB, more than the "
                                     f"{limit / 2**20:,.{0 if limit % 2**20 == 0 else 1}f} MB a checkpoint may hold")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _check_header(payload: dict[str, Any], name: str, check_weights: bool = True) -> dict[str, Any]:
    """The header's fields, checked and normalized, before any model is built; ``CheckpointError`` says what is
    wrong in one line. ``check_weights=False`` leaves the weights out (``read_description`` has none)."""
    classes = payload.get("classes")
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
        raise _refuse(name, "its class list is missing or is not a list of class names")
    try:
        check_class_names(classes)
    except ValueError as exc:
        raise _refuse(name, f"its class list is not usable ({exc})") from None
    width = payload.get("width", 64)
    if not isinstance(width, int) or isinstance(width, bool) or not 1 <= width <= MAX_WIDTH:
        raise _refuse(name, f"width {repr(width)[:20]} is not a whole number from 1 to {MAX_WIDTH}")
    views = payload.get("views", ["1.0"])
    known = {str(d) for d in DURATIONS_S}
    try:
        views = [str(float(v)) for v in views] if isinstance(views, (list, tuple)) else None
    except (TypeError, ValueError):
        views = None
    if not views or not set(views) <= known or len(set(views)) != len(views):
        raise _refuse(name, f"its views must be a non-empty list of distinct durations from {sorted(known)}")
    temperature = _number(payload.get("temperature", 1.0))
    if temperature is None or not math.isfinite(temperature) or temperature <= 0:
        raise _refuse(name, f"its temperature {str(payload.get('temperature'))[:20]} is not a finite number above 0")
    arch = payload.get("arch", DEFAULT_ARCH)
    if arch not in ARCHITECTURE_NAMES:
        raise _refuse(name, f"unknown architecture {str(arch)[:40]!r} (known: {', '.join(ARCHITECTURE_NAMES)})")
    norm = payload.get("normalization") or {}
    input_size = payload.get("input_size", INPUT_SIZE)
    mean, std = (norm.get("mean", MEAN), norm.get("std", STD)) if isinstance(norm, dict) else (None, None)
    if input_size != INPUT_SIZE or not isinstance(mean, (list, tuple)) or tuple(mean) != MEAN \
            or not isinstance(std, (list, tuple)) or tuple(std) != STD:
        raise CheckpointError(f"{name} expects preprocessing this GlitchNet does not provide "
                              f"(input {str(input_size)[:12]}px, mean {str(mean)[:40]}, std {str(std)[:40]})")
    epoch = payload.get("epoch", 0)
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise _refuse(name, f"its epoch {repr(epoch)[:20]} is not a whole number")
    for key in ("config", "metrics", "training_state"):
        if payload.get(key) is not None and not isinstance(payload[key], dict):
            raise _refuse(name, f"its {key} is not a table")
    if check_weights:
        _check_weights(payload.get("state_dict"), arch, len(classes), width, name)
    return {"classes": list(classes), "width": width, "views": views, "temperature": temperature, "arch": arch,
            "epoch": epoch}


def _check_weights(state_dict: Any, arch: str, num_classes: int, width: int, name: str) -> None:
    """The weights are tensors of exactly the shapes the declared network has (checked on a model built on the
    ``meta`` device, which allocates nothing), and finite."""
    import torch

    from .model import build_architecture

    if not isinstance(state_dict, dict) or not state_dict:
        raise _refuse(name, "it holds no weights (no state_dict table)")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()):
        raise _refuse(name, "its state_dict holds something other than named tensors")
    with torch.device("meta"):
        expected = build_architecture(arch, num_classes=num_classes, width=width).state_dict()
    missing = [k for k in expected if k not in state_dict]
    extra = [k for k in state_dict if k not in expected]
    if missing or extra:
        what = f"{missing[0]} is missing" if missing else f"{extra[0][:60]} is unexpected"
        raise CheckpointError(f"{name}: the weights do not fit the {arch} architecture of width {width} "
                              f"({what})")
    for key, want in expected.items():
        got = state_dict[key]
        if tuple(got.shape) != tuple(want.shape):
            raise CheckpointError(f"{name}: the weights do not fit the {arch} architecture of width {width} "
                                  f"({key} is {tuple(got.shape)}, expected {tuple(want.shape)})")
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise _refuse(name, f"its weights hold NaN or infinite values ({key})")


def load_checkpoint(path: str | os.PathLike, expected_classes: list[str] | None = None) -> Checkpoint:
    """Read a checkpoint with ``weights_only=True`` (no code can run) and check that it is GlitchNet's.

    Every field of the header is checked before a model is built (``_check_header``), and what the file unpacks
    to before it is unpickled (``_check_archive``): a crafted or damaged file is refused with one line that says
    what is wrong.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        not_torch = _sniff(path)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    if not_torch:
        raise CheckpointError(f"{path.name} is not a GlitchNet checkpoint: {not_torch}")
    _check_archive(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            raise CheckpointError(f"{path.name} was refused: it holds Python objects that could run code, "
                                  "so it is not a GlitchNet checkpoint") from None
        raise CheckpointError(f"{path.name} is not a readable checkpoint (corrupt: {first_line(str(exc), 100)})") \
            from None
    except Exception as exc:  # whatever the reader trips on, the file is unusable: say so in one line
        reason = first_line(str(exc), 100) or type(exc).__name__
        raise CheckpointError(f"{path.name} is not a readable checkpoint (truncated or corrupt: {reason})") from None
    ckpt = _from_payload(payload, path, expected_classes)
    ckpt.build_model()  # fail now, with a clear message, if the weights do not fit
    return ckpt


def _from_payload(payload: Any, path: Path, expected_classes: list[str] | None = None,
                  check_weights: bool = True) -> Checkpoint:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path.name} is a PyTorch file but not a GlitchNet checkpoint")
    version = payload.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path.name} was written by a newer GlitchNet (format {str(version)[:20]})")
    header = _check_header(payload, path.name, check_weights)
    if expected_classes is not None and header["classes"] != list(expected_classes):
        raise CheckpointError(f"{path.name} was trained on another class list ({len(header['classes'])} classes, "
                              f"expected {len(expected_classes)})")
    ckpt = Checkpoint(
        state_dict=payload["state_dict"],
        classes=header["classes"],
        width=header["width"],
        input_size=INPUT_SIZE,
        views=header["views"],
        mean=list(MEAN),
        std=list(STD),
        temperature=header["temperature"],
        config=payload.get("config") or {},
        metrics=payload.get("metrics") or {},
        epoch=header["epoch"],
        training_state=payload.get("training_state"),
        library_version=str(payload.get("library_version", "?"))[:40],
        arch=header["arch"],
    )
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
    _check_archive(path)
    try:
        with zipfile.ZipFile(path) as archive:
            pickled = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            with archive.open(pickled[0]) as fh:
                payload = _DescriptionUnpickler(fh).load()
    except Exception:  # not a file this reader understands: torch's own reader says what is wrong with it
        return load_checkpoint(path)
    ckpt = _from_payload(payload, path, check_weights=False)
    ckpt.state_dict = {}
    return ckpt
