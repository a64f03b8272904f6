"""The shipped models: present, self-describing, calibrated on held-out real images, and scored as their card says."""

import json
from pathlib import Path

import pytest

from glitchnet.checkpoint import load_checkpoint
from glitchnet.classes import CLASSES, GRAVITYSPY_O3
from glitchnet.evaluate import wilson_interval
from glitchnet.inference import DEFAULT_MODEL, Predictor
from glitchnet.realpool import SOURCE_GROUPS
from glitchnet.shipped import SHIPPED_MODELS

MODELS = Path(__file__).resolve().parents[1] / "models"
SIM_MODEL = MODELS / "glitchnet-sim.pt"
O3_MODEL = SHIPPED_MODELS["gravityspy-o3"]


def _metrics() -> dict:
    return json.loads((MODELS / "metrics.json").read_text())


def _card_head(lines: int = 16) -> str:
    return "\n".join((MODELS / "MODEL_CARD.md").read_text().splitlines()[:lines])


def test_shipped_checkpoint_metadata():
    assert DEFAULT_MODEL == MODELS / "glitchnet.pt"
    ckpt = load_checkpoint(DEFAULT_MODEL, expected_classes=list(CLASSES))
    assert DEFAULT_MODEL.stat().st_size < 1_000_000  # the seed architecture is well under 1 MB of weights
    assert ckpt.views == ["0.5", "1.0", "2.0", "4.0"] and ckpt.input_size == 224
    assert ckpt.training_state is None  # no optimizer state shipped
    assert ckpt.config["stage"] == "real fine-tune" and ckpt.config["view"] == "all"
    assert ckpt.metrics["real_training_glitches"] > 700
    assert "o3-scattering" in ckpt.metrics["real_training_sources"]  # the O3 pool's Scattered_Light and Koi_Fish
    cal = ckpt.metrics["calibration"]
    # the temperature minimises the held-out images' log loss (their expected calibration error is recorded too)
    assert ckpt.temperature == pytest.approx(cal["temperature"]) and 1.0 <= cal["temperature"] <= 2.0
    assert "held-out-source images" in cal["fitted_on"] and 0 <= cal["ece_after"] < 0.2
    sim = load_checkpoint(SIM_MODEL)
    assert "stage" not in sim.config and sim.config["data"].startswith("data/sim")  # trained on no real image


def test_the_shipped_o3_model():
    ckpt = load_checkpoint(O3_MODEL)
    assert ckpt.classes == list(GRAVITYSPY_O3.names) and ckpt.class_set.name == "gravityspy-o3"
    assert ckpt.config["classes"] == "gravityspy-o3" and ckpt.training_state is None
    assert {"o3-scattering", "golden-o3-only"} <= set(ckpt.metrics["real_training_sources"])
    blocks = _metrics()["o3_model"]["o3_time_blocks"]
    assert ckpt.metrics["real_o3_time_blocks"]["accuracy"] == pytest.approx(blocks["accuracy"])
    fast = blocks["recall"]["Fast_Scattering"]
    assert fast["glitches"] == 262 and fast["correct"] / fast["glitches"] >= 0.9  # time blocks held out
    assert f"{fast['correct']} of {fast['glitches']}" in (MODELS / "MODEL_CARD.md").read_text()


def test_metrics_json_matches_the_checkpoints_the_table_and_the_card():
    metrics = _metrics()
    ckpt = load_checkpoint(DEFAULT_MODEL)
    lso = metrics["real_leave_source_out"]
    table = json.loads((MODELS / "leave_source_out.json").read_text())["gravityspy-o1o2"]
    assert set(lso["sources"]) == set(SOURCE_GROUPS)
    assert lso["mean_over_sources"] == pytest.approx(table["mean_over_sources"])
    carried = ckpt.metrics["real_leave_source_out"]
    assert carried["mean"] == pytest.approx(lso["mean_over_sources"])
    head = _card_head()
    assert f"{lso['mean_over_sources']:.1%}" in head
    for name, s in lso["sources"].items():
        assert s["accuracy"] == pytest.approx(s["correct"] / s["glitches"])
        assert s["wilson95"] == pytest.approx(list(wilson_interval(s["correct"], s["glitches"])))
        assert carried["sources"][name]["accuracy"] == pytest.approx(s["accuracy"])
        assert f"{s['correct']}/{s['glitches']}" in head  # the card leads with every source and its interval
        assert f"{s['wilson95'][0]:.0%}–{s['wilson95'][1]:.0%}" in head
    assert metrics["calibration"]["temperature"] == pytest.approx(ckpt.temperature)
    golden = metrics["simulated_only_model"]["real_golden"]["per_glitch_fused"]["accuracy"]
    assert f"{golden:.1%}" in (MODELS / "MODEL_CARD.md").read_text()


@pytest.mark.slow
def test_simulated_only_model_on_real_golden_images(real):
    """The card's simulated-only golden figure is reproducible from the committed checkpoint."""
    from glitchnet.evaluate import evaluate_labelled_folder

    result = evaluate_labelled_folder(Predictor(SIM_MODEL), real / "golden")
    expected = _metrics()["simulated_only_model"]["real_golden"]["per_glitch_fused"]["accuracy"]
    assert result["per_glitch"]["accuracy"] == pytest.approx(expected)
