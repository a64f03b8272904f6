"""Background training runs: one thread per run, its latest progress, a stop flag, and the held-out evaluation.

Plain data for any front end: the app's Train page polls ``TrainingJob.view()`` from a fragment and draws it, with
the curves' data from ``loss_curves`` and ``accuracy_curve``. ``DatasetBuild`` makes the built-in dataset the same way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .errors import one_line

if TYPE_CHECKING:  # imported by the run itself: the app's pages load without torch
    from .evaluate import Evaluation
    from .train import Event, Prepared, TrainConfig

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

    def __init__(self, config: TrainConfig, prepared: Prepared | None = None) -> None:
        self.config = config
        self.prepared = prepared
        """``train.prepare_run``'s answer (with the checked dataset) when the page has checked the run already."""
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
            if event.kind in ("scan", "done", "stopped") and event.message:  # notes kept; "start" is a status
                self._messages.append(event.message)

    def _set(self, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(self, name, value)

    def _run(self) -> None:
        from .evaluate import evaluate_checkpoint
        from .train import train

        try:
            train(self.config, progress=self._on_event, stop=self.stop, prepared=self.prepared)
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


def start_job(session_id: str, config: TrainConfig, prepared: Prepared | None = None) -> TrainingJob:
    """Start a run for a session; one run at a time per server, since each uses every CPU core. ``prepared``:
    ``train.prepare_run``'s answer, with ``checked`` set, when the caller has checked the run (it is not redone)."""
    with _JOBS_LOCK:
        busy = [j for j in _JOBS.values() if j.view().status in ("running", "evaluating")]
        if busy:
            raise JobBusyError("another training run is in progress on this server; wait for it to finish")
        job = _JOBS[session_id] = TrainingJob(config, prepared).start()
        return job


USABLE_ACCURACY = 0.5
"""Below this accuracy on the test split, the Train page warns before a run's checkpoint is used for predictions."""


def predict_caveat(view: JobView) -> str | None:
    """Why a finished run's checkpoint makes a poor model to predict with (one line), or None."""
    epochs = len(view.history)
    trained = f"after {epochs} epoch{'s' if epochs != 1 else ''}"
    if view.evaluation is None:
        return (f"This checkpoint ({trained}) was not scored on a test split: nobody knows yet how often it is "
                "right. Treat its verdicts as a trial.")
    accuracy = view.evaluation.metrics["accuracy"]
    if accuracy >= USABLE_ACCURACY:
        return None
    return (f"This model is right on only {accuracy:.0%} of the test split {trained}: most of its verdicts will be "
            "wrong. Train for more epochs before relying on it.")


def loss_curves(view: JobView) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The loss curves' points: the training batches' running mean (columns ``epoch``, a fractional epoch, and
    ``loss``) and the validation loss per epoch (``epoch``, ``val_loss``; empty before the first epoch ends)."""
    steps = pd.DataFrame(view.batch_losses, columns=["epoch", "loss"])
    hist = pd.DataFrame(view.history)
    validation = hist[["epoch", "val_loss"]] if not hist.empty else pd.DataFrame(columns=["epoch", "val_loss"])
    return steps, validation


ACCURACY_SPLITS = {"accuracy": "training", "val_accuracy": "validation"}
"""History keys of the accuracy per epoch, and how the chart names them."""


def accuracy_curve(history: list[dict[str, float]]) -> pd.DataFrame:
    """The accuracy per epoch in long form for a line per split: columns ``epoch``, ``split`` ("training" or
    "validation") and ``value``; all training rows first."""
    if not history:
        return pd.DataFrame(columns=["epoch", "split", "value"])
    hist = pd.DataFrame(history).melt("epoch", list(ACCURACY_SPLITS), "split", "value")
    hist["split"] = hist["split"].map(ACCURACY_SPLITS)
    return hist


class DatasetBuild:
    """Making a dataset in a background thread (``make(progress=callback)`` returning its folder), followed by
    ``done``/``total``/``fraction`` and ending in ``root`` or a one-line ``error``.

    A thread rather than the app's script: a rerun (any click) interrupts a script, and would restart the build.
    """

    def __init__(self, make: Callable[..., Path]) -> None:
        self.done, self.total = 0, 0
        self.root: Path | None = None
        self.error: str | None = None
        self.finished = threading.Event()
        threading.Thread(target=self._run, args=(make,), name="glitchnet-dataset", daemon=True).start()

    @property
    def fraction(self) -> float:
        """The share of the work done, 0 to 1 (0 before the first progress report)."""
        return self.done / max(1, self.total)

    def _run(self, make: Callable[..., Path]) -> None:
        try:
            self.root = Path(make(progress=self._progress))
        except Exception as exc:  # reported by the caller; the next shared_build tries again
            LOG.exception("making the built-in dataset failed")
            self.error = one_line(exc)
        self.finished.set()

    def _progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total


_BUILD: list[DatasetBuild] = []
_BUILD_LOCK = threading.Lock()


def current_build() -> DatasetBuild | None:
    """This process's build, running or finished, if one was started; starts none."""
    with _BUILD_LOCK:
        return _BUILD[0] if _BUILD else None


def shared_build(make: Callable[..., Path]) -> DatasetBuild:
    """The one build of this process, whichever caller asked first; started anew when there is none or the last one
    failed (a finished successful build is returned as it is, and ends at once)."""
    with _BUILD_LOCK:
        if not _BUILD or _BUILD[0].error is not None:
            _BUILD[:] = [DatasetBuild(make)]
        return _BUILD[0]
