"""Training settings without torch: every knob of a run with its default, and the choices the CLI and the app offer.

``TrainConfig``'s field defaults are the defaults of ``glitchnet train`` and of the app's Train page; both read them
from here, so the command line starts in an instant (no torch import) and a default is changed in one place.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from .architectures import ARCHITECTURE_NAMES, DEFAULT_ARCH, MAX_WIDTH
from .classes import AUTO, CLASS_SET_CHOICES, DURATIONS_S
from .errors import DatasetError, TrainingError

AUGMENTATION_MODES: tuple[str, ...] = ("class", "generic", "none")
"""``class``: the physics-aware policies of ``augment.py``; ``generic``: a torchvision-style baseline; ``none``:
identity."""

AUGMENTATION_LABELS: dict[str, str] = {"class": "Class-aware (physics-based)",
                                       "generic": "Generic (flips, jitter, crops)", "none": "None"}
"""Each augmentation mode in a few words, for people choosing one."""

SPLITS = ("train", "validation", "test")
"""A dataset's splits, in the order a page lists them."""
TEST_FIRST = tuple(reversed(SPLITS))
"""The splits, the test split first: where an example shown to a person is taken from (held out, if it can be)."""

ALL_VIEWS = "all"
"""The ``view`` that trains on the four durations, each view a sample of its own."""

DURATION_VIEWS: tuple[str, ...] = tuple(f"{d:.1f}" for d in DURATIONS_S)
"""The ``view`` of each Gravity Spy duration, in seconds: "0.5", "1.0", "2.0", "4.0" (as checkpoints record them)."""

VIEWS: tuple[str, ...] = (*DURATION_VIEWS, ALL_VIEWS)
"""``view`` choices: one duration or all four."""

LR_SCALING: tuple[str, ...] = ("linear", "sqrt", "none")
"""How the learning rate follows the global batch of a run on N ranks (``distributed.lr_scale``): N × ``lr``,
√N × ``lr``, or ``lr``."""

SIMILAR_K = 12
"""Similar glitches shown per query by default (``glitchnet similar -k``, the Predict page's cards)."""
SIMILAR_MAX_K = 200
"""The most similar glitches one query may ask for (Gravity Spy's own similarity search offers 1 to 200)."""

FIRST_RUN_EPOCHS = 2
"""The app's suggested epochs: a first run of about 90 s on the built-in dataset on two CPU cores (the command's
default is ``TrainConfig.epochs``, for real datasets)."""

LEARNING_RATES: tuple[float, ...] = (1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1)
"""The learning rates the app offers: a log grid (1, 2, 5 per decade), so that each step changes the rate visibly."""
assert tuple(AUGMENTATION_LABELS) == AUGMENTATION_MODES, "every augmentation mode has a label"

DEVICE_RE = re.compile(r"auto|cpu|cuda(:\d+)?")
"""The ``device`` names a run takes: ``auto`` (CUDA when available, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``.
Whether the named device exists here is checked where torch is loaded (``distributed.device_for``)."""


def parse_view(view: str | float) -> float | None:
    """``"1.0"`` -> 1.0; ``"all"`` -> None (every duration as its own sample)."""
    if str(view).lower() == ALL_VIEWS:
        return None
    wrong = f"view must be one of {', '.join(DURATION_VIEWS)} or {ALL_VIEWS!r}, not {view!r}"
    try:
        dur = float(view)
    except ValueError:
        raise DatasetError(wrong) from None
    if dur not in DURATIONS_S:
        raise DatasetError(wrong)
    return dur


@dataclass
class TrainConfig:
    """Every knob of a training run, with the defaults the CLI and the app use."""

    data: str
    out: str = "runs/glitchnet.pt"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.0
    view: str = "1.0"
    """One of ``VIEWS``: a Gravity Spy duration in seconds, or "all" (each of the four views a sample)."""
    augment: str = "class"
    """One of ``AUGMENTATION_MODES``: "class" (physics-aware policies), "generic" (flips, jitter, crops: the
    baseline) or "none"."""
    seed: int = 0
    arch: str = DEFAULT_ARCH
    """One of ``model.ARCHITECTURES``: "glitchnet" (the seed's exact network) or "glitchnet-freq"."""
    width: int = 64
    device: str = "auto"
    workers: int = -1
    """DataLoader workers; -1 picks 0 on CPU (the model uses every core) and 4 on CUDA."""
    cache_dir: str | None = None
    resume: bool = False
    init: str | None = None
    """Start from this checkpoint's weights (fine-tuning) with a fresh optimizer and schedule."""
    compile: bool = False
    precise_bn: int = 2048
    """Before each validation, recompute BatchNorm's statistics over this many (clean, shuffled) training images;
    0 keeps the running averages. At a high learning rate the running averages lag the weights: measured on
    simulated data at epoch 3 of a 1e-3 schedule, validation accuracy was 78.1% with them and 84.8% recomputed."""
    overwrite: bool = False
    """Replace an existing checkpoint at ``out`` (and its ``.last.pt``); without it (or ``resume``) the run refuses."""
    classes: str = AUTO
    """One of ``classes.CLASS_SET_CHOICES``: a shipped class set ("gravityspy-o1o2", "gravityspy-o3"), "auto" (the
    shipped set that covers the dataset's class folders, else the folders) or "folders" (the dataset's own)."""
    lr_scaling: str = "linear"
    """One of ``LR_SCALING``. Under torchrun, how the rate follows the global batch (N ranks × ``batch_size``):
    "linear" trains at N × ``lr`` (``distributed.lr_scale``); one process always trains at ``lr``."""

    def check(self) -> None:
        """Refuse, with one line naming the setting, any knob a run cannot use (before any work starts, without
        torch: whether the device exists is ``train.prepare_run``'s check)."""

        def whole(name: str, value: Any, low: int, high: int | None = None) -> None:
            if not isinstance(value, int) or isinstance(value, bool) or value < low or (high and value > high):
                bound = f"from {low} to {high}" if high else f"of at least {low}"
                raise TrainingError(f"{name} must be a whole number {bound}, not {value!r}")

        def real(name: str, value: Any, low: float, high: float | None = None, low_open: bool = False) -> None:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
                and (value > low if low_open else value >= low) and (high is None or value < high)
            if not ok:
                bound = (f"{'above' if low_open else 'at least'} {low:g}" + (f" and below {high:g}" if high else ""))
                raise TrainingError(f"{name} must be a finite number {bound}, not {value!r}")

        whole("epochs", self.epochs, 1, 100_000)
        whole("batch size", self.batch_size, 1, 65_536)
        real("learning rate", self.lr, 0.0, low_open=True)
        real("weight decay", self.weight_decay, 0.0)
        real("label smoothing", self.label_smoothing, 0.0, 1.0)
        whole("width", self.width, 1, MAX_WIDTH)
        whole("workers", self.workers, -1, 256)
        whole("precise-bn", self.precise_bn, 0)
        whole("seed", self.seed, -(2**62), 2**62)
        parse_view(self.view)
        if self.augment not in AUGMENTATION_MODES:
            raise TrainingError(f"augment must be one of {', '.join(AUGMENTATION_MODES)}, not {self.augment!r}")
        if self.arch not in ARCHITECTURE_NAMES:
            raise TrainingError(f"arch must be one of {', '.join(ARCHITECTURE_NAMES)}, not {self.arch!r}")
        if self.classes not in CLASS_SET_CHOICES:
            raise TrainingError(f"classes must be one of {', '.join(CLASS_SET_CHOICES)}, not {self.classes!r}")
        if self.lr_scaling not in LR_SCALING:
            raise TrainingError(f"lr-scaling must be one of {', '.join(LR_SCALING)}, not {self.lr_scaling!r}")
        if not isinstance(self.device, str) or not DEVICE_RE.fullmatch(self.device):
            raise TrainingError(f"device must be auto, cpu, cuda or cuda:N, not {self.device!r}")
