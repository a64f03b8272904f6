"""Uploads arrive re-encoded: a JPEG copy of a real Gravity Spy figure should score as the original does.

The goal is one point; measured on the shipped model (verified real pool, per image: 87.4% original, 82.5% at JPEG
quality 60 and 75, 83.4% at 90, 84.1% even at 95), JPEG's chroma subsampling still costs 3-5 points, so this test
holds the line at six points until a model trained with rendering variation (``augment.render_variation``, the
``finetune-render`` lever) closes the gap.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from glitchnet.images import open_image
from glitchnet.inference import Predictor
from glitchnet.realpool import VERIFIED_SOURCES, scan_real_pool

JPEG_QUALITIES = (60, 75, 90)
MAX_LOSS = 0.06
"""Accuracy points a JPEG copy may cost today (the target is 0.01)."""


def _jpeg(path: str, frame: int, quality: int) -> bytes:
    buf = io.BytesIO()
    open_image(path, frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


@pytest.mark.slow
def test_jpeg_reencoded_uploads_lose_at_most_six_points(real):
    table = scan_real_pool(real)
    table = table[table["source"].isin(VERIFIED_SOURCES)].reset_index(drop=True)
    predictor = Predictor()
    truth = table["label"].to_numpy()
    original = np.stack([predictor.load(p, f) for p, f in zip(table["path"], table["frame"])])
    base = np.array(predictor.classes)[predictor.probabilities(original).argmax(1)]
    base_acc = float((base == truth).mean())
    for q in JPEG_QUALITIES:
        recoded = np.stack([predictor.load(_jpeg(p, f, q)) for p, f in zip(table["path"], table["frame"])])
        pred = np.array(predictor.classes)[predictor.probabilities(recoded).argmax(1)]
        acc = float((pred == truth).mean())
        assert abs(acc - base_acc) <= MAX_LOSS, f"JPEG q{q}: {acc:.1%} against {base_acc:.1%} for the originals"
        assert (pred == base).mean() >= 0.92, f"JPEG q{q} changed {(pred != base).sum()} of {len(base)} answers"

