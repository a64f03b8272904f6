"""Class sets as data: the O1/O2 and O3 taxonomies, choosing one from a dataset, training and loading across them."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import make_kaggle

from glitchnet import classes as cs
from glitchnet.checkpoint import Checkpoint, load_checkpoint, read_description
from glitchnet.cli import main
from glitchnet.data import scan_dataset

SHIPPED_SIM = Path(__file__).resolve().parents[1] / "models" / "glitchnet-sim.pt"


def test_the_two_shipped_sets():
    o1o2, o3 = cs.get_class_set("gravityspy-o1o2"), cs.get_class_set("gravityspy-o3")
    assert len(o1o2) == 22 and o1o2.names == cs.CLASSES
    assert len(o3) == 23
    assert set(o3.names) == (set(o1o2.names) - {"None_of_the_Above"}) | {"Blip_Low_Frequency", "Fast_Scattering"}
    assert list(o3.names) == sorted(o3.names)  # alphabetical, as Kaggle's folders list them
    assert o3.index("Fast_Scattering") == 7 and o3.class_info("Fast_Scattering").band_hz == (10.0, 60.0)
    with pytest.raises(ValueError, match="unknown class set"):
        cs.get_class_set("gravityspy-o4")
    with pytest.raises(ValueError, match="unknown class 'Crown' for gravityspy-o3"):
        o3.index("Crown")


def test_mapping_between_sets_is_written_once():
    o1o2, o3 = cs.get_class_set("gravityspy-o1o2"), cs.get_class_set("gravityspy-o3")
    assert cs.map_label("Blip", o3) == "Blip" and cs.map_label("Blip", o1o2) == "Blip"
    assert cs.map_label("None_of_the_Above", o3) is None
    assert cs.map_label("Fast_Scattering", o1o2) is None and cs.map_label("Blip_Low_Frequency", o1o2) is None
    assert cs.map_label("Crown", o3) == "Fast_Scattering" and cs.map_label("LowFreqBlip", o3) == "Blip_Low_Frequency"


@pytest.mark.parametrize(("folders", "choice", "expected", "note"), [
    (["Blip", "Koi_Fish"], "auto", "gravityspy-o1o2", "covers every class folder"),
    (["Blip", "Fast_Scattering", "Koi_Fish"], "auto", "gravityspy-o3", "covers every class folder"),
    (["Blip", "Crown"], "auto", "gravityspy-o3", "covers every class folder"),  # a volunteer workflow's name
    (["Blip", "Koi_Fish", "70HzLine"], "auto", "gravityspy-o1o2", "skipped: 70HzLine"),
    (["Cat", "Dog"], "auto", "folders:2", "the dataset's own 2 class folders"),
    (["Blip", "Fast_Scattering"], "gravityspy-o1o2", "gravityspy-o1o2", "skipped: Fast_Scattering"),
    (["Blip", "Koi_Fish", "70HzLine"], "folders", "folders:3", "own 3 class folders"),
])
def test_choose_class_set(folders, choice, expected, note):
    chosen, line = cs.choose_class_set(folders, choice)
    assert chosen.name == expected
    assert note in line and "\n" not in line


def test_class_names_from_files_are_checked():
    with pytest.raises(ValueError, match="not a plain word"):
        cs.check_class_names(["Blip", "[x](http://e.x)"])
    with pytest.raises(ValueError, match="2 to 64"):
        cs.check_class_names(["Blip"])
    with pytest.raises(ValueError, match="named twice"):
        cs.check_class_names(["Blip", "Blip"])


def test_a_kaggle_folder_with_o3_classes_is_read_as_the_o3_set(tmp_path):
    root = make_kaggle(tmp_path / "o3", classes=("Blip", "Fast_Scattering", "Koi_Fish"), durations=(1.0,),
                       per_split={"train": 2, "validation": 1})
    scan = scan_dataset(root)
    assert scan.class_set.name == "gravityspy-o3" and "gravityspy-o3" in scan.class_note
    assert set(scan.manifest["label"]) == {"Blip", "Fast_Scattering", "Koi_Fish"}
    labels = scan.labels()
    assert set(labels) == {cs.GRAVITYSPY_O3.index(c) for c in ("Blip", "Fast_Scattering", "Koi_Fish")}
    # read with the O1/O2 set, the O3-only folder is named and skipped, not silently dropped
    old = scan_dataset(root, classes="gravityspy-o1o2")
    assert "Fast_Scattering" not in set(old.manifest["label"])
    assert old.skipped["reason"].str.contains("not a class of gravityspy-o1o2").sum() == 2  # train and validation


def test_train_and_evaluate_a_23_class_model_from_o3_folders(tmp_path, capsys):
    root = make_kaggle(tmp_path / "o3", classes=("Fast_Scattering", "Blip_Low_Frequency", "Koi_Fish"), durations=(1.0,),
                       per_split={"train": 3, "validation": 2, "test": 2})
    out = tmp_path / "o3.pt"
    assert main(["train", "--data", str(root), "--out", str(out), "--epochs", "1", "--width", "8",
                 "--precise-bn", "0", "--batch-size", "4"]) == 0
    printed = capsys.readouterr().out
    assert "classes: Gravity Spy O3, 23 classes (gravityspy-o3)" in printed
    ckpt = load_checkpoint(out)
    assert len(ckpt.classes) == 23 and ckpt.class_set.name == "gravityspy-o3"
    assert ckpt.build_model().fc.out_features == 23
    assert main(["evaluate", "--data", str(root), "--model", str(out), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == 6 and set(metrics["per_class"]) == set(cs.GRAVITYSPY_O3.names)
    assert sum(m["support"] for m in metrics["per_class"].values()) == 6


def test_train_on_a_taxonomy_of_ones_own(tmp_path, capsys):
    root = make_kaggle(tmp_path / "own", classes=("Cat", "Dog"), durations=(1.0,),
                       per_split={"train": 3, "validation": 1})
    out = tmp_path / "own.pt"
    assert main(["train", "--data", str(root), "--out", str(out), "--epochs", "1", "--width", "8",
                 "--precise-bn", "0", "--batch-size", "4"]) == 0
    assert "the dataset's own 2 class folders" in capsys.readouterr().out
    ckpt = read_description(out)
    assert ckpt.classes == ["Cat", "Dog"] and not ckpt.class_set.known
    assert main(["train", "--data", str(root), "--out", str(tmp_path / "x.pt"), "--classes", "gravityspy-o7"]) == 2


def test_an_old_22_class_checkpoint_loads_unchanged(tmp_path):
    """A checkpoint written before class sets (no ``class_set`` key) loads as the O1/O2 set with the same output."""
    import torch

    from glitchnet.model import GlitchNet

    torch.manual_seed(0)
    net = GlitchNet(width=8)
    payload = Checkpoint(state_dict=net.state_dict(), width=8).to_payload()
    payload.pop("class_set")
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    ckpt = load_checkpoint(old)
    assert ckpt.classes == list(cs.CLASSES) and ckpt.class_set.name == "gravityspy-o1o2"
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(ckpt.build_model()(x), net.eval()(x), atol=1e-5)
    if SHIPPED_SIM.is_file():  # the shipped simulated-only model predates class sets
        with zipfile.ZipFile(SHIPPED_SIM) as archive:
            pickled = archive.read(next(n for n in archive.namelist() if n.endswith("/data.pkl")))
        assert b"class_set" not in pickled
        shipped = load_checkpoint(SHIPPED_SIM)
        assert shipped.class_set.name == "gravityspy-o1o2" and len(shipped.classes) == 22


def test_an_o3_model_starts_from_an_o1o2_one_keeping_the_shared_classes():
    import torch

    from glitchnet.model import GlitchNet
    from glitchnet.train import load_initial_weights

    torch.manual_seed(0)
    start = Checkpoint(state_dict=GlitchNet(width=8).state_dict(), width=8)
    o3 = cs.GRAVITYSPY_O3
    model = GlitchNet(num_classes=len(o3), width=8)
    fresh = model.fc.weight.detach().clone()
    load_initial_weights(model, start, list(o3.names))
    for name in o3.names:
        row = model.fc.weight[o3.index(name)].detach()
        if name in cs.CLASSES:
            assert torch.equal(row, start.state_dict["fc.weight"][cs.CLASSES.index(name)])
        else:  # Fast_Scattering, Blip_Low_Frequency: no O1/O2 counterpart, a fresh row
            assert torch.equal(row, fresh[o3.index(name)])
    assert torch.equal(model.conv1.weight, start.state_dict["conv1.weight"])


def _band_energy(label: str, seed: int, duration: float) -> tuple[np.ndarray, np.ndarray]:
    """(energy of the 4.0 s view, row frequencies in Hz) of a simulated glitch, rows top (2048 Hz) to bottom."""
    from glitchnet.images import rgb_to_energy
    from glitchnet.simulate import simulate_glitch

    views, _ = simulate_glitch(label, seed)
    energy = rgb_to_energy(np.asarray(views[duration].convert("RGB"))).astype(float)
    rows = energy.shape[0]
    freqs = 2048.0 * (10.0 / 2048.0) ** (np.arange(rows) / (rows - 1))
    return energy, freqs


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_simulated_fast_scattering_is_a_train_of_short_low_arches(seed):
    energy, freqs = _band_energy("Fast_Scattering", seed, 4.0)
    band = (freqs > 12) & (freqs < 64)
    loud = energy > 12
    assert loud[band].sum() > 0.9 * loud.sum()  # the glitch's energy sits at 10-60 Hz
    profile = energy[band].mean(0)
    seconds_per_px = 4.0 / profile.size
    loud = profile > profile.min() + 0.5 * (profile.max() - profile.min())
    starts = np.flatnonzero(loud[1:] & ~loud[:-1])
    assert len(starts) >= 3  # several arches, not one blob
    spacing = np.diff(starts) * seconds_per_px
    assert 0.15 <= spacing.min() <= 0.4  # neighbours 0.2-0.4 s apart, as in the real trains (some arches fade out)
    assert spacing.max() < 1.2


def test_simulated_low_frequency_blip_stays_below_100_hz():
    for seed in range(3):
        energy, freqs = _band_energy("Blip_Low_Frequency", seed, 0.5)
        loud = energy > 15
        assert loud.any() and freqs[loud.any(1)].max() < 130
        blip, _ = _band_energy("Blip", seed, 0.5)
        assert freqs[(blip > 15).any(1)].max() > freqs[loud.any(1)].max()


def test_simulate_the_o3_set(tmp_path):
    out = tmp_path / "sim"
    assert main(["simulate", "--out", str(out), "--per-class", "1", "--classes", "gravityspy-o3",
                 "--workers", "1"]) == 0
    folders = {p.name for p in (out / "train").iterdir()}
    assert folders == set(cs.GRAVITYSPY_O3.names)
    assert scan_dataset(out, view="all").class_set.name == "gravityspy-o3"


def test_the_quiz_draws_only_glitches_the_model_can_name(tmp_path):
    from glitchnet.glitches import random_glitch

    root = make_kaggle(tmp_path / "d", classes=("Blip", "None_of_the_Above", "Koi_Fish"), durations=(1.0,),
                       per_split={"train": 2})
    manifest = scan_dataset(root).manifest
    rng = np.random.default_rng(0)
    drawn = {random_glitch(manifest, rng, classes=cs.GRAVITYSPY_O3.names)[0] for _ in range(30)}
    assert drawn == {"Blip", "Koi_Fish"}
    assert "None_of_the_Above" in {random_glitch(manifest, rng)[0] for _ in range(30)}
