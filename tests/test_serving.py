"""Hosted serving: per-visitor budgets, the fair bounded inference queue, and names safe in Markdown and CSV."""

from __future__ import annotations

import gc
import io
import threading
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from glitchnet.images import frame_count
from glitchnet.names import csv_bytes, csv_safe, dataset_relative, plain, scrub_paths
from glitchnet.serving import (
    SETTINGS,
    Budget,
    BudgetError,
    InferenceQueue,
    Presence,
    QueueFull,
    admit,
    hosted,
    server_dataset,
)

README = Path(__file__).resolve().parents[1] / "README.md"


def gif(frames: int, size: int = 40) -> bytes:
    rng = np.random.default_rng(frames)
    images = [Image.fromarray(rng.integers(0, 255, (size, size), np.uint8), "L") for _ in range(frames)]
    out = io.BytesIO()
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:], duration=10)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------------- budgets


def test_budget_defaults_environment_and_bad_values():
    assert Budget.from_env({}) == Budget(batch_mb=40, files=24, frames=4, batches=1, queue=32, workers=0)
    b = Budget.from_env({"GLITCHNET_MAX_FILES": "8", "GLITCHNET_MAX_BATCH_MB": " 5 ", "GLITCHNET_MAX_FRAMES": "2",
                         "GLITCHNET_MAX_BATCHES": "3", "GLITCHNET_WORKERS": "2", "GLITCHNET_QUEUE_LENGTH": "9"})
    assert (b.files, b.batch_bytes, b.frames, b.batches, b.worker_count(), b.queue) == (8, 5 * 2**20, 2, 3, 2, 9)
    assert 1 <= Budget().worker_count() <= 4
    with pytest.raises(BudgetError, match="GLITCHNET_MAX_FILES='many' is not a whole number"):
        Budget.from_env({"GLITCHNET_MAX_FILES": "many"})
    with pytest.raises(BudgetError, match="GLITCHNET_MAX_FRAMES=0 is too small"):
        Budget.from_env({"GLITCHNET_MAX_FRAMES": "0"})


def test_readme_lists_every_setting_with_its_default():
    text = README.read_text()
    for setting in SETTINGS.values():
        assert f"| `{setting.env}` | {setting.default} |" in text, setting.env


def test_file_cap_keeps_whole_glitches_and_says_what_was_kept():
    files = [(f"H1_glitch{g:05d}_spectrogram_{d}.png", b"x" * 10) for g in range(3) for d in ("0.5", "1.0", "2.0")]
    files.insert(1, ("single.jpg", b"y" * 10))
    files.append(("last.jpg", b"z" * 10))
    result = admit(files, Budget(files=5))
    # the first glitch (3 views) and single.jpg fit; the next glitches (3 views each) do not; last.jpg still does
    assert [u.name for u in result.kept] == [files[0][0], "single.jpg", files[2][0], files[3][0], "last.jpg"]
    assert [u.frames for u in result.kept] == [1, 1, 1, 1, 1]  # not images: counted as one frame
    left = [name for name, _ in files if name not in {u.name for u in result.kept}]
    assert len(left) == 6 and result.notes == [  # one line per file left out, each naming it
        f"`{name}`: not classified, as this server classifies at most 5 files per batch (this batch: 5 file(s), "
        "0.0 MB); upload it in another batch." for name in left]
    assert not [n for n in result.notes if "\n" in n]


def test_byte_cap_and_nothing_left_out():
    mb = 2**20
    files = [("a.png", b"a" * mb), ("b.png", b"b" * (2 * mb)), ("c.png", b"c" * mb)]
    result = admit(files, Budget(batch_mb=3))
    assert [u.name for u in result.kept] == ["a.png", "b.png"] and result.kept[1].data == files[1][1]
    assert result.notes == ["`c.png`: not classified, as this server classifies at most 3 MB of uploads per batch "
                            "(this batch: 2 file(s), 3.0 MB); upload it in another batch."]
    assert admit(files, Budget(batch_mb=4)).notes == []


def test_frames_beyond_the_cap_are_not_classified():
    result = admit([("golden.gif", gif(4)), ("apng-bomb.gif", gif(12)), ("still.png", b"not an image")],
                   Budget(frames=4))
    assert [(u.name, u.frames) for u in result.kept] == [("golden.gif", 4), ("apng-bomb.gif", 4), ("still.png", 1)]
    local = admit([("bomb.gif", gif(12))], Budget(frames=0))  # no per-visitor cap: nothing counted, nothing said
    assert [(u.name, u.frames) for u in local.kept] == [("bomb.gif", None)] and local.notes == []
    assert result.notes == ["`apng-bomb.gif` has more than 4 frames, the most this server classifies per file: only "
                            "its first 4 are classified."]


def test_frames_past_the_budget_are_never_decoded(monkeypatch):
    from PIL import GifImagePlugin

    from glitchnet.inference import Predictor

    seen: list[int] = []
    real_seek = GifImagePlugin.GifImageFile.seek
    monkeypatch.setattr(GifImagePlugin.GifImageFile, "seek", lambda self, f: seen.append(f) or real_seek(self, f))
    views = Predictor.decode("bomb.gif", gif(1000, size=40), max_frames=4)
    assert [v.name for v in views] == [f"bomb.gif#frame{k}" for k in range(4)]
    assert max(seen) == 3
    assert len(Predictor.decode("small.gif", gif(3), max_frames=4)) == 3


def test_each_glitch_is_one_queue_step_within_its_frame_budget():
    """The queue's steps come from the admission: one per glitch (views of one id together, in upload order), each
    decoding only the frames the budget allows."""
    from glitchnet.inference import Predictor

    class Recorder(Predictor):
        def __init__(self):
            self.calls = []

        def classify(self, views, batch_size=32, explain=True):
            self.calls.append([(v.name, v.frame) for v in views])
            return [len(views)]

    files = [("H1_a_spectrogram_0.5.png", gif(1)), ("bomb.gif", gif(12)), ("H1_a_spectrogram_1.0.png", gif(1))]
    engine = Recorder()
    steps_ = admit(files, Budget(frames=2)).steps(engine)
    assert [step() for step in steps_] == [[2], [2]]
    assert engine.calls == [[("H1_a_spectrogram_0.5.png", 0), ("H1_a_spectrogram_1.0.png", 0)],
                            [("bomb.gif#frame0", 0), ("bomb.gif#frame1", 1)]]
    engine.calls.clear()
    [step() for step in admit(files, Budget().for_visitor(False)).steps(engine)]
    assert len(engine.calls[1]) == 12  # a local run: no per-visitor frame cap
    with pytest.raises(ValueError, match="2 files but 1 frame limits"):
        engine.classify_files([("a.png", b"x"), ("b.png", b"y")], frames=[1])


def test_the_server_settings_are_read_in_one_place(tmp_path):
    assert not hosted({}) and not hosted({"GLITCHNET_HOSTED": " 0 "}) and not hosted({"GLITCHNET_HOSTED": "False"})
    assert hosted({"GLITCHNET_HOSTED": "1"}) and hosted({"GLITCHNET_HOSTED": "yes"})
    assert server_dataset({}) is None and server_dataset({"GLITCHNET_DATA": "  "}) is None
    assert server_dataset({"GLITCHNET_DATA": str(tmp_path)}) == tmp_path
    assert server_dataset({"GLITCHNET_DATA": "~/gs"}) == Path.home() / "gs"
    limits = Budget(batch_mb=3, files=2, frames=4)
    assert limits.for_visitor(True) == limits
    assert limits.for_visitor(False) == Budget(batch_mb=2**30, files=2**30, frames=0)
    app = Path(__file__).resolve().parents[1]
    readers = sorted(str(p.relative_to(app)) for p in [app / "streamlit_app.py", *(app / "pages").glob("*.py"),
                                                      *(app / "glitchnet").rglob("*.py")]
                     if '"GLITCHNET_DATA"' in p.read_text() or '"GLITCHNET_HOSTED"' in p.read_text())
    assert readers == ["glitchnet/serving.py"]


def test_frame_count_stops_past_the_limit():
    bomb = gif(1000, size=8)
    assert frame_count(bomb, 4) == 5 and frame_count(bomb, 0) == 1 and frame_count(bomb) == 1000
    assert frame_count(gif(3), 4) == 3 and frame_count(b"junk", 4) == 1 and frame_count(b"junk") == 1


# ------------------------------------------------------------------------------------------------------ queue


def steps(log: list, tag: str, n: int):
    return [lambda i=i: log.append(f"{tag}{i}") or f"{tag}{i}" for i in range(n)]


def test_round_robin_places_in_line_and_results():
    q = InferenceQueue(workers=1, per_owner=1, start=False)
    log: list[str] = []
    big = q.submit("alice", steps(log, "a", 3))
    small = q.submit("bob", steps(log, "b", 1))
    late = q.submit("carol", steps(log, "c", 2))
    assert (big.position(), small.position(), late.position()) == (0, 1, 2)
    assert (big.state, big.total, big.done, big.fraction) == ("queued", 3, 0, 0.0)
    assert q.run_one() and big.fraction == 1 / 3
    while q.run_one():
        pass
    assert big.fraction == 1.0
    assert log == ["a0", "b0", "c0", "a1", "c1", "a2"]  # bob's one file waits for one step, not for alice's batch
    assert big.results == ["a0", "a1", "a2"] and small.results == ["b0"] and late.state == "done"
    assert big.finished and big.wait(0) and big.position() == 0 and q.waiting() == 0
    assert 0 <= late.waited_s <= late.took_s and big.started_at <= small.started_at <= late.started_at


def test_per_visitor_and_server_limits():
    q = InferenceQueue(workers=1, max_batches=2, per_owner=1, start=False)
    q.submit("alice", steps([], "a", 1))
    with pytest.raises(BudgetError, match="you already have 1 batch") as err:
        q.submit("alice", steps([], "a", 1))
    assert "\n" not in str(err.value)
    q.submit("bob", steps([], "b", 1))
    with pytest.raises(QueueFull, match=r"the server is busy \(2 batches waiting"):
        q.submit("carol", steps([], "c", 1))
    q.run_one()
    assert q.submit("alice", steps([], "a", 1)).position() == 1  # alice's first batch is done: a new one is fine


def test_cancel_and_visitors_who_left_drop_their_work():
    present = {"alice", "bob", "carol"}
    q = InferenceQueue(workers=1, per_owner=2, start=False, alive=lambda owner: owner in present)
    log: list[str] = []
    a = q.submit("alice", steps(log, "a", 2))
    b = q.submit("bob", steps(log, "b", 2))
    c = q.submit("carol", steps(log, "c", 2))
    q.run_one()  # a0
    present.discard("bob")  # bob closes the tab
    assert c.position() == 1  # alice went to the back after her step: bob, carol, alice
    q.run_one()  # bob's batch is dropped when reached; carol's step runs
    assert b.state == "cancelled" and b.finished and log == ["a0", "c0"]
    a.cancel()
    assert a.state == "cancelled" and q.cancel_owner("carol") == 1 and c.state == "cancelled"
    assert not q.run_one() and log == ["a0", "c0"] and q.waiting() == 0


def test_inputs_are_released_once_classified_and_errors_are_one_line():
    class Payload:  # stands for an upload's bytes
        pass

    payload = Payload()
    ref = weakref.ref(payload)
    q = InferenceQueue(workers=1, start=False)
    ok = q.submit("alice", [lambda p=payload: type(p).__name__])
    del payload
    assert ref() is not None  # held while queued
    q.run_one()
    gc.collect()
    assert ref() is None and ok.results == ["Payload"]

    def boom():
        raise RuntimeError("decoder exploded\nwith a long traceback")

    bad = q.submit("bob", [boom, lambda: "never"])
    while q.run_one():
        pass
    assert (bad.state, bad.error, bad.done) == ("failed", "decoder exploded", 0)
    assert bad.steps == [None, None]


def test_worker_threads_serve_while_others_wait():
    q = InferenceQueue(workers=2, per_owner=1)
    try:
        gate, started = threading.Event(), threading.Event()

        def slow():
            started.set()
            assert gate.wait(30)
            return "slow"

        first = q.submit("alice", [slow, lambda: "a1"])
        assert started.wait(30)
        quick = q.submit("bob", [lambda: "b0"])
        assert quick.wait(30) and quick.results == ["b0"]  # served by the second thread while alice's step runs
        assert first.state == "running" and first.done == 0
        gate.set()
        assert first.wait(30) and first.results == ["slow", "a1"] and first.state == "done"
    finally:
        q.shutdown()


# ------------------------------------------------------------------------------------------------- safe names


def test_csv_cells_never_start_a_formula():
    assert [csv_safe(v) for v in ("=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "Blip.png")] == [
        "'=HYPERLINK(\"http://x\")", "'+1", "'-2", "'@SUM(A1)", "'\tx", "'\rx", "Blip.png"]
    assert csv_safe(-0.5) == -0.5
    table = pd.DataFrame({"name": ["=1+2.png", "ok.png"], "confidence": [-0.25, 0.5], "label": ["Blip", None]})
    text = csv_bytes(table).decode()
    assert text.splitlines() == ["name,confidence,label", "'=1+2.png,-0.25,Blip", "ok.png,0.5,"]
    assert table["name"][0] == "=1+2.png"  # the table shown on the page is unchanged


@pytest.mark.parametrize("name, expected", [
    ("[click](http://evil.example).png", "`[click](http://evil.example).png`"),
    ("a`b``c.png", "```a`b``c.png```"),
    ("`tick.png", "`` `tick.png ``"),
    ("two\nlines.png", "`two lines.png`"),
    ("**bold** <b>x</b> :red[x] $x$.png", "`**bold** <b>x</b> :red[x] $x$.png`"),
])
def test_plain_names_are_code_spans(name, expected):
    assert plain(name) == expected


def test_paths_relative_to_the_dataset(tmp_path):
    root = tmp_path / "srv" / "gravityspy"
    assert dataset_relative(root / "train" / "Blip" / "x.png", root) == "train/Blip/x.png"
    assert dataset_relative(root, root) == "."
    assert dataset_relative("/elsewhere/y.png", root) == "y.png"
    text = f"cannot read {root}/train/Blip/x.png; see {root}"
    assert scrub_paths(text, [root, "/"]) == "cannot read train/Blip/x.png; see gravityspy"


def test_names_in_budget_notes_and_captions_are_literal():
    from glitchnet.glitches import View

    link, image = "[Log in](https://evil.example/login).png", "![t](http://evil.example/t.png).gif"
    result = admit([("a.png", b"a"), (link, b"b")], Budget(files=1))
    assert result.notes[0].startswith(f"`{link}`: not classified")
    assert admit([(image, gif(12))], Budget(frames=4)).notes[0].startswith(f"`{image}` has more than 4 frames")
    assert View(name=link, file=link).caption == f"`{link}`"
    assert View(name=link, file=link, duration_s=1.0).caption == "1 s view"


class _Upload:
    """Streamlit's ``UploadedFile`` as a page sees it: a name, a size, an id and the bytes behind ``getvalue``."""

    def __init__(self, name: str, size: int, read: list[str]) -> None:
        self.name, self.size, self.file_id, self._read = name, size, f"id-{name}", read

    def getvalue(self) -> bytes:
        self._read.append(self.name)
        return b"x" * self.size


def test_uploads_over_the_budget_are_named_and_never_read():
    """One visitor's 40 files of 9.9 MB against a 40 MB budget: 4 are read and classified, 36 are named in one line
    each and handed back to be released at once, unread (issue 24: all 40 were held)."""
    from glitchnet.serving import take_uploads

    read: list[str] = []
    size = int(9.9 * 2**20)
    uploads = [_Upload(f"big{k:02d}.png", size, read) for k in range(40)]
    uploads.insert(2, _Upload("huge.png", 11 * 2**20, read))
    taken = take_uploads(uploads, Budget(batch_mb=40))
    assert read == [f"big{k:02d}.png" for k in range(4)] == [name for name, _ in taken.files]
    assert [u.name for u in taken.kept] == read
    assert [u.name for u in taken.dropped] == ["huge.png"] + [f"big{k:02d}.png" for k in range(4, 40)]
    assert len(taken.refused) == 37 and taken.refused[0] == "`huge.png`: larger than the 10 MB upload limit, skipped."
    assert taken.refused[1] == ("`big04.png`: not classified, as this server classifies at most 40 MB of uploads per "
                                "batch (this batch: 4 file(s), 39.6 MB); upload it in another batch.")
    local = take_uploads(uploads, Budget(batch_mb=2**30, files=2**30))  # a local run: only the size limit
    assert len(local.files) == 40 and [u.name for u in local.dropped] == ["huge.png"]


def test_freed_memory_goes_back_to_the_system():
    """glibc keeps freed 10 MB blocks for reuse (resident) once its mmap threshold has risen; ``give_back_memory``
    returns them. Run in a fresh process, so the measurement is of this allocation pattern alone."""
    import platform
    import subprocess
    import sys

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc_trim is glibc's")
    code = """
import sys
from glitchnet.serving import give_back_memory
def rss_mb():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) / 1024
n = int(9.9 * 2**20)
first = bytearray(n); del first          # freeing an mmapped block raises glibc's mmap threshold
blocks = [bytearray(b"u" * n) for _ in range(40)]
keep = blocks[-1]; del blocks            # the last one pins the heap's top
held = rss_mb()
assert give_back_memory()
print(round(held), round(rss_mb()))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    held, after = map(int, out.stdout.split())
    assert held - after > 300, (held, after)  # 39 x 9.9 MB = 386 MB given back


def test_presence_takes_a_visitor_unseen_for_the_grace_period_for_gone():
    now = [100.0]
    presence = Presence(grace_s=10.0, clock=lambda: now[0])
    assert not presence.alive("a")  # never seen
    presence.seen("a")
    now[0] += 10.0
    assert presence.alive("a") and not presence.alive("b")
    now[0] += 0.5
    assert not presence.alive("a")
    presence.seen("a")
    assert presence.alive("a")


def test_the_queue_drops_the_work_of_a_visitor_presence_has_lost():
    now = [0.0]
    presence = Presence(grace_s=5.0, clock=lambda: now[0])
    presence.seen("left"), presence.seen("stays")
    queue = InferenceQueue(alive=presence.alive, start=False)
    gone = queue.submit("left", [lambda: 1, lambda: 2])
    here = queue.submit("stays", [lambda: 3])
    assert queue.run_one() and gone.done == 1
    now[0] = 6.0
    presence.seen("stays")
    assert queue.run_one() and here.state == "done" and here.results == [3]
    assert not queue.run_one() and gone.state == "cancelled" and gone.done == 1
