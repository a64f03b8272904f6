"""Checkpoints: atomic writes, self-description, and refusal of anything that is not GlitchNet's."""

import dataclasses
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from glitchnet.checkpoint import Checkpoint, CheckpointError, load_checkpoint, read_description, save_checkpoint
from glitchnet.model import GlitchNet
from glitchnet.shipped import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[1]


def _ckpt(**kw):
    torch.manual_seed(0)
    return Checkpoint(state_dict=GlitchNet().state_dict(), **kw)


def test_round_trip(tmp_path):
    path = save_checkpoint(_ckpt(metrics={"accuracy": 0.5}, temperature=1.7), tmp_path / "m.pt")
    back = load_checkpoint(path)
    assert back.metrics == {"accuracy": 0.5} and back.temperature == pytest.approx(1.7)
    assert back.classes[0] == "1080Lines" and len(back.classes) == 22
    assert back.mean == [0.5, 0.5, 0.5] and back.input_size == 224
    assert not list(tmp_path.glob(".*.tmp"))


def test_code_in_a_pickle_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "glitchnet-checkpoint", "payload": Evil()}, path)
    with pytest.raises(CheckpointError, match="could run code"):
        load_checkpoint(path)
    assert not marker.exists()
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError):
        load_checkpoint(raw)
    assert not marker.exists()


def test_description_is_the_checkpoint_without_its_weights(tmp_path):
    path = save_checkpoint(_ckpt(metrics={"validation": {"accuracy": 0.5, "n": 8}}, temperature=1.7, epoch=3,
                                 config={"data": "/data/gs", "epochs": 5}, views=["0.5", "1.0"]), tmp_path / "m.pt")
    described = read_description(path)
    assert described.state_dict == {}
    assert described == dataclasses.replace(load_checkpoint(path), state_dict={})
    shipped = read_description(DEFAULT_MODEL)
    assert shipped == dataclasses.replace(load_checkpoint(DEFAULT_MODEL), state_dict={})
    assert shipped.quality()[0][0] == "Real glitches from unseen sources"


def test_description_needs_no_torch_and_refuses_what_load_refuses(tmp_path):
    code = ("import sys; from glitchnet.checkpoint import read_description; "
            f"c = read_description({str(DEFAULT_MODEL)!r}); print(len(c.classes), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.split() == ["22", "False"]
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"format": "glitchnet-checkpoint", "payload": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="could run code"):  # torch's own reader says why
        read_description(tmp_path / "evil.pt")
    assert not marker.exists()
    (tmp_path / "notes.pt").write_text("hello")
    with pytest.raises(CheckpointError):
        read_description(tmp_path / "notes.pt")


def test_other_files_are_refused_clearly(tmp_path):
    other = tmp_path / "resnet.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), other)
    with pytest.raises(CheckpointError, match="not a GlitchNet checkpoint"):
        load_checkpoint(other)
    good = save_checkpoint(_ckpt(), tmp_path / "good.pt")
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(trunc)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError):
        load_checkpoint(text)
    with pytest.raises(CheckpointError, match="another class list"):
        load_checkpoint(good, expected_classes=["Blip", "Whistle"])
    wrong = _ckpt()
    wrong.state_dict = GlitchNet(width=32).state_dict()
    save_checkpoint(wrong, tmp_path / "wrong.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(tmp_path / "wrong.pt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_checkpoint(_ckpt(metrics={"v": 1}), tmp_path / "m.pt")
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(_ckpt(metrics={"v": 2}), path)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_quality_leads_with_the_real_figure():
    ckpt = _ckpt(metrics={"validation": {"accuracy": 0.917, "n": 2112},
                          "real_crossval": {"verified": {"accuracy": 0.8, "correct": 100, "glitches": 125,
                                                         "wilson95": [0.72, 0.86]}}},
                 config={"data": "data/sim-shipped-stage3"})
    rows = ckpt.quality()
    assert rows[0][:2] == ("Real glitches (cross-validated)", "80.0%")
    assert "100 of 125" in rows[0][2] and "72%–86%" in rows[0][2]
    assert rows[1] == ("Validation split", "91.7%", "2112 images: the validation split of sim-shipped-stage3")
    assert _ckpt().quality() == []


def test_probabilities_never_read_as_certain_or_impossible():
    from glitchnet.inference import format_probability

    assert format_probability(0.998) == "> 99%"
    assert format_probability(0.994) == "99%"
    assert format_probability(0.003) == "< 1%"
    assert format_probability(0.0) == "0%"
    assert format_probability(0.42) == "42%"


@pytest.mark.parametrize("metrics", [
    {"validation": {"accuracy": float("nan"), "n": 10}},
    {"validation": {"accuracy": "91%", "n": 10}},
    {"validation": {"accuracy": 7, "n": 10}},
    {"validation": 0.9},
    {"real_crossval": {"verified": {"accuracy": 0.8, "correct": 100, "glitches": 125, "wilson95": 3}}},
    {"real_crossval": {"verified": {"accuracy": 0.8, "correct": 100, "glitches": 125,
                                    "wilson95": [float("nan"), float("nan")]}}},
    {"real_crossval": {"verified": {"accuracy": float("nan"), "correct": "x", "glitches": 125,
                                    "wilson95": [0.7, 0.9]}}},
    {"real_crossval": "verified"},
])
def test_figures_that_are_not_fractions_are_left_out(metrics):
    assert _ckpt(metrics=metrics).quality() == []


def test_a_figure_with_a_wrong_count_still_shows():
    rows = _ckpt(metrics={"validation": {"accuracy": 0.5, "n": "many"}}).quality()
    assert rows == [("Validation split", "50.0%", "? images: the validation split of its training data")]


def _scores(correct: int, n: int) -> dict:
    from glitchnet.evaluate import wilson_interval

    return {"glitches": n, "correct": correct, "accuracy": correct / n, "wilson95": list(wilson_interval(correct, n))}


def test_quality_leads_with_the_leave_source_out_figure_then_the_o3_time_blocks():
    lso = {"sources": {"golden": _scores(42, 69), "o3-scattering": _scores(171, 504)}, "mean": 0.474,
           "pooled": _scores(213, 573)}
    o3 = {**_scores(700, 766), "recall": {"Fast_Scattering": {"correct": 250, "glitches": 262}}}
    rows = _ckpt(metrics={"real_leave_source_out": lso, "real_o3_time_blocks": o3,
                          "real_crossval": {"verified": _scores(106, 127)}}).quality()
    assert [r[0] for r in rows] == ["Real glitches from unseen sources", "Real O3 glitches (time blocks held out)",
                                    "Real glitches (cross-validated)"]
    assert rows[0][1] == "47.4%" and "213 of 573" in rows[0][2] and "weakest source o3-scattering 34%" in rows[0][2]
    assert rows[1][1] == "91.4%" and "Fast_Scattering 250 of 262" in rows[1][2]
    # a damaged table is left out, never drawn as nan% or an error
    broken = {**lso, "sources": {"golden": {**_scores(42, 69), "accuracy": float("nan")}}}
    assert [r[0] for r in _ckpt(metrics={"real_leave_source_out": broken}).quality()] == []
