"""Serving many visitors from one process: per-visitor budgets, one fair bounded inference queue, safe names.

Nothing here imports Streamlit: the app's pages call these functions and draw what they return.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .data import IMAGE_SUFFIXES
from .glitches import cap_files, fit_glitches, group_files
from .images import frame_count
from .names import plain

if TYPE_CHECKING:
    from .engine import Engine
    from .glitches import Glitch

# ------------------------------------------------------------------------------------------------------ uploads


UPLOAD_TYPES = tuple(sorted(suffix.removeprefix(".") for suffix in IMAGE_SUFFIXES))
"""The image files the app's uploaders take: the image files a dataset scan reads (``data.IMAGE_SUFFIXES``)."""

MAX_UPLOAD_MB = 10
"""Largest uploaded file the app classifies or scans. The browser's own ceiling (``server.maxUploadSize`` in
``.streamlit/config.toml``) is higher, so that a larger file reaches the page and is named with this reason (a file
the browser turns away never reaches the server, and the page could not say so)."""


def oversized(name: str, size: int) -> str | None:
    """The one line that turns away an upload of ``size`` bytes over ``MAX_UPLOAD_MB`` (its name as plain text), or
    None when it is within the limit."""
    if size <= MAX_UPLOAD_MB * 2**20:
        return None
    return f"{plain(name)}: larger than the {MAX_UPLOAD_MB} MB upload limit, skipped."


# ------------------------------------------------------------------------------------------------------ budgets


@dataclass(frozen=True)
class Setting:
    """One server setting: its environment variable, default and what it bounds."""

    env: str
    default: int
    meaning: str


SETTINGS: dict[str, Setting] = {
    "batch_mb": Setting("GLITCHNET_MAX_BATCH_MB", 40, "total megabytes of uploads classified in one batch"),
    "files": Setting("GLITCHNET_MAX_FILES", 24, "files classified in one batch (six glitches of four views)"),
    "frames": Setting("GLITCHNET_MAX_FRAMES", 4, "frames classified per file (a Gravity Spy GIF has four)"),
    "batches": Setting("GLITCHNET_MAX_BATCHES", 1, "batches one visitor may have in the queue at once"),
    "queue": Setting("GLITCHNET_QUEUE_LENGTH", 32, "batches waiting in the server's inference queue"),
    "workers": Setting("GLITCHNET_WORKERS", 0, "inference threads (0: half the CPU cores, at least 1, at most 4)"),
}
"""Every hosted-server limit, written once: the README's hosted section lists the same names."""


HOSTED_ENV = "GLITCHNET_HOSTED"
"""Set (to anything but 0/false/no) on a public deployment: no training, no paths on the server's disk, the budget."""
DATA_ENV = "GLITCHNET_DATA"
"""The dataset folder a server is started with, in place of the built-in simulated one."""


def hosted(environ: dict[str, str] | None = None) -> bool:
    """True on a public deployment (``GLITCHNET_HOSTED=1``)."""
    environ = os.environ if environ is None else environ
    return environ.get(HOSTED_ENV, "").strip().lower() not in ("", "0", "false", "no")


def server_dataset(environ: dict[str, str] | None = None) -> Path | None:
    """The dataset folder the server was started with (``GLITCHNET_DATA``, ``~`` expanded), or None: the built-in."""
    environ = os.environ if environ is None else environ
    text = environ.get(DATA_ENV, "").strip()
    return Path(text).expanduser() if text else None


class BudgetError(ValueError):
    """A request over one of the server's limits; the message is one line, fit for a visitor."""


@dataclass(frozen=True)
class Budget:
    """Per-visitor and per-server limits of a hosted deployment (see ``SETTINGS``)."""

    batch_mb: int = SETTINGS["batch_mb"].default
    files: int = SETTINGS["files"].default
    frames: int = SETTINGS["frames"].default
    batches: int = SETTINGS["batches"].default
    queue: int = SETTINGS["queue"].default
    workers: int = SETTINGS["workers"].default

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Budget:
        """The defaults, each overridden by its environment variable; a bad value is a one-line ``BudgetError``."""
        environ = os.environ if environ is None else environ
        values: dict[str, int] = {}
        for f in fields(cls):
            setting = SETTINGS[f.name]
            text = environ.get(setting.env, "").strip()
            if not text:
                continue
            try:
                value = int(text)
            except ValueError:
                raise BudgetError(f"{setting.env}={text!r} is not a whole number") from None
            if value < (0 if f.name == "workers" else 1):
                raise BudgetError(f"{setting.env}={value} is too small")
            values[f.name] = value
        return cls(**values)

    @property
    def batch_bytes(self) -> int:
        return self.batch_mb * 1024 * 1024

    def for_visitor(self, public: bool) -> Budget:
        """Limits for one visitor's batches: these on a public server; on a local run only the queue's (a researcher
        classifies as many files, of as many frames, as they give)."""
        return self if public else replace(self, batch_mb=2**30, files=2**30, frames=0)

    def worker_count(self) -> int:
        """Inference threads: the setting, or half the cores (each thread's forward pass uses several)."""
        return self.workers or max(1, min(4, (os.cpu_count() or 2) // 2))


@dataclass
class Upload:
    """A file admitted for classification, with the number of its frames to classify."""

    name: str
    data: bytes
    frames: int | None = None
    """Frames to classify; None: no per-visitor cap (the image reader's own applies)."""
    index: int = 0
    """Its place in the batch as uploaded."""


@dataclass
class Admission:
    """The part of a batch within the budget, and one line per limit that left something out."""

    kept: list[Upload]
    notes: list[str] = field(default_factory=list)

    @property
    def glitches(self) -> list[list[Upload]]:
        """The kept uploads gathered into glitches (``glitches.group_files``), in upload order."""
        return [[self.kept[i] for i in indices] for _, indices in group_files([u.name for u in self.kept])]

    def steps(self, engine: Engine) -> list[Callable[[], list[Glitch]]]:
        """The queue's work for this batch: one step per glitch, each decoding that glitch's files (within their
        frame budget) and classifying them with ``engine``."""
        return [functools.partial(engine.classify_files, [(u.name, u.data) for u in glitch],
                                  frames=[u.frames for u in glitch]) for glitch in self.glitches]


def _listed(names: Sequence[str], shown: int = 3) -> str:
    head = ", ".join(plain(n) for n in names[:shown])
    return head + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.1f} MB"


def within_budget(files: Sequence[tuple[str, int]], budget: Budget) -> tuple[list[int], list[str]]:
    """The files of a batch, given as (name, size in bytes), that fit the budget, and one line per file left out.

    Files are grouped into glitches by ``glitches.glitch_key`` (the same id's views; any other file is a glitch of
    its own) and taken in upload order; a glitch that would pass the file count or the total size is left out whole
    (a later, smaller one may still fit). Decided on the sizes alone, so that a page need not read the bytes of a
    file it will not classify. Each file left out gets one line (Markdown, its name literal: ``plain``) naming the
    limit and what was classified. Returns (the indices kept, in order; the lines, in upload order).
    """
    names = [name for name, _ in files]
    counted, _ = cap_files(names, budget.files)
    within, over = fit_glitches([names[i] for i in counted], [int(files[i][1]) for i in counted], budget.batch_bytes)
    kept = [counted[k] for k in within]
    left = {i: "files" for i in sorted(set(range(len(files))) - set(counted))}
    left.update((counted[k], "bytes") for k in over)
    n_bytes = sum(int(files[i][1]) for i in kept)
    limits = {"files": f"at most {budget.files} files per batch",
              "bytes": f"at most {budget.batch_mb} MB of uploads per batch"}
    notes = [f"{plain(files[i][0])}: not classified, as this server classifies {limits[left[i]]} (this batch: "
             f"{len(kept)} file(s), {_mb(n_bytes)}); upload it in another batch." for i in sorted(left)]
    return kept, notes


def admit(files: Sequence[tuple[str, bytes]], budget: Budget) -> Admission:
    """Keep the glitches of a batch that fit the budget (``within_budget``), never splitting a glitch's views
    between kept and left out, with one line per file left out. A file with more frames than ``budget.frames``
    keeps its first frames, with one line saying so; the rest are never decoded. ``budget.frames`` 0 sets no
    per-visitor frame cap.
    """
    kept, notes = within_budget([(name, len(data)) for name, data in files], budget)
    uploads = []
    for i in kept:
        name, data = files[i]
        if not budget.frames:  # no per-visitor frame cap
            uploads.append(Upload(name, data, None, i))
            continue
        frames = frame_count(data, budget.frames)
        if frames > budget.frames:
            notes.append(f"{plain(name)} has more than {budget.frames} frames, the most this server classifies per "
                         f"file: only its first {budget.frames} are classified.")
            frames = budget.frames
        uploads.append(Upload(name, data, frames, i))
    return Admission(uploads, notes)


@dataclass
class Taken:
    """What a page takes from its uploader: the bytes of the files it will classify, and the rest to let go."""

    files: list[tuple[str, bytes]]
    """(name, bytes) of every upload within the size limit and the budget, in upload order."""
    kept: list[Any]
    """The uploads those bytes were read from."""
    dropped: list[Any]
    """Uploads turned away (too large, or over the batch budget), never read: release them at once."""
    refused: list[str]
    """One line per upload turned away, in upload order."""


def take_uploads(uploads: Sequence[Any], budget: Budget) -> Taken:
    """Read the uploads a batch will classify and no other: each upload (``name``, ``size``, ``getvalue()``, as
    Streamlit's ``UploadedFile``) over ``MAX_UPLOAD_MB`` or outside the budget (``within_budget``, decided on the
    sizes) is named in one line and left unread, for the page to release from the server's memory at once."""
    refused: dict[int, str] = {}
    small = []
    for i, upload in enumerate(uploads):
        line = oversized(upload.name, upload.size)
        if line is None:
            small.append(i)
        else:
            refused[i] = line
    kept_small, notes = within_budget([(uploads[i].name, uploads[i].size) for i in small], budget)
    kept = [small[k] for k in kept_small]
    over = [i for i in small if i not in set(kept)]
    refused.update(zip(over, notes))
    return Taken(files=[(uploads[i].name, uploads[i].getvalue()) for i in kept], kept=[uploads[i] for i in kept],
                 dropped=[u for i, u in enumerate(uploads) if i in refused],
                 refused=[refused[i] for i in sorted(refused)])


def serving_engine(checkpoint: str | os.PathLike) -> Engine:
    """The engine a hosted server classifies with: the ONNX Runtime engine of the current export beside the
    checkpoint; without one (missing, stale or unreadable), the torch ``Predictor``, with a warning in the log."""
    from .engine import ExportError, OnnxEngine

    try:
        return OnnxEngine.beside(checkpoint)
    except ExportError as exc:
        logging.getLogger("glitchnet.engine").warning("serving %s with torch: %s", Path(checkpoint).name, exc)
    from .inference import Predictor

    return Predictor(checkpoint)



def give_back_memory() -> bool:
    """Return freed heap memory to the operating system now (glibc's ``malloc_trim``): a released 10 MB upload is
    freed to the allocator, which keeps it for reuse, and a server's resident memory stays at its peak otherwise
    (glibc raises its mmap threshold after freeing large blocks, so later large ones come from the heap). True if
    it ran; a no-op (False) on other C libraries."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    import ctypes
    import ctypes.util
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


# ------------------------------------------------------------------------------------------------- the queue


class QueueFull(BudgetError):
    """The server's queue holds as many batches as it may."""


@dataclass
class Ticket:
    """One visitor's batch in the queue: its steps, place in line, progress and results (in step order)."""

    owner: str
    steps: list[Callable[[], Any] | None]
    results: list[Any] = field(default_factory=list)
    done: int = 0
    state: str = "queued"
    """"queued", "running" (some steps done or one in progress), "done", "cancelled" or "failed"."""
    error: str | None = None
    submitted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    """When its first step began (``time.monotonic``)."""
    finished_at: float | None = None
    _queue: InferenceQueue | None = field(default=None, repr=False)
    _finished: threading.Event = field(default_factory=threading.Event, repr=False)
    _busy: bool = field(default=False, repr=False)

    @property
    def total(self) -> int:
        return len(self.steps)

    @property
    def fraction(self) -> float:
        """The share of its steps done, 0 to 1."""
        return self.done / max(1, self.total)

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    @property
    def waited_s(self) -> float | None:
        """Seconds in line before its first step began."""
        return None if self.started_at is None else self.started_at - self.submitted_at

    @property
    def took_s(self) -> float | None:
        """Seconds from submission to the end (in line and served)."""
        return None if self.finished_at is None else self.finished_at - self.submitted_at

    def position(self) -> int:
        """Batches ahead of this one in line (0: being served, or next); 0 once finished."""
        return self._queue.position(self) if self._queue is not None and not self.finished else 0

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the batch is finished (done, failed or cancelled) or ``timeout`` seconds pass."""
        return self._finished.wait(timeout)

    def cancel(self) -> None:
        """Drop this batch's remaining steps (a step already running finishes; its result is discarded)."""
        if self._queue is not None:
            self._queue.cancel(self)


IDLE_TRIM_S = 10.0
"""An idle inference worker returns freed memory to the system (``give_back_memory``) this often."""


PRESENCE_GRACE_S = 10.0
"""Seconds a visitor may go unseen before the queue takes them for gone: far longer than the gap between a page's
polls (0.3 s) or between a rerun's stop and its next run."""


class Presence:
    """When each visitor was last seen, for the queue's ``alive``: a visitor unseen for ``grace_s`` has left.

    The app marks a visitor seen on each of their script runs and on each poll of a page waiting on their batch; a
    closed tab stops its script at its next Streamlit call, so the marks stop and the queue drops the work.
    """

    def __init__(self, grace_s: float = PRESENCE_GRACE_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace_s, self._clock = grace_s, clock
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def seen(self, owner: str) -> None:
        now = self._clock()
        with self._lock:
            self._seen[owner] = now
            if len(self._seen) > 1024:  # forget visitors long gone
                self._seen = {k: t for k, t in self._seen.items() if now - t <= self.grace_s}

    def alive(self, owner: str) -> bool:
        with self._lock:
            seen = self._seen.get(owner)
        return seen is not None and self._clock() - seen <= self.grace_s


class InferenceQueue:
    """One bounded queue of batches for the whole server, served by a small pool of threads, fairly.

    Batches are served round-robin one step (one file) at a time: a visitor with one file waits for one step of each
    batch ahead of it, not for whole batches. A step's input is released as soon as it has run. Before each step the
    owner is checked with ``alive``; the work of a visitor who has left is dropped.
    """

    def __init__(self, workers: int = 1, max_batches: int = 32, per_owner: int = 1,
                 alive: Callable[[str], bool] | None = None, start: bool = True) -> None:
        self.max_batches, self.per_owner = max_batches, per_owner
        self._alive = alive or (lambda owner: True)
        self._line: deque[Ticket] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._threads = [threading.Thread(target=self._work, name=f"glitchnet-infer-{i}", daemon=True)
                         for i in range(max(1, workers))]
        if start:
            for t in self._threads:
                t.start()

    # ------------------------------------------------------------------------------------------ visitors

    def submit(self, owner: str, steps: Iterable[Callable[[], Any]]) -> Ticket:
        """Queue a batch of steps (each a no-argument callable) for ``owner``; ``BudgetError`` when over a limit."""
        ticket = Ticket(owner=owner, steps=list(steps), _queue=self)
        ticket.results = [None] * ticket.total
        with self._cond:
            mine = sum(1 for t in self._line if t.owner == owner)
            if mine >= self.per_owner:
                raise BudgetError(f"you already have {mine} batch(es) being classified, the most this server allows "
                                  "per visitor: wait for it to finish")
            if len(self._line) >= self.max_batches:
                raise QueueFull(f"the server is busy ({len(self._line)} batches waiting, the most it queues): "
                                "try again in a minute")
            if not ticket.steps:
                self._finish(ticket, "done")
                return ticket
            self._line.append(ticket)
            self._cond.notify()
        return ticket

    def position(self, ticket: Ticket) -> int:
        with self._cond:
            for index, t in enumerate(self._line):
                if t is ticket:
                    return index
        return 0

    def cancel(self, ticket: Ticket) -> None:
        with self._cond:
            if ticket in self._line:
                self._line.remove(ticket)
            if not ticket.finished:
                self._finish(ticket, "cancelled")

    def cancel_owner(self, owner: str) -> int:
        """Cancel every unfinished batch of ``owner``; returns how many."""
        with self._cond:
            mine = [t for t in self._line if t.owner == owner]
            for t in mine:
                self._line.remove(t)
                self._finish(t, "cancelled")
        return len(mine)

    def waiting(self) -> int:
        """Batches in line (being served or waiting)."""
        with self._cond:
            return len(self._line)

    def shutdown(self) -> None:
        """Stop the workers once their current step ends; batches still in line are cancelled."""
        with self._cond:
            self._stopping = True
            while self._line:
                self._finish(self._line.popleft(), "cancelled")
            self._cond.notify_all()
        for t in self._threads:
            if t.is_alive() and t is not threading.current_thread():
                t.join()

    # ------------------------------------------------------------------------------------------- workers

    def _finish(self, ticket: Ticket, state: str, error: str | None = None) -> None:
        ticket.state, ticket.error = state, error
        ticket.steps = [None] * len(ticket.steps)  # release the inputs (uploaded bytes) at once
        ticket.finished_at = time.monotonic()
        ticket._finished.set()

    def _next(self) -> tuple[Ticket, int, Callable[[], Any]] | None:
        """Under the lock: the first batch in line not already running a step, and its next step."""
        for ticket in list(self._line):
            if ticket._busy:
                continue
            if not self._alive(ticket.owner):
                self._line.remove(ticket)
                self._finish(ticket, "cancelled")
                continue
            index = ticket.done
            step = ticket.steps[index]
            ticket.steps[index] = None
            ticket._busy, ticket.state = True, "running"
            if ticket.started_at is None:
                ticket.started_at = time.monotonic()
            return ticket, index, step
        return None

    def run_one(self) -> bool:
        """Run one step of the first eligible batch in this thread (tests drive the queue with ``start=False``)."""
        with self._cond:
            picked = self._next()
        if picked is None:
            return False
        self._run(*picked)
        return True

    def _run(self, ticket: Ticket, index: int, step: Callable[[], Any]) -> None:
        try:
            result, error = step(), None
        except Exception as exc:  # the batch fails with one line; the server goes on
            result, error = None, (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        del step
        with self._cond:
            ticket._busy = False
            if ticket.finished:  # cancelled while the step ran
                return
            if ticket in self._line:
                self._line.remove(ticket)
            if error is not None:
                self._finish(ticket, "failed", error)
                self._cond.notify_all()
                return
            ticket.results[index] = result
            ticket.done += 1
            if ticket.done == ticket.total:
                self._finish(ticket, "done")
            else:
                self._line.append(ticket)  # round-robin: one step, then the back of the line
            self._cond.notify_all()

    def _work(self) -> None:
        trimmed = time.monotonic()
        while True:
            with self._cond:
                picked = self._next()
                if picked is None and not self._stopping:
                    self._cond.wait(timeout=1.0)  # also re-checks ``alive`` for visitors who left
                    picked = self._next()
                if picked is None and self._stopping:
                    return
            if picked is not None:
                self._run(*picked)
            elif time.monotonic() - trimmed >= IDLE_TRIM_S:  # idle: what finished batches and departed visitors
                give_back_memory()                            # freed goes back to the system
                trimmed = time.monotonic()

