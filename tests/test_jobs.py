"""Background training jobs (``glitchnet.jobs``): a run ends in a state a page can draw, stops, fails in one line."""

from __future__ import annotations

import time

import pytest
from conftest import make_kaggle

from glitchnet import jobs
from glitchnet.jobs import JobBusyError, TrainingJob, job_for, one_line, start_job
from glitchnet.train import TrainConfig


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_kaggle(tmp_path_factory.mktemp("tiny-jobs"), per_split={"train": 3, "validation": 1, "test": 1},
                       durations=(1.0,))


def _config(data, tmp_path, **kw) -> TrainConfig:
    return TrainConfig(**{"data": str(data), "out": str(tmp_path / "run.pt"), "epochs": 1, "batch_size": 3,
                          "augment": "none", "precise_bn": 0, **kw})


def _wait(job: TrainingJob, timeout_s: float = 120.0) -> jobs.JobView:
    deadline = time.monotonic() + timeout_s
    while not job.view().finished and time.monotonic() < deadline:
        time.sleep(0.1)
    return job.view()


@pytest.mark.slow
def test_a_run_trains_then_scores_the_checkpoint(tiny, tmp_path):
    view = _wait(TrainingJob(_config(tiny, tmp_path)).start())
    assert view.status == "done" and view.error is None
    assert view.checkpoint == tmp_path / "run.pt" and view.checkpoint.is_file()
    assert [h["epoch"] for h in view.history] == [1]
    assert view.latest is not None and view.latest.kind == "done"
    assert view.batch_losses and all(0.0 < epoch <= 1.0 for epoch, _ in view.batch_losses)
    assert view.messages[0] == f"scanning {tiny}"
    assert view.evaluation is not None and view.evaluation.metrics["n"] == 3  # the test split: 3 classes x 1 glitch
    assert view.elapsed_s > 0


def test_a_run_stopped_before_it_starts_ends_stopped(tiny, tmp_path):
    job = TrainingJob(_config(tiny, tmp_path, epochs=5))
    job.stop.set()
    view = _wait(job.start())
    assert view.status == "stopped" and view.error is None
    assert not view.history  # no epoch finished


def test_a_failing_run_reports_one_line(tmp_path):
    view = _wait(TrainingJob(_config(tmp_path / "missing", tmp_path)).start())
    assert view.status == "failed" and view.finished
    assert view.error and "\n" not in view.error and "missing" in view.error
    assert view.checkpoint is None and view.evaluation is None


def test_one_run_at_a_time_per_server(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(jobs, "_JOBS", {})
    first = start_job("session-a", _config(tiny, tmp_path, epochs=50))
    try:
        assert job_for("session-a") is first and job_for("session-b") is None
        with pytest.raises(JobBusyError, match="another training run is in progress"):
            start_job("session-b", _config(tiny, tmp_path / "b"))
    finally:
        first.stop.set()
        _wait(first)
    assert first.view().status == "stopped"


def test_one_line_keeps_the_first_line_and_names_foreign_errors():
    assert one_line(RuntimeError("boom\nsecond line")) == "RuntimeError: boom"
    assert one_line(ValueError("")) == "ValueError"
    from glitchnet.images import ImageError

    assert one_line(ImageError("not an image file")) == "not an image file"


def test_the_report_shows_only_the_classes_present():
    from glitchnet.evaluate import compute_metrics, present_classes

    classes = ["A", "B", "C", "D"]
    metrics = compute_metrics([0, 0, 2, 2], [0, 3, 2, 2], classes)  # B never occurs; D only as a prediction
    names, matrix, table = present_classes(metrics)
    assert names == ["A", "C", "D"]
    assert matrix == [[1, 0, 1], [0, 2, 0], [0, 0, 0]]
    assert list(table["class"]) == names and list(table["support"]) == [2, 2, 0]
    assert table.loc[table["class"] == "A", "recall"].item() == 0.5
