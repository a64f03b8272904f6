"""Metrics for a trained GlitchNet on a dataset split: accuracy, macro-F1, per-class scores, confusion matrix."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .checkpoint import load_checkpoint
from .data import load_split, scan_dataset
from .model import forward_uint8
from .scores import fuse_log_probabilities, softmax  # noqa: F401  (re-exported: written once, without torch)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, images_uint8: np.ndarray, batch_size: int = 64,
                   device: str | torch.device = "cpu",
                   progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Logits (N, C) for canonical uint8 images (N, H, W, 3), in batches, with no augmentation."""
    model.eval()
    device = torch.device(device)
    out = []
    n = len(images_uint8)
    for start in range(0, n, batch_size):
        logits = forward_uint8(model, images_uint8[start:start + batch_size], device)
        out.append(logits.float().cpu().numpy())
        if progress:
            progress(min(start + batch_size, n), n)
    return np.concatenate(out) if out else np.zeros((0, getattr(model, "num_classes", 0)), np.float32)


def compute_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 over the classes present, per-class precision/recall/F1/support, confusion matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support  # 0.9 s

    labels = list(range(len(classes)))
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    present = sorted(set(y_true.tolist()))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))
        if len(y_true) else 0.0,
        "classes": list(classes),
        "per_class": {
            c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, c in enumerate(classes)
        },
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def top_confusions(metrics: dict[str, Any], k: int = 5) -> list[tuple[str, str, int]]:
    """The ``k`` most frequent (true, predicted, count) off-diagonal pairs of a metrics dict."""
    cm = np.asarray(metrics["confusion"])
    np.fill_diagonal(cm, 0)
    pairs = [(metrics["classes"][i], metrics["classes"][j], int(cm[i, j])) for i, j in zip(*np.nonzero(cm))]
    return sorted(pairs, key=lambda t: -t[2])[:k]


def present_classes(metrics: dict[str, Any]) -> tuple[list[str], list[list[int]], pd.DataFrame]:
    """The classes that occur in a metrics dict (as truth or as prediction), its confusion matrix restricted to them
    (rows true, columns predicted) and their per-class scores (a ``class`` column, then precision, recall, f1,
    support): what a report shows without 22 empty rows."""
    confusion = metrics["confusion"]
    present = [i for i, c in enumerate(metrics["classes"])
               if metrics["per_class"][c]["support"] or sum(row[i] for row in confusion)]
    names = [metrics["classes"][i] for i in present]
    matrix = [[confusion[i][j] for j in present] for i in present]
    table = pd.DataFrame(metrics["per_class"]).T.loc[names].reset_index(names="class")
    return names, matrix, table


def fuse_by_glitch(probs: np.ndarray, glitch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(glitch keys in first-seen order, fused probabilities (G, C)) for per-image probabilities and a key per image."""
    glitch = np.asarray(glitch)
    keys = list(dict.fromkeys(glitch.tolist()))
    fused = np.stack([fuse_log_probabilities(probs[glitch == k]) for k in keys]) if keys else np.zeros((0, 0))
    return np.asarray(keys), fused


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (scipy's ``binomtest(...).proportion_ci``)."""
    from scipy.stats import binomtest

    if n == 0:
        return (0.0, 1.0)
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, float]:
    """Paired comparison of two classifiers on the same items: the exact McNemar test (a two-sided binomial test on
    the discordant pairs). Returns b (only A right), c (only B right) and the p-value."""
    from scipy.stats import binomtest

    a, b_ = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a, only_b = int((a & ~b_).sum()), int((~a & b_).sum())
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"only_a": only_a, "only_b": only_b, "p_value": float(p)}


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> float:
    """ECE: confidence-weighted gap between confidence and accuracy over equal-width confidence bins."""
    conf = probs.max(1)
    correct = probs.argmax(1) == np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def fit_temperature(logits: np.ndarray, y_true: np.ndarray) -> float:
    """Temperature minimising the negative log-likelihood on held-out logits (Guo et al. 2017)."""
    t_logits = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(np.asarray(y_true), dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(t_logits / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def evaluate_labelled_folder(predictor: Any, root: str | Path) -> dict[str, Any]:
    """Score a ``Predictor`` on a folder of labelled figures, ``<Class>/<file>`` (e.g. Gravity Spy's golden set).

    Files are grouped into glitches as everywhere else (``Predictor.classify``): a multi-frame GIF holds its views
    (0.5/1/2/4 s), files named ``{ifo}_{id}_spectrogram_{dur}`` share their glitch, any other file is a glitch of its
    own. Returns per-image metrics (every view on its own), per-glitch metrics (each glitch's views fused by
    averaging log-probabilities) and a row per glitch (glitch, true class, fused prediction, confidence).
    """
    root = Path(root)
    classes = list(predictor.classes)
    img_true, img_pred, glitch_true, glitch_pred, rows = [], [], [], [], []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name in classes):
        truth = classes.index(class_dir.name)
        files = sorted(p for p in class_dir.iterdir() if p.is_file())
        for glitch in predictor.classify_files([(f.name, f) for f in files], explain=False):
            if not glitch.readable:
                continue
            for v in glitch.readable:
                img_true.append(truth)
                img_pred.append(classes.index(v.prediction.label))
            glitch_true.append(truth)
            glitch_pred.append(classes.index(glitch.verdict.label))
            rows.append({"file": f"{class_dir.name}/{glitch.key}", "label": class_dir.name,
                         "predicted": glitch.verdict.label, "confidence": glitch.verdict.confidence,
                         "views": len(glitch.readable)})
    return {"per_image": compute_metrics(np.array(img_true), np.array(img_pred), classes),
            "per_glitch": compute_metrics(np.array(glitch_true), np.array(glitch_pred), classes),
            "glitches": rows}


def jpeg_robustness(predictor: Any, paths: list[str], frames: list[int], labels: list[str],
                    qualities: tuple[int, ...] = (60, 75, 90, 95)) -> dict[str, Any]:
    """Per-image accuracy of ``predictor`` on images as they are and as JPEG copies (an upload re-saved by a browser
    or an image editor), with the fraction of answers each copy leaves unchanged."""
    import io
    from concurrent.futures import ThreadPoolExecutor

    from .images import open_image

    def jpeg(image: Any, quality: int) -> bytes:
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=quality)
        return buf.getvalue()

    classes = np.array(predictor.classes)
    truth = np.asarray(labels)
    with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:  # decoding releases the GIL
        images = list(pool.map(open_image, paths, frames))  # each file decoded once, every copy made from it
        original = classes[predictor.probabilities(np.stack(list(pool.map(predictor.load, images)))).argmax(1)]
        out: dict[str, Any] = {"n": len(truth), "original": float((original == truth).mean()), "jpeg": {}}
        for q in qualities:
            copies = np.stack(list(pool.map(lambda image, q=q: predictor.load(jpeg(image, q)), images)))
            pred = classes[predictor.probabilities(copies).argmax(1)]
            out["jpeg"][q] = {"accuracy": float((pred == truth).mean()), "unchanged": float((pred == original).mean())}
    return out


@dataclass
class Evaluation:
    """A checkpoint scored on one split: the metrics dict and one row per image."""

    split: str
    metrics: dict[str, Any]
    predictions: pd.DataFrame
    """Columns: path, true, predicted, confidence."""
    note: str = ""
    """Which class set the dataset was read with and which class folders it left out (``DatasetScan.class_note``)."""

    @property
    def misclassified(self) -> pd.DataFrame:
        wrong = self.predictions[self.predictions["true"] != self.predictions["predicted"]]
        return wrong.sort_values("confidence", ascending=False).reset_index(drop=True)


def evaluate_checkpoint(checkpoint: str | Path, data: str | Path, view: str | None = None, split: str = "test",
                        cache_dir: str | None = None, fallback_split: str | None = "validation",
                        progress: Callable[[int, int], None] | None = None) -> Evaluation:
    """Score a checkpoint on a dataset split (``fallback_split`` when that split is empty).

    ``view`` defaults to the checkpoint's own: all four views if it was trained on all, else its one duration.
    """
    ckpt = load_checkpoint(checkpoint)
    view = view or ckpt.scan_view
    scan = scan_dataset(data, view=view, classes=ckpt.class_set)  # labels index the model's classes
    if scan.split(split).empty and fallback_split:
        split = fallback_split
    images, labels, paths = load_split(scan, split, cache_dir, workers=1)
    if len(labels) == 0:
        raise ValueError(f"the {split} split of {data} has no readable images")
    logits = predict_logits(ckpt.build_model(), images, progress=progress)
    probs = softmax(logits, ckpt.temperature) if len(logits) else np.zeros((0, len(ckpt.classes)))
    predicted = probs.argmax(1)
    metrics = compute_metrics(labels, predicted, list(ckpt.classes))
    table = pd.DataFrame({
        "path": paths,
        "true": [ckpt.classes[i] for i in labels],
        "predicted": [ckpt.classes[i] for i in predicted],
        "confidence": probs.max(1) if len(probs) else [],
    })
    return Evaluation(split=split, metrics=metrics, predictions=table, note=scan.class_note)
