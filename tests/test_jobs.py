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
    # the opening "scanning" status is not kept as a note once the run has moved on; the class set the data were
    # read with is, and the result
    chosen = "classes: Gravity Spy O1/O2, 22 classes (gravityspy-o1o2), which covers every class folder"
    assert view.messages == [chosen,
                             f"best validation accuracy {view.history[0]['val_accuracy']:.3f}; saved {view.checkpoint}"]
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


def _view(batch_losses, history) -> jobs.JobView:
    return jobs.JobView(status="running", latest=None, batch_losses=batch_losses, history=history, messages=[],
                        error=None, evaluation=None, elapsed_s=0.0)


def test_curve_data_from_a_jobs_history():
    history = [{"epoch": 1, "accuracy": 0.5, "val_accuracy": 0.25, "val_loss": 2.0},
               {"epoch": 2, "accuracy": 0.75, "val_accuracy": 0.5, "val_loss": 1.5}]
    steps, validation = jobs.loss_curves(_view([(0.5, 3.0), (1.0, 2.5), (1.5, 2.0)], history))
    assert steps.values.tolist() == [[0.5, 3.0], [1.0, 2.5], [1.5, 2.0]] and list(steps.columns) == ["epoch", "loss"]
    assert validation.values.tolist() == [[1, 2.0], [2, 1.5]]
    steps, validation = jobs.loss_curves(_view([(0.5, 3.0)], []))
    assert validation.empty and list(validation.columns) == ["epoch", "val_loss"]
    acc = jobs.accuracy_curve(history)
    assert acc.values.tolist() == [[1, "training", 0.5], [2, "training", 0.75], [1, "validation", 0.25],
                                   [2, "validation", 0.5]]
    assert jobs.accuracy_curve([]).empty


def test_a_dataset_build_runs_once_reports_progress_and_retries_after_a_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(jobs, "_BUILD", [])
    assert jobs.current_build() is None
    calls = []

    def make(progress):
        calls.append(1)
        progress(3, 4)
        return tmp_path

    build = jobs.shared_build(make)
    assert build.finished.wait(10) and build.root == tmp_path and build.error is None
    assert (build.done, build.total, build.fraction) == (3, 4, 0.75)
    assert jobs.shared_build(make) is build and len(calls) == 1  # made once per process
    assert jobs.current_build() is build

    def broken(progress):
        raise OSError("disk full\nmore")

    monkeypatch.setattr(jobs, "_BUILD", [])
    failed = jobs.shared_build(broken)
    assert failed.finished.wait(10) and failed.root is None and failed.error == "OSError: disk full"
    again = jobs.shared_build(make)  # a failed build is tried again
    assert again is not failed and again.finished.wait(10) and again.root == tmp_path and len(calls) == 2
    assert failed.fraction == 0.0  # no progress reported


def test_an_events_progress_within_its_stage():
    from glitchnet.train import Event
    assert Event(kind="cache", step=3, steps=12).step_fraction == 0.25
    assert Event(kind="cache", step=0, steps=0).step_fraction == 0.0
    assert Event(kind="cache", step=5, steps=4).step_fraction == 1.0


@pytest.mark.slow
def test_a_run_the_page_checked_is_not_checked_again(tiny, tmp_path, monkeypatch):
    from glitchnet import train as training

    config = _config(tiny, tmp_path)
    prepared = training.prepare_run(config)
    prepared.checked = training.check_training_data(training.scan_dataset(config.data, view=config.view))
    again = []
    monkeypatch.setattr(training, "prepare_run", lambda *a, **k: again.append("prepare_run"))
    monkeypatch.setattr(training, "check_training_data", lambda *a, **k: again.append("check_training_data"))
    monkeypatch.setattr(training, "scan_dataset", lambda *a, **k: again.append("scan_dataset"))
    monkeypatch.setattr(jobs, "_JOBS", {})
    view = _wait(jobs.start_job("checked", config, prepared))
    assert view.status == "done" and view.error is None and view.checkpoint == tmp_path / "run.pt"
    assert again == []
