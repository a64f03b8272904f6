"""Scores without torch: the calibrated softmax, the one rule that fuses a glitch's views, unit embeddings.

The torch Predictor, the ONNX Runtime engine (``glitchnet.engine``), evaluation and cross-validation all call these.
"""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def fuse_log_probabilities(probs: np.ndarray) -> np.ndarray:
    """One glitch's class probabilities from its views' (V, C): the normalized geometric mean (a product of experts,
    the average of log-probabilities). Every path that fuses views (prediction, evaluation, the app) calls this."""
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)).mean(0)
    fused = np.exp(logp - logp.max())
    return fused / fused.sum()


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 length (float32); an all-zero row stays zero (similar to nothing): the similarity
    search's embeddings, from either engine."""
    v = np.asarray(vectors, dtype=np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
