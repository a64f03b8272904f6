"""Uploads arrive re-encoded: a JPEG copy of a real Gravity Spy figure should score as the original does.

The goal is one point; measured on the shipped model (``models/jpeg_robustness.py``: verified real pool, per image,
87.4% original, 82.5% at JPEG quality 60 and 75, 83.4% at 90, 84.1% at 95), JPEG's chroma subsampling still costs
3-5 points, so this test holds the line at six points until a model trained with rendering variation
(``augment.render_variation``, the ``finetune-render`` lever) closes the gap.
"""

from __future__ import annotations

import pytest

from glitchnet.evaluate import jpeg_robustness
from glitchnet.inference import Predictor
from glitchnet.realpool import VERIFIED_SOURCES, scan_real_pool

MAX_LOSS = 0.06
"""Accuracy points a JPEG copy may cost today (the target is 0.01)."""


@pytest.mark.slow
def test_jpeg_reencoded_uploads_lose_at_most_six_points(real):
    table = scan_real_pool(real)
    table = table[table["source"].isin(VERIFIED_SOURCES)]
    result = jpeg_robustness(Predictor(), table["path"].tolist(), table["frame"].tolist(), table["label"].tolist(),
                             qualities=(60,))  # the worst of 60-95 (models/jpeg_robustness.py sweeps them all)
    assert result["n"] == len(table) > 400
    for q, r in result["jpeg"].items():
        assert abs(r["accuracy"] - result["original"]) <= MAX_LOSS, f"JPEG q{q}: {r} against {result['original']}"
        assert r["unchanged"] >= 0.92, f"JPEG q{q} changed {1 - r['unchanged']:.1%} of the answers"
