"""The Streamlit app under AppTest: every page runs, Predict classifies real uploads, Train finishes a short run."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from glitchnet import jobs
from glitchnet.data import SIMULATED_MARKER
from glitchnet.serving import MAX_UPLOAD_MB

APP = Path(__file__).resolve().parents[1] / "streamlit_app.py"
DURATIONS = ("0.5", "1.0", "2.0", "4.0")


def make_golden_kaggle(root: Path, real: Path, classes: tuple[str, ...] | None = None) -> Path:
    """A tiny Kaggle-layout dataset of the real golden subjects in ``real``, plus a metadata CSV and one corrupt file.

    Per class: ``*-1.jpg`` -> train (1 s view), ``*-2.gif`` -> train (its four frames = four views),
    ``*-3.gif`` -> test (1 s frame only). Metadata rows borrow the trigger parameters of a real row of the class.
    """
    real_meta = pd.read_csv(real / "gravityspy_metadata_sample.csv")
    rows = []
    for class_dir in sorted((real / "golden").iterdir()):
        if classes is not None and class_dir.name not in classes:
            continue
        for src in sorted(class_dir.glob("*-[123].*")):
            gid = hashlib.sha1(f"{class_dir.name}/{src.name}".encode()).hexdigest()[:10]
            split = "test" if src.stem.endswith("-3") else "train"
            out = root / split / class_dir.name
            out.mkdir(parents=True, exist_ok=True)
            if src.suffix == ".jpg":
                shutil.copyfile(src, out / f"H1_{gid}_spectrogram_1.0.jpg")
            else:
                with Image.open(src) as gif:
                    for frame, dur in enumerate(DURATIONS):
                        if split == "test" and dur != "1.0":
                            continue
                        gif.seek(frame)
                        gif.convert("RGB").save(out / f"H1_{gid}_spectrogram_{dur}.png", compress_level=1)
            same = real_meta[real_meta["label"] == class_dir.name].head(1).to_dict("records")
            rows.append({**(same[0] if same else {}), "gravityspy_id": gid, "label": class_dir.name,
                         "sample_type": split, "ifo": "H1"})
    pd.DataFrame(rows).to_csv(root / "trainingset_v1d1_metadata.csv", index=False)
    (root / "train" / "Blip" / "H1_corrupt0000_spectrogram_1.0.png").write_bytes(b"\x89PNG not really")
    return root


@pytest.fixture(scope="module")
def golden_dataset(tmp_path_factory: pytest.TempPathFactory, real: Path) -> Path:
    return make_golden_kaggle(tmp_path_factory.mktemp("golden-kaggle"), real)


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, golden_dataset: Path, random_checkpoint: Path, tmp_path: Path) -> Path:
    monkeypatch.setenv("GLITCHNET_DATA", str(golden_dataset))
    monkeypatch.setenv("GLITCHNET_MODEL", str(random_checkpoint))
    monkeypatch.setenv("GLITCHNET_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("GLITCHNET_HOSTED", raising=False)
    monkeypatch.setattr(jobs, "_JOBS", {})  # AppTest sessions share an id: no training run carries over between tests
    return tmp_path


def _app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    if page is not None:
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(elements: Iterable) -> list[str]:
    return [e.value for e in elements]


@pytest.mark.parametrize("page", ["home", "explore", "augment", "train", "predict"])
def test_every_page_runs_inside_the_app_shell(app_env: Path, page: str) -> None:
    at = _app(page)
    assert len(at.main.title) == 1 and not at.error
    assert [h.value for h in at.sidebar.subheader] == ["Dataset", "Model"]
    assert "random.pt" in at.sidebar.caption[-1].value


def test_home_shows_field_guide_examples_and_model_card(app_env: Path, golden_dataset: Path) -> None:
    at = _app()
    assert _texts(at.title) == ["GlitchNet: sorting the noise in gravitational-wave detectors"]
    assert not at.error and not at.warning
    guide = [m for m in _texts(at.markdown) if m.startswith("**") and m.endswith("**")]
    assert len(guide) == 22 and guide[0] == "**1080Lines**"
    assert not [c for c in _texts(at.caption) if c.startswith("No example")]  # every class has an image
    assert [i.value for i in at.info] == ["This checkpoint records no accuracy figures."]  # random weights: none
    assert at.session_state["dataset_root"] == str(golden_dataset)


def test_home_draws_without_torch(app_env: Path) -> None:
    """Home and the sidebar need neither torch, scikit-learn, SciPy nor Grad-CAM: the model loads after the page."""
    code = f"""
import sys
from streamlit.testing.v1 import AppTest
import pages._ui as ui
ui.warm_up = lambda: None  # the background load that follows a drawn page
at = AppTest.from_file({str(APP)!r}, default_timeout=60).run()
assert not at.exception and not at.error and len(at.get("image")) == 22, at.exception
assert "random.pt" in at.sidebar.caption[-1].value
print(sorted(m for m in ("torch", "sklearn", "scipy", "pytorch_grad_cam") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=APP.parent, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(APP.parent)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split("\n")[-2] == "[]"


def test_field_guide_says_on_each_image_where_it_comes_from(app_env: Path, golden_dataset: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    captions = [c for img in _app().get("image") for c in img.captions]
    assert captions == [f"Example from {golden_dataset.name}"] * 22  # a real dataset: its own images
    simulated = app_env / "simulated"
    shutil.copytree(golden_dataset, simulated)
    (simulated / SIMULATED_MARKER).write_text("made by the simulator\n")
    monkeypatch.setenv("GLITCHNET_DATA", str(simulated))
    at = _app()
    assert [c for img in at.get("image") for c in img.captions] == ["Simulated example"] * 22
    assert any("simulated by GlitchNet, not real detector data" in c for c in _texts(at.caption))


def test_explore_lists_skipped_file_and_plots(app_env: Path) -> None:
    at = _app("explore")
    assert _texts(at.title) == ["Explore the dataset"]
    assert len(at.warning) == 1 and "1 file(s)" in at.warning[0].value
    skipped = at.dataframe[0].value
    assert list(skipped["path"].map(lambda p: Path(p).name)) == ["H1_corrupt0000_spectrogram_1.0.png"]
    headers = _texts(at.main.subheader)
    assert headers == ["Glitches per class and split", "Sample images", "One glitch, four views",
                       "Trigger parameters (metadata CSV)"]
    at.multiselect[0].set_value(["Whistle"]).run()
    assert not at.exception
    assert at.selectbox(key="explore_class").value == "Whistle"


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def test_explore_charts_draw_the_classes_chosen_in_colours_of_their_own(app_env: Path) -> None:
    at = _app("explore")
    counts, scatter, _ = _charts(at)
    colours = {t["name"]: t["marker"]["color"] for t in scatter["data"]}
    assert len(colours) == 22 and len(set(colours.values())) == 22  # no colour shared by two classes
    assert scatter["layout"]["legend"]["orientation"] == "h"  # below the plot, every class in it
    assert scatter["layout"]["height"] >= 420 + 24 * 5
    at.multiselect[0].set_value(["Blip", "Whistle"]).run()
    counts, scatter, box = _charts(at)
    assert counts["layout"]["xaxis"]["categoryarray"] == ["Blip", "Whistle"]  # no empty bars for 20 others
    assert box["layout"]["xaxis"]["categoryarray"] == ["Blip", "Whistle"]
    assert {t["name"]: t["marker"]["color"] for t in scatter["data"]} == {c: colours[c] for c in ("Blip", "Whistle")}
    # two points within a decade: plotly's own ticks, so the log axes keep labels (one tick per decade had none)
    assert "dtick" not in scatter["layout"]["xaxis"] and "dtick" not in scatter["layout"]["yaxis"]


def _upload(at: AppTest, paths: Iterable[Path]) -> AppTest:
    files = [(p.name, p.read_bytes(), "image/gif" if p.suffix == ".gif" else "image/png") for p in paths]
    at.file_uploader[0].set_value(files).run()
    assert not at.exception
    return at


def _example_glitch(real_dir: Path, cls: str = "Blip", index: int = 0) -> list[Path]:
    """The four views of one O1 example glitch of ``cls``."""
    paths = sorted((real_dir / "gravityspy-examples" / cls).glob("*_spectrogram_*.png"))
    keys = sorted({p.name.rsplit("_spectrogram_", 1)[0] for p in paths})
    return [p for p in paths if p.name.startswith(keys[index] + "_spectrogram_")]


def _key(paths: list[Path]) -> str:
    """The glitch key (``{ifo}_{id}``) of a glitch's files."""
    return paths[0].name.rsplit("_spectrogram_", 1)[0]


def test_predict_classifies_uploads_and_reports_bad_files(app_env: Path, real: Path) -> None:
    at = _app("predict")
    assert "Upload one or more" in at.info[0].value
    blip = (real / "golden" / "Blip" / "blip-1.jpg").read_bytes()
    gif = (real / "golden" / "Whistle" / "whistle-2.gif").read_bytes()
    too_big = b"\0" * (MAX_UPLOAD_MB * 2**20 + 1)
    at.file_uploader[0].set_value([("blip-1.jpg", blip, "image/jpeg"), ("whistle-2.gif", gif, "image/gif"),
                                   ("notes.png", b"definitely not a png", "image/png"),
                                   ("huge.png", too_big, "image/png")]).run()
    assert not at.exception
    assert _texts(at.error) == [f"`huge.png`: larger than the {MAX_UPLOAD_MB} MB upload limit, skipped.",
                                "`notes.png`: not an image file, or not one GlitchNet can read (PNG, JPG or GIF)"]
    assert "3 glitch(es) from 3 file(s)" in _texts(at.caption)
    table = at.dataframe[0].value
    assert list(table["name"]) == ["blip-1.jpg"] + [f"whistle-2.gif#frame{i}" for i in range(4)] + [
        "whistle-2.gif (combined, 4 views)", "notes.png"]
    assert list(table["row"]) == ["view"] * 5 + ["combined", "view"]
    ok = table[table["error"].isna()]
    # confidences as a person reads them (the CSV keeps the numbers); random weights give a few percent each
    assert ok["confidence"].str.fullmatch(r"< 1%|> 99%|\d{1,2}%").all() and ok["top5"].str.count(";").eq(4).all()
    assert table.loc[table["row"] == "combined", "views"].item() == 4
    assert list(table.loc[table["glitch"] == "whistle-2.gif", "duration_s"].iloc[:4]) == [0.5, 1.0, 2.0, 4.0]
    # one Grad-CAM overlay per view: the JPG's and the GIF's four frames, in one expander per glitch
    assert len(at.get("image")) == 5
    assert [len(e.get("image")) for e in at.expander if "Grad-CAM" in e.label] == [1, 4]
    # a random model is never sure: each glitch's verdict says so plainly, once
    assert len(at.warning) == 2 and all("not sure" in w for w in _texts(at.warning))
    assert len(at.get("download_button")) == 1


def test_an_upload_over_the_limit_reaches_the_page_and_is_named(app_env: Path) -> None:
    # the browser sends files up to server.maxUploadSize; one it refused itself would never reach the page
    assert int(st.get_option("server.maxUploadSize")) > MAX_UPLOAD_MB
    at = _app("predict")
    at.file_uploader[0].set_value([("huge.png", b"\0" * (MAX_UPLOAD_MB * 2**20 + 1), "image/png")]).run()
    assert not at.exception
    refusal = f"`huge.png`: larger than the {MAX_UPLOAD_MB} MB upload limit, skipped."
    assert _texts(at.error) == [refusal]
    assert not [i for i in _texts(at.info) if i.startswith("Upload one or more")]  # the reason, not the prompt
    at.run()  # the refused file is released from the server's memory; its line stays
    assert not at.exception and _texts(at.error) == [refusal] and not at.file_uploader[0].value


def test_one_card_per_glitch_verdict_first_then_its_views(app_env: Path, real: Path) -> None:
    at = _upload(_app("predict"), reversed(_example_glitch(real)))  # any order: the card sorts the views
    key = _key(_example_glitch(real))
    cards = [m for m in _texts(at.markdown) if m.startswith(f"**`{key}`**")]
    assert cards == [f"**`{key}`** · 4 views"]
    verdicts = [m for m in _texts(at.markdown) if m.startswith("### ")]
    assert len(verdicts) == 1 and "%" in verdicts[0]
    [views] = [e for e in at.expander if "Grad-CAM" in e.label]
    assert views.label.startswith("The 4 views, with Grad-CAM for ")
    captions = [c for img in views.get("image") for c in img.proto.imgs[0].caption.splitlines()]
    assert [c.split(":")[0] for c in captions] == ["0.5 s view", "1 s view", "2 s view", "4 s view"]
    table = at.dataframe[0].value
    assert list(table["row"]) == ["view"] * 4 + ["combined"]
    combined = table.iloc[-1]
    assert combined["name"] == f"{key} (combined, 4 views)" and combined["views"] == 4


def test_long_batches_page_by_glitch(app_env: Path, real: Path) -> None:
    jpgs = sorted((real / "golden").glob("*/*-1.jpg"))[:7]
    at = _upload(_app("predict"), jpgs)
    assert "7 glitch(es) from 7 file(s); glitches 1–6 on this page" in _texts(at.caption)
    assert len([e for e in at.expander if "Grad-CAM" in e.label]) == 6
    at.selectbox(key="predict_page").set_value(2).run()
    assert not at.exception
    assert "7 glitch(es) from 7 file(s); glitches 7–7 on this page" in _texts(at.caption)
    assert len(at.dataframe[0].value) == 7  # the table holds every glitch, whatever the page


def test_volunteer_mode_hides_the_answer_until_labelled(app_env: Path, real: Path) -> None:
    at = _app("predict")
    at.file_uploader[0].set_value(("blip-1.jpg", (real / "golden" / "Blip" / "blip-1.jpg").read_bytes(),
                                   "image/jpeg"))
    at.toggle[0].set_value(True).run()
    assert "Pick your label to see what the model thinks." in _texts(at.caption)
    assert not at.dataframe and not at.get("download_button")  # nothing to offer before a label
    assert len(at.get("image")) == 1  # the view itself, to judge by
    at.selectbox(key="volunteer-blip-1.jpg").set_value("Blip").run()
    assert not at.exception
    verdict = _texts(at.success) + _texts(at.info)
    assert any("Blip" in v for v in verdict)
    assert at.dataframe[0].value["your_label"].tolist() == ["Blip"]


def test_volunteer_labels_a_glitch_once_and_the_csv_has_the_combined_row(app_env: Path, real: Path) -> None:
    at = _upload(_app("predict"), _example_glitch(real))
    at.toggle[0].set_value(True).run()
    key = _key(_example_glitch(real))
    assert [s.key for s in at.main.selectbox] == [f"volunteer-{key}"]  # one question per glitch, not per view
    at.selectbox(key=f"volunteer-{key}").set_value("Whistle").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["row"]) == ["view"] * 4 + ["combined"] and set(table["your_label"]) == {"Whistle"}
    [said] = [t for t in _texts(at.success) + _texts(at.info) if "the model" in t.lower()]
    combined = table.iloc[-1]
    assert combined["label"] in said  # the comparison is with the combined verdict
    assert len(at.get("download_button")) == 1  # the CSV is this table


def test_quiz_on_bundled_samples_keeps_score(app_env: Path) -> None:
    at = _app("predict")
    at.toggle[0].set_value(True).run()
    [quiz] = [b for b in at.button if b.label.startswith("Quiz me")]
    quiz.click().run()
    assert not at.exception
    truth, paths = at.session_state["quiz"]["current"]
    key = [s.key for s in at.selectbox if s.key.startswith("volunteer-")][0]
    assert not [m for m in _texts(at.markdown) if "Quiz score" in m]
    at.selectbox(key=key).set_value(truth).run()
    assert not at.exception
    assert any(t.startswith("You are right") and truth in t for t in _texts(at.success))
    [score] = [m for m in _texts(at.markdown) if "Quiz score" in m]
    assert score.startswith("**Quiz score:** you 1 of 1, the model ")
    wrong = next(c for c in ("Blip", "Whistle") if c != truth)
    at.selectbox(key=key).set_value(wrong).run()  # a changed answer replaces the first, never counts twice
    [score] = [m for m in _texts(at.markdown) if "Quiz score" in m]
    assert score.startswith("**Quiz score:** you 0 of 1, the model ")


def test_the_quiz_says_where_each_label_comes_from(app_env: Path, golden_dataset: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def quiz_answer(at: AppTest) -> str:
        at.toggle[0].set_value(True).run()
        [quiz] = [b for b in at.button if b.label.startswith("Quiz me")]
        quiz.click().run()
        truth, _ = at.session_state["quiz"]["current"]
        key = [s.key for s in at.selectbox if s.key.startswith("volunteer-")][0]
        at.selectbox(key=key).set_value(truth).run()
        assert not at.exception
        [said] = [t for t in _texts(at.success) if t.startswith("You are right")]
        assert "Gravity Spy" not in said
        return said.replace(f"**{truth}**", "TRUTH")

    assert quiz_answer(_app("predict")).startswith(f"You are right: its label in {golden_dataset.name} is TRUTH.")
    simulated = app_env / "simulated"
    shutil.copytree(golden_dataset, simulated)
    (simulated / SIMULATED_MARKER).write_text("made by the simulator\n")
    monkeypatch.setenv("GLITCHNET_DATA", str(simulated))
    assert quiz_answer(_app("predict")).startswith("You are right: the simulator made it as TRUTH.")


def test_a_card_whose_views_disagree_says_so_and_what_each_says(app_env: Path, real: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from glitchnet.inference import Predictor

    classify = Predictor.classify

    def one_view_dissents(self, views, *args, **kwargs):
        found = classify(self, views, *args, **kwargs)
        for glitch in found:
            first = glitch.readable[0]
            other = next(c for c in self.classes if c != glitch.verdict.label)
            first.prediction = replace(first.prediction, label=other)
        return found

    monkeypatch.setattr(Predictor, "classify", one_view_dissents)
    at = _upload(_app("predict"), _example_glitch(real))
    [disagree] = [w for w in _texts(at.warning) if w.startswith("The views disagree")]
    table = at.dataframe[0].value
    views = table[table["row"] == "view"]
    # what each view says on its own, in view order, named as its caption names it
    each = "; ".join(f"{d:g} s view: {label} {p}" for d, label, p in zip(views["duration_s"], views["label"],
                                                                         views["confidence"], strict=True))
    assert disagree == f"The views disagree. On its own, each says: {each}. The verdict above weighs all 4 together."
    combined = table.iloc[-1]["label"]
    assert views["label"].iloc[0] != combined
    [expander] = [e for e in at.expander if "Grad-CAM" in e.label]
    assert expander.label == f"The 4 views, with Grad-CAM for the combined verdict, {combined}"


def test_results_are_kept_across_uploads_and_the_quiz_until_cleared(app_env: Path, real: Path) -> None:
    first, second = _example_glitch(real, index=0), _example_glitch(real, index=1)
    at = _upload(_app("predict"), first)
    at.toggle[0].set_value(True).run()
    at.selectbox(key=f"volunteer-{_key(first)}").set_value("Whistle").run()
    _upload(at, second)  # a new batch: the first glitch's card and label stay
    cards = [m.split("`")[1] for m in _texts(at.markdown) if m.startswith("**`")]
    assert cards == [_key(second), _key(first)]  # the latest batch first
    assert at.selectbox(key=f"volunteer-{_key(first)}").value == "Whistle"
    [quiz] = [b for b in at.button if b.label.startswith("Quiz me")]
    quiz.click().run()
    assert not at.exception
    cards = [m.split("`")[1] for m in _texts(at.markdown) if m.startswith("**`")]
    assert len(cards) == 3 and cards[1:] == [_key(second), _key(first)]
    at.selectbox(key=f"volunteer-{_key(second)}").set_value("Blip").run()
    table = at.dataframe[0].value  # volunteer mode: the labelled glitches, every batch
    assert set(table["glitch"]) == {_key(first), _key(second)}
    assert dict(zip(table["glitch"], table["your_label"])) == {_key(first): "Whistle", _key(second): "Blip"}
    at.toggle[0].set_value(False).run()
    assert set(at.dataframe[0].value["glitch"]) == {_key(first), _key(second), cards[0]}  # the CSV holds them all
    [clear] = [b for b in at.button if b.label == "Clear my results"]
    clear.click().run()
    assert not at.exception and not at.dataframe and not [m for m in _texts(at.markdown) if m.startswith("**`")]
    assert "Upload one or more" in at.info[0].value


def test_hosted_batch_cap_keeps_glitches_whole(app_env: Path, real: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLITCHNET_HOSTED", "1")
    monkeypatch.setenv("GLITCHNET_MAX_FILES", "5")
    st.cache_resource.clear()  # the server's limits are read once per process
    first, second = _example_glitch(real, index=0), _example_glitch(real, index=1)
    jpg = real / "golden" / "Blip" / "blip-1.jpg"
    at = _upload(_app("predict"), [*first, *second, jpg])
    left = [e for e in _texts(at.error) if "at most 5 files" in e]  # one line per file left out
    assert [e.split(":")[0] for e in left] == [f"`{p.name}`" for p in second]
    assert "2 glitch(es) from 5 file(s)" in _texts(at.caption)
    st.cache_resource.clear()


@pytest.mark.slow
def test_strain_file_and_gps_make_one_glitch_card(app_env: Path, real: Path) -> None:
    pytest.importorskip("gwpy", reason="the strain extra (gwpy, h5py) is not installed")
    strain = real / "strain" / "H-H1_GWOSC_O3b_4KHZ_R1-1266281937-128.hdf5"
    at = _app("predict")
    at.file_uploader(key="strain_file").set_value((strain.name, strain.read_bytes(), "application/x-hdf5")).run()
    assert "Enter the GPS time of the glitch to scan it." in _texts(at.info)
    at.number_input(key="strain_gps").set_value(1266281982.66).run()
    assert not at.exception and not at.error, _texts(at.error)
    assert "**`H1_1266281982660`** · 4 views" in _texts(at.markdown)
    assert "1 glitch(es) from 1 file(s)" in _texts(at.caption)
    assert list(at.dataframe[0].value["name"])[:4] == [f"H1_1266281982660_spectrogram_{d}.png" for d in DURATIONS]
    at.number_input(key="strain_gps").set_value(1266281000.0).run()
    assert [e for e in _texts(at.error) if "outside the file" in e and "\n" not in e]
    at.file_uploader(key="strain_file").set_value(("notes.hdf5", b"not hdf5 at all", "application/x-hdf5")).run()
    assert not at.exception
    assert _texts(at.error) == ["`notes.hdf5` is not an HDF5 strain file"]


def test_strain_upload_without_the_strain_extra_says_so_in_one_line(app_env: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "h5py", None)  # as if gwpy and h5py were not installed
    monkeypatch.setitem(sys.modules, "gwpy.timeseries", None)
    at = _app("predict")
    at.file_uploader(key="strain_file").set_value(("x.hdf5", b"whatever", "application/x-hdf5"))
    at.number_input(key="strain_gps").set_value(1e9).run()
    assert not at.exception
    assert _texts(at.error) == ["`x.hdf5`: reading strain files needs gwpy and h5py: pip install 'glitchnet[strain]'"]


def test_bundled_samples_come_from_the_dataset(app_env: Path) -> None:
    at = _app("predict")
    at.multiselect[0].set_value(["Koi_Fish"]).run()
    assert not at.exception and not at.error
    assert at.dataframe[0].value["name"].str.endswith("_spectrogram_1.0.png").all()


def test_train_runs_in_background_and_evaluates(app_env: Path, tmp_path_factory: pytest.TempPathFactory,
                                                monkeypatch: pytest.MonkeyPatch, real: Path) -> None:
    small = make_golden_kaggle(tmp_path_factory.mktemp("small"), real, classes=("Blip", "Koi_Fish", "Whistle"))
    monkeypatch.setenv("GLITCHNET_DATA", str(small))
    at = _app("train")
    at.number_input[0].set_value(1)
    at.select_slider[0].set_value(4)
    at.button[0].click().run()  # the form's submit button
    assert not at.exception
    deadline = time.monotonic() + 60
    while not at.success and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
    assert not at.exception and not at.error, _texts(at.error)
    assert at.success and "finished" in at.success[0].value
    assert at.number_input[0].value == 1  # the form starts from the run's settings, not its defaults
    assert not [c for c in _texts(at.caption) if c.startswith("scanning")]  # a status, not a note kept after the run
    labels = {m.label: m.value for m in at.metric}
    assert set(labels) == {"Accuracy", "Macro-F1", "Images"} and labels["Images"] == "3"
    assert list((app_env / "runs").glob("glitchnet-*.pt"))
    use = [b for b in at.button if b.label == "Use this model on the Predict page"]
    use[0].click().run()
    assert at.session_state["model_source"] == "My training run"


def test_train_form_starts_at_the_library_defaults(app_env: Path) -> None:
    from glitchnet.config import AUGMENTATION_LABELS, FIRST_RUN_EPOCHS, VIEWS, TrainConfig

    at = _app("train")
    assert at.number_input[0].value == FIRST_RUN_EPOCHS and at.select_slider[0].value == TrainConfig.batch_size
    assert [n.value for n in at.number_input[1:]] == [TrainConfig.weight_decay]
    lr = next(s for s in at.main.select_slider if s.label == "Learning rate")
    assert lr.value == TrainConfig.lr
    view = next(s for s in at.main.selectbox if s.label == "View (s)")
    assert list(view.options) == list(VIEWS) and view.value == TrainConfig.view
    augment = next(r for r in at.main.radio if r.label == "Augmentation")
    assert list(augment.options) == list(AUGMENTATION_LABELS.values())
    assert augment.value == TrainConfig.augment


def test_learning_rate_steps_change_it_visibly(app_env: Path) -> None:
    from glitchnet.config import LEARNING_RATES, TrainConfig

    lr = next(s for s in _app("train").main.select_slider if s.label == "Learning rate")
    options = list(lr.options)
    assert options == [f"{r:g}" for r in LEARNING_RATES] and len(set(options)) == len(options)
    here = options.index(f"{TrainConfig.lr:g}")
    assert options[here - 1:here + 2] == ["0.0005", "0.001", "0.002"]  # one step down or up: a different rate shown


def _fake_run(monkeypatch: pytest.MonkeyPatch, status: str, accuracy: float | None, tmp_path: Path):
    """This session's training run, stood in by a job in the given state (the page only reads ``view()``)."""
    import threading
    from types import SimpleNamespace

    import numpy as np

    from glitchnet.config import TrainConfig
    from glitchnet.evaluate import Evaluation, compute_metrics

    evaluation = None
    if accuracy is not None:
        truth = np.arange(9) % 3
        guess = np.where(np.arange(9) < round(9 * accuracy), truth, (truth + 1) % 3)
        no_rows = pd.DataFrame(columns=["path", "true", "predicted", "confidence"])
        evaluation = Evaluation("test", compute_metrics(truth, guess, ["Blip", "Koi_Fish", "Whistle"]), no_rows)
    view = jobs.JobView(status=status, latest=None, batch_losses=[(0.5, 2.0), (1.0, 1.8), (1.5, 1.7), (2.0, 1.6)],
                        history=[{"epoch": 1, "accuracy": 0.1, "val_accuracy": 0.1, "val_loss": 2.0},
                                 {"epoch": 2, "accuracy": 0.12, "val_accuracy": 0.11, "val_loss": 1.9}],
                        messages=[], error=None, evaluation=evaluation, elapsed_s=60.0,
                        checkpoint=tmp_path / "run.pt")
    job = SimpleNamespace(stop=threading.Event(), config=TrainConfig(data="x"), view=lambda: view)
    _app()  # imports the page helpers, so they can be patched
    monkeypatch.setattr(sys.modules["pages._ui"], "session_job", lambda: job)
    return job


def test_train_stop_is_one_button_and_the_charts_tell_the_splits_apart(app_env: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    job = _fake_run(monkeypatch, "running", None, tmp_path)
    at = _app("train")
    [stop] = [b for b in at.button if "Stop" in b.label]
    assert stop.label == "Stop" and stop.key == "train_stop"
    stop.click().run()
    assert job.stop.is_set()
    [stop] = [b for b in at.button if "Stop" in b.label]  # the same button, now saying what happens
    assert stop.label == "Stopping after this batch…" and stop.key == "train_stop" and stop.disabled
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert [c["layout"].get("title", {}).get("text") for c in charts] == [None, None]  # none under the toolbar
    assert "**Loss** (running mean over the epoch)" in _texts(at.markdown)
    assert "**Accuracy** per epoch" in _texts(at.markdown)
    colours = [{t["name"]: t["line"]["color"] for t in c["data"]} for c in charts]
    assert colours[0]["training (batches)"] == colours[1]["training"]
    assert colours[0]["validation"] == colours[1]["validation"] != colours[1]["training"]


def test_a_poor_run_is_offered_for_predict_with_a_caveat(app_env: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_run(monkeypatch, "done", 1 / 9, tmp_path)
    at = _app("train")
    assert any(b.label == "Use this model on the Predict page" for b in at.button)
    assert _texts(at.warning) == ["This model is right on only 11% of the test split after 2 epochs: most of its "
                                  "verdicts will be wrong. Train for more epochs before relying on it."]
    _fake_run(monkeypatch, "done", 8 / 9, tmp_path)
    assert not _app("train").warning


def test_hosted_mode_has_no_paths_and_no_training(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLITCHNET_HOSTED", "1")
    at = _app()
    assert not at.sidebar.text_input and not at.sidebar.radio
    at.switch_page("pages/train.py").run()  # out of the navigation, but a link to /train still says why
    assert not at.exception and _texts(at.title) == ["Train GlitchNet"] and not at.get("form")
    assert at.info[0].value.startswith("Training is switched off on this public server")
    at.switch_page("pages/predict.py").run()
    assert not at.exception and _texts(at.title) == ["Classify a glitch"]


def test_my_training_run_in_a_tab_without_one_says_so(app_env: Path) -> None:
    at = _app("predict")
    at.sidebar.radio(key="model_source").set_value("My training run").run()
    assert not at.exception
    said = "No training run in this browser tab yet: start one on the Train page (each tab has its own runs), or " \
           "pick another model."
    assert _texts(at.sidebar.warning) == [said] and at.main.warning[0].value == said


def test_unusable_dataset_folder_is_reported_in_the_sidebar(app_env: Path, tmp_path: Path) -> None:
    at = _app("explore")
    at.sidebar.radio(key="dataset_source").set_value("A folder on this computer").run()
    at.sidebar.text_input(key="dataset_path").input(str(tmp_path / "missing")).run()
    assert not at.exception
    assert at.sidebar.error[0].value == f"no such folder: {tmp_path / 'missing'}"
    assert "dataset_root" not in at.session_state
    assert at.main.info[0].value == "No dataset is selected: choose one in the sidebar."


def test_an_unexpected_error_is_one_line_not_a_traceback(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _app()  # imports the page helpers, so they can be patched

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom\nsecond line of detail")

    monkeypatch.setattr(sys.modules["pages._ui"], "current_scan", boom)
    at = _app()
    assert _texts(at.error) == ["Something went wrong: RuntimeError: boom"]


def test_missing_model_is_explained(app_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GLITCHNET_MODEL", str(tmp_path / "nowhere.pt"))
    at = _app("predict")
    assert "No shipped model found" in at.warning[-1].value
    assert not at.file_uploader


@pytest.mark.parametrize("metrics", [
    {"validation": {"accuracy": float("nan"), "n": 10},
     "real_crossval": {"verified": {"accuracy": float("nan"), "correct": 1, "glitches": 2,
                                    "wilson95": [float("nan"), float("nan")]}}},
    {"validation": {"accuracy": 0.5, "n": 10},
     "real_crossval": {"verified": {"accuracy": 0.8, "correct": 100, "glitches": 125, "wilson95": 3}}},
])
def test_a_checkpoint_with_bad_metrics_shows_only_real_figures(app_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path, metrics: dict) -> None:
    from glitchnet.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(os.environ["GLITCHNET_MODEL"])
    ckpt.metrics = metrics
    monkeypatch.setenv("GLITCHNET_MODEL", str(save_checkpoint(ckpt, tmp_path / "odd.pt")))
    at = _app()
    assert not at.error, _texts(at.error)
    shown = _texts(at.caption) + _texts(at.sidebar.caption) + [m.value for m in at.metric]
    assert not [t for t in shown if "nan" in t.lower()], shown
    assert [m.value for m in at.metric] == ([] if "nan" in str(metrics["validation"]) else ["50.0%"])


def test_gps_time_file_names_make_one_card_per_glitch(app_env: Path, real: Path) -> None:
    files = [(f"L1_{gps}_spectrogram_{p.name.rsplit('_spectrogram_', 1)[1]}", p.read_bytes(), "image/png")
             for gps, index in (("1238507926.062500000", 0), ("1238507931.500000000", 1))
             for p in _example_glitch(real, index=index)]
    at = _app("predict")
    at.file_uploader[0].set_value(files).run()
    assert not at.exception and not at.error
    assert [m for m in _texts(at.markdown) if m.startswith("**`L1_")] == [
        "**`L1_1238507926.062500000`** · 4 views", "**`L1_1238507931.500000000`** · 4 views"]
    assert "2 glitch(es) from 8 file(s)" in _texts(at.caption)
