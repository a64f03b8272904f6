"""The augmentation page runs headless: class choice, image sources, reseeding and transform toggles."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from glitchnet.images import energy_to_rgb, row_of_frequency

APP = Path(__file__).resolve().parents[1] / "streamlit_app.py"
TIMEOUT_S = 60


def spectrogram_png(seed: int = 0) -> bytes:
    """A plot-area-sized viridis image: exponential background and a short blob near 100 Hz."""
    rng = np.random.default_rng(seed)
    energy = rng.exponential(1.0, (479, 569)).astype(np.float32)
    row = float(row_of_frequency(100.0, 479))
    rr, cc = np.mgrid[0:479, 0:569]
    energy += 20.0 * np.exp(-0.5 * (((rr - row) / 25.0) ** 2 + ((cc - 284) / 10.0) ** 2))
    buf = io.BytesIO()
    Image.fromarray(energy_to_rgb(energy)).save(buf, format="PNG")
    return buf.getvalue()


def captions(at: AppTest) -> list[str]:
    return [c for img in at.image for c in img.captions]


@pytest.fixture(autouse=True)
def one_glitch_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, random_checkpoint: Path) -> Path:
    """The app's sidebar on a two-glitch Blip folder (no built-in dataset to make) and a random checkpoint."""
    folder = tmp_path / "data" / "Blip"
    folder.mkdir(parents=True)
    for i, gid in enumerate(("aaaaaaaaa1", "aaaaaaaaa2")):
        (folder / f"H1_{gid}_spectrogram_1.0.png").write_bytes(spectrogram_png(i))
    monkeypatch.setenv("GLITCHNET_DATA", str(folder.parent))
    monkeypatch.setenv("GLITCHNET_MODEL", str(random_checkpoint))
    monkeypatch.delenv("GLITCHNET_HOSTED", raising=False)
    return folder.parent


class _Page:
    """The Augmentations page inside the app shell (navigation and sidebar), as a visitor meets it."""

    def __init__(self) -> None:
        self.at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)

    def run(self) -> AppTest:
        self.at.run()
        self.at.switch_page("pages/augment.py").run()
        return self.at


def fresh() -> _Page:
    return _Page()


def test_upload_reseed_and_toggle() -> None:
    at = fresh().run()
    assert not at.exception
    at.radio(key="augment_source").set_value("Upload").run()
    assert not at.exception
    at.file_uploader(key="augment_upload").upload("blip.png", spectrogram_png(), "image/png")
    at.run()
    assert not at.exception
    shown = captions(at)
    assert len(shown) == 9 and shown[0] == "original: `blip.png`"
    assert any("time" in c or "freq" in c or "energy" in c or "noise" in c for c in shown[1:])

    at.selectbox(key="augment_class").set_value("Chirp").run()
    assert not at.exception
    assert not any("reversed" in c for c in captions(at)), "a chirp has a direction in time"
    assert "Chirp policy" in [h.value for h in at.subheader]
    assert len(at.dataframe) == 1

    before = at.session_state["augment_seed"], captions(at)
    at.button(key="augment_reseed").click().run()
    assert not at.exception
    assert (at.session_state["augment_seed"], captions(at)) != before

    at.pills(key="augment_enabled_Chirp").set_value(["loudness"]).run()
    assert not at.exception
    assert all(c in ("unchanged",) or c.startswith("glitch energy") for c in captions(at)[1:])

    at.radio(key="augment_mode").set_value("generic").run()
    assert not at.exception
    assert any("crop" in c for c in captions(at)[1:])


def test_bad_upload_shows_a_one_line_error() -> None:
    at = fresh().run()
    at.radio(key="augment_source").set_value("Upload").run()
    at.file_uploader(key="augment_upload").upload("notes.png", b"not an image at all", "image/png")
    at.run()
    assert not at.exception
    assert at.error and "\n" not in at.error[0].value
    assert not at.image


def test_a_simulated_example_is_shown() -> None:
    at = fresh().run()
    at.radio(key="augment_source").set_value("Simulated example").run()
    assert not at.exception
    assert captions(at)[0].startswith("original: simulated")
    assert len(captions(at)) == 9


def test_dataset_images_are_offered(one_glitch_dataset: Path) -> None:
    at = fresh().run()
    assert not at.exception
    assert at.session_state["dataset_root"] == str(one_glitch_dataset)
    assert at.radio(key="augment_source").value == "Dataset"
    assert captions(at)[0] == "original: `H1_aaaaaaaaa1_spectrogram_1.0.png`"
    at.selectbox(key="augment_class").set_value("Whistle").run()
    assert not at.exception
    assert any("no Whistle images" in i.value for i in at.info)


def test_an_uploaded_name_is_a_literal_caption() -> None:
    name = "![t](http://evil.example/t.png).png"
    at = fresh().run()
    at.radio(key="augment_source").set_value("Upload").run()
    at.file_uploader(key="augment_upload").upload(name, spectrogram_png(), "image/png")
    at.run()
    assert not at.exception
    assert captions(at)[0] == f"original: `{name}`"
