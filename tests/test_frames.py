"""Frames per file: a cap, each frame decoded once, a frame bomb bounded; one GIF rule for the CLI and the app."""

import io
import json

import numpy as np
import pytest
from conftest import synthetic_crop
from PIL import GifImagePlugin, Image

from glitchnet.cli import main
from glitchnet.images import MAX_FRAMES, frame_count, open_frames, open_image
from glitchnet.inference import Predictor


def _gif(frames: list[Image.Image]) -> bytes:
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    return buf.getvalue()


def _bomb(count: int = 1000) -> bytes:
    """A small GIF of ``count`` frames of a spectrogram, each differing from the last by one pixel (so each is a
    tiny delta that can only be decoded after the ones before it)."""
    base = np.asarray(synthetic_crop(0, 1, (200, 160)).convert("RGB").quantize(64).convert("RGB"))
    frames = []
    for i in range(count):
        a = base.copy()
        a[i % 160, (i // 160) % 200] = (253, 231, 37)
        frames.append(Image.fromarray(a).quantize(64))
    return _gif(frames)


@pytest.mark.slow
def test_a_frame_bomb_decodes_only_the_capped_frames_once_each(random_checkpoint, monkeypatch):
    bomb = _bomb()
    assert len(bomb) < 400_000 and frame_count(bomb) == 1000
    decoded = []
    real_seek = GifImagePlugin.GifImageFile._seek

    def seek(self, frame, update_image=True):
        if update_image:
            decoded.append(frame)
        return real_seek(self, frame, update_image)

    monkeypatch.setattr(GifImagePlugin.GifImageFile, "_seek", seek)
    frames = open_frames(bomb)
    # each frame up to the cap once, none beyond (counting the frames rewinds to frame 0, which decodes nothing more)
    assert sorted(set(decoded)) == list(range(MAX_FRAMES)) and all(decoded.count(k) == 1 for k in range(1, MAX_FRAMES))
    assert len(frames) == MAX_FRAMES == frame_count(bomb, MAX_FRAMES) - 1 and all(f.size == (200, 160) for f in frames)
    decoded.clear()
    [glitch] = Predictor(random_checkpoint).classify_files([("bomb.gif", bomb)], explain=False)
    per_frame, answer = [v.prediction for v in glitch.views], glitch.verdict
    # (opening a file and counting its frames rewinds to frame 0, which holds no earlier frame to decode)
    assert len(per_frame) == MAX_FRAMES and sorted(set(decoded)) == list(range(MAX_FRAMES))
    assert all(decoded.count(k) == 1 for k in range(1, MAX_FRAMES))
    assert answer.views == MAX_FRAMES and answer.low_confidence
    assert answer.warning == f"only the first {MAX_FRAMES} of its 1000 frames were read (a Gravity Spy GIF has 4)"
    assert len(open_frames(bomb, max_frames=4)) == 4


def test_frames_beyond_the_cap_are_refused_one_at_a_time(random_checkpoint):
    bomb = _bomb(40)
    assert np.array_equal(np.asarray(open_image(bomb, MAX_FRAMES - 1)), np.asarray(open_frames(bomb)[-1]))
    try:
        open_image(bomb, MAX_FRAMES)
    except ValueError as exc:
        assert str(exc) == f"frame {MAX_FRAMES} requested, but at most {MAX_FRAMES} frames of a file are read"
    else:
        raise AssertionError("frame beyond the cap was read")


def test_the_cli_fuses_a_gif_as_the_app_does(tmp_path, random_checkpoint, capsys):
    predictor = Predictor(random_checkpoint)
    gif = tmp_path / "whistle-2.gif"
    gif.write_bytes(_gif([synthetic_crop(i % 3, 40 + i).convert("RGB").quantize(256) for i in range(4)]))
    still = tmp_path / "H1_abcdefghij_spectrogram_1.0.png"
    synthetic_crop(1, 7).save(still)
    frames = [v.prediction for v in predictor.classify_files([(str(gif), gif)], explain=False)[0].views]
    assert len(frames) == 4 and len({f.label for f in frames} | {f.confidence for f in frames}) > 2
    app_answer = predictor.fuse(frames, name=str(gif))  # what the Predict page shows as "all frames"
    assert main(["predict", "--json", "--model", str(random_checkpoint), str(gif), str(still)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in rows] == [str(gif), str(still)]
    assert rows[0]["label"] == app_answer.label and rows[0]["views"] == 4
    assert abs(rows[0]["confidence"] - app_answer.confidence) < 1e-6
    assert rows[0]["top5"] == [[c, round(p, 6)] for c, p in app_answer.top5]
    assert "views" not in rows[1] and rows[1]["label"] == predictor.predict([still])[0].label
    verdict = predictor.classify_files([(str(gif), gif)], explain=False)[0].verdict
    assert verdict.label == app_answer.label and verdict.views == 4
