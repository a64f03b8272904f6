"""The app with the shipped O3 model: chosen in the sidebar, its 23-class field guide, a prediction in its classes."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_app import _app, _texts, app_env, golden_dataset  # noqa: F401 - fixtures shared with the app suite

from glitchnet.classes import GRAVITYSPY_O3
from glitchnet.shipped import SHIPPED_MODELS

O3_MODEL = SHIPPED_MODELS["gravityspy-o3"]


@pytest.fixture
def o3_shipped() -> Path:
    if not O3_MODEL.is_file():
        pytest.fail(f"the shipped O3 model {O3_MODEL.name} is missing from models/")
    return O3_MODEL


def _choose_o3(at):
    box = at.sidebar.selectbox(key="shipped_model")
    assert box.options == ["Gravity Spy O1/O2, 22 classes", "Gravity Spy O3, 23 classes"]
    box.set_value("gravityspy-o3").run(timeout=180)
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_choosing_the_o3_model_shows_its_field_guide(app_env: Path, o3_shipped: Path) -> None:  # noqa: F811
    at = _app()
    assert "22 classes" in _texts(at.header)[0]
    at = _choose_o3(at)
    assert _texts(at.header)[0] == "Field guide: the 23 classes"
    guide = [m for m in _texts(at.markdown) if m.startswith("**") and m.endswith("**")]
    assert len(guide) == 23
    assert "**Fast Scattering**" in guide and "**Blip Low Frequency**" in guide
    assert "**None of the Above**" not in guide
    assert "glitchnet-o3.pt: Gravity Spy O3, 23 classes" in at.sidebar.caption[-1].value


def test_a_prediction_with_the_o3_model(app_env: Path, o3_shipped: Path, real: Path) -> None:  # noqa: F811
    at = _choose_o3(_app("predict"))
    crown = sorted((real / "o3-scattering" / "Fast_Scattering").glob("*.png"))[0]
    at.file_uploader[0].set_value([(crown.name, crown.read_bytes(), "image/png")]).run(timeout=180)
    assert not at.exception and not at.error
    verdicts = [m for m in _texts(at.markdown) if m.startswith("### ")]
    assert len(verdicts) == 1 and verdicts[0].startswith("### Fast Scattering · ")
    table = at.dataframe[0].value
    assert table["label"].iloc[0] == "Fast_Scattering"
    assert set(table["top5"].iloc[0].replace(";", " ").split()) & set(GRAVITYSPY_O3.names)
    # volunteer mode offers the O3 model's classes, Fast_Scattering among them, None_of_the_Above not
    at.toggle[0].set_value(True).run(timeout=180)
    [question] = [s for s in at.main.selectbox if str(s.key).startswith("volunteer-")]
    options = question.options
    assert "Fast_Scattering" in options and "None_of_the_Above" not in options
