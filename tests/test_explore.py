"""The Explore page's computations (``glitchnet.explore``): filters, counts, samples and metadata rows, by value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from glitchnet import explore


def _manifest() -> pd.DataFrame:
    rows = [  # label, split, ifo, id, duration
        ("Whistle", "train", "H1", "a", 0.5), ("Whistle", "train", "H1", "a", 1.0),
        ("Whistle", "train", "H1", "a", 2.0), ("Whistle", "test", "L1", "b", 1.0),
        ("Blip", "train", "L1", "c", 1.0), ("Blip", "train", "L1", "c", 4.0),
        ("Blip", "validation", "H1", "d", 1.0), ("Blip", "train", None, "e", np.nan),
    ]
    df = pd.DataFrame(rows, columns=["label", "split", "ifo", "gravityspy_id", "duration"])
    return df.assign(path=[f"/data/{i}.png" for i in range(len(df))])


def test_choices_come_in_gravity_spy_order_and_only_when_present():
    m = _manifest()
    assert explore.present_classes(m) == ["Blip", "Whistle"]  # CLASSES order, not the manifest's
    assert explore.present_splits(m) == ["train", "validation", "test"]
    assert explore.present_splits(m[m["split"] != "validation"]) == ["train", "test"]
    assert explore.present_detectors(m) == ["H1", "L1"]  # the None row is not a detector
    assert explore.view_durations(m) == [0.5, 1.0, 2.0, 4.0]
    assert explore.default_duration_index([0.5, 1.0, 2.0]) == 1
    assert explore.default_duration_index([0.5, 2.0]) == 0


def test_filters_keep_rows_matching_every_chosen_value_and_an_empty_choice_keeps_all():
    m = _manifest()
    assert explore.filter_manifest(m).equals(m)
    got = explore.filter_manifest(m, classes=["Blip"], splits=["train"], ifos=["L1"])
    assert got.index.tolist() == [4, 5]
    assert explore.filter_manifest(m, ifos=["H1"])["gravityspy_id"].tolist() == ["a", "a", "a", "d"]
    assert len(m) == 8  # the input is left as it was


def test_counts_are_distinct_glitches_not_images():
    got = explore.glitches_per_class_split(_manifest())
    table = {(r.label, r.split): r.glitches for r in got.itertuples()}
    assert table == {("Blip", "train"): 2, ("Blip", "validation"): 1, ("Whistle", "test"): 1, ("Whistle", "train"): 1}
    assert list(got.columns) == ["label", "split", "glitches"]


def test_samples_are_of_the_class_and_view_repeatable_and_capped():
    m = _manifest()
    rows = explore.sample_rows(m, "Blip", 1.0, 12, seed=0)
    assert sorted(rows.index) == [4, 6, 7]  # the 1 s views and the image of unknown duration, not the 4 s view
    assert explore.sample_rows(m, "Blip", 1.0, 2, seed=3).index.tolist() == \
        explore.sample_rows(m, "Blip", 1.0, 2, seed=3).index.tolist()
    assert len(explore.sample_rows(m, "Blip", 1.0, 2, seed=3)) == 2
    assert sorted(explore.sample_rows(m, "Blip", None, 12, seed=0).index) == [4, 5, 6, 7]
    assert explore.view_rows(m, 4.0).index.tolist() == [5, 7]
    assert explore.class_rows(m, "Whistle").index.tolist() == [0, 1, 2, 3]


def test_glitch_ids_put_the_most_complete_glitch_first_then_by_id():
    m = _manifest()
    assert explore.glitch_ids_by_completeness(m) == ["a", "c", "b", "d"]  # "e" has no Gravity Spy name (no ifo)
    assert explore.glitch_ids_by_completeness(m, "Blip") == ["c", "d"]
    assert explore.glitch_ids_by_completeness(m, "Tomte") == []


def test_a_glitchs_views_come_shortest_first():
    m = _manifest().iloc[[2, 0, 1, 3]]
    assert explore.glitch_views(m, "a")["duration"].tolist() == [0.5, 1.0, 2.0]
    assert explore.glitch_views(m, "a", "Blip").empty


def test_metadata_rows_match_the_selection_and_are_positive():
    meta = pd.DataFrame({"gravityspy_id": ["a", "b", "c", "z"], "label": ["Whistle", "Whistle", "Blip", "Blip"],
                         "peak_frequency": [100.0, 0.0, 50.0, 10.0], "duration": [0.1, 0.2, 0.3, 0.4],
                         "snr": [8.0, 9.0, 10.0, 11.0]})
    assert explore.has_trigger_metadata(meta)
    assert not explore.has_trigger_metadata(meta.drop(columns="snr"))
    assert not explore.has_trigger_metadata(None)
    got = explore.matching_metadata(meta, _manifest())
    assert got["gravityspy_id"].tolist() == ["a", "c"]  # b has a zero peak frequency, z is not in the manifest
    numeric_ids = meta.assign(gravityspy_id=[1, 2, 3, 4])
    ids_as_text = pd.DataFrame({"gravityspy_id": ["3"]})
    assert explore.matching_metadata(numeric_ids, ids_as_text)["snr"].tolist() == [10.0]


def test_summary_and_relative_paths():
    assert explore.dataset_summary(_manifest()) == {"images": 8, "glitches": 5, "classes": 2}
    skipped = pd.DataFrame({"path": ["/data/set/train/Blip/x.png", "/elsewhere/y.png"], "reason": ["r", "s"]})
    got = explore.relative_paths(skipped, Path("/data/set"))
    assert got["path"].tolist() == ["train/Blip/x.png", "y.png"]
    assert skipped["path"].iloc[0] == "/data/set/train/Blip/x.png"


def test_log_axes_tick_per_decade_only_over_decades_and_classes_get_colours_of_their_own():
    from glitchnet.classes import CLASSES
    from glitchnet.explore import class_colours, decade_ticks

    assert decade_ticks([0.05, 3.0]) and decade_ticks([9.0, 150.0])  # 10 and 100 both in range
    assert not decade_ticks([0.2, 0.9]) and not decade_ticks([15.0, 95.0]) and not decade_ticks([40.0, 400.0])
    assert not decade_ticks([]) and not decade_ticks([0.0, -1.0])
    colours = class_colours(CLASSES)
    assert list(colours) == list(CLASSES) and len(set(colours.values())) == len(CLASSES)
    assert all(len(c) == 7 and c.startswith("#") for c in colours.values())
