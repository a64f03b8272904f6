"""Classify a run's worth of images into one results file (CSV or Parquet), sharded over torchrun's ranks, resumable.

Each rank classifies its share of the glitches (all views of one glitch on one rank, fused there, as
``Predictor.classify`` does for the app) and appends finished glitches to its own part file as it goes; rank 0 then
merges the parts, and any earlier output when resuming, into one sorted file written atomically. A killed run leaves
its parts behind: ``resume=True`` skips every file they (or the output) already hold, with the same number of ranks
or another.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import distributed
from .errors import OutputError, one_line
from .files import atomic_open, clean_stale_temps
from .glitches import glitch_chunks, glitch_key, group_files, results_table
from .inference import Predictor

FORMATS = {".csv": "csv", ".parquet": "parquet"}
"""Output formats by file suffix."""
RESULT_TYPES = {"glitch": "string", "row": "string", "name": "string", "label": "string", "confidence": "Float64",
                "low_confidence": "boolean", "top5": "string", "views": "Int64", "gravityspy_id": "string",
                "ifo": "string", "duration_s": "Float64", "your_label": "string", "error": "string"}
"""``glitches.results_table``'s columns (the app's CSV) with the nullable pandas types a results file is written and
read back with."""


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


def typed(df: pd.DataFrame) -> pd.DataFrame:
    """A results table with ``RESULT_TYPES``' types (a count is written "4", not "4.0")."""
    return df.astype(RESULT_TYPES)


def _row_key(df: pd.DataFrame) -> pd.Series:
    """What a row stands for: its view, or (a combined row) its glitch, whose name holds a view count that changes."""
    return df["name"].where(df["row"] != "combined", "combined:" + df["glitch"])


def _file_of(view_name: str) -> str:
    """The file a view row comes from (a GIF frame's row is named ``{file}#frame{k}``)."""
    return view_name.split("#frame")[0]


def read_results(path: Path) -> pd.DataFrame:
    """A results file (CSV or Parquet) or a part file, with ``RESULT_COLUMNS``' types. A part cut short by a killed
    process loses only its unfinished last line."""
    if path.suffix.lower() == ".parquet":
        return typed(pd.read_parquet(path))
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        data = data[:data.rfind(b"\n") + 1]
    if not data:
        return typed(results_table([]))
    try:
        df = pd.read_csv(io.BytesIO(data), dtype=RESULT_TYPES, keep_default_na=False, na_values=[""])
    except (ValueError, pd.errors.ParserError) as exc:
        raise OutputError(f"{path.name} is not a GlitchNet results file ({one_line(exc)})") from None
    if list(df.columns) != list(RESULT_TYPES):
        raise OutputError(f"{path.name} is not a GlitchNet results file (its columns differ)")
    return df


def write_results(df: pd.DataFrame, out: Path) -> None:
    """Write the table atomically (``files.atomic_open``), so no reader ever sees half a file."""
    with atomic_open(out) as fh:
        if output_format(out) == "parquet":
            df.to_parquet(fh, index=False)
        else:
            fh.write(df.to_csv(index=False).encode())


def merge(out: Path, parts: Sequence[Path], previous: bool) -> pd.DataFrame:
    """The sorted union of the earlier output (when ``previous``) and ``parts``; a later row for the same view (or
    glitch) replaces an earlier one. Order: by glitch, each glitch's views by duration and its combined row last."""
    tables = ([read_results(out)] if previous and out.is_file() else []) + [read_results(p) for p in parts]
    df = pd.concat(tables, ignore_index=True) if tables else typed(results_table([]))
    df = df[~_row_key(df).duplicated(keep="last")]
    df = df.assign(_combined=df["row"] == "combined")
    df = df.sort_values(["glitch", "_combined", "duration_s", "name"], na_position="last", kind="stable")
    return typed(df.drop(columns="_combined").reset_index(drop=True))


def _preflight(out: Path, resume: bool, overwrite: bool) -> None:
    """Rank 0's checks before any work: an output that can be written, and no earlier work lost by accident."""
    output_format(out)
    if out.is_dir():
        raise OutputError(f"{out} is a folder: give a file name ending in .csv or .parquet")
    if not out.parent.is_dir():
        raise OutputError(f"no such folder: {out.parent}")
    if not os.access(out.parent, os.W_OK):
        raise OutputError(f"cannot write in {out.parent}")
    clean_stale_temps(out)  # a merge killed mid-write; its parts are kept for --resume
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
    files: set[str] = set()
    for path in ([out] if out.is_file() else []) + existing_parts(out):
        df = read_results(path)
        files.update(_file_of(name) for name in df.loc[df["row"] == "view", "name"].dropna())
    return files


def _append(path: Path, rows: pd.DataFrame, header: bool) -> None:
    """Append finished glitches' rows in one write, so a killed process leaves whole glitches (or a cut last line)."""
    text = typed(rows).to_csv(index=False, header=header)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _classify_share(predictor: Predictor, files: list[str], part: Path, batch_size: int,
                    progress: Callable[[int, int], None] | None, decode_threads: int = 2) -> int:
    """Classify ``files`` (whole glitches) into ``part``, a chunk of about ``batch_size`` files at a time; returns
    how many files were classified. A small thread pool decodes chunk k+1 while the model runs chunk k (decoding
    releases the GIL), so at most two chunks are held at once."""
    header = not part.exists() or part.stat().st_size == 0
    done = 0

    def finish(chunk: list[str], decoded: list) -> None:
        nonlocal header, done
        glitches = predictor.classify([v for f in decoded for v in f.result()], batch_size=batch_size,
                                      explain=False)
        _append(part, results_table(glitches), header)
        header = False
        done += len(chunk)
        if progress is not None:
            progress(done, len(files))

    with ThreadPoolExecutor(max_workers=max(1, decode_threads)) as pool:
        pending = None
        for chunk in ([files[i] for i in indices] for indices in glitch_chunks(files, batch_size)):
            submitted = (chunk, [pool.submit(Predictor.decode, name, name) for name in chunk])
            if pending is not None:
                finish(*pending)
            pending = submitted
        if pending is not None:
            finish(*pending)
    return done


def predict_to_file(predictor: Predictor, inputs: Sequence[str], out: str | os.PathLike, resume: bool = False,
                    overwrite: bool = False, batch_size: int = 32, decode_threads: int = 2,
                    progress: Callable[[int, int], None] | None = None) -> BulkResult:
    """Classify ``inputs`` (file names, in any order) into ``out`` (``.csv`` or ``.parquet``), sharded over the
    ranks of the current process group (one rank without torchrun); every rank calls it with the same arguments.

    The shards are whole glitches (``distributed.shard_groups`` over ``glitches.glitch_key``), so each glitch's
    views are fused on one rank, and its rows reach the part file together. ``resume`` skips each glitch whose files
    the output or an earlier run's parts already hold; ``overwrite`` replaces an existing output.
    ``decode_threads`` decode images while the model runs (each keeps about one CPU core busy: on a GPU the decoding
    is the bottleneck). ``progress(done, total)`` follows this rank's share.
    """
    if decode_threads < 1:
        raise ValueError(f"decode_threads must be at least 1, got {decode_threads}")
    out = Path(out).expanduser().absolute()
    rank, world_size = distributed.rank(), distributed.world_size()
    with distributed.all_ranks_ok():
        if rank == 0:
            _preflight(out, resume, overwrite)
    done_names = distributed.broadcast_object(_done_names(out, resume) if rank == 0 else None)

    names = list(dict.fromkeys(inputs))
    todo = [names[i] for _, indices in group_files(names) if not all(names[i] in done_names for i in indices)
            for i in indices]
    mine = distributed.shard_groups(todo, glitch_key, rank, world_size)

    classified = 0
    with distributed.all_ranks_ok():
        classified = _classify_share(predictor, mine, part_path(out, rank, world_size), batch_size,
                                     progress, decode_threads)
    classified = sum(distributed.all_gather_object(classified))

    summary = None
    with distributed.all_ranks_ok():
        if rank == 0:
            parts = existing_parts(out)
            merged = merge(out, parts, previous=resume)
            write_results(merged, out)
            for p in parts:
                p.unlink(missing_ok=True)
            summary = (len(merged), int((merged["error"].notna() & (merged["row"] == "view")).sum()))
    rows, errors = distributed.broadcast_object(summary)
    return BulkResult(out=out, rows=rows, predicted=classified, skipped=len(names) - len(todo), errors=errors)

