"""Crafted and damaged checkpoints: every header field checked before anything is built, one line saying what is
wrong, in the library and in every CLI command that reads a model."""

import json
import math

import pytest
import torch

from glitchnet.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from glitchnet.classes import CLASSES
from glitchnet.cli import main
from glitchnet.model import GlitchNet


def _payload() -> dict:
    torch.manual_seed(0)
    return Checkpoint(state_dict=GlitchNet().state_dict()).to_payload()


def _nan_weights(p):
    p["state_dict"]["fc.weight"][0, 0] = float("nan")


def _string_weight(p):
    p["state_dict"]["fc.bias"] = "zeros"


CRAFTED = {
    "width_6000": (lambda p: p.update(width=6000), "width 6000 is not a whole number from 1 to 512"),
    "width_string": (lambda p: p.update(width="64"), "width '64' is not a whole number"),
    "width_mismatch": (lambda p: p.update(width=32), "weights do not fit the glitchnet architecture of width 32"),
    "no_state_dict": (lambda p: p.pop("state_dict"), "holds no weights"),
    "state_dict_string": (lambda p: p.update(state_dict="weights"), "holds no weights"),
    "state_dict_value_string": (_string_weight, "something other than named tensors"),
    "missing_weight": (lambda p: p["state_dict"].pop("fc.bias"), "fc.bias is missing"),
    "empty_views": (lambda p: p.update(views=[]), "views must be a non-empty list"),
    "odd_view": (lambda p: p.update(views=["3.0"]), "views must be a non-empty list"),
    "nan_temperature": (lambda p: p.update(temperature=float("nan")), "temperature nan is not a finite number"),
    "negative_temperature": (lambda p: p.update(temperature=-1.0), "temperature -1.0 is not a finite number above 0"),
    "string_temperature": (lambda p: p.update(temperature="hot"), "temperature hot is not a finite number"),
    "thousand_classes": (lambda p: p.update(classes=[f"c{i}" for i in range(1000)]), "names 1000 classes"),
    "one_class": (lambda p: p.update(classes=["Blip"]), "names 1 classes"),
    # a class name is any plain word (a researcher's own taxonomy), but never markup, a path or a sentence
    "markup_class": (lambda p: p.update(classes=["[x](http://e.x)", *CLASSES[1:]]), "is not a plain word"),
    "path_class": (lambda p: p.update(classes=["../../etc", *CLASSES[1:]]), "is not a plain word"),
    "repeated_class": (lambda p: p.update(classes=[CLASSES[1], *CLASSES[1:]]), "a class is named twice"),
    "too_many_classes": (lambda p: p.update(classes=[f"c{i}" for i in range(65)]), "2 to 64"),
    "classes_string": (lambda p: p.update(classes="Blip"), "class list is missing"),
    "nan_weights": (_nan_weights, "weights hold NaN or infinite values (fc.weight)"),
    "unknown_arch": (lambda p: p.update(arch="resnet50"), "unknown architecture 'resnet50'"),
    "bad_epoch": (lambda p: p.update(epoch="ten"), "epoch 'ten' is not a whole number"),
    "config_list": (lambda p: p.update(config=[1, 2]), "its config is not a table"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_a_crafted_header_is_refused_in_one_line(tmp_path, case, capsys):
    change, message = CRAFTED[case]
    payload = _payload()
    change(payload)
    path = tmp_path / f"{case}.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)
    assert main(["predict", "--model", str(path), str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_a_plain_text_file_is_named_as_one(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("Dear volunteer, these are my notes, not a model.\n")
    with pytest.raises(CheckpointError, match="notes.pt is not a GlitchNet checkpoint: it is a text file") as info:
        load_checkpoint(text)
    assert "could run code" not in str(info.value)
    binary = tmp_path / "noise.pt"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(CheckpointError, match="not a PyTorch file"):
        load_checkpoint(binary)
    with pytest.raises(CheckpointError, match="it is a folder"):
        load_checkpoint(tmp_path)


def test_a_good_checkpoint_still_loads_with_views_written_as_numbers(tmp_path):
    payload = _payload()
    payload["views"] = [0.5, 1, 2.0, 4.0]
    torch.save(payload, tmp_path / "m.pt")
    assert load_checkpoint(tmp_path / "m.pt").views == ["0.5", "1.0", "2.0", "4.0"]


def test_evaluate_reads_the_data_with_the_model_s_own_classes(kaggle_dataset, tmp_path, capsys):
    torch.manual_seed(0)
    five = list(CLASSES[:5])  # 1080Lines, 1400Ripples, Air_Compressor, Blip, Chirp
    path = save_checkpoint(Checkpoint(state_dict=GlitchNet(num_classes=5).state_dict(), classes=five),
                           tmp_path / "five.pt")
    assert load_checkpoint(path).classes == five
    # the dataset's Blip, Koi_Fish, Power_Line: only Blip is one of the model's; the others are named, not scored
    assert main(["evaluate", "--data", str(kaggle_dataset), "--model", str(path)]) == 0
    out = capsys.readouterr().out
    assert "not classes of custom:5, skipped: Koi_Fish, Power_Line" in out
    assert "test: 2 images" in out


def test_json_output_is_always_valid_json():
    from glitchnet.cli import _dumps
    from glitchnet.glitches import Prediction

    nan = Prediction(name="x.png", label="Blip", confidence=float("nan"), top5=[("Blip", float("nan"))])
    assert nan.to_json() == {"path": "x.png", "error": "the model gave no finite answer for this image"}
    assert json.loads(_dumps({"accuracy": math.nan, "per_class": {"Blip": [1.0, math.inf]}})) == {
        "accuracy": None, "per_class": {"Blip": [1.0, None]}}


def zip_bomb_checkpoint(path, extra_bytes: int = 2**20):
    """A valid checkpoint whose ``data.pkl``, deflated in the zip, unpickles to a string in ``config`` longer than
    ``MAX_PICKLE_BYTES``: the file stays small, what it unpacks to does not."""
    import io
    import zipfile

    from glitchnet.checkpoint import MAX_PICKLE_BYTES

    payload = _payload()
    payload["config"] = {"notes": "x" * (MAX_PICKLE_BYTES + extra_bytes)}
    buf = io.BytesIO()
    torch.save(payload, buf)
    with zipfile.ZipFile(buf) as plain_zip, zipfile.ZipFile(path, "w") as out:
        for info in plain_zip.infolist():
            kind = zipfile.ZIP_DEFLATED if info.filename.endswith("data.pkl") else zipfile.ZIP_STORED
            out.writestr(info.filename, plain_zip.read(info), compress_type=kind)
    return path


def test_a_zip_bomb_checkpoint_is_refused_before_unpickling(tmp_path, capsys):
    from glitchnet.checkpoint import MAX_PICKLE_BYTES, read_description

    path = zip_bomb_checkpoint(tmp_path / "bomb.pt")
    assert path.stat().st_size < 1_000_000
    for read in (load_checkpoint, read_description):
        with pytest.raises(CheckpointError) as err:
            read(path)
        text = str(err.value)
        assert "\n" not in text and f"more than the {MAX_PICKLE_BYTES // 2**20} MB" in text, text
    image = tmp_path / "x.png"
    image.write_bytes(b"\x89PNG")
    assert main(["predict", "--model", str(path), str(image)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bomb.pt" in err and "MB" in err, err


def test_the_weights_an_archive_unpacks_to_are_bounded(tmp_path, monkeypatch):
    import glitchnet.checkpoint as checkpoint

    path = tmp_path / "ok.pt"
    save_checkpoint(Checkpoint(state_dict=GlitchNet().state_dict()), path)
    monkeypatch.setattr(checkpoint, "MAX_UNPACKED_BYTES", 100_000)  # below the 0.6 MB the network's weights take
    with pytest.raises(CheckpointError, match="unpacks to 0.6 MB, more than the 0.1 MB") as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)
