"""Hostile input and faults: every bad file gets a one-line error, the rest of the batch is still classified,
shared-model predictions (Grad-CAM included) do not cross-talk, and a killed training run loses nothing."""

import io
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from conftest import make_kaggle, synthetic_crop
from PIL import Image

from glitchnet.checkpoint import load_checkpoint
from glitchnet.images import MAX_PIXELS
from glitchnet.inference import Predictor
from glitchnet.train import TrainConfig, last_checkpoint_path, train


def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


def _bomb() -> bytes:
    """A tiny valid PNG whose header declares 100,000 x 100,000 pixels."""
    data = bytearray(_png(Image.new("L", (64, 64))))
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def _hostile_inputs() -> dict[str, bytes]:
    good = _png(synthetic_crop(0, 5))
    cmyk = io.BytesIO()
    synthetic_crop(1, 6).convert("CMYK").save(cmyk, "JPEG", quality=95)
    frames = [synthetic_crop(i % 3, i).convert("P") for i in range(3)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    rng = np.random.default_rng(0)
    photo = Image.fromarray((rng.random((6, 8, 3)) * 255).astype(np.uint8)).resize((640, 480), Image.BICUBIC)
    sixteen = Image.fromarray(np.asarray(synthetic_crop(2, 7).convert("L"), dtype=np.uint16) * 257)
    return {
        "empty.png": b"",
        "text.png": b"Dear volunteer, this is a letter, not a spectrogram.\n" * 20,
        "doc.png": b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",
        "truncated.png": good[: len(good) // 2],
        "bomb.png": _bomb(),
        "one_pixel.png": _png(Image.new("RGB", (1, 1), (68, 1, 84))),
        "photo.png": _png(photo),
        "sixteen_bit.png": _png(sixteen),
        "cmyk.jpg": cmyk.getvalue(),
        "animated.gif": gif.getvalue(),
        "huge_valid.png": _png(synthetic_crop(0, 8).resize((4800, 4040)), compress_level=1),
        "good.png": good,
    }


EXPECTED_ERRORS = {
    "empty.png": "empty",
    "text.png": "not an image",
    "doc.png": "not an image",
    "truncated.png": "truncated",
    "bomb.png": "pixels",
    "one_pixel.png": "too small",
    "photo.png": "does not look like a Gravity Spy spectrogram",
    # decoded fine, but a grey 16-bit picture is not on the viridis scale: flagged, never confidently labelled
    "sixteen_bit.png": "does not look like a Gravity Spy spectrogram",
}


@pytest.mark.slow
def test_every_hostile_upload_gets_one_line_and_the_batch_goes_on(random_checkpoint):
    predictor = Predictor(random_checkpoint)
    inputs = _hostile_inputs()
    results = {p.name: p for p in predictor.predict(list(inputs.values()), names=list(inputs))}
    assert set(results) == set(inputs)
    for name, fragment in EXPECTED_ERRORS.items():
        err = results[name].error
        assert err is not None and fragment in err and "\n" not in err and "Traceback" not in err, (name, err)
        assert results[name].to_json() == {"path": name, "error": err}
    for name in ("cmyk.jpg", "animated.gif", "huge_valid.png", "good.png"):
        assert results[name].error is None, (name, results[name].error)
        assert results[name].label in predictor.classes
    # the bomb is refused for its declared size and the message names the limit; a 19.4-megapixel image passes
    assert f"{MAX_PIXELS:,}" in results["bomb.png"].error


@pytest.mark.slow
def test_predict_json_cli_reports_hostile_files(tmp_path, random_checkpoint):
    files = []
    for name, data in _hostile_inputs().items():
        if name != "huge_valid.png":
            (tmp_path / name).write_bytes(data)
            files.append(str(tmp_path / name))
    proc = subprocess.run([sys.executable, "-m", "glitchnet.cli", "predict", "--json", "--model",
                           str(random_checkpoint), *files], capture_output=True, text=True, timeout=180)
    import json

    rows = {os.path.basename(r["path"]): r for r in map(json.loads, proc.stdout.splitlines())}
    assert len(rows) == len(files) and "Traceback" not in proc.stderr
    for name in EXPECTED_ERRORS:
        assert "error" in rows[name] and "label" not in rows[name]
    assert rows["good.png"]["label"] and "error" not in rows["good.png"]


@pytest.mark.slow
def test_sixteen_threads_share_one_model_without_cross_talk(random_checkpoint):
    predictor = Predictor(random_checkpoint)
    images = [predictor.load(synthetic_crop(i % 3, 100 + i)) for i in range(16)]
    solo = [(predictor.probabilities(img[None])[0], predictor.gradcam(img, i % 22)) for i, img in enumerate(images)]

    def work(i: int):
        out = []
        for _ in range(3):
            out.append((predictor.probabilities(images[i][None])[0], predictor.gradcam(images[i], i % 22)))
        return out

    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(work, range(16)))
    for i, runs in enumerate(together):
        for probs, heat in runs:
            assert np.allclose(probs, solo[i][0], atol=1e-6)
            assert np.allclose(heat, solo[i][1], atol=1e-5), f"Grad-CAM of image {i} changed under concurrency"
    # the heatmaps differ between images, so a swap would have been caught
    assert not np.allclose(solo[0][1], solo[1][1])


TRAIN_SCRIPT = """
import sys
from glitchnet.train import TrainConfig, train
cfg = TrainConfig(data=sys.argv[1], out=sys.argv[2], epochs=3, batch_size=4, lr=3e-3, seed=5, augment="class",
                  cache_dir=sys.argv[3], resume=len(sys.argv) > 4)
def report(e):
    if e.kind == "epoch":
        print("EPOCH", e.epoch, flush=True)
train(cfg, progress=report)
print("DONE", flush=True)
"""


@pytest.mark.slow
def test_kill_9_mid_epoch_keeps_the_checkpoint_and_resume_matches(tmp_path):
    data = make_kaggle(tmp_path / "d", per_split={"train": 16, "validation": 2, "test": 1}, durations=(1.0,))
    cache = str(tmp_path / "cache")
    script = tmp_path / "t.py"
    script.write_text(TRAIN_SCRIPT)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    killed_out = tmp_path / "killed.pt"
    proc = subprocess.Popen([sys.executable, str(script), str(data), str(killed_out), cache],
                            stdout=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:
        if line.startswith("EPOCH 1"):
            time.sleep(0.3)  # into epoch 2
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    good = load_checkpoint(last_checkpoint_path(killed_out))  # intact: written atomically
    assert good.epoch in (1, 2) and load_checkpoint(killed_out).epoch <= good.epoch  # 2 only on a very fast machine
    resumed = subprocess.run([sys.executable, str(script), str(data), str(killed_out), cache, "resume"],
                             capture_output=True, text=True, env=env, timeout=300)
    done_epochs = [int(line.split()[1]) for line in resumed.stdout.splitlines() if line.startswith("EPOCH")]
    assert resumed.returncode == 0 and done_epochs == list(range(good.epoch + 1, 4))
    straight = tmp_path / "straight.pt"
    train(TrainConfig(data=str(data), out=str(straight), epochs=3, batch_size=4, lr=3e-3, seed=5, augment="class",
                      cache_dir=cache))
    a = load_checkpoint(last_checkpoint_path(straight)).state_dict
    b = load_checkpoint(last_checkpoint_path(killed_out)).state_dict
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_training_survives_corrupt_images_and_a_missing_split(tmp_path):
    data = make_kaggle(tmp_path / "d", per_split={"train": 3, "test": 1}, durations=(1.0,))  # no validation/
    blip = data / "train" / "train" / "Blip"
    good = next(blip.glob("*.png")).read_bytes()
    # a PNG whose header parses (so the scan keeps it) but whose pixels are cut off: found only when decoded
    (blip / "H1_cutoff0000_spectrogram_1.0.png").write_bytes(good[: len(good) // 2])
    (blip / "H1_empty00000_spectrogram_1.0.png").write_bytes(b"")
    events = []
    ckpt = train(TrainConfig(data=str(data), out=str(tmp_path / "m.pt"), epochs=2, batch_size=4, augment="none"),
                 progress=events.append)
    assert [e.kind for e in events].count("epoch") == 2 and events[-1].kind == "done"
    assert ckpt.epoch >= 1 and (tmp_path / "m.pt").is_file()
    assert any("skipped 1 file" in e.message for e in events)  # the empty file, reported at scan time
    assert any("skipped 1 image(s) that could not be decoded" in e.message for e in events)  # the cut-off one


def test_prediction_sees_exactly_what_training_saw(real, random_checkpoint):
    from glitchnet.images import canonical_uint8

    jpg, gif = real / "golden" / "Blip" / "blip-1.jpg", real / "golden" / "Whistle" / "whistle-2.gif"
    assert np.array_equal(Predictor.load(jpg), canonical_uint8(jpg))
    assert np.array_equal(Predictor.load(gif, 2), canonical_uint8(gif, 2))
