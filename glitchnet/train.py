"""The training loop: AdamW, cross-entropy, cosine annealing; seeded, resumable, reporting plain progress events."""

from __future__ import annotations

import dataclasses
import hashlib
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
from .classes import CLASSES
from .config import DURATION_VIEWS, TrainConfig
from .data import DatasetError, EpochSampler, GlitchImages, load_split, parse_view, scan_dataset
from .evaluate import compute_metrics, predict_logits
from .images import to_model_input
from .model import FrequencyGlitchNet, GlitchNet, autocast, build_architecture, forward_uint8
from .syncbn import synchronize_batchnorm


@dataclass
class Event:
    """One progress report. ``kind``: "scan", "cache", "batch", "epoch", "done", "stopped"."""

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


def last_checkpoint_path(out: str | os.PathLike) -> Path:
    """Where the resumable state of a run writing ``out`` lives (``model.pt`` -> ``model.last.pt``)."""
    out = Path(out)
    return out.with_name(out.stem + ".last" + out.suffix)


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA if present, else the CPU; under torchrun, "auto" and "cuda" mean this rank's GPU (LOCAL_RANK)."""
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

    def fingerprint(self) -> tuple[int, int, str]:
        """(training images, validation images, a hash of their labels): equal on every rank of a run."""
        digest = hashlib.sha1(np.ascontiguousarray(self.y_train).tobytes() + b"|" +
                              np.ascontiguousarray(self.y_val).tobytes()).hexdigest()[:12]
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


def load_data(config: TrainConfig, emit: Callable[[Event], None]) -> TrainingData:
    """Scan ``config.data`` and decode its train and validation splits through the tensor cache, reporting progress.

    Raises ``DatasetError`` when no training image could be read.
    """
    cache_workers = max(1, min(4, os.cpu_count() or 1))
    emit(Event("scan", message=f"scanning {config.data}"))
    scan = scan_dataset(config.data, view=config.view)
    if len(scan.skipped):
        emit(Event("scan", message=f"skipped {len(scan.skipped)} file(s) or folder(s); see the dataset report"))

    def cache_progress(split: str) -> Callable[[int, int], None]:
        return lambda done, total: emit(Event("cache", step=done, steps=total, message=f"decoding {split} images"))

    x_train, y_train, _ = load_split(scan, "train", config.cache_dir, cache_workers, cache_progress("train"))
    x_val, y_val, _ = load_split(scan, "validation", config.cache_dir, cache_workers, cache_progress("validation"))
    if len(y_train) == 0:
        raise DatasetError(f"{config.data} has no readable training images")
    undecodable = len(scan.split("train")) + len(scan.split("validation")) - len(y_train) - len(y_val)
    if undecodable:
        emit(Event("scan", message=f"skipped {undecodable} image(s) that could not be decoded"))
    return TrainingData(x_train, y_train, x_val, y_val)


def make_train_loader(config: TrainConfig, data: TrainingData,
                      device: torch.device) -> tuple[torch.utils.data.DataLoader, EpochSampler]:
    """The augmented, shuffled training loader and its sampler (call ``sampler.set_epoch`` before each epoch)."""
    from .augment import make_augmenter  # imported late: the augmentation table is only needed to train

    workers = config.workers if config.workers >= 0 else (4 if device.type == "cuda" else 0)
    dataset = GlitchImages(data.x_train, data.y_train, augmenter=make_augmenter(config.augment), seed=config.seed)
    # under torchrun each rank takes its share of each epoch's one permutation (see EpochSampler)
    sampler = EpochSampler(len(dataset), shuffle=True, seed=config.seed, num_replicas=distributed.world_size(),
                           rank=distributed.rank())
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, sampler=sampler,
                                         num_workers=workers, pin_memory=device.type == "cuda",
                                         drop_last=len(sampler) > config.batch_size)
    return loader, sampler


def build_training(config: TrainConfig, device: torch.device) -> tuple[nn.Module, torch.optim.Optimizer, Any,
                                                                       nn.Module]:
    """A fresh model on ``device`` with its AdamW optimizer, cosine schedule (one step per epoch) and loss.

    Under torchrun the BatchNorm layers normalize over the global batch (``syncbn``) and the learning rate is
    ``config.lr`` × ``distributed.lr_scale(config.lr_scaling, N)``; the model is not yet wrapped in DDP.
    """
    # channels_last suits oneDNN on CPU (about 1.4x faster training measured on 2 cores) and cuDNN on GPU alike
    model = build_architecture(config.arch, len(CLASSES), config.width).to(device, memory_format=torch.channels_last)
    model = synchronize_batchnorm(model)
    lr = config.lr * distributed.lr_scale(config.lr_scaling, distributed.world_size())
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, config.epochs))
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    return model, optimizer, scheduler, criterion


def start_or_resume(config: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                    emit: Callable[[Event], None]) -> RunState:
    """Where the run starts: ``<out>.last.pt``'s weights, optimizer, schedule and history when resuming, else
    ``config.init``'s weights (fine-tuning) or the fresh ones.

    Under torchrun rank 0 reads the files and sends them to the other ranks (no shared folder needed for them). A run
    saved with another number of ranks resumes with its learning rate rescaled to the new global batch.
    """
    last_path = last_checkpoint_path(config.out)

    def read() -> tuple[Checkpoint | None, Checkpoint | None]:
        if config.resume and last_path.is_file():
            state = load_checkpoint(last_path)
            if state.training_state is None:
                raise CheckpointError(f"{last_path.name} holds no training state to resume from")
            return None, state
        if config.init:
            return load_checkpoint(config.init, expected_classes=list(CLASSES)), None
        return None, None

    loaded = None
    with distributed.all_ranks_ok():
        if distributed.is_main():
            loaded = read()
    start, state = distributed.broadcast_object(loaded)
    if start is not None:
        load_initial_weights(model, start)
        emit(Event("scan", message=f"starting from the weights of {config.init}"))
    if state is None:
        return RunState()
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
                    best_val=float(state.training_state["best_val_accuracy"]), start_epoch=state.epoch + 1)


def evaluate(model: nn.Module, images_uint8: np.ndarray, labels: np.ndarray, device: torch.device,
             batch_size: int = 128) -> tuple[float, dict[str, Any]]:
    """Validation: the mean cross-entropy and ``compute_metrics`` of ``model`` on labelled canonical uint8 images.

    Under torchrun each rank scores one contiguous block of the images and every rank gets all the logits, so the
    ranks agree on the metrics.
    """
    block = np.array_split(np.arange(len(images_uint8)), distributed.world_size())[distributed.rank()]
    start, end = (int(block[0]), int(block[-1]) + 1) if len(block) else (0, 0)
    logits = predict_logits(model, images_uint8[start:end], batch_size=batch_size, device=device)
    logits = np.concatenate([block for block in distributed.all_gather_object(logits) if len(block)] or [logits])
    loss = float(nn.functional.cross_entropy(torch.as_tensor(logits), torch.as_tensor(labels)))
    return loss, compute_metrics(labels, logits.argmax(1), list(CLASSES))


def save_epoch(config: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
               run: RunState, epoch: int, val_metrics: dict[str, Any]) -> None:
    """After an epoch (its row already in ``run.history``): the checkpoint at ``config.out`` if validation
    improved, and always the resumable state at ``<out>.last.pt``."""
    described = _describe(model, config, epoch, run.history, {"validation": val_metrics})
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
          stop: threading.Event | None = None) -> Checkpoint:
    """Train GlitchNet on ``config.data``; save the best-on-validation checkpoint at ``config.out``.

    Each epoch also writes ``<out>.last.pt`` with the optimizer, scheduler and history, so ``resume=True``
    continues exactly where an interrupted run stopped: shuffling and augmentation depend only on
    (seed, epoch, index), so a resumed run reaches the same weights as an uninterrupted one on CPU.
    Setting ``stop`` ends the run after the current batch, keeping the checkpoints written so far.

    Under torchrun (a process group of N ranks) the same call trains with DistributedDataParallel: each rank takes
    its share of every batch, gradients and BatchNorm statistics are those of the global batch, validation is split
    over the ranks, and only rank 0 reports progress and writes checkpoints. A failure on any rank at a step where
    ranks can fail alone (reading the data or a checkpoint, writing one) ends every rank with one ``RankError``.
    """
    main = distributed.is_main()
    emit = (progress or (lambda e: None)) if main else (lambda e: None)
    device = pick_device(config.device)
    seed_everything(config.seed)
    data = distributed.main_first(lambda: load_data(config, emit))  # each node's local rank 0 fills the cache
    distributed.check_same(data.fingerprint(), "dataset", TrainingData.describe_fingerprint)
    model, optimizer, scheduler, criterion = build_training(config, device)
    run = start_or_resume(config, model, optimizer, scheduler, emit)
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
            emit(Event("stopped", epoch=epoch, epochs=config.epochs, step=step, steps=steps, history=run.history,
                       message="stopped; the last finished epoch's checkpoint is kept"))
            return run.best if run.best is not None else _describe(model, config, epoch - 1, run.history, {})
        scheduler.step()
        train_rate = seen / (time.perf_counter() - t0)
        if config.precise_bn > 0:
            recompute_batchnorm(model, data.x_train, config.precise_bn, config.batch_size, device,
                                seed=(config.seed, epoch))
        if len(data.y_val):
            val_loss, val_metrics = evaluate(model, data.x_val, data.y_val, device)
            val_acc = val_metrics["accuracy"]
        else:  # no validation split: the best checkpoint is the one that fits the training images best
            val_loss, val_acc, val_metrics = float("nan"), correct / seen, {}
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
        return _describe(model, config, config.epochs, run.history, {})
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
        seen += len(y)
        correct += int((logits.argmax(1) == y).sum())
        loss_sum += float(loss.detach()) * len(y)
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
              metrics: dict[str, Any]) -> Checkpoint:
    duration_s = parse_view(config.view)
    views = list(DURATION_VIEWS) if duration_s is None else [str(duration_s)]
    return Checkpoint(
        state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        classes=list(CLASSES), width=config.width, views=views, config=asdict(config),
        metrics={**metrics, "history": list(history)}, epoch=epoch, arch=config.arch,
    )


def load_initial_weights(model: GlitchNet, start: Checkpoint) -> None:
    """Fine-tuning's starting point: ``start``'s weights into ``model``; a seed GlitchNet's weights also start a
    frequency-aware one (the coordinate channel's weights begin at zero, so it starts as the seed model exactly)."""
    if isinstance(model, FrequencyGlitchNet) and start.arch == GlitchNet.arch_name:
        model.load_state_dict(FrequencyGlitchNet.state_from_glitchnet(start.state_dict))
    elif start.arch != model.arch_name or start.width != model.width:
        raise CheckpointError(f"cannot start a {type(model).__name__} of width {model.width} from a {start.arch} "
                              f"checkpoint of width {start.width}")
    else:
        model.load_state_dict(start.state_dict)
