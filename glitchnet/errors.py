"""GlitchNet's own errors (one base class) and the one way to turn any exception into a line fit for a user."""

from __future__ import annotations

import errno


class GlitchNetError(ValueError):
    """Bad input or an impossible request that GlitchNet recognised; the message is one line, fit for a user.

    A ``ValueError`` so that callers catching bad values keep working; every module's own error derives from it
    (``ImageError``, ``DatasetError``, ``CheckpointError``, ``StrainError``, ``OutputError``, ``TrainingError``).
    """


class OutputError(GlitchNetError):
    """An output location that cannot or must not be written (exists, is a folder, is read-only, disk full)."""


class DatasetError(GlitchNetError):
    """A folder that cannot be used as a dataset, or a dataset setting (a view) that names no part of one; the message
    is one line, fit for a user."""


class TrainingError(GlitchNetError):
    """A training run that cannot mean anything, or one that diverged (non-finite loss)."""


MAX_LINE = 300
"""Longest message shown for one error, characters."""


def first_line(text: str, limit: int = MAX_LINE) -> str:
    """The first non-empty line of ``text``, stripped and cut at ``limit`` characters."""
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()[:limit]
    return ""


def one_line(exc: BaseException, limit: int = MAX_LINE) -> str:
    """An exception as one short line for a user: the message alone for GlitchNet's own errors and for file-system
    errors (which say what failed and where), the exception's type before the message otherwise."""
    if isinstance(exc, GlitchNetError):
        return first_line(str(exc), limit) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        where = exc.filename if exc.filename is not None else ""
        text = f"{exc.strerror}: {where}" if where else exc.strerror
        if exc.errno == errno.ENOSPC:
            text = f"the disk is full ({text})"
        return first_line(text, limit)
    text = first_line(str(exc), limit)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
