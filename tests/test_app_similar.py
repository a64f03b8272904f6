"""Similar glitches in the app under AppTest: a Predict card's most similar glitches and Explore's map and audit."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from glitchnet import jobs
from tests.conftest import make_kaggle

APP = Path(__file__).resolve().parents[1] / "streamlit_app.py"


@pytest.fixture
def similar_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, random_checkpoint: Path) -> Path:
    data = make_kaggle(tmp_path / "glitchset", per_split={"train": 3, "validation": 1, "test": 1})
    monkeypatch.setenv("GLITCHNET_DATA", str(data))
    monkeypatch.setenv("GLITCHNET_MODEL", str(random_checkpoint))
    monkeypatch.setenv("GLITCHNET_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("GLITCHNET_HOSTED", raising=False)
    monkeypatch.setattr(jobs, "_JOBS", {})
    return data


def _similar(at: AppTest):
    return [e for e in at.expander if e.label.startswith("Most similar glitches in ")]


def _until(at: AppTest, ready, timeout_s: float = 120.0) -> AppTest:
    """Rerun the app until ``ready(at)``: the index is built in a background thread, the page polls it."""
    deadline = time.monotonic() + timeout_s
    while not ready(at):
        assert time.monotonic() < deadline, "the similarity index was not built in time"
        time.sleep(0.5)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_predict_card_shows_the_most_similar_glitches_and_opens_one(similar_env: Path) -> None:
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.switch_page("pages/predict.py").run()
    views = sorted((similar_env / "test" / "test" / "Koi_Fish").glob("*_spectrogram_*.png"))[:4]
    at.file_uploader[0].set_value([(p.name, p.read_bytes(), "image/png") for p in views]).run()
    assert not at.exception, [e.value for e in at.exception]
    [section] = _similar(at)
    assert section.label == "Most similar glitches in `glitchset`"  # a folder name, as literal text
    _until(at, lambda at: len(_similar(at)[0].get("image")) == 8)
    [section] = _similar(at)
    captions = [img.proto.imgs[0].caption for img in section.get("image")]
    # the uploaded glitch is in the dataset: the model finds it first, the same to it (similarity 1.00)
    assert captions[0] == "Koi_Fish · 1.00"
    sims = [float(c.rsplit(" · ", 1)[1]) for c in captions]
    assert sims == sorted(sims, reverse=True) and all(-1.0 <= s <= 1.0 for s in sims)
    opens = [b for b in section.button if b.label == "Open"]
    assert len(opens) == 8
    opens[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    opened = [m.value for m in at.markdown if "Gravity Spy label" in m.value]
    assert opened and opened[0].startswith(f"**`{views[0].name.rsplit('_spectrogram_', 1)[0]}`**")
    assert "Gravity Spy label **Koi_Fish**" in opened[0]


def test_explore_draws_the_map_and_the_label_audit_on_request(similar_env: Path) -> None:
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    at.switch_page("pages/explore.py").run()
    assert at.toggle(key="similar_map_on").label == "Map of the dataset and label audit"
    assert "Label audit" not in [h.value for h in at.main.subheader]  # nothing embedded until asked
    charts_before = len(at.get("plotly_chart"))
    at.toggle(key="similar_map_on").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("plotly_chart")) == charts_before + 1
    assert [h.value for h in at.main.subheader][-2:] == ["Map of the dataset", "Label audit"]
    assert any("placed by t-SNE" in c.value for c in at.caption)


def test_the_glitches_classified_on_predict_are_placed_on_the_map(similar_env: Path) -> None:
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    at.switch_page("pages/predict.py").run()
    views = sorted((similar_env / "train" / "train" / "Blip").glob("*_spectrogram_*.png"))[:4]
    at.file_uploader[0].set_value([(p.name, p.read_bytes(), "image/png") for p in views]).run()
    assert not at.exception, [e.value for e in at.exception]
    at.switch_page("pages/explore.py").run()
    at.toggle(key="similar_map_on").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    spec = json.loads(at.get("plotly_chart")[-1].proto.spec)
    [yours] = [trace for trace in spec["data"] if trace.get("name") == "your glitches"]
    assert yours["text"] == [views[0].name.rsplit("_spectrogram_", 1)[0]]
    assert any("Stars are your glitches" in c.value for c in at.caption)
