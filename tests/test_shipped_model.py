"""The shipped model: present, self-describing, calibrated, and scored as its card says."""

import json
from pathlib import Path

import pytest

from glitchnet.checkpoint import load_checkpoint
from glitchnet.classes import CLASSES
from glitchnet.inference import DEFAULT_MODEL, Predictor

MODELS = Path(__file__).resolve().parents[1] / "models"


def test_shipped_checkpoint_metadata():
    assert DEFAULT_MODEL == MODELS / "glitchnet.pt"
    ckpt = load_checkpoint(DEFAULT_MODEL, expected_classes=list(CLASSES))
    assert DEFAULT_MODEL.stat().st_size < 1_000_000  # the seed architecture is well under 1 MB of weights
    assert ckpt.views == ["0.5", "1.0", "2.0", "4.0"] and ckpt.input_size == 224
    assert ckpt.training_state is None  # no optimizer state shipped
    assert ckpt.config["augment"] == "class" and ckpt.config["view"] == "all"
    cal = ckpt.metrics["calibration"]
    assert ckpt.temperature == pytest.approx(cal["temperature"]) and cal["ece_after"] <= cal["ece_before"]


def test_metrics_json_matches_the_checkpoint_and_the_card():
    metrics = json.loads((MODELS / "metrics.json").read_text())
    ckpt = load_checkpoint(DEFAULT_MODEL)
    assert metrics["training"]["best_epoch"] == ckpt.epoch
    assert metrics["calibration"]["temperature"] == pytest.approx(ckpt.temperature)
    card = (MODELS / "MODEL_CARD.md").read_text()
    assert f"{metrics['simulated_test']['accuracy']:.1%}" in card
    if "real_golden" in metrics:
        assert f"{metrics['real_golden']['per_glitch_fused']['accuracy']:.1%}" in card


def test_shipped_model_on_real_golden_images(real):
    """The card's per-glitch golden accuracy is reproducible from the committed checkpoint."""
    from glitchnet.evaluate import evaluate_labelled_folder

    metrics = json.loads((MODELS / "metrics.json").read_text())
    result = evaluate_labelled_folder(Predictor(), real / "golden")
    assert result["per_glitch"]["accuracy"] == pytest.approx(metrics["real_golden"]["per_glitch_fused"]["accuracy"])
