"""Glitches like this one: embeddings, the one rule combining views, exact search, the cached index, audit and map."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from glitchnet import similar
from glitchnet.checkpoint import Checkpoint, load_checkpoint
from glitchnet.cli import main
from glitchnet.config import SIMILAR_K, SIMILAR_MAX_K
from glitchnet.data import scan_dataset
from glitchnet.model import FrequencyGlitchNet, GlitchNet, forward_uint8
from glitchnet.shipped import default_model_path


def test_features_are_what_the_classifier_reads():
    torch.manual_seed(0)
    images = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    for model in (GlitchNet(num_classes=5).eval(), FrequencyGlitchNet(num_classes=5).eval()):
        with torch.no_grad():
            feats = forward_uint8(model, images, features=True)
            logits = forward_uint8(model, images)
        assert feats.shape == (3, 64)
        torch.testing.assert_close(model.fc(feats), logits)


def test_similar_imports_only_from_the_layers_below_it():
    import ast

    tree = ast.parse(Path(similar.__file__).read_text())
    imported = {node.module.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module}
    assert imported <= {"checkpoint", "config", "data", "errors", "files", "glitches", "model", "scores"}, imported


def test_combine_views_is_the_normalised_mean_of_normalised_views():
    views = np.array([[3.0, 0.0], [0.0, 0.5]])
    np.testing.assert_allclose(similar.combine_views(views), [2 ** -0.5, 2 ** -0.5], rtol=1e-6)
    groups = np.array([0, 1, 0])
    vectors = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 4.0]])
    np.testing.assert_allclose(similar.combine_views(vectors, groups), [[2 ** -0.5, 2 ** -0.5], [0.0, 1.0]], rtol=1e-6)
    assert np.allclose(similar.normalise(np.zeros((1, 3))), 0.0)  # a blank embedding stays blank, no NaN


def test_nearest_is_exact_and_honours_exclusions():
    rng = np.random.default_rng(1)
    vectors = similar.normalise(rng.normal(size=(500, 16)))
    queries = similar.normalise(rng.normal(size=(7, 16)))
    idx, sims = similar.nearest(vectors, queries, 5)
    brute = np.argsort(-(queries @ vectors.T), axis=1)[:, :5]
    np.testing.assert_array_equal(idx, brute)
    np.testing.assert_allclose(sims, np.take_along_axis(queries @ vectors.T, brute, 1), rtol=1e-6)
    idx, _ = similar.nearest(vectors, vectors[:3], 4, exclude=[0, 1, 2])
    assert all(i not in row for i, row in enumerate(idx))
    assert idx.shape == (3, 4)
    assert similar.nearest(vectors[:3], vectors[:1], 10)[0].shape == (1, 3)  # k beyond the index: all of it


def test_k_is_checked_and_its_bounds_are_the_commands():
    assert (similar.DEFAULT_K, similar.MAX_K) == (SIMILAR_K, SIMILAR_MAX_K)
    for bad in (0, -1, SIMILAR_MAX_K + 1):
        with pytest.raises(similar.SimilarityError, match="1 to 200"):
            similar.check_k(bad)


def _toy_index(labels: list[str], centres: np.ndarray, seed: int = 0) -> similar.SimilarityIndex:
    """An index of one-view glitches near given centres, without a model."""
    rng = np.random.default_rng(seed)
    rows = [{"path": f"/d/{lab}/H1_g{i:04d}_spectrogram_1.0.png", "label": lab, "split": "train",
             "gravityspy_id": f"g{i:04d}", "ifo": "H1", "duration": 1.0} for i, lab in enumerate(labels)]
    vectors = similar.normalise(centres + 0.05 * rng.normal(size=centres.shape))
    return similar.SimilarityIndex.from_vectors("toy", "toy", pd.DataFrame(rows), vectors)


def test_label_audit_ranks_the_glitch_labelled_against_its_neighbours_first():
    rng = np.random.default_rng(2)
    a, b = similar.normalise(rng.normal(size=(2, 8)))
    centres = np.array([a] * 12 + [b] * 12)
    labels = ["Blip"] * 12 + ["Whistle"] * 12
    labels[3] = "Whistle"  # a Blip labelled Whistle, among Blips
    audit = similar.label_audit(_toy_index(labels, centres), k=6)
    assert audit["glitch"].iloc[0] == "H1_g0003"
    assert audit["label"].iloc[0] == "Whistle" and audit["neighbours_say"].iloc[0] == "Blip"
    assert audit["disagreeing"].iloc[0] == 1.0
    assert (audit["disagreeing"] > 0.5).all()
    assert len(audit) == 1  # the Blips beside it still agree with most of theirs


def test_map_is_seeded_cached_and_places_a_new_glitch_among_its_likes(tmp_path):
    rng = np.random.default_rng(3)
    a, b = similar.normalise(rng.normal(size=(2, 8)))
    index = _toy_index(["Blip"] * 15 + ["Whistle"] * 15, np.array([a] * 15 + [b] * 15))
    first = similar.dataset_map(index, seed=4, cache_dir=tmp_path)
    assert list(first.columns) == similar.MAP_COLUMNS and len(first) == 30
    assert list(tmp_path.glob("toy-map-seed4-n30.npy"))
    again = similar.dataset_map(index, seed=4, cache_dir=tmp_path / "fresh")  # computed again: same seed, same map
    np.testing.assert_allclose(first[["x", "y"]], again[["x", "y"]], rtol=1e-4, atol=1e-4)
    blips = first[first["label"] == "Blip"][["x", "y"]].to_numpy()
    whistles = first[first["label"] == "Whistle"][["x", "y"]].to_numpy()
    x, y = similar.place_on_map(index, first, a)
    assert np.linalg.norm(blips.mean(0) - (x, y)) < np.linalg.norm(whistles.mean(0) - (x, y))
    sample = similar.dataset_map(index, seed=4, max_glitches=10, cache_dir=tmp_path)
    assert len(sample) == 10
    with pytest.raises(similar.SimilarityError, match="at least 4"):
        similar.dataset_map(_toy_index(["Blip"] * 3, np.array([a] * 3)), cache_dir=tmp_path)


def test_queries_name_glitches_by_key_id_and_gps_time():
    table = pd.DataFrame({"glitch": ["H1_abc", "L1_1238507926.0625", "H1_1238507926.0625"],
                          "gravityspy_id": ["abc", "1238507926.0625", "1238507926.0625"]})
    meta = pd.DataFrame({"gravityspy_id": ["abc"], "event_time": [1126259462.4]})
    times = similar.event_times(table, meta)
    assert similar.find_glitches(table, times, "H1_abc") == ["H1_abc"]
    assert similar.find_glitches(table, times, "abc") == ["H1_abc"]
    assert similar.find_glitches(table, times, "1126259462.6") == ["H1_abc"]  # 0.2 s away: within tolerance
    assert similar.find_glitches(table, times, "1126259465") == []
    assert sorted(similar.find_glitches(table, times, "1238507926.3")) == ["H1_1238507926.0625",
                                                                          "L1_1238507926.0625"]
    assert similar.find_glitches(table, times, "Blip") == []


# ------------------------------------------------------------------------------- a simulated dataset, a real model


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> Path:
    from glitchnet.simulate import simulate_dataset

    return simulate_dataset(tmp_path_factory.mktemp("sim") / "sim", per_class=3, seed=5, workers=1)


@pytest.fixture(scope="module")
def shipped() -> Checkpoint:
    path = default_model_path()
    if not path.is_file():
        pytest.skip(f"the shipped model is missing ({path.name})")
    return load_checkpoint(path)


@pytest.mark.slow
def test_neighbours_are_the_glitchs_other_views_and_its_class(simulated, shipped, tmp_path):
    scan = scan_dataset(simulated, view="all")
    index = similar.build_index(scan, shipped, cache_dir=tmp_path / "idx", image_cache_dir=tmp_path / "img")
    assert len(index) == 3 * len(scan.class_set.names)
    assert index.view_vectors.shape == (len(scan.manifest), shipped.width)
    np.testing.assert_allclose(np.linalg.norm(index.glitch_vectors, axis=1), 1.0, rtol=1e-5)
    # each view's five nearest views hold another view of its own glitch
    own = [(index.search_views(index.view_vectors[i], k=5, exclude=i)["glitch"] == index.views["glitch"][i]).any()
           for i in range(len(index.views))]
    assert np.mean(own) >= 0.9
    # a glitch's nearest other glitch is of its class far more often than chance (1 in 22)
    same = [index.search(index.glitch_vectors[g], k=1, exclude=index.glitches["glitch"][g])["label"].iloc[0]
            == index.glitches["label"][g] for g in range(len(index))]
    assert np.mean(same) >= 0.6
    blip = index.glitches.index[index.glitches["label"] == "Blip"][0]
    found = index.search(index.glitch_vectors[blip], k=3)
    assert found["glitch"].iloc[0] == index.glitches["glitch"][blip]  # itself, unless excluded
    assert found["similarity"].iloc[0] == pytest.approx(1.0, abs=1e-5)
    assert list(found.columns) == similar.RESULT_COLUMNS


@pytest.mark.slow
def test_index_is_cached_per_checkpoint_and_dataset(simulated, shipped, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(simulated, data)
    scan = scan_dataset(data, view="all")
    first = similar.build_index(scan, shipped, cache_dir=tmp_path / "idx", image_cache_dir=tmp_path / "img")

    class NoModel(torch.nn.Module):
        def features(self, x):
            raise AssertionError("the cached index was not used")

    again = similar.build_index(scan, shipped, model=NoModel(), cache_dir=tmp_path / "idx",
                                image_cache_dir=tmp_path / "img")
    np.testing.assert_array_equal(first.view_vectors, again.view_vectors)
    assert again.key == first.key
    other = Checkpoint(state_dict=GlitchNet().state_dict())  # another model: another key
    assert similar.index_key(other, scan.manifest["path"]) != first.key
    victim = Path(scan.manifest["path"].iloc[0])
    victim.write_bytes(b"not a png")  # a changed file: another key, and the undecodable image is left out
    rescan = scan_dataset(data, view="all", check_images=False)
    rebuilt = similar.build_index(rescan, shipped, cache_dir=tmp_path / "idx", image_cache_dir=tmp_path / "img")
    assert rebuilt.key != first.key
    assert str(victim) in rebuilt.errors and len(rebuilt.views) == len(first.views) - 1


@pytest.mark.slow
def test_similar_command_answers_files_ids_and_gps_times(simulated, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GLITCHNET_CACHE_DIR", str(tmp_path / "cache"))
    scan = scan_dataset(simulated, view="all")
    row = scan.manifest[scan.manifest["label"] == "Koi_Fish"].iloc[0]
    key = f"{row['ifo']}_{row['gravityspy_id']}"
    views = scan.manifest[scan.manifest["gravityspy_id"] == row["gravityspy_id"]]["path"].tolist()
    gps = float(scan.metadata.set_index("gravityspy_id").loc[row["gravityspy_id"], "event_time"])
    assert main(["similar", "--data", str(simulated), "-k", "4", "--json", *views, key, f"{gps + 0.1:.4f}"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [q["query"] for q in lines] == [key, key, f"{gps + 0.1:.4f} ({key})"]
    by_file, by_id, by_time = lines
    assert by_file["views"] == 4 and len(by_file["neighbours"]) == 4
    assert by_file["neighbours"][0]["glitch"] == key  # its own files are in the dataset
    assert by_file["neighbours"][0]["similarity"] == pytest.approx(1.0, abs=1e-5)
    assert key not in [n["glitch"] for n in by_id["neighbours"]]  # a dataset glitch is not its own neighbour
    assert by_id["neighbours"] == by_time["neighbours"]
    assert set(by_id["neighbours"][0]) == {"rank", "glitch", "label", "ifo", "gravityspy_id", "similarity", "path",
                                           "paths"}
    notes = tmp_path / "notes.png"
    notes.write_bytes(b"not an image")
    assert main(["similar", "--data", str(simulated), "-k", "2", views[0], str(notes)]) == 2  # as predict: bad input
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{key} (1 view): the 2 most similar glitches in {simulated.name}")
    assert "Koi_Fish" in out[1] and out[3].startswith(f"{notes}: error: ")
    assert len(out) == 4


def test_similar_command_refuses_bad_input_in_one_line(kaggle_dataset, capsys):
    assert main(["similar", "--data", str(kaggle_dataset), "-k", "0", "x"]) == 2
    assert "1 to 200" in capsys.readouterr().err
    assert main(["similar", "--data", str(kaggle_dataset), "H1_nosuchglitch"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "neither a file nor a glitch id or GPS time of kaggle" in err
    assert main(["similar", "--data", str(kaggle_dataset / "missing"), "x"]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_a_background_build_reports_progress_ends_in_an_index_and_stops_when_asked():
    index = _toy_index(["Blip"] * 3, np.eye(3, 8))

    def build(progress):
        for done in range(1, 4):
            progress("embedding", done, 3)
        return index

    done = similar.IndexBuild(build)
    assert done.finished.wait(10) and done.index is index and done.error is None
    assert (done.stage, done.done, done.total, done.fraction) == ("embedding", 3, 3, 1.0)

    started = threading.Event()

    def endless(progress):
        while True:
            progress("decoding", 1, 2)
            started.set()

    running = similar.IndexBuild(endless)
    assert started.wait(10)
    similar._stop_builds()  # what the process does at exit
    assert running.finished.is_set() and running.index is None and "stopped" in running.error
    assert running not in similar._BUILDS
