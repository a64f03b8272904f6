"""The glitch as the unit: grouping files and frames, the whole-glitch batch cap, one decode, Grad-CAM from the
forward pass, the results table, dataset samples, and strain bytes -> views."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_kaggle, synthetic_crop

from glitchnet import engine
from glitchnet.checkpoint import Checkpoint
from glitchnet.data import scan_dataset
from glitchnet.glitches import (
    cap_files,
    combined_name,
    example_glitches,
    glitch_key,
    group_files,
    random_glitch,
    results_table,
)
from glitchnet.images import open_frames, open_image
from glitchnet.inference import Predictor
from glitchnet.model import FrequencyGlitchNet, GlitchNet
from glitchnet.names import parse_name
from glitchnet.scores import fuse_log_probabilities

VIEWS = [f"H1_abcdefghij_spectrogram_{d}.png" for d in ("0.5", "1.0", "2.0", "4.0")]


@pytest.fixture(scope="module")
def predictor(random_checkpoint) -> Predictor:
    return Predictor(random_checkpoint)


def png(seed: int, label_index: int = 0) -> bytes:
    buf = io.BytesIO()
    synthetic_crop(label_index, seed, (190, 160)).save(buf, format="PNG")
    return buf.getvalue()


def gif(frames: int = 4) -> bytes:
    images = [synthetic_crop(k % 3, 10 + k, (190, 160)).convert("RGB") for k in range(frames)]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:])
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------ grouping


def test_glitch_keys_group_gravity_spy_views_and_keep_other_files_apart():
    assert glitch_key("H1_abcdefghij_spectrogram_0.5.png") == "H1_abcdefghij"
    assert glitch_key("some/dir/L1_Zz09_spectrogram_4.0.jpg") == "L1_Zz09"
    assert glitch_key("blip-2.gif") == "blip-2.gif"
    assert glitch_key("a/blip.png") != glitch_key("b/blip.png")  # other names: each file a glitch of its own
    names = [VIEWS[2], "blip-2.gif", VIEWS[0], "L1_other00000_spectrogram_1.0.png", VIEWS[1]]
    assert group_files(names) == [("H1_abcdefghij", [0, 2, 4]), ("blip-2.gif", [1]),
                                  ("L1_other00000", [3])]


def test_the_batch_cap_never_splits_a_glitch_and_names_what_it_left_out():
    other = [v.replace("abcdefghij", "klmnopqrst") for v in VIEWS]
    names = [*VIEWS, *other, "blip-1.jpg"]
    kept, left_out = cap_files(names, 5)
    assert kept == [0, 1, 2, 3, 8]  # the first glitch whole; the second does not fit; the single JPG still does
    assert left_out == other
    assert cap_files(names, 9) == (list(range(9)), [])
    assert cap_files(names, None) == (list(range(9)), [])
    kept, left_out = cap_files(names, 3)
    assert kept == [8] and left_out == [*VIEWS, *other]


# ------------------------------------------------------------------------------------------ decoding once


def test_open_frames_reads_every_frame_in_one_pass(real):
    data = (real / "golden" / "Whistle" / "whistle-2.gif").read_bytes()
    frames = open_frames(data)
    assert len(frames) == 4
    for k, frame in enumerate(frames):
        assert np.array_equal(np.asarray(frame), np.asarray(open_image(data, k)))
    assert len(open_frames(png(0))) == 1


def test_each_file_is_decoded_once(predictor, monkeypatch):
    calls = []
    real_open = engine.open_frames
    monkeypatch.setattr(engine, "open_frames", lambda *a: calls.append(1) or real_open(*a))
    glitches = predictor.classify_files([("golden.gif", gif()), (VIEWS[0], png(1))])
    assert len(calls) == 2
    assert [g.key for g in glitches] == ["golden.gif", "H1_abcdefghij"]
    assert [v.name for v in glitches[0].views] == [f"golden.gif#frame{k}" for k in range(4)]
    assert [v.duration_s for v in glitches[0].views] == [0.5, 1.0, 2.0, 4.0]


def test_unreadable_files_become_views_with_an_error(predictor):
    [bad] = predictor.classify_files([("notes.png", b"not an image at all")])
    assert bad.key == "notes.png" and not bad.readable
    assert bad.views[0].error == "not an image file, or not one GlitchNet can read (PNG, JPG or GIF)"
    assert bad.verdict.error == "no readable view to fuse"


# ------------------------------------------------------------------------------------ classify and explain


def test_classify_fuses_each_glitch_and_explains_its_verdict(predictor):
    files = [(VIEWS[3], png(3, 1)), ("blip.png", png(7, 2)), (VIEWS[0], png(0, 1)), (VIEWS[1], png(1, 1)),
             (VIEWS[2], png(2, 1))]
    glitches = predictor.classify_files(files)
    assert [g.key for g in glitches] == ["H1_abcdefghij", "blip.png"]
    four = glitches[0]
    assert [v.name for v in four.views] == VIEWS  # sorted by duration, whatever the upload order
    images = np.stack([v.image for v in four.views])
    probs = predictor.probabilities(images)
    for v, p in zip(four.views, probs):
        assert np.allclose(v.prediction.probabilities, p)
        assert v.prediction.duration == v.duration_s
    assert np.allclose(four.verdict.probabilities, fuse_log_probabilities(probs))
    assert four.verdict.views == 4 and four.verdict.name == "H1_abcdefghij"
    label = predictor.classes.index(four.verdict.label)
    _, heat = predictor.explain(images, [label] * 4)
    for v, h in zip(four.views, heat):
        assert v.heat.shape == (224, 224) and np.allclose(v.heat, h, atol=1e-5)  # batches of 5 and 4
    single = glitches[1]
    assert single.verdict.views == 1 and np.allclose(single.verdict.probabilities,
                                                     single.views[0].prediction.probabilities)


@pytest.mark.slow
@pytest.mark.parametrize("arch", [GlitchNet, FrequencyGlitchNet])
def test_explain_equals_pytorch_grad_cam(arch):
    torch.manual_seed(1)
    model = arch()
    for m in model.modules():  # non-trivial BatchNorm statistics, so the maps are not flat
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    predictor = Predictor(Checkpoint(state_dict=model.state_dict(), arch=arch.arch_name))
    images = np.stack([Predictor.load(png(k, k % 3)) for k in range(3)])
    targets = [0, 5, 21]
    probs, heat = predictor.explain(images, targets)
    assert np.allclose(probs, predictor.probabilities(images))
    reference = np.stack([predictor.gradcam(img, t) for img, t in zip(images, targets)])
    assert heat.shape == reference.shape == (3, 224, 224)
    assert np.abs(heat - reference).max() < 1e-4
    assert heat.max() > 0.99 and heat.min() >= 0.0
    _, top = predictor.explain(images)  # default: each image's top class
    assert np.allclose(top, predictor.explain(images, probs.argmax(1))[1])


# ----------------------------------------------------------------------------------------- results table


def test_results_table_has_view_rows_then_the_combined_row(predictor):
    files = [(v, png(k, 1)) for k, v in enumerate(VIEWS)] + [("notes.png", b"nope")]
    glitches = predictor.classify_files(files)
    table = results_table(glitches, {"H1_abcdefghij": "Blip"})
    assert list(table["row"]) == ["view"] * 4 + ["combined", "view"]
    assert list(table["name"]) == [*VIEWS, combined_name(glitches[0]), "notes.png"]
    assert table["name"].iloc[4] == "H1_abcdefghij (combined, 4 views)"
    combined = table.iloc[4]
    assert combined["label"] == glitches[0].verdict.label and combined["views"] == 4
    assert combined["confidence"] == round(glitches[0].verdict.confidence, 4)
    assert list(table["your_label"].iloc[:5]) == ["Blip"] * 5 and pd.isna(table["your_label"].iloc[5])
    assert table["error"].iloc[5] == "not an image file, or not one GlitchNet can read (PNG, JPG or GIF)"
    assert list(table["duration_s"].iloc[:4]) == [0.5, 1.0, 2.0, 4.0]
    back = pd.read_csv(io.StringIO(table.to_csv(index=False)))
    assert list(back.columns) == list(table.columns) and back["row"].tolist() == table["row"].tolist()
    assert results_table([]).empty


# ------------------------------------------------------------------------------------------ dataset samples


def test_samples_are_whole_glitches_from_the_dataset(tmp_path):
    manifest = scan_dataset(make_kaggle(tmp_path / "k"), view="all").manifest
    examples = example_glitches(manifest)
    assert sorted(examples) == ["Blip", "Koi_Fish", "Power_Line"]
    for label, paths in examples.items():
        assert len(paths) == 4 and "/test/" in paths[0] and f"/{label}/" in paths[0]
        assert len({glitch_key(p) for p in paths}) == 1
        assert [p.rsplit("_", 1)[1] for p in paths] == ["0.5.png", "1.0.png", "2.0.png", "4.0.png"]
    rng = np.random.default_rng(0)
    drawn = [random_glitch(manifest, rng) for _ in range(30)]
    assert {label for label, _ in drawn} == {"Blip", "Koi_Fish", "Power_Line"}
    for label, paths in drawn:
        assert len(paths) == 4 and all(f"/{label}/" in p for p in paths)
    with pytest.raises(ValueError, match="no images"):
        random_glitch(manifest.iloc[:0], rng)


def test_the_scan_the_samples_and_the_queue_share_one_glitch_rule(tmp_path):
    """A file whose name is not Gravity Spy's is a glitch of its own everywhere: in the queue (``group_files``), in the
    app's samples and in the scan's duplicate check; Gravity Spy views are one glitch by ``{ifo}_{id}`` everywhere."""
    from PIL import Image

    root = tmp_path / "mine"
    for split, label, name in [("train", "Blip", "blip.png"), ("train", "Blip", "blip.gif"),
                               ("test", "Whistle", "H1_abc_spectrogram_1.0.png"),
                               ("train", "Whistle", "H1_abc_spectrogram_2.0.png"),
                               ("test", "Whistle", "L1_abc_spectrogram_1.0.png")]:
        (root / split / label).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30), (40, 90, 160)).save(root / split / label / name)
    scan = scan_dataset(root, view="all")
    manifest = scan.manifest
    # the H1 glitch sits in test and train: its train view is a duplicate; L1_abc is another detector's glitch
    assert [Path(p).name for p in scan.skipped["path"]] == ["H1_abc_spectrogram_2.0.png"]
    assert sorted(Path(p).name for p in manifest["path"]) == [
        "H1_abc_spectrogram_1.0.png", "L1_abc_spectrogram_1.0.png", "blip.gif", "blip.png"]
    blips = sorted(p for p in manifest["path"] if "/Blip/" in p)
    assert [len(i) for _, i in group_files(blips)] == [1, 1]
    assert example_glitches(manifest)["Blip"] == [blips[0]]  # before: blip.gif and blip.png as one glitch's views
    rng = np.random.default_rng(1)
    assert {len(random_glitch(manifest, rng, classes=["Blip"])[1]) for _ in range(10)} == {1}


# ------------------------------------------------------------------------------------------- strain bytes


@pytest.mark.slow
def test_strain_bytes_make_the_four_named_views(real):
    pytest.importorskip("gwpy", reason="the strain extra (gwpy, h5py) is not installed")
    from glitchnet.strain import scan, scan_bytes

    path = real / "strain" / "H-H1_GWOSC_O3b_4KHZ_R1-1266281937-128.hdf5"
    views = scan_bytes(path.read_bytes(), 1266281982.66, path.name)
    assert list(views) == [f"H1_1266281982660_spectrogram_{d}.png" for d in ("0.5", "1.0", "2.0", "4.0")]
    direct = scan(path, 1266281982.66)
    for (name, image), d in zip(views.items(), sorted(direct)):
        assert np.array_equal(np.asarray(image), np.asarray(direct[d])), name
    # the views go through the same decoding as any image
    assert all(v.error is None for name, image in views.items() for v in Predictor.decode(name, image))


def test_strain_bytes_refuse_bad_input_in_one_line():
    pytest.importorskip("h5py", reason="the strain extra (gwpy, h5py) is not installed")
    from glitchnet.strain import NotStrainError, scan_bytes

    with pytest.raises(NotStrainError, match="^notes.hdf5 is not an HDF5 strain file$"):
        scan_bytes(b"not hdf5", 1e9, "notes.hdf5")
    with pytest.raises(NotStrainError, match="is empty"):
        scan_bytes(b"", 1e9, "empty.hdf5")


@pytest.mark.slow
def test_strain_bytes_gps_outside_the_file(real):
    pytest.importorskip("gwpy", reason="the strain extra (gwpy, h5py) is not installed")
    from glitchnet.strain import GPSRangeError, scan_bytes

    path = real / "strain" / "H-H1_GWOSC_O3b_4KHZ_R1-1266281937-128.hdf5"
    with pytest.raises(GPSRangeError, match="outside the file"):
        scan_bytes(path.read_bytes(), 1266281000.0, path.name)


def test_cli_predict_by_glitch_fuses_like_the_app(tmp_path, random_checkpoint, predictor, capsys):
    import json

    from glitchnet.cli import main

    for k, name in enumerate(VIEWS):
        (tmp_path / name).write_bytes(png(k, 1))
    (tmp_path / "golden.gif").write_bytes(gif())
    (tmp_path / "broken.png").write_bytes(b"nope")
    rc = main(["predict", "--model", str(random_checkpoint), "--json", "--by-glitch", "--batch-size", "4",
               str(tmp_path)])
    assert rc == 2  # a file could not be read: bad input
    out = {d["glitch"].rsplit("/", 1)[-1]: d for d in map(json.loads, capsys.readouterr().out.splitlines())}
    assert sorted(out) == ["H1_abcdefghij", "broken.png", "golden.gif"]
    four = out["H1_abcdefghij"]
    assert four["views"] == 4 and [f.rsplit("/", 1)[-1] for f in four["files"]] == VIEWS
    app = predictor.classify_files([(v, (tmp_path / v).read_bytes()) for v in VIEWS])[0].verdict
    assert four["label"] == app.label and four["confidence"] == pytest.approx(app.confidence, abs=1e-6)
    assert out["golden.gif"]["views"] == 4
    assert out["broken.png"]["error"] == "no readable view to fuse"
    assert list(out["broken.png"]["errors"].values()) == [
        "not an image file, or not one GlitchNet can read (PNG, JPG or GIF)"]


def test_pages_of_a_long_batch():
    from glitchnet.glitches import page_count, page_items
    assert [page_count(n, 6) for n in (0, 1, 6, 7, 12, 13)] == [1, 1, 1, 2, 2, 3]
    items = list(range(13))
    assert page_items(items, 1, 6) == (0, [0, 1, 2, 3, 4, 5])
    assert page_items(items, 3, 6) == (12, [12])


def test_quiz_score_counts_right_answers_on_each_side():
    from glitchnet.glitches import quiz_score
    answers = [("Blip", "Blip", "Tomte"), ("Whistle", "Blip", "Blip"), ("Tomte", "Tomte", "Tomte")]
    assert quiz_score(answers) == (2, 2)
    assert quiz_score(answers[:1]) == (1, 0) and quiz_score([]) == (0, 0)


GPS_VIEWS = [f"L1_{gps}_spectrogram_{d}.png" for gps in ("1238507926.062500000", "1238507931.500000000")
             for d in ("0.5", "1.0", "2.0", "4.0")]
"""Two glitches named by GPS time, as detector-characterisation tools write Omega scans."""


def test_gps_time_file_names_group_by_glitch(tmp_path):
    assert parse_name(GPS_VIEWS[3]) == ("L1", "1238507926.062500000", 4.0)
    assert group_files(GPS_VIEWS) == [("L1_1238507926.062500000", [0, 1, 2, 3]),
                                      ("L1_1238507931.500000000", [4, 5, 6, 7])]
    root = tmp_path / "Blip"
    root.mkdir()
    for k, name in enumerate(GPS_VIEWS):
        synthetic_crop(0, k, (190, 160)).save(root / name)
    manifest = scan_dataset(tmp_path).manifest
    assert sorted(set(manifest["gravityspy_id"])) == ["1238507926.062500000", "1238507931.500000000"]


def test_cli_predict_by_glitch_groups_gps_time_names(tmp_path, random_checkpoint, capsys):
    import json

    from glitchnet.cli import main

    for k, name in enumerate(GPS_VIEWS):
        (tmp_path / name).write_bytes(png(k, 1))
    assert main(["predict", "--model", str(random_checkpoint), "--json", "--by-glitch", str(tmp_path)]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["glitch"].rsplit("/", 1)[-1], d["views"]) for d in out] == [("L1_1238507926.062500000", 4),
                                                                          ("L1_1238507931.500000000", 4)]


def test_results_keep_every_batch_latest_first_and_tell_glitches_apart():
    from glitchnet.glitches import KEPT_UNLABELLED, Glitch, Results, View

    def glitch(key: str, fill: int) -> Glitch:
        return Glitch(key=key, files=[key], views=[View(name=key, file=key, image=np.full((4, 4, 3), fill, np.uint8))])

    results = Results()
    results.add([glitch("a.png", 1), glitch("b.png", 2)], {"a.png": ("Blip", "the simulator made it as")})
    results.add([glitch("a.png", 1), glitch("c.png", 3)])  # a.png again, the same image: one glitch, moved up
    assert [g.key for g in results.glitches] == ["a.png", "c.png", "b.png"]
    assert results.truth == {"a.png": ("Blip", "the simulator made it as")}
    results.add([glitch("a.png", 9)])  # another image of the same name: a glitch of its own
    assert [g.key for g in results.glitches] == ["a.png (2)", "a.png", "c.png", "b.png"]
    results.add([glitch(f"{i}.png", i) for i in range(KEPT_UNLABELLED)], labelled={"b.png"})
    assert len(results.glitches) == KEPT_UNLABELLED + 1 and results.glitches[-1].key == "b.png"  # labelled: kept
    assert results.dropped == 3
    results.clear()
    assert not results.glitches and not results.truth and not results.dropped


def test_glitch_chunks_keep_glitches_whole():
    from glitchnet.glitches import glitch_chunks

    names = [f"H1_{g}_spectrogram_{d}.png" for g in ("aaaaaaaaaa", "bbbbbbbbbb") for d in ("0.5", "1.0", "2.0")]
    names.insert(1, "other.png")
    assert list(glitch_chunks(names, 4)) == [[0, 2, 3, 1], [4, 5, 6]]  # 3 + 1 fit; the next 3 would not
    assert list(glitch_chunks(names, 2)) == [[0, 2, 3], [1], [4, 5, 6]]  # a glitch over the size: a chunk alone
    assert list(glitch_chunks(names, 10)) == [[0, 2, 3, 1, 4, 5, 6]] and not list(glitch_chunks([], 3))
