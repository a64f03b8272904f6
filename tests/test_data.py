"""Dataset discovery in every layout, and the decoded-image cache."""

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_kaggle, synthetic_crop

from glitchnet.data import DatasetError, load_cached, scan_dataset, split_of_id
from glitchnet.glitches import examples_by_class
from glitchnet.images import canonical_uint8


def test_kaggle_doubled_layout(kaggle_dataset):
    scan = scan_dataset(kaggle_dataset, view="1.0")
    assert scan.layout == "kaggle"
    m = scan.manifest
    assert list(m.columns) == ["path", "label", "split", "gravityspy_id", "ifo", "duration"]
    assert m.groupby("split").size().to_dict() == {"test": 6, "train": 12, "validation": 6}
    assert set(m["duration"]) == {1.0} and set(m["ifo"]) == {"H1"}
    assert set(m["label"]) == {"Blip", "Koi_Fish", "Power_Line"}
    assert len(scan.skipped) == 0


def test_example_images_one_per_class_in_split_order(kaggle_dataset):
    scan = scan_dataset(kaggle_dataset)
    assert not scan.simulated  # no simulator marker: the field guide does not call these simulated
    m = scan.manifest
    first = examples_by_class(m)
    assert first == {c: min(m[(m["label"] == c) & (m["split"] == "train") & (m["duration"] == 1.0)]["path"])
                     for c in ("Blip", "Koi_Fish", "Power_Line")}
    assert all(Path(p).parent.parent.name == "test" for p in examples_by_class(m, splits=("test", "train")).values())


def test_all_views_are_separate_samples(kaggle_dataset):
    m = scan_dataset(kaggle_dataset, view="all").manifest
    assert len(m) == 4 * 24
    views = m.groupby("gravityspy_id")["duration"].apply(lambda d: tuple(sorted(d)))
    assert set(views) == {(0.5, 1.0, 2.0, 4.0)} and len(views) == 24
    with pytest.raises(DatasetError, match="view must be"):
        scan_dataset(kaggle_dataset, view="3.0")


def test_kaggle_single_layout(tmp_path):
    root = make_kaggle(tmp_path / "k", doubled=False, durations=(2.0,))
    m = scan_dataset(root, view="2.0").manifest
    assert len(m) == 24 and set(m["split"]) == {"train", "validation", "test"}


def test_zenodo_class_folders_split_by_glitch_id(tmp_path):
    base = tmp_path / "zenodo" / "H1L1"
    for cls in ("Blip", "Whistle"):
        (base / cls).mkdir(parents=True)
        for k in range(30):
            for dur in (0.5, 1.0, 2.0, 4.0):
                synthetic_crop(0, k, (64, 64)).save(base / cls / f"L1_{cls[:2]}{k:08d}_spectrogram_{dur}.png")
    scan = scan_dataset(tmp_path / "zenodo", view="all", check_images=False)
    assert scan.layout == "class-folders"
    m = scan.manifest
    assert len(m) == 240
    # the four views of one glitch never straddle splits, and the split is the id's
    assert (m.groupby("gravityspy_id")["split"].nunique() == 1).all()
    assert all(s == split_of_id(g) for g, s in zip(m["gravityspy_id"], m["split"]))
    assert set(m["split"]) == {"train", "validation", "test"}
    assert split_of_id("Bl00000001") == split_of_id("Bl00000001")


def test_metadata_sample_type_wins(tmp_path):
    root = make_kaggle(tmp_path / "k", durations=(1.0,))
    m0 = scan_dataset(root).manifest
    gid = m0.loc[m0["split"] == "train", "gravityspy_id"].iloc[0]
    pd.DataFrame({"gravityspy_id": [gid], "label": ["Blip"], "sample_type": ["test"]}).to_csv(
        root / "trainingset_v1d1_metadata.csv", index=False)
    scan = scan_dataset(root)
    assert scan.metadata is not None and len(scan.metadata) == 1
    assert scan.manifest.set_index("gravityspy_id").loc[gid, "split"] == "test"


def test_junk_is_skipped_and_reported(tmp_path):
    root = make_kaggle(tmp_path / "k", durations=(1.0,))
    train = root / "train" / "train"
    (train / "Not_A_Class").mkdir()
    synthetic_crop(0, 0).save(train / "Not_A_Class" / "H1_zzzzzzzzzz_spectrogram_1.0.png")
    (train / "Chirp").mkdir()  # empty class folder
    (train / "Blip" / "notes.txt").write_text("hello")
    (train / "Blip" / "H1_broken0000_spectrogram_1.0.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (train / "Blip" / "H1_empty00000_spectrogram_1.0.png").write_bytes(b"")
    # a glitch id filed under two classes: the second copy is reported, not used twice
    dup = next((train / "Koi_Fish").glob("*.png"))
    shutil.copy(dup, train / "Blip" / dup.name)
    scan = scan_dataset(root)
    reasons = dict(zip(scan.skipped["path"].map(lambda p: os.path.basename(p)), scan.skipped["reason"]))
    assert reasons["Not_A_Class"].startswith("unknown class folder")
    assert reasons["Chirp"] == "empty class folder"
    assert reasons["notes.txt"] == "not an image file"
    assert reasons["H1_broken0000_spectrogram_1.0.png"].startswith("unreadable image")
    assert reasons["H1_empty00000_spectrogram_1.0.png"] == "empty file"
    assert reasons[dup.name].startswith("duplicate glitch id")
    assert len(scan.manifest) == 24


def test_not_a_dataset(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("x")
    with pytest.raises(DatasetError, match="holds no Gravity Spy images"):
        scan_dataset(tmp_path)
    with pytest.raises(DatasetError, match="no such folder"):
        scan_dataset(tmp_path / "nope")


def test_cache_matches_uncached_and_is_reused(kaggle_dataset, tmp_path):
    paths = scan_dataset(kaggle_dataset).manifest["path"].tolist()
    cache = tmp_path / "cache"
    first = load_cached(paths, cache_dir=cache)
    direct = np.stack([canonical_uint8(p) for p in paths])
    assert np.array_equal(np.asarray(first.images), direct)
    files = sorted(cache.glob("*.u8"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    again = load_cached(paths, cache_dir=cache, workers=2)
    assert np.array_equal(np.asarray(again.images), direct)
    assert files[0].stat().st_mtime_ns == mtime and len(list(cache.glob("*.u8"))) == 1


def test_cache_invalidated_by_changed_image_and_preprocessing(kaggle_dataset, tmp_path):
    paths = scan_dataset(kaggle_dataset).manifest["path"].tolist()
    cache = tmp_path / "cache"
    load_cached(paths, cache_dir=cache)
    synthetic_crop(2, 999).save(paths[0])
    os.utime(paths[0], ns=(1, 1))  # even with an old timestamp the size or mtime differs
    changed = load_cached(paths, cache_dir=cache)
    assert np.array_equal(np.asarray(changed.images[0]), canonical_uint8(paths[0]))
    assert len(list(cache.glob("*.u8"))) == 2
    small = load_cached(paths, cache_dir=cache, size=112)
    assert small.images.shape == (len(paths), 112, 112, 3)
    assert len(list(cache.glob("*.u8"))) == 3


def test_cache_records_undecodable_files(tmp_path):
    good = tmp_path / "H1_good000000_spectrogram_1.0.png"
    synthetic_crop(0, 1).save(good)
    bad = tmp_path / "H1_bad0000000_spectrogram_1.0.png"
    data = good.read_bytes()
    bad.write_bytes(data[: len(data) // 3])
    c = load_cached([str(good), str(bad)], cache_dir=tmp_path / "c")
    assert c.ok.tolist() == [True, False]
    assert "truncated" in c.errors[str(bad)] or "damaged" in c.errors[str(bad)]
