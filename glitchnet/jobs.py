"""Background training runs: one thread per run, its latest progress, a stop flag, and the held-out evaluation.

Plain data for any front end: the app's Train page polls ``TrainingJob.view()`` from a fragment and draws it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import one_line
from .evaluate import Evaluation, evaluate_checkpoint
from .train import Event, TrainConfig, train

LOG = logging.getLogger("glitchnet.jobs")


@dataclass
class JobView:
    """A consistent copy of a job's state, taken under its lock, for one redraw of the page."""

    status: str
    """"running", "evaluating", "done", "stopped" or "failed"."""
    latest: Event | None
    batch_losses: list[tuple[float, float]]
    history: list[dict[str, float]]
    messages: list[str]
    error: str | None
    evaluation: Evaluation | None
    elapsed_s: float
    checkpoint: Path | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("done", "stopped", "failed")


class TrainingJob:
    """One training run in a background thread; the page polls ``view()`` and may set ``stop``."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.stop = threading.Event()
        self._status = "running"
        self._latest: Event | None = None
        self._batch_losses: list[tuple[float, float]] = []
        self._history: list[dict[str, float]] = []
        self._messages: list[str] = []
        self._error: str | None = None
        self._evaluation: Evaluation | None = None
        self._started = time.monotonic()
        self._ended: float | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="glitchnet-train", daemon=True)

    def start(self) -> TrainingJob:
        self._thread.start()
        return self

    def _on_event(self, event: Event) -> None:
        with self._lock:
            self._latest = event
            if event.kind == "batch" and event.loss is not None:
                self._batch_losses.append(((event.epoch - 1) + event.step / max(1, event.steps), event.loss))
            if event.history:
                self._history = list(event.history)
            if event.kind in ("scan", "done", "stopped") and event.message:
                self._messages.append(event.message)

    def _set(self, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(self, name, value)

    def _run(self) -> None:
        try:
            train(self.config, progress=self._on_event, stop=self.stop)
            if Path(self.config.out).is_file():
                self._set(_status="evaluating")
                evaluation = evaluate_checkpoint(self.config.out, self.config.data, self.config.view,
                                                 cache_dir=self.config.cache_dir)
                self._set(_evaluation=evaluation)
            self._set(_status="stopped" if self.stop.is_set() else "done", _ended=time.monotonic())
        except Exception as exc:  # the thread must always end in a state the page can show
            LOG.exception("training run failed")
            self._set(_status="failed", _error=one_line(exc), _ended=time.monotonic())

    def view(self) -> JobView:
        with self._lock:
            out = Path(self.config.out)
            return JobView(status=self._status, latest=self._latest, batch_losses=list(self._batch_losses),
                           history=list(self._history), messages=list(self._messages), error=self._error,
                           evaluation=self._evaluation,
                           elapsed_s=(self._ended or time.monotonic()) - self._started,
                           checkpoint=out if out.is_file() else None)


class JobBusyError(RuntimeError):
    """Another training run is in progress on this server."""


_JOBS: dict[str, TrainingJob] = {}
_JOBS_LOCK = threading.Lock()


def job_for(session_id: str) -> TrainingJob | None:
    """The latest training run started by a session (any string: the app uses its browser session id), if any."""
    with _JOBS_LOCK:
        return _JOBS.get(session_id)


def start_job(session_id: str, config: TrainConfig) -> TrainingJob:
    """Start a run for a session; one run at a time per server, since each uses every CPU core."""
    with _JOBS_LOCK:
        busy = [j for j in _JOBS.values() if j.view().status in ("running", "evaluating")]
        if busy:
            raise JobBusyError("another training run is in progress on this server; wait for it to finish")
        job = _JOBS[session_id] = TrainingJob(config).start()
        return job
