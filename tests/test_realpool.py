"""The real pool: images grouped by glitch, near-duplicates joined, folds that never split a glitch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from glitchnet.images import energy_to_rgb
from glitchnet.realpool import SOURCES, RealPool, duplicate_groups, glitch_folds, load_real_pool, scan_real_pool


def _energy_image(seed: int, row: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    energy = rng.exponential(1.0, (224, 224)).astype(np.float32)
    energy[row:row + 12, 40:180] += 18.0
    return energy_to_rgb(energy)


def test_duplicates_join_glitches_and_distinct_images_stay_apart():
    a, b, c = _energy_image(0, 50), _energy_image(1, 150), _energy_image(2, 100)
    near_a = a.copy()
    near_a[:4] = 0  # a re-encoded copy: almost the same picture
    groups = duplicate_groups(np.stack([a, b, near_a, c]), np.array(["g1", "g2", "g3", "g4"]))
    assert groups[0] == groups[2]
    assert len({groups[0], groups[1], groups[3]}) == 3


def test_scan_groups_views_by_glitch(real):
    table = scan_real_pool(real)
    glitches = table.groupby("glitch").agg(source=("source", "first"), views=("path", "size"))
    counts = glitches.groupby("source").size().to_dict()
    assert counts["golden"] == 69 and counts["gravityspy-examples"] == 50
    assert counts["zooniverse-hobbyist-labels"] == 155
    # a golden GIF is one glitch with four views; a JPG one view
    gif = table[table["path"].str.endswith("Blip/blip-2.gif")]
    assert gif["glitch"].nunique() == 1 and gif["view"].tolist() == ["0.5", "1.0", "2.0", "4.0"]
    # the LaTeX rendering of the placeholder Scratchy fixture is the same glitch as the plain one
    assert glitches.loc["L1_123abc1234", "views"] == 8
    # every O1/O2 class is among the golden subjects; the O3 sources add the two O3-only classes
    assert set(table["label"]) == set(table[table["source"] == "golden"]["label"]) | {"Fast_Scattering",
                                                                                     "Blip_Low_Frequency"}
    o3 = glitches[glitches["source"] == "o3-scattering"]
    assert len(o3) == 766 and (o3["views"] == 1).all()  # GPS-time names: one 4.0 s view per glitch
    assert set(table[table["source"] == "golden-o3-only"]["label"]) == {"Fast_Scattering", "Blip_Low_Frequency"}
    assert set(table["source"]) == set(SOURCES)  # every documented folder is read, and nothing else


@pytest.fixture(scope="module")
def pool(real) -> RealPool:
    return load_real_pool(real, sources=("golden", "scratchy-fixtures", "scratchy-fixtures-latex"))


@pytest.mark.slow
def test_folds_never_split_a_glitch(pool):
    folds = glitch_folds(pool, k=3, seed=0)
    assert set(folds.tolist()) == {0, 1, 2}
    per_glitch = pool.table.assign(fold=folds).groupby("group")["fold"].nunique()
    assert per_glitch.max() == 1
    # stratified: each of the golden classes (3 glitches each) has one glitch in each fold
    golden = pool.table.assign(fold=folds)[pool.table["source"] == "golden"]
    spread = golden.groupby("label")["glitch"].nunique()
    assert spread.min() >= 3
    assert pool.images.shape[1:] == (224, 224, 3) and pool.images.dtype == np.uint8


def test_o3_glitches_of_one_train_are_one_group():
    """Scattering comes in trains seconds apart: glitches less than TRAIN_GAP_S apart never straddle a fold."""
    images = np.stack([_energy_image(s, 30 + 20 * s) for s in range(4)])
    keys = np.array(["L1_1238507926.0625", "L1_1238507950.5", "L1_1238508100.0", "golden/Blip/blip-1"])
    groups = duplicate_groups(images, keys)
    assert groups[0] == groups[1]  # 24 s apart: one train
    assert len({groups[0], groups[2], groups[3]}) == 3  # 150 s later, and a glitch named otherwise


def test_leave_source_out_masks_hold_out_a_source_with_everything_joined_to_it():
    from glitchnet.realpool import SOURCE_GROUPS, leakage_mask, source_folds

    table = pd.DataFrame({"source": ["golden", "golden", "zooniverse-hobbyist-labels", "scratchy-fixtures",
                                     "scratchy-fixtures-latex", "o3-scattering"],
                          "label": ["Blip", "Whistle", "Blip", "Scratchy", "Scratchy", "Koi_Fish"],
                          "glitch": ["g1", "g2", "h1", "s1", "s1", "L1_1.0"], "group": [0, 1, 0, 3, 3, 5]})
    pool = RealPool(np.zeros((6, 224, 224, 3), np.uint8), table)
    masks = source_folds(pool)
    assert set(masks) == set(SOURCE_GROUPS) - {"gravityspy-examples"}  # only sources the pool holds
    assert masks["scratchy-fixtures"].tolist() == [False, False, False, True, True, False]  # the LaTeX copy too
    # the hobbyist copy of a golden glitch (same group) must not train the model scored on golden
    assert leakage_mask(pool, masks["golden"]).tolist() == [True, True, True, False, False, False]
