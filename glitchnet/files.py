"""Writing files safely: atomic replacement, output checks before work starts, and clean-up after a killed run."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import OutputError, one_line

FILE_MODE = 0o644
"""Permissions of every file GlitchNet writes (``mkstemp`` makes 0600; outputs are ordinary, shareable files)."""


def _temp_prefix(path: Path) -> str:
    # The writer's process id is part of the name, so a later run can tell a dead writer's leftovers from a live one's.
    return f".{path.name}.{os.getpid()}."


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, mode: int = FILE_MODE) -> Iterator[Path]:
    """Yield a fresh temporary file beside ``path`` to be filled by any writer (``open``, ``np.memmap``, ...).

    On a normal exit the temporary file is fsynced and renamed over ``path`` with ``os.replace``, so readers see the
    old file or the complete new one, never a part; on any error it is removed and ``path`` is left as it was. The
    temporary name is unique (``.<name>.<pid>.<random>.tmp``), so concurrent writers never share one. The folder is
    not fsynced: after a power cut the rename may be undone, which leaves the old file whole (about 5 ms per file
    saved; the file's own fsync is what keeps a half-written file from ever taking the name).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename is None and exc.errno:  # say which file could not be written (a full disk names none)
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kwargs) -> Iterator[IO]:
    """``open(path, mode)`` that replaces ``path`` atomically when the block ends (see ``atomic_path``)."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_open writes a whole file; mode {mode!r} is not a write mode")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def clean_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that writers of ``path`` killed mid-write left beside it; returns those removed.

    Only files named by ``atomic_path`` whose writing process is gone are touched, so a concurrent live writer of
    the same path keeps its temporary file.
    """
    path = Path(path)
    removed = []
    for name in glob.glob(glob.escape(str(path.parent / f".{path.name}.")) + "*.tmp"):
        pid = Path(name).name[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            Path(name).unlink(missing_ok=True)
            removed.append(Path(name))
    return removed


def check_writable_folder(folder: str | os.PathLike, what: str = "output folder") -> Path:
    """Create ``folder`` if needed and prove a file can be written in it, or raise ``OutputError`` in one line.

    Run before any long work, so a read-only folder or a path under a file fails at once rather than after it.
    """
    folder = Path(folder).expanduser()
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                where = "" if parent == folder else f" {folder}"
                raise OutputError(f"cannot write the {what}{where}: {parent} is a file, not a folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".glitchnet-probe.{os.getpid()}.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"cannot write the {what} {folder}: {one_line(exc)}") from None
    return folder


def check_output_file(path: str | os.PathLike, what: str = "output", overwrite: bool = True) -> Path:
    """Check that ``path`` can be written as a file (its folder writable, it is not a folder, it is not refused for
    existing when ``overwrite`` is False); raises ``OutputError`` with one line saying what is wrong."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputError(f"the {what} {path} is a folder; give a file path")
    check_writable_folder(path.parent, f"folder of the {what}")
    if path.exists() and not overwrite:
        raise OutputError(f"the {what} {path} already exists; pass --overwrite to replace it")
    return path
