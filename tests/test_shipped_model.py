"""The shipped model: present, self-describing, calibrated on real out-of-fold images, and scored as its card says."""

import json
from pathlib import Path

import pytest

from glitchnet.checkpoint import load_checkpoint
from glitchnet.classes import CLASSES
from glitchnet.evaluate import wilson_interval
from glitchnet.inference import DEFAULT_MODEL, Predictor

MODELS = Path(__file__).resolve().parents[1] / "models"
SIM_MODEL = MODELS / "glitchnet-sim.pt"


def _metrics() -> dict:
    return json.loads((MODELS / "metrics.json").read_text())


def test_shipped_checkpoint_metadata():
    assert DEFAULT_MODEL == MODELS / "glitchnet.pt"
    ckpt = load_checkpoint(DEFAULT_MODEL, expected_classes=list(CLASSES))
    assert DEFAULT_MODEL.stat().st_size < 1_000_000  # the seed architecture is well under 1 MB of weights
    assert ckpt.views == ["0.5", "1.0", "2.0", "4.0"] and ckpt.input_size == 224
    assert ckpt.training_state is None  # no optimizer state shipped
    assert ckpt.config["stage"] == "real fine-tune" and ckpt.config["view"] == "all"
    assert ckpt.metrics["real_training_glitches"] > 200
    cal = ckpt.metrics["calibration"]
    assert ckpt.temperature == pytest.approx(cal["temperature"]) and cal["ece_after"] <= cal["ece_before"]
    assert "out-of-fold real images" in cal["fitted_on"]
    sim = load_checkpoint(SIM_MODEL)
    assert "stage" not in sim.config and sim.config["data"].startswith("data/sim")  # trained on no real image


def test_metrics_json_matches_the_checkpoint_the_table_and_the_card():
    metrics = _metrics()
    ckpt = load_checkpoint(DEFAULT_MODEL)
    real = metrics["real_crossval"]
    table = json.loads((MODELS / "real_crossval.json").read_text())["levers"][real["lever"]]
    assert real["verified"]["accuracy"] == pytest.approx(table["verified"]["accuracy"])
    assert ckpt.metrics["real_crossval"]["verified"]["accuracy"] == pytest.approx(real["verified"]["accuracy"])
    v = real["verified"]
    assert v["accuracy"] == pytest.approx(v["correct"] / v["glitches"])
    assert v["wilson95"] == pytest.approx(list(wilson_interval(v["correct"], v["glitches"])))
    assert metrics["calibration"]["temperature"] == pytest.approx(ckpt.temperature)
    head = "\n".join((MODELS / "MODEL_CARD.md").read_text().splitlines()[:12])
    assert f"{v['accuracy']:.1%}" in head and f"{v['wilson95'][0]:.1%}" in head
    golden = metrics["simulated_only_model"]["real_golden"]["per_glitch_fused"]["accuracy"]
    assert f"{golden:.1%}" in head


@pytest.mark.slow
def test_simulated_only_model_on_real_golden_images(real):
    """The card's simulated-only golden figure is reproducible from the committed checkpoint."""
    from glitchnet.evaluate import evaluate_labelled_folder

    result = evaluate_labelled_folder(Predictor(SIM_MODEL), real / "golden")
    expected = _metrics()["simulated_only_model"]["real_golden"]["per_glitch_fused"]["accuracy"]
    assert result["per_glitch"]["accuracy"] == pytest.approx(expected)
