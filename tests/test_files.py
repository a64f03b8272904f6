"""One error base class, one first-line helper, one atomic writer (unique temp, fsync, os.replace) and its clean-up."""

import errno
import os
import subprocess
import sys

import pytest

from glitchnet import files
from glitchnet.errors import GlitchNetError, OutputError, TrainingError, first_line, one_line


def test_every_glitchnet_error_derives_from_the_base_class():
    from glitchnet.checkpoint import CheckpointError
    from glitchnet.data import DatasetError
    from glitchnet.images import ImageError
    from glitchnet.strain import GPSRangeError, NotStrainError, SampleRateError, StrainError

    for cls in (ImageError, DatasetError, CheckpointError, StrainError, NotStrainError, GPSRangeError,
                SampleRateError, OutputError, TrainingError):
        assert issubclass(cls, GlitchNetError) and issubclass(cls, ValueError), cls


def test_one_line_says_what_went_wrong_in_one_line():
    from glitchnet.strain import NotStrainError

    assert one_line(NotStrainError("x.h5 is not an HDF5 strain file\nmore")) == "x.h5 is not an HDF5 strain file"
    assert one_line(KeyError("state_dict")) == "KeyError: 'state_dict'"
    assert one_line(RuntimeError()) == "RuntimeError"
    full = OSError(errno.ENOSPC, "No space left on device", "runs/m.pt")
    assert one_line(full) == "the disk is full (No space left on device: runs/m.pt)"
    assert one_line(PermissionError(errno.EACCES, "Permission denied", "/ro")) == "Permission denied: /ro"
    assert first_line("\n  \n second line\nthird", 6) == "second"
    assert len(one_line(ValueError("x" * 1000))) == len("ValueError: ") + 300


def test_atomic_write_replaces_whole_files_with_unique_temps(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(files.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    target = tmp_path / "sub" / "out.bin"
    files.write_bytes_atomic(target, b"one")
    assert target.read_bytes() == b"one" and synced and oct(target.stat().st_mode & 0o777) == oct(files.FILE_MODE)
    with files.atomic_path(target) as a, files.atomic_path(target) as b:  # two writers at once never share a temp
        assert a != b and a.parent == b.parent == target.parent and a.name.startswith(f".out.bin.{os.getpid()}.")
        a.write_bytes(b"a")
        b.write_bytes(b"b")
    assert target.read_bytes() == b"a"  # the last to finish wins, whole
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = files.write_text_atomic(tmp_path / "m.csv", "old")
    with pytest.raises(OSError) as info, files.atomic_open(target, "w") as fh:
        fh.write("half of the new")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.filename == str(target)  # the writer names the file a full disk gives no name for
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["m.csv"]


def test_stale_temps_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    target = tmp_path / "m.pt"
    stale = tmp_path / f".m.pt.{dead_pid}.abc123.tmp"
    live = tmp_path / f".m.pt.{os.getpid()}.def456.tmp"
    other = tmp_path / f".other.pt.{dead_pid}.x.tmp"
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    assert files.clean_stale_temps(target) == [stale]
    assert not stale.exists() and live.exists() and other.exists()


def test_output_checks_say_what_is_wrong(tmp_path, monkeypatch):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    with pytest.raises(OutputError, match="notes.txt is a file, not a folder"):
        files.check_output_file(a_file / "m.pt", "output checkpoint")
    with pytest.raises(OutputError, match="is a folder"):
        files.check_output_file(tmp_path, "output checkpoint")
    with pytest.raises(OutputError, match="already exists; pass --overwrite"):
        files.check_output_file(a_file, "output", overwrite=False)

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    with pytest.raises(OutputError, match="cannot write the cache folder .*: Read-only file system"):
        files.check_writable_folder(tmp_path / "cache", "cache folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_found_before_work(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="Permission denied"):
            files.check_writable_folder(ro)
    finally:
        ro.chmod(0o755)
