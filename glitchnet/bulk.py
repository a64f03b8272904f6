"""Classify a run's worth of images into one results file (CSV or Parquet), sharded over torchrun's ranks, resumable.

Each rank classifies its share of the glitches (all views of one glitch on one rank, fused there) and appends
finished glitches to its own part file as it goes; rank 0 then merges the parts, and any earlier output when resuming,
into one sorted file written atomically. A killed run leaves its parts behind: ``resume=True`` skips every file they
(or the output) already hold, with the same number of ranks or another.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import distributed
from .inference import RESULT_COLUMNS, Prediction, Predictor, parse_name, results_table

FORMATS = {".csv": "csv", ".parquet": "parquet"}
"""Output formats by file suffix."""
SORT_ORDER = ["ifo", "gravityspy_id", "duration_s", "name"]
"""The merged file's row order: detector, glitch id, view duration (a glitch's fused row after its views), then name;
files whose names carry no glitch id come last, by name."""


class OutputError(ValueError):
    """An output file that cannot be written or resumed; one line, fit for a user."""


@dataclass
class BulkResult:
    """What a ``predict_to_file`` run did (the same on every rank)."""

    out: Path
    rows: int
    """Rows in the merged output (files, plus one fused row per glitch with two or more readable views)."""
    predicted: int
    """Files classified by this run, all ranks together."""
    skipped: int
    """Files left alone because the output (or an earlier run's parts) already held them (``resume``)."""
    errors: int
    """Rows of the merged output whose file could not be classified."""


def expand_inputs(paths: Iterable[str]) -> Iterator[str]:
    """Files named on a command line: a folder stands for its images (recursively, sorted), anything else for itself
    (so a missing file still gets its own error row)."""
    from .data import IMAGE_SUFFIXES

    for p in paths:
        path = Path(p)
        if path.is_dir():
            yield from (str(f) for f in sorted(path.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            yield str(p)


def glitch_key(name: str) -> tuple[str, str]:
    """Which glitch a file shows: (ifo, gravityspy_id) for ``{ifo}_{id}_spectrogram_{dur}.png``, else ("", name)."""
    ifo, gid, _ = parse_name(name)
    return (ifo, gid) if ifo and gid else ("", name)


def output_format(out: str | os.PathLike) -> str:
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise OutputError(f"{Path(out).name}: the output must end in .csv or .parquet")
    if FORMATS[suffix] == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise OutputError("writing Parquet needs pyarrow (pip install pyarrow), or name the output .csv") from None
    return FORMATS[suffix]


def part_path(out: Path, rank: int, world_size: int) -> Path:
    """Rank ``rank``'s part file, a hidden CSV beside the output."""
    return out.with_name(f".{out.name}.part{rank:05d}of{world_size:05d}.csv")


def existing_parts(out: Path) -> list[Path]:
    """Part files of any earlier run writing ``out`` (any world size), oldest first."""
    return sorted(out.parent.glob(f".{out.name}.part*of*.csv"), key=lambda p: (p.stat().st_mtime_ns, p.name))


def _row_key(df: pd.DataFrame) -> pd.Series:
    """What a row stands for: its file, or (for a fused row) its glitch, whose name holds a view count that changes."""
    fused = df["views"].fillna(1) > 1
    return df["name"].where(~fused, "fused:" + df["ifo"].fillna("") + "_" + df["gravityspy_id"].fillna(""))


def read_results(path: Path) -> pd.DataFrame:
    """A results file (CSV or Parquet) or a part file, with ``RESULT_COLUMNS``' types. A part cut short by a killed
    process loses only its unfinished last line."""
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path).astype(RESULT_COLUMNS)
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        data = data[:data.rfind(b"\n") + 1]
    if not data:
        return results_table([])
    try:
        df = pd.read_csv(io.BytesIO(data), dtype=RESULT_COLUMNS, keep_default_na=False, na_values=[""])
    except (ValueError, pd.errors.ParserError) as exc:
        raise OutputError(f"{path.name} is not a GlitchNet results file ({distributed.first_line(exc)})") from None
    if list(df.columns) != list(RESULT_COLUMNS):
        raise OutputError(f"{path.name} is not a GlitchNet results file (its columns differ)")
    return df


def write_results(df: pd.DataFrame, out: Path) -> None:
    """Write the table atomically: a temp file beside ``out``, fsync, rename, so no reader sees half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if output_format(out) == "parquet":
                df.to_parquet(fh, index=False)
            else:
                fh.write(df.to_csv(index=False).encode())
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def merge(out: Path, parts: Sequence[Path], previous: bool) -> pd.DataFrame:
    """The sorted union of the earlier output (when ``previous``) and ``parts``; a later row for the same file (or
    glitch) replaces an earlier one."""
    tables = ([read_results(out)] if previous and out.is_file() else []) + [read_results(p) for p in parts]
    df = pd.concat(tables, ignore_index=True) if tables else results_table([])
    df = df[~_row_key(df).duplicated(keep="last")]
    return df.sort_values(SORT_ORDER, na_position="last", kind="stable").reset_index(drop=True)


def _preflight(out: Path, resume: bool, overwrite: bool) -> None:
    """Rank 0's checks before any work: an output that can be written, and no earlier work lost by accident."""
    output_format(out)
    if out.is_dir():
        raise OutputError(f"{out} is a folder: give a file name ending in .csv or .parquet")
    if not out.parent.is_dir():
        raise OutputError(f"no such folder: {out.parent}")
    if not os.access(out.parent, os.W_OK):
        raise OutputError(f"cannot write in {out.parent}")
    stale = existing_parts(out)
    if overwrite:
        for p in stale:
            p.unlink(missing_ok=True)
    elif not resume and (out.exists() or stale):
        what = f"{out.name} exists" if out.exists() else f"an unfinished run left parts of {out.name}"
        raise OutputError(f"{what}: add --resume to continue it or --overwrite to start again")


def _done_names(out: Path, resume: bool) -> set[str]:
    if not resume:
        return set()
    names: set[str] = set()
    for path in ([out] if out.is_file() else []) + existing_parts(out):
        names.update(read_results(path)["name"].dropna())
    return names


def _append(path: Path, rows: list[Prediction], header: bool) -> None:
    """Append finished glitches' rows in one write, so a killed process leaves whole glitches (or a cut last line)."""
    text = results_table(rows).to_csv(index=False, header=header)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _classify_share(predictor: Predictor, files: list[str], part: Path, batch_size: int,
                    progress: Callable[[int, int], None] | None) -> int:
    """Classify ``files`` (whole glitches, consecutive) into ``part``; returns how many files were classified."""
    sizes: dict[tuple[str, str], int] = {}
    for name in files:
        key = glitch_key(name)
        sizes[key] = sizes.get(key, 0) + 1
    header = not part.exists() or part.stat().st_size == 0
    pending: dict[tuple[str, str], list[Prediction]] = {}
    finished: list[Prediction] = []
    done = 0
    for pred in predictor.predict_stream(files, names=files, batch_size=batch_size):
        key = glitch_key(pred.name)
        views = pending.setdefault(key, [])
        views.append(pred)
        done += 1
        if len(views) == sizes[key]:
            finished += views
            good = [p for p in views if p.error is None]
            if key[0] and len(good) > 1:
                finished.append(predictor.fuse(good, name=f"{key[0]}_{key[1]} ({len(good)} views)"))
            del pending[key]
        if finished and (done % batch_size == 0 or done == len(files)):
            _append(part, finished, header)
            header, finished = False, []
        if progress is not None:
            progress(done, len(files))
    if finished:
        _append(part, finished, header)
    return done


def predict_to_file(predictor: Predictor, inputs: Sequence[str], out: str | os.PathLike, resume: bool = False,
                    overwrite: bool = False, batch_size: int = 32,
                    progress: Callable[[int, int], None] | None = None) -> BulkResult:
    """Classify ``inputs`` (file names, in any order) into ``out`` (``.csv`` or ``.parquet``), sharded over the
    ranks of the current process group (one rank without torchrun); every rank calls it with the same arguments.

    The shards are whole glitches (``distributed.shard_groups`` over ``glitch_key``), so each glitch's views are
    fused on one rank, and its rows reach the part file together. ``resume`` skips each glitch whose files the output
    or an earlier run's parts already hold; ``overwrite`` replaces an existing output. ``progress(done, total)``
    follows this rank's share.
    """
    out = Path(out).expanduser().absolute()
    rank, world_size = distributed.rank(), distributed.world_size()
    with distributed.all_ranks_ok():
        if rank == 0:
            _preflight(out, resume, overwrite)
    done_names = distributed.broadcast_object(_done_names(out, resume) if rank == 0 else None)

    names = list(dict.fromkeys(inputs))
    groups: dict[tuple[str, str], list[str]] = {}
    for name in names:
        groups.setdefault(glitch_key(name), []).append(name)
    todo = [f for files in groups.values() if not all(f in done_names for f in files) for f in files]
    mine = distributed.shard_groups(todo, glitch_key, rank, world_size)

    classified = 0
    with distributed.all_ranks_ok():
        classified = _classify_share(predictor, mine, part_path(out, rank, world_size), batch_size,
                                     progress)
    classified = sum(distributed.all_gather_object(classified))

    summary = None
    with distributed.all_ranks_ok():
        if rank == 0:
            parts = existing_parts(out)
            merged = merge(out, parts, previous=resume)
            write_results(merged, out)
            for p in parts:
                p.unlink(missing_ok=True)
            summary = (len(merged), int(merged["error"].notna().sum()))
    rows, errors = distributed.broadcast_object(summary)
    return BulkResult(out=out, rows=rows, predicted=classified, skipped=len(names) - len(todo), errors=errors)

