"""The training loop: AdamW, cross-entropy, cosine annealing; seeded, resumable, reporting plain progress events."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from . import distributed
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .classes import CLASS_SETS, map_label
from .config import DURATION_VIEWS, TrainConfig, parse_view
from .data import (
    DatasetScan,
    EpochSampler,
    GlitchImages,
    default_cache_dir,
    load_split,
    scan_dataset,
)
from .errors import DatasetError, TrainingError
from .evaluate import compute_metrics, predict_logits
from .files import check_output_file, check_writable_folder, clean_stale_temps
from .images import MIN_VIRIDIS_FRACTION, ImageError, canonical_checked, to_model_input
from .model import FrequencyGlitchNet, GlitchNet, autocast, build_architecture, forward_uint8
from .syncbn import synchronize_batchnorm

RESUME_KEYS = ("data", "epochs", "batch_size", "lr", "weight_decay", "label_smoothing", "view", "augment", "seed",
               "arch", "width", "precise_bn", "classes")
"""Settings a resumed run must share with the run it continues (the rest, such as device or workers, may change)."""

HOLDOUT_FRACTION = 0.15
"""Share of training glitches held out for validation when a dataset has no validation split (as ``split_of_id``)."""

VIRIDIS_SAMPLE = 32
"""Training images checked up front for being Gravity Spy spectrograms (on the viridis colour scale)."""


@dataclass
class Event:
    """One progress report. ``kind``: "start" (the run's opening status), "scan" (a note about the data or the
    starting point), "cache", "batch", "epoch", "done", "stopped"."""

    kind: str
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps: int = 0
    loss: float | None = None
    accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    images_per_s: float | None = None
    message: str = ""
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        """Overall progress of the run in [0, 1]."""
        if self.kind in ("done",):
            return 1.0
        if not self.epochs or not self.steps:
            return 0.0
        return min(1.0, ((self.epoch - 1) + self.step / self.steps) / self.epochs)

    @property
    def step_fraction(self) -> float:
        """Progress within the current stage (``step`` of ``steps``, e.g. images cached) in [0, 1]."""
        return min(1.0, self.step / max(1, self.steps))


def last_checkpoint_path(out: str | os.PathLike) -> Path:
    """Where the resumable state of a run writing ``out`` lives (``model.pt`` -> ``model.last.pt``)."""
    out = Path(out)
    return out.with_name(out.stem + ".last" + out.suffix)


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; anything else is one-line refused.
    Under torchrun, "auto" and "cuda" mean this node's GPU number LOCAL_RANK (``distributed.device_for``)."""
    return distributed.device_for(distributed.read_env(), name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class TrainingData:
    """The decoded images of a run: canonical uint8 (N, H, W, 3) arrays and their label ids."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    classes: list[str] = field(default_factory=lambda: list(CLASS_SETS["gravityspy-o1o2"].names))
    """The run's class names (the dataset's class set); label ids index this list."""

    def fingerprint(self) -> tuple[int, int, str]:
        """(training images, validation images, a hash of their labels): equal on every rank of a run."""
        digest = hashlib.sha1(np.ascontiguousarray(self.y_train).tobytes() + b"|" +
                              np.ascontiguousarray(self.y_val).tobytes() + "|".join(self.classes).encode()
                              ).hexdigest()[:12]
        return len(self.y_train), len(self.y_val), digest

    @staticmethod
    def describe_fingerprint(fingerprint: tuple[int, int, str]) -> str:
        n_train, n_val, digest = fingerprint
        return f"{n_train} training and {n_val} validation images (labels {digest})"


@dataclass
class RunState:
    """What carries from epoch to epoch, and over a resume: the history and the best validation accuracy so far."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_val: float = -1.0
    start_epoch: int = 1
    best: Checkpoint | None = None
    """The best checkpoint written by this process (None until one is; a resumed run starts without)."""
    classes: list[str] = field(default_factory=lambda: list(CLASS_SETS["gravityspy-o1o2"].names))
    """The run's class names, as its checkpoints record them."""


@dataclass
class Prepared:
    """What ``prepare_run`` checked and read before any dataset work: the ``--init`` and ``--resume`` checkpoints."""

    init: Checkpoint | None = None
    last: Checkpoint | None = None
    checked: tuple[DatasetScan, list[str]] | None = None
    """``check_training_data``'s answer on the run's dataset scan, when the caller has already made it (the app's
    Train page checks the dataset before it starts the run): the run then neither scans nor checks again."""


def prepare_run(config: TrainConfig, emit: Callable[[Event], None] = lambda e: None) -> Prepared:
    """Everything that can fail without the dataset, checked before the (possibly long) scan: the settings, every
    output location (writable, not a folder, not an existing checkpoint unless ``overwrite`` or ``resume``), the
    ``--init`` checkpoint, and that ``--resume`` has a run to continue with the same settings. Temporary files left
    by a killed run are removed. Raises a ``GlitchNetError`` (one line) when the run cannot start."""
    config.check()
    pick_device(config.device)  # the named device exists here (and this rank's GPU under torchrun)
    out = check_output_file(config.out, "output checkpoint")
    last_path = last_checkpoint_path(out)
    check_output_file(last_path, "resumable state")
    check_writable_folder(config.cache_dir or default_cache_dir(), "cache folder")
    for path in (out, last_path):
        if clean_stale_temps(path):
            emit(Event("scan", message=f"removed temporary files a killed run left beside {path.name}"))
    prepared = Prepared()
    if config.resume:
        if last_path.is_file():
            prepared.last = load_checkpoint(last_path, expected_classes=_expected_classes(config))
            _check_resumable(config, prepared.last, last_path)
        elif out.exists() and not config.overwrite:
            raise TrainingError(f"nothing to resume: {last_path} does not exist, and starting afresh would replace "
                                f"{out}; pass --overwrite to do that")
        else:
            emit(Event("scan", message=f"nothing to resume ({last_path.name} does not exist): starting a new run"))
    elif not config.overwrite:
        existing = [p for p in (out, last_path) if p.exists()]
        if existing:
            raise TrainingError(f"{existing[0]} already exists; pass --overwrite to replace it, or --resume to "
                                "continue its run")
    if config.init and prepared.last is None:
        prepared.init = load_checkpoint(config.init)
        classes = _expected_classes(config) or list(prepared.init.classes)
        model = build_architecture(config.arch, len(classes), config.width)
        load_initial_weights(model, prepared.init, classes)  # refuses an incompatible start now, not after the scan
    return prepared


def _expected_classes(config: TrainConfig) -> list[str] | None:
    """The run's class names when the settings alone decide them (a shipped set), else None (read from the data)."""
    return list(CLASS_SETS[config.classes].names) if config.classes in CLASS_SETS else None


def _same(key: str, a: Any, b: Any) -> bool:
    if key == "data":
        return Path(str(a)).expanduser().resolve() == Path(str(b)).expanduser().resolve()
    if key == "view":
        return parse_view(a) == parse_view(b)
    return a == b


def _check_resumable(config: TrainConfig, last: Checkpoint, last_path: Path) -> None:
    if last.training_state is None:
        raise CheckpointError(f"{last_path.name} holds no training state to resume from")
    state = last.training_state
    if not (isinstance(state.get("optimizer"), dict) and isinstance(state.get("scheduler"), dict)
            and isinstance(state.get("history"), list) and isinstance(state.get("best_val_accuracy"), (int, float))):
        raise CheckpointError(f"{last_path.name} holds an incomplete training state (optimizer, scheduler, history "
                              "and best accuracy are needed to resume)")
    before, now = last.config, asdict(config)
    changed = [k for k in RESUME_KEYS if k in before and not _same(k, before[k], now[k])]
    if changed:
        what = ", ".join(f"{k} {before[k]!r} -> {now[k]!r}" for k in changed[:3])
        raise TrainingError(f"--resume refused: the settings changed since {last_path.name} was written ({what}); "
                            "resume with the same settings, or pass --overwrite without --resume to start afresh")


def check_training_data(scan: DatasetScan, sample: int = VIRIDIS_SAMPLE) -> tuple[DatasetScan, list[str]]:
    """Refuse a dataset no run could learn anything from, before decoding it; returns the scan to train on and notes
    for the user.

    - fewer than two classes among the training images, before or after the hold-out below: refused
      (``TrainingError``);
    - no validation split: ``HOLDOUT_FRACTION`` of the training glitches (chosen by glitch id, so the views of one
      glitch stay together and a resumed run holds out the same ones) become the validation split, and a note says so;
    - most of a sample of training images off the viridis colour scale (not Gravity Spy spectrograms; prediction
      refuses such images): refused; a few: a note.
    """
    notes: list[str] = []
    train_rows = scan.split("train")
    if train_rows.empty:
        return scan, notes  # no training images at all: ``load_data`` says so
    classes = sorted(set(train_rows["label"]))
    if len(classes) < 2:
        found = f"only {classes[0]}" if classes else "none"
        raise TrainingError(f"{scan.root} has training images of {len(classes)} class(es) ({found}); a classifier "
                            "needs at least two to learn anything")
    if scan.split("validation").empty:
        key = train_rows["gravityspy_id"].where(train_rows["ifo"].notna(), train_rows["path"])
        glitches = sorted(set(key), key=lambda g: hashlib.sha1(str(g).encode()).digest())
        held = set(glitches[:max(1, round(HOLDOUT_FRACTION * len(glitches)))])
        if len(held) >= len(glitches):
            raise TrainingError(f"{scan.root} has no validation split and too few training glitches "
                                f"({len(glitches)}) to hold some out")
        manifest = scan.manifest.copy()
        is_train = manifest["split"] == "train"
        all_keys = manifest["gravityspy_id"].where(manifest["ifo"].notna(), manifest["path"])
        manifest.loc[is_train & all_keys.isin(held), "split"] = "validation"
        left = sorted(set(manifest.loc[manifest["split"] == "train", "label"]))
        if len(left) < 2:
            raise TrainingError(f"{scan.root} has no validation split, and holding out {len(held)} of "
                                f"{len(glitches)} training glitches to validate on leaves training images of "
                                f"{len(left)} class ({', '.join(left)}); a classifier needs at least two: add "
                                "glitches or a validation split")
        scan = dataclasses.replace(scan, manifest=manifest)
        notes.append(f"no validation split: holding out {len(held)} of {len(glitches)} training glitches "
                     f"({HOLDOUT_FRACTION:.0%}, chosen by glitch id) to validate on")
    paths = train_rows["path"].tolist()
    picked = [paths[i] for i in np.linspace(0, len(paths) - 1, min(sample, len(paths))).round().astype(int)]
    off = []
    for path in dict.fromkeys(picked):
        try:
            if canonical_checked(path)[1] < MIN_VIRIDIS_FRACTION:
                off.append(path)
        except ImageError:
            pass  # undecodable files are skipped and reported when the split is decoded
    checked = len(dict.fromkeys(picked))
    if off and len(off) * 2 > checked:
        raise TrainingError(f"{len(off)} of {checked} sampled training images are not on the viridis colour scale "
                            f"of Gravity Spy spectrograms (e.g. {Path(off[0]).name}); a model trained on them could "
                            "not classify anything")
    if off:
        notes.append(f"{len(off)} of {checked} sampled training images are mostly off the viridis colour scale "
                     f"(e.g. {Path(off[0]).name}); they are trained on as they are")
    return scan, notes


def _skipped_summary(skipped) -> str:
    """``skipped`` (path, reason) rows as counts per kind of reason, most common first."""
    kinds = skipped["reason"].str.replace(r" '.*'$| \(.*\)$", "", regex=True).value_counts()
    return ", ".join(f"{n} {reason}" for reason, n in kinds.head(4).items()) + (", ..." if len(kinds) > 4 else "")


def load_data(config: TrainConfig, emit: Callable[[Event], None],
              checked: tuple[DatasetScan, list[str]] | None = None) -> TrainingData:
    """Scan ``config.data`` (unless ``checked`` holds the scan and ``check_training_data``'s notes already) and
    decode its train and validation splits through the tensor cache, reporting progress.

    Raises ``DatasetError`` when no training image could be read.
    """
    cache_workers = max(1, min(4, os.cpu_count() or 1))
    emit(Event("start", message=f"scanning {config.data}"))
    scan = checked[0] if checked is not None else scan_dataset(config.data, view=config.view, classes=config.classes)
    if scan.class_note:
        emit(Event("scan", message=scan.class_note))
    if len(scan.skipped):
        emit(Event("scan", message=f"skipped {len(scan.skipped)} file(s) or folder(s): "
                                   f"{_skipped_summary(scan.skipped)}"))
    scan, notes = checked if checked is not None else check_training_data(scan)
    for note in notes:
        emit(Event("scan", message=note))

    def cache_progress(split: str) -> Callable[[int, int], None]:
        return lambda done, total: emit(Event("cache", step=done, steps=total, message=f"decoding {split} images"))

    x_train, y_train, _ = load_split(scan, "train", config.cache_dir, cache_workers, cache_progress("train"))
    x_val, y_val, _ = load_split(scan, "validation", config.cache_dir, cache_workers, cache_progress("validation"))
    if len(y_train) == 0:
        raise DatasetError(f"{config.data} has no readable training images")
    undecodable = len(scan.split("train")) + len(scan.split("validation")) - len(y_train) - len(y_val)
    if undecodable:
        emit(Event("scan", message=f"skipped {undecodable} image(s) that could not be decoded"))
    return TrainingData(x_train, y_train, x_val, y_val, list(scan.class_set.names))


def make_train_loader(config: TrainConfig, data: TrainingData,
                      device: torch.device) -> tuple[torch.utils.data.DataLoader, EpochSampler]:
    """The augmented, shuffled training loader and its sampler (call ``sampler.set_epoch`` before each epoch)."""
    from .augment import make_augmenter  # imported late: the augmentation table is only needed to train

    workers = config.workers if config.workers >= 0 else (4 if device.type == "cuda" else 0)
    dataset = GlitchImages(data.x_train, data.y_train, data.classes, augmenter=make_augmenter(config.augment),
                           seed=config.seed)
    # under torchrun each rank takes its share of each epoch's one permutation (see EpochSampler)
    sampler = EpochSampler(len(dataset), shuffle=True, seed=config.seed, num_replicas=distributed.world_size(),
                           rank=distributed.rank())
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, sampler=sampler,
                                         num_workers=workers, pin_memory=device.type == "cuda",
                                         drop_last=len(sampler) > config.batch_size)
    return loader, sampler


def build_training(config: TrainConfig, device: torch.device, num_classes: int) -> tuple[
        nn.Module, torch.optim.Optimizer, Any, nn.Module]:
    """A fresh model on ``device`` with its AdamW optimizer, cosine schedule (one step per epoch) and loss.

    Under torchrun the BatchNorm layers normalize over the global batch (``syncbn``) and the learning rate is
    ``config.lr`` × ``distributed.lr_scale(config.lr_scaling, N)``; the model is not yet wrapped in DDP.
    """
    # channels_last suits oneDNN on CPU (about 1.4x faster training measured on 2 cores) and cuDNN on GPU alike
    model = build_architecture(config.arch, num_classes, config.width).to(device, memory_format=torch.channels_last)
    model = synchronize_batchnorm(model)
    lr = config.lr * distributed.lr_scale(config.lr_scaling, distributed.world_size())
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, config.epochs))
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    return model, optimizer, scheduler, criterion


def start_or_resume(config: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                    emit: Callable[[Event], None], prepared: Prepared | None = None,
                    classes: list[str] | None = None) -> RunState:
    """Where the run starts: ``<out>.last.pt``'s weights, optimizer, schedule and history when resuming, else
    ``config.init``'s weights (fine-tuning) or the fresh ones. ``prepared`` holds those checkpoints when
    ``prepare_run`` has already read them. ``classes`` are the run's class names (the model's outputs); a start from
    a checkpoint of another class set keeps the weights of the classes both share (``load_initial_weights``).

    Under torchrun rank 0 reads the files and sends them to the other ranks (no shared folder needed for them). A run
    saved with another number of ranks resumes with its learning rate rescaled to the new global batch.
    """
    last_path = last_checkpoint_path(config.out)

    def read() -> tuple[Checkpoint | None, Checkpoint | None]:
        resuming = prepared.last is not None if prepared is not None else config.resume and last_path.is_file()
        if resuming:
            state = prepared.last if prepared is not None and prepared.last is not None else load_checkpoint(last_path)
            if state.training_state is None:
                raise CheckpointError(f"{last_path.name} holds no training state to resume from")
            return None, state
        if config.init:
            start = prepared.init if prepared is not None and prepared.init is not None \
                else load_checkpoint(config.init)
            return start, None
        return None, None

    loaded = None
    with distributed.all_ranks_ok():
        if distributed.is_main():
            loaded = read()
    start, state = distributed.broadcast_object(loaded)
    classes = list(classes) if classes is not None else list(CLASS_SETS["gravityspy-o1o2"].names)
    if start is not None:
        load_initial_weights(model, start, classes)
        emit(Event("scan", message=f"starting from the weights of {config.init}"))
    if state is None:
        return RunState(classes=classes)
    if list(state.classes) != classes:
        raise CheckpointError(f"{last_path.name} was trained on {len(state.classes)} classes, but the dataset now "
                              f"gives {len(classes)}; pass --overwrite without --resume to start afresh")
    model.load_state_dict(state.state_dict)
    optimizer.load_state_dict(state.training_state["optimizer"])
    scheduler.load_state_dict(state.training_state["scheduler"])
    saved_ranks = int(state.training_state.get("world_size", 1))
    if saved_ranks != distributed.world_size():
        factor = (distributed.lr_scale(config.lr_scaling, distributed.world_size())
                  / distributed.lr_scale(config.lr_scaling, saved_ranks))
        for group in optimizer.param_groups:
            group["lr"] *= factor
            if "initial_lr" in group:
                group["initial_lr"] *= factor
        scheduler.base_lrs = [lr * factor for lr in scheduler.base_lrs]
        emit(Event("scan", message=f"resuming a {saved_ranks}-rank run on {distributed.world_size()} rank(s): "
                                   f"learning rate × {factor:g}"))
    emit(Event("scan", message=f"resuming after epoch {state.epoch}"))
    return RunState(history=list(state.training_state["history"]),
                    best_val=float(state.training_state["best_val_accuracy"]), start_epoch=state.epoch + 1,
                    classes=classes)


def validate(model: nn.Module, images_uint8: np.ndarray, labels: np.ndarray, device: torch.device,
             classes: list[str], batch_size: int = 128) -> tuple[float, dict[str, Any]]:
    """Validation: the mean cross-entropy and ``compute_metrics`` of ``model`` on labelled canonical uint8 images.

    Under torchrun each rank scores one contiguous block of the images and every rank gets all the logits, so the
    ranks agree on the metrics.
    """
    block = np.array_split(np.arange(len(images_uint8)), distributed.world_size())[distributed.rank()]
    start, end = (int(block[0]), int(block[-1]) + 1) if len(block) else (0, 0)
    logits = predict_logits(model, images_uint8[start:end], batch_size=batch_size, device=device)
    logits = np.concatenate([block for block in distributed.all_gather_object(logits) if len(block)] or [logits])
    loss = float(nn.functional.cross_entropy(torch.as_tensor(logits), torch.as_tensor(labels)))
    return loss, compute_metrics(labels, logits.argmax(1), list(classes))


def save_epoch(config: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
               run: RunState, epoch: int, val_metrics: dict[str, Any]) -> None:
    """After an epoch (its row already in ``run.history``): the checkpoint at ``config.out`` if validation
    improved, and always the resumable state at ``<out>.last.pt``."""
    described = _describe(model, config, epoch, run.history, {"validation": val_metrics}, run.classes)
    val_acc = run.history[-1]["val_accuracy"]
    if val_acc > run.best_val:
        run.best_val = val_acc
        run.best = described
        save_checkpoint(described, config.out)
    state = dataclasses.replace(described, training_state={
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "history": run.history,
        "best_val_accuracy": run.best_val, "world_size": distributed.world_size()})
    save_checkpoint(state, last_checkpoint_path(config.out))


def train(config: TrainConfig, progress: Callable[[Event], None] | None = None,
          stop: threading.Event | None = None, prepared: Prepared | None = None) -> Checkpoint:
    """Train GlitchNet on ``config.data``; save the best-on-validation checkpoint at ``config.out``.

    Each epoch also writes ``<out>.last.pt`` with the optimizer, scheduler and history, so ``resume=True``
    continues exactly where an interrupted run stopped: shuffling and augmentation depend only on
    (seed, epoch, index), so a resumed run reaches the same weights as an uninterrupted one on CPU.
    Setting ``stop`` ends the run after the current batch, keeping the checkpoints written so far.
    ``prepared`` is ``prepare_run``'s answer when the caller has already checked the run (it is checked here if not).

    Under torchrun (a process group of N ranks) the same call trains with DistributedDataParallel: each rank takes
    its share of every batch, gradients and BatchNorm statistics are those of the global batch, validation is split
    over the ranks, and only rank 0 reports progress and writes checkpoints. A failure on any rank at a step where
    ranks can fail alone (reading the data or a checkpoint, writing one) ends every rank with one ``RankError``.
    """
    main = distributed.is_main()
    emit = (progress or (lambda e: None)) if main else (lambda e: None)
    if prepared is None:
        with distributed.all_ranks_ok():  # rank 0 checks the run; it alone reads and writes the checkpoints
            prepared = prepare_run(config, emit) if main else Prepared()
    device = pick_device(config.device)
    seed_everything(config.seed)
    # each node's local rank 0 fills the cache
    data = distributed.main_first(lambda: load_data(config, emit, prepared.checked))
    distributed.check_same(data.fingerprint(), "dataset", TrainingData.describe_fingerprint)
    model, optimizer, scheduler, criterion = build_training(config, device, len(data.classes))
    run = start_or_resume(config, model, optimizer, scheduler, emit, prepared, data.classes)
    loader, sampler = make_train_loader(config, data, device)
    step_model = model
    if distributed.world_size() > 1:
        # buffers need no broadcast: synchronized BatchNorm keeps the running statistics equal on every rank
        step_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device] if device.type == "cuda" else None, broadcast_buffers=False)
    step_model = torch.compile(step_model) if config.compile else step_model
    steps = len(loader)
    ranks = distributed.world_size()

    for epoch in range(run.start_epoch, config.epochs + 1):
        sampler.set_epoch(epoch)
        t0 = time.perf_counter()

        def on_batch(step: int, seen: int, correct: int, loss_sum: float, epoch: int = epoch, t0: float = t0) -> None:
            # rank 0's running figures; the epoch's are over every rank
            emit(Event("batch", epoch=epoch, epochs=config.epochs, step=step, steps=steps, loss=loss_sum / seen,
                       accuracy=correct / seen, images_per_s=ranks * seen / (time.perf_counter() - t0)))

        seen, correct, loss_sum, step = train_one_epoch(step_model, loader, optimizer, criterion, device,
                                                        on_batch=on_batch, stop=stop)
        seen, correct, loss_sum = distributed.sum_over_ranks(seen, correct, loss_sum)
        if stop is not None and stop.is_set():
            kept = ("the last finished epoch's checkpoint is kept" if Path(config.out).is_file()
                    else "no epoch had finished, so no checkpoint was written")
            emit(Event("stopped", epoch=epoch, epochs=config.epochs, step=step, steps=steps, history=run.history,
                       message=f"stopped; {kept}"))
            return run.best if run.best is not None else _describe(model, config, epoch - 1, run.history, {},
                                                                    run.classes)
        scheduler.step()
        train_rate = seen / (time.perf_counter() - t0)
        if config.precise_bn > 0:
            recompute_batchnorm(model, data.x_train, config.precise_bn, config.batch_size, device,
                                seed=(config.seed, epoch))
        if len(data.y_val):
            val_loss, val_metrics = validate(model, data.x_val, data.y_val, device, data.classes)
            val_acc = val_metrics["accuracy"]
        else:  # every validation image failed to decode: the best checkpoint fits the training images best
            val_loss, val_acc, val_metrics = float("nan"), correct / seen, {}
        with distributed.all_ranks_ok():  # every rank sees the same loss: one error, reported by rank 0
            if len(data.y_val) and not math.isfinite(val_loss) and main:
                raise TrainingError(f"the validation loss became {val_loss} at epoch {epoch} (the weights "
                                    "diverged); the checkpoints of earlier epochs are kept")
        run.history.append({"epoch": epoch, "loss": loss_sum / seen, "accuracy": correct / seen,
                            "val_loss": val_loss, "val_accuracy": val_acc, "images_per_s": train_rate,
                            "lr": scheduler.get_last_lr()[0], "seconds": time.perf_counter() - t0})
        with distributed.all_ranks_ok():  # a full disk on rank 0 ends every rank, not just rank 0
            if main:
                save_epoch(config, model, optimizer, scheduler, run, epoch, val_metrics)
        emit(Event("epoch", epoch=epoch, epochs=config.epochs, step=steps, steps=steps, loss=loss_sum / seen,
                   accuracy=correct / seen, val_loss=val_loss, val_accuracy=val_acc, images_per_s=train_rate,
                   history=list(run.history)))

    if not main:
        return _describe(model, config, config.epochs, run.history, {}, run.classes)
    final = load_checkpoint(config.out) if Path(config.out).is_file() else run.best
    emit(Event("done", epoch=config.epochs, epochs=config.epochs, history=list(run.history),
               val_accuracy=run.best_val, message=f"best validation accuracy {run.best_val:.3f}; saved {config.out}"))
    return final


def train_one_epoch(model: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer, criterion: nn.Module,
                    device: torch.device, scheduler: Any = None,
                    on_batch: Callable[[int, int, int, float], None] | None = None,
                    stop: threading.Event | None = None) -> tuple[int, int, float, int]:
    """One pass over ``loader`` (uint8 HWC batches, labels); returns (images seen, correct, summed loss, steps).

    ``scheduler``, if given, steps after every batch (per-step schedules); ``stop`` ends the pass after a batch.
    """
    model.train()
    seen, correct, loss_sum, step = 0, 0, 0.0, 0
    for step, (x, y) in enumerate(loader, 1):
        y = y.to(device, non_blocking=True)
        logits = forward_uint8(model, x, device)
        loss = criterion(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):  # diverged: these weights must never be saved, let alone as the best
            raise TrainingError(f"the training loss became {loss_value} at batch {step} (learning rate too high, or "
                                "a diverged starting checkpoint); the checkpoints of earlier epochs are kept")
        seen += len(y)
        correct += int((logits.argmax(1) == y).sum())
        loss_sum += loss_value * len(y)
        if on_batch is not None:
            on_batch(step, seen, correct, loss_sum)
        if stop is not None and stop.is_set():
            break
    return seen, correct, loss_sum, step


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, images_uint8: np.ndarray, n: int, batch_size: int,
                        device: str | torch.device = "cpu", seed: tuple[int, ...] | int = 0) -> None:
    """Precise BatchNorm: set every BatchNorm layer's running mean and variance to their average over ``n`` images
    (a random subset, seeded, in shuffled batches so each batch mixes classes), leaving the weights alone.

    ``torch.optim.swa_utils.update_bn`` does the averaging (it resets the statistics, sets ``momentum=None`` for a
    cumulative average, and restores momentum and mode); this function only chooses the images and batches them.
    The statistics equal those of the hand-written loop it replaced, bit for bit on the CPU.
    """
    if len(images_uint8) == 0:
        return  # update_bn would reset the statistics and leave them reset
    device = torch.device(device)
    order = np.random.default_rng(seed).permutation(len(images_uint8))[:n]
    ranks = distributed.world_size()
    if ranks > 1:
        # each rank the same number of batches (their BatchNorm layers meet at every one), dealt like EpochSampler's
        # shares: together the ranks' step-k batches are one process's step-k batch of ranks × batch_size images
        order = order[:len(order) - len(order) % ranks][distributed.rank()::ranks]
        if len(order) == 0:
            return  # fewer images than ranks: keep the running averages (the same on every rank)
    batches = (np.sort(order[start:start + batch_size])  # sorted: memory-mapped caches read forward
               for start in range(0, len(order), batch_size))
    inputs = (to_model_input(images_uint8[batch], device) for batch in batches if len(batch) >= 2)  # one: no variance
    with autocast(device):  # the precision of every other forward pass on this device
        update_bn(inputs, model)


def _describe(model: nn.Module, config: TrainConfig, epoch: int, history: list[dict[str, float]],
              metrics: dict[str, Any], classes: list[str]) -> Checkpoint:
    duration_s = parse_view(config.view)
    views = list(DURATION_VIEWS) if duration_s is None else [str(duration_s)]
    return Checkpoint(
        state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        classes=list(classes), width=config.width, views=views, config=asdict(config),
        metrics={**metrics, "history": list(history)}, epoch=epoch, arch=config.arch,
    )


def load_initial_weights(model: GlitchNet, start: Checkpoint, classes: list[str] | None = None) -> None:
    """Fine-tuning's starting point: ``start``'s weights into ``model``; a seed GlitchNet's weights also start a
    frequency-aware one (the coordinate channel's weights begin at zero, so it starts as the seed model exactly).

    ``classes`` are ``model``'s class names (default: ``start``'s). When they differ from ``start``'s (an O3 model
    started from an O1/O2 one), every layer but the classifier is copied, and each output row of the classifier is
    the row of the class ``classes.map_label`` says it stands for; a class with no counterpart keeps its fresh row.
    """
    if isinstance(model, FrequencyGlitchNet) and start.arch == GlitchNet.arch_name:
        state = FrequencyGlitchNet.state_from_glitchnet(start.state_dict)
    elif start.arch != model.arch_name or start.width != model.width:
        raise CheckpointError(f"cannot start a {type(model).__name__} of width {model.width} from a {start.arch} "
                              f"checkpoint of width {start.width}")
    else:
        state = dict(start.state_dict)
    classes = list(start.classes) if classes is None else list(classes)
    if classes != list(start.classes):
        shared = _shared_class_rows(list(start.classes), classes)
        if not shared:
            raise CheckpointError(f"cannot start a model of {len(classes)} classes from a checkpoint whose "
                                  f"{len(start.classes)} classes it shares none of")
        fresh = model.state_dict()
        for key in ("fc.weight", "fc.bias"):
            row = fresh[key].clone()
            for new, old in shared.items():
                row[new] = state[key][old]
            state[key] = row
    model.load_state_dict(state)


def _shared_class_rows(old: list[str], new: list[str]) -> dict[int, int]:
    """For each class of ``new`` that one of ``old`` stands for (``classes.map_label``), new index -> old index."""
    from .classes import class_set_for

    new_set = class_set_for(new)
    rows = {}
    for i, name in enumerate(old):
        mapped = map_label(name, new_set)
        if mapped is not None:
            rows[new.index(mapped)] = i
    return rows
