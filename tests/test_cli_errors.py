"""Every CLI error is one line with a non-zero exit code, found before any long work; outputs are never lost."""

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_kaggle

from glitchnet import files
from glitchnet.cli import main
from glitchnet.train import last_checkpoint_path


def _run(argv, capsys) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip(" \x1b[A")]
    # a progress bar may have drawn before a failure mid-run; the error is the one last line
    assert "Traceback" not in err and [line for line in lines if "error" in line] == lines[-1:], err
    return code, lines[-1] + "\n"


@pytest.fixture
def no_scan(monkeypatch):
    """Fail the test if a dataset is scanned or the default dataset made: the error must come first."""
    def scanned(*a, **k):
        raise AssertionError("the dataset was scanned before the error")

    monkeypatch.setattr("glitchnet.train.scan_dataset", scanned)
    monkeypatch.setattr("glitchnet.cli._default_data", scanned)


@pytest.fixture
def tiny(tmp_path):
    return make_kaggle(tmp_path / "d", per_split={"train": 4, "validation": 2, "test": 1}, durations=(1.0,))


def test_train_error_paths_are_one_line_before_the_scan(tmp_path, random_checkpoint, no_scan, capsys, monkeypatch):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    existing = tmp_path / "existing.pt"
    existing.write_bytes(random_checkpoint.read_bytes())
    out = tmp_path / "runs" / "m.pt"
    cases = {
        "--label-smoothing 2": (["--label-smoothing", 2], "label smoothing must be a finite number at least 0 and "
                                                          "below 1, not 2.0"),
        "--width 0": (["--width", 0], "width must be a whole number from 1 to 512, not 0"),
        "--device tpu9": (["--device", "tpu9"], "device must be auto, cpu, cuda or cuda:N, not 'tpu9'"),
        "--epochs 0": (["--epochs", 0], "epochs must be a whole number from 1 to 100000, not 0"),
        "--lr inf": (["--lr", "inf"], "learning rate must be a finite number above 0, not inf"),
        "--batch-size -1": (["--batch-size", -1], "batch size must be a whole number"),
        "--view 3": (["--view", 3], "view must be one of 0.5, 1.0, 2.0, 4.0 or 'all'"),
        "cache dir under a file": (["--cache-dir", a_file / "cache"], "cannot write the cache folder"),
        "out under a file": (["--out", a_file / "m.pt"], "notes.txt is a file, not a folder"),
        "out is a folder": (["--out", tmp_path], "is a folder; give a file path"),
        "out exists": (["--out", existing], "existing.pt already exists; pass --overwrite to replace it, or "
                                            "--resume to continue its run"),
        "resume with nothing": (["--out", existing, "--resume"], "nothing to resume: "),
        "init is text": (["--init", a_file], "notes.txt is not a GlitchNet checkpoint: it is a text file"),
        "init missing": (["--init", tmp_path / "nope.pt"], "no checkpoint at"),
    }
    for name, (extra, message) in cases.items():
        argv = ["train", "--out", out, *extra]
        code, err = _run(argv, capsys)
        assert code == 2 and message in err, (name, err)
    assert existing.read_bytes() == random_checkpoint.read_bytes()
    code, err = _run(["train", "--epochs", "ten"], capsys)
    assert code == 2 and err == "glitchnet train: error: argument --epochs: invalid int value: 'ten' " \
                                "(see glitchnet train --help)\n"

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    code, err = _run(["train", "--out", out], capsys)
    assert code == 2 and "cannot write the folder of the output checkpoint" in err and "Read-only file system" in err


def test_other_commands_error_paths_are_one_line(tmp_path, random_checkpoint, kaggle_dataset, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a model")
    cases = [
        (["evaluate", "--data", tmp_path / "nope", "--model", random_checkpoint], 2, "no such folder"),
        (["evaluate", "--model", random_checkpoint], 2, "give --data DIR"),
        (["evaluate", "--data", kaggle_dataset, "--model", a_file], 2, "it is a text file"),
        (["evaluate", "--data", kaggle_dataset, "--model", random_checkpoint, "--cache-dir", a_file], 2,
         "cannot write the cache folder: "),
        (["calibrate", "--data", kaggle_dataset, "--model", random_checkpoint, "--cache-dir", a_file / "c"], 2,
         "cannot write the cache folder"),
        (["calibrate", "--data", kaggle_dataset, "--model", tmp_path / "none.pt"], 2, "no checkpoint at"),
        (["predict", "--model", a_file, a_file], 2, "it is a text file"),
        (["predict", "--batch-size", 0, a_file], 2, "argument --batch-size: must be at least 1, not 0"),
        (["simulate", "--out", a_file / "sim", "--per-class", 1], 2, "notes.txt is a file, not a folder"),
        (["simulate", "--out", tmp_path / "sim", "--per-class", 0], 2, "per_class must be at least 1"),
        (["simulate", "--out", tmp_path / "sim", "--workers", 0], 2, "argument --workers: must be at least 1"),
        (["scan", "--strain", a_file, "--gps", 1, "--out", a_file / "views"], 2, "notes.txt is a file"),
        (["nonsense"], 2, "argument command: invalid choice"),
    ]
    for argv, want_code, message in cases:
        code, err = _run(argv, capsys)
        assert code == want_code and message in err, (argv, err)
    pytest.importorskip("h5py")
    code, err = _run(["scan", "--strain", a_file, "--gps", 1, "--out", tmp_path / "views"], capsys)
    assert code == 2 and "notes.txt is not an HDF5 strain file" in err


@pytest.mark.slow
def test_simulate_onto_a_full_disk_is_one_line_and_keeps_earlier_files(tmp_path, capsys, monkeypatch):
    import glitchnet.simulate.dataset as dataset

    written = []
    real_write = dataset.write_bytes_atomic

    def filling(path, data):
        if len(written) == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(real_write(path, data))
        return written[-1]

    monkeypatch.setattr(dataset, "write_bytes_atomic", filling)
    code, err = _run(["simulate", "--out", tmp_path / "sim", "--per-class", 1, "--workers", 1], capsys)
    assert code == 1 and err.startswith("glitchnet: error: the disk is full (No space left on device")
    assert len(written) == 5 and all(p.stat().st_size > 0 for p in written)
    assert not list((tmp_path / "sim").rglob("*.tmp")) and not (tmp_path / "sim" / "metadata.csv").exists()


@pytest.mark.slow
def test_training_onto_a_full_disk_keeps_the_last_good_checkpoint(tiny, tmp_path, capsys, monkeypatch):
    import torch

    saves = []
    real_save = torch.save  # checkpoint.py imports torch where it saves: patch the module it uses

    def filling(obj, fh):
        if len(saves) >= 2:  # epoch 1 wrote both files; the disk fills during epoch 2
            raise OSError(errno.ENOSPC, "No space left on device")
        saves.append(1)
        real_save(obj, fh)

    monkeypatch.setattr(torch, "save", filling)
    out = tmp_path / "m.pt"
    code, err = _run(["train", "--data", tiny, "--out", out, "--epochs", 2, "--width", 8, "--batch-size", 4,
                      "--precise-bn", 0, "--augment", "none"], capsys)
    assert code == 1 and "the disk is full (No space left on device: " in err and "m." in err
    monkeypatch.setattr(torch, "save", real_save)
    from glitchnet.checkpoint import load_checkpoint

    assert load_checkpoint(last_checkpoint_path(out)).epoch == 1 and load_checkpoint(out).epoch == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.slow
def test_overwrite_resume_and_stale_temps(tiny, tmp_path, capsys):
    from glitchnet.checkpoint import load_checkpoint

    out = tmp_path / "m.pt"
    args = ["train", "--data", tiny, "--out", out, "--epochs", 1, "--width", 8, "--batch-size", 4, "--precise-bn", 0,
            "--augment", "none"]
    assert main([str(a) for a in args]) == 0
    first = out.read_bytes()
    code, err = _run(args, capsys)
    assert code == 2 and "already exists" in err and out.read_bytes() == first  # never silently overwritten
    code, err = _run([*args, "--resume", "--view", "all"], capsys)
    assert code == 2 and "--resume refused: the settings changed since m.last.pt was written (view '1.0' -> 'all')" \
        in err
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".m.pt.{int(dead.stdout)}.k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert main([str(a) for a in [*args, "--overwrite"]]) == 0
    assert "removed temporary files a killed run left beside m.pt" in capsys.readouterr().out
    assert not stale.exists() and load_checkpoint(out).epoch == 1 and out.read_bytes() != first


@pytest.mark.slow
def test_a_diverging_run_stops_and_saves_nothing(tiny, tmp_path, capsys):
    out = tmp_path / "m.pt"
    code, err = _run(["train", "--data", tiny, "--out", out, "--epochs", 2, "--width", 8, "--batch-size", 4,
                      "--precise-bn", 0, "--augment", "none", "--lr", "1e30"], capsys)
    assert code == 2 and ("the training loss became nan at batch" in err or "the training loss became inf at batch"
                          in err), err
    assert not out.exists() and not last_checkpoint_path(out).exists()


@pytest.mark.slow
def test_training_guards(tmp_path, capsys, monkeypatch):
    from PIL import Image

    from glitchnet.train import TrainConfig, train

    one = make_kaggle(tmp_path / "one", classes=("Blip",), per_split={"train": 3, "validation": 1},
                      durations=(1.0,))
    monkeypatch.setattr("glitchnet.train.load_split", lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded")))
    code, err = _run(["train", "--data", one, "--out", tmp_path / "a.pt"], capsys)
    assert code == 2 and "has training images of 1 class(es) (only Blip); a classifier needs at least two" in err

    grey = make_kaggle(tmp_path / "grey", per_split={"train": 2, "validation": 1}, durations=(1.0,))
    for png in sorted(grey.rglob("*.png"))[::2] + sorted(grey.rglob("*.png"))[1::4]:
        Image.new("RGB", (190, 160), (128, 128, 128)).save(png)
    code, err = _run(["train", "--data", grey, "--out", tmp_path / "b.pt"], capsys)
    assert code == 2 and "sampled training images are not on the viridis colour scale" in err
    monkeypatch.undo()

    no_val = make_kaggle(tmp_path / "noval", per_split={"train": 4, "test": 1}, durations=(1.0,))
    events = []
    ckpt = train(TrainConfig(data=str(no_val), out=str(tmp_path / "c.pt"), epochs=1, width=8, batch_size=4,
                             precise_bn=0, augment="none"), progress=events.append)
    notes = [e.message for e in events if "no validation split" in e.message]
    assert notes == ["no validation split: holding out 2 of 12 training glitches (15%, chosen by glitch id) to "
                     "validate on"]
    val = ckpt.metrics["validation"]
    assert val["n"] == 2 and ckpt.metrics["history"][0]["val_loss"] == ckpt.metrics["history"][0]["val_loss"]


def test_resume_from_an_incomplete_training_state_is_refused_before_the_scan(tmp_path, no_scan, capsys):
    import torch

    from glitchnet.checkpoint import Checkpoint, save_checkpoint
    from glitchnet.model import GlitchNet

    torch.manual_seed(0)
    out = tmp_path / "m.pt"
    save_checkpoint(Checkpoint(state_dict=GlitchNet(width=8).state_dict(), width=8, training_state={"optimizer": {}}),
                    last_checkpoint_path(out))
    code, err = _run(["train", "--out", out, "--width", 8, "--resume"], capsys)
    assert code == 2 and "m.last.pt holds an incomplete training state" in err


def test_bad_counts_and_thread_numbers_are_refused_at_once(tmp_path, capsys, monkeypatch):
    import glitchnet.simulate.dataset as dataset

    monkeypatch.setattr(dataset, "_plan", lambda *a: (_ for _ in ()).throw(AssertionError("planned")))
    image = tmp_path / "x.png"
    image.write_bytes(b"\x89PNG")
    for argv, message in (
            (["predict", "--out", tmp_path / "o.csv", "--decode-threads", 0, image],
             "argument --decode-threads: must be at least 1, not 0"),
            (["predict", "--out", tmp_path / "o.csv", "--decode-threads", -1, image],
             "argument --decode-threads: must be at least 1, not -1"),
            (["simulate", "--out", tmp_path / "sim", "--per-class", 100_000_000],
             "per_class must be at most 4,545 (100,000 glitches in all), got 100,000,000"),
            (["simulate", "--out", tmp_path / "sim", "--glitches", 10**9], "n_glitches must be at most 100,000")):
        code, err = _run(argv, capsys)
        assert code == 2 and message in err, (argv, err)
    assert not (tmp_path / "sim").exists() and not (tmp_path / "o.csv").exists()


def test_a_hold_out_that_leaves_one_class_is_refused(tmp_path, capsys):
    two = make_kaggle(tmp_path / "two", classes=("Blip", "Whistle"), per_split={"train": 1})
    code, err = _run(["train", "--data", two, "--out", tmp_path / "a.pt", "--epochs", 1], capsys)
    assert code == 2 and "holding out 1 of 2 training glitches" in err and "a classifier needs at least two" in err
    assert not list(tmp_path.glob("a.pt*"))


@pytest.fixture
def full_disk(tmp_path):
    """A 1 MB file system filled to the last block (tmpfs; needs the right to mount, as root in a container)."""
    mount = tmp_path / "full"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("a full disk is emulated with a small tmpfs, which this user may not mount")
    try:
        (mount / "cache").mkdir()
        with open(mount / "filler", "wb", buffering=0) as fh:
            try:
                while True:
                    fh.write(b"\0" * 4096)
            except OSError:
                pass
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _cli(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "glitchnet", *map(str, argv)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}, timeout=300)


@pytest.mark.slow
def test_a_full_disk_under_the_image_cache_is_one_line(tiny, tmp_path, full_disk):
    run = _cli("train", "--data", tiny, "--out", tmp_path / "m.pt", "--epochs", 1, "--width", 8,
               "--cache-dir", full_disk / "cache", "--workers", 0)
    assert run.returncode == 1, (run.returncode, run.stderr[-500:])  # not -7 (SIGBUS)
    assert "glitchnet: error: the disk is full (No space left on device: " in run.stderr.splitlines()[-1]
    assert "Traceback" not in run.stderr and not list((full_disk / "cache").iterdir())


@pytest.mark.slow
def test_a_full_disk_under_the_checkpoint_is_one_line(tiny, tmp_path, full_disk):
    out = full_disk / "m.pt"
    run = _cli("train", "--data", tiny, "--out", out, "--epochs", 1, "--width", 8, "--cache-dir", tmp_path / "c",
               "--workers", 0, "--precise-bn", 0, "--augment", "none")
    assert run.returncode == 1, (run.returncode, run.stderr[-500:])
    assert run.stderr.splitlines()[-1].endswith(f"glitchnet: error: the disk is full (No space left on device: {out})")
    assert "RuntimeError" not in run.stderr and sorted(p.name for p in full_disk.iterdir()) == ["cache", "filler"]


def test_a_short_write_under_a_checkpoint_is_an_os_error_naming_the_file(tmp_path):
    """The kernel's own short write, as on a full disk, made portably with a file-size limit (EFBIG)."""
    script = ("import resource, signal, sys\n"
              "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
              "from glitchnet.checkpoint import Checkpoint, save_checkpoint\n"
              "from glitchnet.model import GlitchNet\n"
              "from glitchnet.errors import one_line\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))\n"
              "try:\n"
              "    save_checkpoint(Checkpoint(state_dict=GlitchNet().state_dict()), sys.argv[1])\n"
              "except Exception as exc:\n"
              "    print(type(exc).__name__, one_line(exc))\n")
    out = tmp_path / "m.pt"
    run = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert run.stdout.strip() == f"OSError File too large: {out}", run.stdout + run.stderr[-300:]
    assert list(tmp_path.iterdir()) == []


def _stale_temp(path: Path) -> Path:
    """The temporary file a writer of ``path`` killed mid-write leaves (``files.atomic_path``'s name, a dead pid)."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = path.with_name(f".{path.name}.{int(dead.stdout)}.k1ll3d.tmp")
    stale.write_bytes(b"half a file")
    return stale


def test_calibrate_predict_out_and_scan_remove_a_killed_run_s_temp_files(tmp_path, random_checkpoint, capsys):
    import shutil

    data = make_kaggle(tmp_path / "d", per_split={"train": 1, "validation": 4, "test": 1}, durations=(1.0,))
    model = tmp_path / "m.pt"
    shutil.copy(random_checkpoint, model)
    stale = _stale_temp(model)
    assert main(["calibrate", "--data", str(data), "--model", str(model)]) == 0
    assert not stale.exists()

    out = tmp_path / "o.csv"
    stale = _stale_temp(out)
    assert main(["predict", "--model", str(random_checkpoint), "--out", str(out), str(data)]) == 0
    assert out.is_file() and not stale.exists()
    capsys.readouterr()

    pytest.importorskip("h5py")
    import h5py
    import numpy as np

    strain = tmp_path / "s.hdf5"
    with h5py.File(strain, "w") as fh:
        ds = fh.create_dataset("strain/Strain", data=np.random.default_rng(0).standard_normal(4096 * 16))
        ds.attrs["Xstart"], ds.attrs["Xspacing"] = 1e9, 1 / 4096
    views = tmp_path / "views"
    views.mkdir()
    stale = _stale_temp(views / "H1_1000000008000_spectrogram_4.0.png")
    assert main(["scan", "--strain", str(strain), "--gps", str(1e9 + 8), "--out", str(views)]) == 0
    assert sorted(p.name for p in views.iterdir()) == [f"H1_1000000008000_spectrogram_{d}.png"
                                                        for d in ("0.5", "1.0", "2.0", "4.0")]
