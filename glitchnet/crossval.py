"""Few-shot fine-tuning on real labelled glitches, and its honest estimate: leave-glitch-out k-fold cross-validation.

Every image is scored by a model that never saw its glitch (nor a near-duplicate of it): the fold's model is
fine-tuned from the starting checkpoint on the other folds' real images, mixed with simulated ones so that classes
with two or three real examples are not forgotten. Scores are per glitch, the views fused as prediction fuses them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .architectures import DEFAULT_ARCH
from .checkpoint import Checkpoint
from .classes import ClassSet, get_class_set
from .data import GlitchImages
from .evaluate import compute_metrics, fuse_by_glitch, predict_logits, softmax, wilson_interval
from .model import build_architecture
from .realpool import RealPool
from .train import load_initial_weights, recompute_batchnorm, seed_everything, train_one_epoch


@dataclass
class FinetuneConfig:
    """One fine-tuning recipe: the knobs the lever table varies."""

    epochs: int = 6
    lr: float = 3e-4
    weight_decay: float = 0.05
    batch_size: int = 32
    augment: str = "class"
    render_prob: float = 0.0
    """Chance of rendering variation (JPEG quality, GIF palette, rescaling) per training image."""
    sim_per_real: float = 1.0
    """Simulated images drawn (afresh each epoch) per real image: keeps every class in view."""
    class_balance: float = 0.5
    """Real images are drawn with probability proportional to (class count)^-balance: 0 keeps the pool's mix
    (mostly Blip and Whistle), 1 makes every class equally likely."""
    precise_bn: int = 1024
    """Recompute BatchNorm statistics over this many training-mix images at the end (0: keep running averages)."""
    arch: str = DEFAULT_ARCH
    seed: int = 0
    interpolate: float = 1.0
    """WiSE-FT: the fraction of the way from the start's weights to the fine-tuned ones that the model keeps
    (``interpolate_weights``; 1: the fine-tuned weights as they are)."""
    real_per_epoch: int = 0
    """Real images drawn per epoch (0: as many as the pool holds): a cap keeps an epoch's cost fixed as the pool
    grows."""


class _MixSampler(torch.utils.data.Sampler):
    """Each epoch: ``n_real`` real indices drawn with class-balancing weights, plus ``n_sim`` simulated ones, shuffled;
    yields ``(index, epoch)`` pairs so augmentation is seeded per (seed, epoch, index) as in ``train``."""

    def __init__(self, real_weights: np.ndarray, n_sim_pool: int, n_sim: int, seed: int,
                 n_draw: int | None = None) -> None:
        self.p = real_weights / real_weights.sum()
        self.n_real, self.n_sim_pool, self.n_sim, self.seed, self.epoch = len(real_weights), n_sim_pool, n_sim, seed, 0
        self.n_draw = len(real_weights) if n_draw is None else int(n_draw)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = np.random.default_rng([self.seed, self.epoch, 7])
        real = rng.choice(self.n_real, size=self.n_draw, replace=True, p=self.p)
        sim = self.n_real + rng.choice(self.n_sim_pool, size=min(self.n_sim, self.n_sim_pool), replace=False) \
            if self.n_sim_pool else np.zeros(0, dtype=int)
        order = rng.permutation(np.concatenate([real, sim]))
        return ((int(i), self.epoch) for i in order)

    def __len__(self) -> int:
        return self.n_draw + min(self.n_sim, self.n_sim_pool)


def finetune(start: Checkpoint, x_real: np.ndarray, y_real: np.ndarray, x_sim: np.ndarray | None,
             y_sim: np.ndarray | None, config: FinetuneConfig,
             progress: Callable[[int, int], None] | None = None, classes: list[str] | None = None) -> nn.Module:
    """A model fine-tuned from ``start`` on real images (plus simulated ones); eval mode, on the CPU.

    ``classes`` are the new model's classes (default ``start``'s); labels index them. A start of another class set
    keeps the classifier rows of the classes both share (``train.load_initial_weights``).
    """
    from .augment import make_augmenter

    seed_everything(config.seed)
    classes = list(start.classes) if classes is None else list(classes)
    model = build_architecture(config.arch, len(classes), start.width).to(memory_format=torch.channels_last)
    load_initial_weights(model, start, classes)
    if config.epochs <= 0 or len(y_real) == 0:
        return model.eval()
    x_sim = x_sim if x_sim is not None else np.zeros((0, *x_real.shape[1:]), np.uint8)
    y_sim = y_sim if y_sim is not None else np.zeros(0, np.int64)
    images = np.concatenate([x_real, x_sim])
    labels = np.concatenate([y_real, y_sim]).astype(np.int64)
    counts = np.bincount(y_real, minlength=len(classes)).astype(float)
    weights = counts[y_real] ** -config.class_balance
    n_real = config.real_per_epoch or len(y_real)
    sampler = _MixSampler(weights, len(y_sim), int(round(config.sim_per_real * n_real)), config.seed, n_real)
    dataset = GlitchImages(images, labels, label_names=classes,
                           augmenter=make_augmenter(config.augment, config.render_prob), seed=config.seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, drop_last=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = max(1, len(loader)) * config.epochs
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    criterion = nn.CrossEntropyLoss()
    device = torch.device("cpu")
    done = 0
    for epoch in range(1, config.epochs + 1):
        sampler.set_epoch(epoch)
        train_one_epoch(model, loader, optimizer, criterion, device, scheduler=scheduler)
        done += len(loader)
        if progress:
            progress(done, steps)
    if config.precise_bn > 0:
        recompute_batchnorm(model, images, config.precise_bn, config.batch_size, device, seed=(config.seed, 0))
    if config.interpolate != 1.0:
        return interpolate_weights(model, start, classes, config.interpolate, images, config)
    return model.eval()


def interpolate_weights(finetuned: nn.Module, start: Checkpoint, classes: list[str], alpha: float,
                        images: np.ndarray, config: FinetuneConfig) -> nn.Module:
    """WiSE-FT (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models"): the fine-tuned weights moved back
    toward the starting model's, ``start + alpha (finetuned - start)``, then BatchNorm statistics recomputed over
    ``images`` (the training mix). Fine-tuning on a few real sources fits their rendering; the start, which saw only
    simulated glitches, is less tied to any one source, and the interpolation keeps some of each.

    Classifier rows of classes the start does not have (an O3 model's Fast_Scattering from an O1/O2 start) keep their
    fine-tuned values: the start has nothing to pull them toward. A new model (eval mode, CPU); ``finetuned`` is
    left as it was.
    """
    import copy

    from .train import _shared_class_rows

    base = build_architecture(config.arch, len(classes), start.width).to(memory_format=torch.channels_last)
    load_initial_weights(base, start, classes)
    model = copy.deepcopy(finetuned)
    own = set(range(len(classes))) - set(_shared_class_rows(list(start.classes), classes))
    with torch.no_grad():
        ft, zs = finetuned.state_dict(), base.state_dict()
        mixed = {}
        for key, value in ft.items():
            if not value.is_floating_point() or "running_" in key:
                mixed[key] = value.clone()
                continue
            blend = zs[key] + alpha * (value - zs[key])
            if key.startswith("fc.") and own:
                rows = sorted(own)
                blend[rows] = value[rows]
            mixed[key] = blend
        model.load_state_dict(mixed)
    if config.precise_bn > 0:
        recompute_batchnorm(model, images, config.precise_bn, config.batch_size, torch.device("cpu"),
                            seed=(config.seed, 1))
    return model.eval()


def adapt_batchnorm(start: Checkpoint, unlabelled: np.ndarray, n: int = 1024) -> nn.Module:
    """Label-free adaptation: ``start``'s weights with BatchNorm statistics re-estimated on unlabelled real images."""
    model = start.build_model()
    recompute_batchnorm(model, unlabelled, n, 32, "cpu", seed=0)
    return model.eval()


def shift_tta_logits(model: nn.Module, images: np.ndarray, shifts_px: tuple[int, ...] = (0,)) -> np.ndarray:
    """Test-time augmentation over small time shifts: the mean of the logits over horizontally rolled copies."""
    return np.mean([predict_logits(model, np.roll(images, s, axis=2) if s else images) for s in shifts_px], axis=0)


@dataclass
class CrossValResult:
    """Out-of-fold class probabilities for every image of the pool, and the scores they give."""

    name: str
    probabilities: np.ndarray
    """(N, C) per image, each from the model of the fold that held the image out."""
    seconds: float
    config: dict[str, Any]
    variants: dict[str, np.ndarray] = field(default_factory=dict)
    """The same fold models scored with other test-time shifts (e.g. "tta"): free extra levers."""


def cross_validate(name: str, pool: RealPool, folds: np.ndarray, start: Checkpoint,
                   x_sim: np.ndarray | None, y_sim: np.ndarray | None, config: FinetuneConfig | None,
                   bn_adapt: bool = False, tta_shifts_px: tuple[int, ...] = (0,),
                   variants: dict[str, tuple[int, ...]] | None = None,
                   progress: Callable[[str], None] | None = None) -> CrossValResult:
    """Out-of-fold probabilities: for each fold, a model made without that fold's glitches scores it.

    ``config`` None scores ``start`` as it is (zero-shot); ``bn_adapt`` re-estimates its BatchNorm statistics on the
    other folds' images, labels unused.
    """
    t0 = time.perf_counter()
    probs = np.zeros((len(pool.table), len(start.classes)))
    extra = {variant: np.zeros_like(probs) for variant in (variants or {})}
    labels = pool.labels
    for k in sorted(set(folds.tolist())):
        test, train = folds == k, folds != k
        if config is not None:
            model = finetune(start, pool.images[train], labels[train], x_sim, y_sim, config)
        elif bn_adapt:
            model = adapt_batchnorm(start, pool.images[train])
        else:
            model = start.build_model()
        logits = shift_tta_logits(model, pool.images[test], tta_shifts_px)
        probs[test] = softmax(logits, 1.0)
        for variant, shifts in (variants or {}).items():
            extra[variant][test] = softmax(shift_tta_logits(model, pool.images[test], shifts), 1.0)
        if progress:
            progress(f"{name}: fold {k + 1} done ({time.perf_counter() - t0:.0f} s)")
    cfg = asdict(config) if config is not None else {"zero_shot": True, "bn_adapt": bn_adapt}
    return CrossValResult(name, probs, time.perf_counter() - t0, {**cfg, "tta_shifts_px": list(tta_shifts_px)},
                          extra)


def glitch_scores(pool: RealPool, probs: np.ndarray, mask: np.ndarray | None = None,
                  class_set: ClassSet | None = None, unsure_below: float | None = None) -> dict[str, Any]:
    """Per-glitch accuracy (views fused), its Wilson 95% interval, macro-F1, recall per class and the glitch table.

    ``class_set`` is the model's (default: the seed's 22); images whose class it lacks are left out. With
    ``unsure_below``, the wrong answers are also counted by whether they came with "not sure" (fused confidence below
    it) or without.
    """
    class_set = class_set or get_class_set("gravityspy-o1o2")
    classes = list(class_set.names)
    ids = pool.labels_in(class_set)
    keep = ids >= 0 if mask is None else np.asarray(mask, bool) & (ids >= 0)
    table, p = pool.table[keep], probs[keep]
    keys, fused = fuse_by_glitch(p, table["glitch"].to_numpy())
    first = pd.Series(ids[keep], index=table["glitch"].to_numpy()).groupby(level=0, sort=False).first()
    y = first.loc[keys].to_numpy()
    pred = fused.argmax(1)
    m = compute_metrics(y, pred, classes)
    n, k = len(y), int((pred == y).sum())
    lo, hi = wilson_interval(k, n)
    per_image_pred = p.argmax(1)
    per_image_true = ids[keep]
    return {
        "glitches": n, "correct": k, "accuracy": k / n if n else 0.0, "wilson95": [lo, hi],
        "macro_f1": m["macro_f1"],
        "per_image_accuracy": float((per_image_pred == per_image_true).mean()) if len(p) else 0.0,
        "recall": {c: {"correct": int(((y == i) & (pred == i)).sum()), "glitches": int((y == i).sum())}
                   for i, c in enumerate(classes) if (y == i).any()},
        "rows": [{"glitch": g, "label": classes[t], "predicted": classes[q], "confidence": float(f.max())}
                 for g, t, q, f in zip(keys, y, pred, fused)],
        **({} if unsure_below is None else {
            "unsure_below": unsure_below,
            "wrong_confident": int(((pred != y) & (fused.max(1) >= unsure_below)).sum()),
            "wrong_unsure": int(((pred != y) & (fused.max(1) < unsure_below)).sum())}),
    }
