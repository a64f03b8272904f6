"""Training: a short run learns, writes a self-describing checkpoint, and resumes to the same weights."""

import dataclasses
import threading

import pytest
import torch
from conftest import make_kaggle

from glitchnet.checkpoint import load_checkpoint
from glitchnet.train import TrainConfig, last_checkpoint_path, train


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_kaggle(tmp_path_factory.mktemp("tiny"), per_split={"train": 6, "validation": 2, "test": 2},
                       durations=(1.0,))


def _config(data, out, **kw):
    base = dict(data=str(data), out=str(out), epochs=2, batch_size=6, lr=3e-3, augment="class", seed=3)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.slow
def test_two_epochs_then_resume_gives_identical_weights(tiny, tmp_path):
    events = []
    full = train(_config(tiny, tmp_path / "full.pt", epochs=3), progress=events.append)
    kinds = [e.kind for e in events]
    assert kinds.count("epoch") == 3 and kinds[-1] == "done" and "batch" in kinds and "cache" in kinds
    assert all(0.0 <= e.fraction <= 1.0 for e in events)
    assert [h["epoch"] for h in events[-1].history] == [1, 2, 3]
    assert events[-1].history[-1]["loss"] < events[-1].history[0]["loss"]

    # an interrupted run: 2 of 3 epochs, then --resume
    part_out = tmp_path / "part.pt"
    stop = threading.Event()
    # the stop flag trips when epoch 2 ends; the run halts one batch into epoch 3, as a Stop button would
    stopped = []
    train(_config(tiny, part_out, epochs=3), stop=stop,
          progress=lambda e: (stop.set() if e.kind == "epoch" and e.epoch == 2 else None, stopped.append(e.kind)))
    assert stopped[-1] == "stopped"
    assert load_checkpoint(last_checkpoint_path(part_out)).epoch == 2
    resumed = train(_config(tiny, part_out, epochs=3, resume=True))
    last_full = load_checkpoint(last_checkpoint_path(tmp_path / "full.pt"))
    last_resumed = load_checkpoint(last_checkpoint_path(part_out))
    assert last_resumed.epoch == 3
    for k, v in last_full.state_dict.items():
        assert torch.equal(v, last_resumed.state_dict[k]), k
    assert full.metrics["validation"]["accuracy"] == pytest.approx(resumed.metrics["validation"]["accuracy"])


@pytest.mark.slow
def test_checkpoint_describes_itself(tiny, tmp_path):
    ckpt = train(_config(tiny, tmp_path / "m.pt", epochs=1, augment="none", view="1.0"))
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.classes == ckpt.classes and len(loaded.classes) == 22
    assert loaded.views == ["1.0"] and loaded.input_size == 224
    assert loaded.config["augment"] == "none" and loaded.config["epochs"] == 1
    assert 0.0 <= loaded.metrics["validation"]["accuracy"] <= 1.0
    assert loaded.training_state is None
    assert load_checkpoint(last_checkpoint_path(tmp_path / "m.pt")).training_state["history"]


@pytest.mark.slow
def test_training_is_reproducible(tiny, tmp_path):
    a = train(_config(tiny, tmp_path / "a.pt", epochs=1))
    b = train(_config(tiny, tmp_path / "b.pt", epochs=1))
    for k in a.state_dict:
        assert torch.equal(a.state_dict[k], b.state_dict[k])


@pytest.mark.slow
def test_init_starts_from_a_checkpoint(tiny, tmp_path):
    first = train(_config(tiny, tmp_path / "first.pt", epochs=1))
    events = []
    tuned = train(_config(tiny, tmp_path / "tuned.pt", epochs=1, init=str(tmp_path / "first.pt")),
                  progress=events.append)
    scratch_again = train(_config(tiny, tmp_path / "scratch.pt", epochs=1))
    assert any("starting from the weights" in e.message for e in events)
    key = "conv1.weight"
    assert torch.equal(first.state_dict[key], scratch_again.state_dict[key])  # same seed, same start
    assert not torch.equal(tuned.state_dict[key], scratch_again.state_dict[key])  # another start


@pytest.mark.slow
def test_frequency_arch_starts_from_a_seed_checkpoint_and_names_itself(tiny, tmp_path):
    from glitchnet.checkpoint import CheckpointError
    from glitchnet.model import FrequencyGlitchNet

    seed = train(_config(tiny, tmp_path / "seed.pt", epochs=1))
    freq = train(_config(tiny, tmp_path / "freq.pt", epochs=1, arch="glitchnet-freq", init=str(tmp_path / "seed.pt")))
    assert freq.arch == "glitchnet-freq" and load_checkpoint(tmp_path / "freq.pt").arch == "glitchnet-freq"
    assert isinstance(load_checkpoint(tmp_path / "freq.pt").build_model(), FrequencyGlitchNet)
    assert freq.state_dict["conv1.weight"].shape[1] == 4 and seed.state_dict["conv1.weight"].shape[1] == 3
    with pytest.raises(CheckpointError, match="cannot start"):  # a seed network cannot start from a frequency one
        train(_config(tiny, tmp_path / "back.pt", epochs=1, init=str(tmp_path / "freq.pt")))


def test_precise_batchnorm_sets_the_statistics_of_the_images_and_leaves_the_weights():
    import numpy as np

    from glitchnet.images import normalize
    from glitchnet.model import GlitchNet
    from glitchnet.train import recompute_batchnorm

    torch.manual_seed(0)
    model = GlitchNet(num_classes=22, width=8).to(memory_format=torch.channels_last)
    images = np.random.default_rng(0).integers(0, 256, (64, 224, 224, 3), dtype=np.uint8)
    bn = model.bn1  # the stem's BatchNorm, right after the 7x7 convolution
    bn.running_mean.fill_(100.0)  # stale statistics, as after fast-changing weights
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    model.eval()
    recompute_batchnorm(model, images, n=64, batch_size=32, seed=1)

    assert not model.training and bn.momentum == 0.1  # mode and momentum restored
    for k, v in weights.items():
        assert torch.equal(model.state_dict()[k], v), k
    # two equal batches: the cumulative average of the batch means is the mean over all 64 images
    stem = model.conv1
    with torch.no_grad():
        expected = stem(normalize(images).contiguous(memory_format=torch.channels_last)).mean((0, 2, 3))
    assert torch.allclose(bn.running_mean, expected, atol=1e-4)
    assert int(bn.num_batches_tracked) == 2


@pytest.mark.slow
def test_training_validates_with_recomputed_statistics(tiny, tmp_path, monkeypatch):
    import glitchnet.train as train_module

    calls = []
    real = train_module.recompute_batchnorm
    monkeypatch.setattr(train_module, "recompute_batchnorm", lambda *a, **k: (calls.append(k["seed"]), real(*a, **k)))
    train(_config(tiny, tmp_path / "p.pt", epochs=2))
    assert calls == [(3, 1), (3, 2)]
    calls.clear()
    train(_config(tiny, tmp_path / "q.pt", epochs=1, precise_bn=0))
    assert calls == []


def test_stopping_in_the_first_epoch_says_no_checkpoint_was_written(tiny, tmp_path):
    stop = threading.Event()
    events = []
    train(_config(tiny, tmp_path / "early.pt", epochs=2), stop=stop,
          progress=lambda e: (events.append(e), stop.set() if e.kind == "batch" else None))
    assert [e.kind for e in events][0] == "start" and events[-1].kind == "stopped"
    assert events[-1].message == "stopped; no epoch had finished, so no checkpoint was written"
    assert not (tmp_path / "early.pt").exists()


def test_load_data_decodes_both_splits_and_reports_progress(tiny):
    from glitchnet.classes import CLASS_TO_INDEX
    from glitchnet.train import load_data

    events = []
    data = load_data(_config(tiny, "unused.pt"), events.append)
    assert data.x_train.shape == (18, 224, 224, 3) and str(data.x_train.dtype) == "uint8"
    assert data.x_val.shape == (6, 224, 224, 3)
    assert sorted(set(data.y_train.tolist())) == sorted(CLASS_TO_INDEX[c] for c in ("Blip", "Koi_Fish", "Power_Line"))
    assert events[0].kind == "start" and events[0].message == f"scanning {tiny}"
    assert {e.message for e in events if e.kind == "cache"} == {"decoding train images", "decoding validation images"}


def test_load_data_refuses_a_dataset_without_training_images(tmp_path):
    from glitchnet.data import DatasetError
    from glitchnet.train import load_data

    data = make_kaggle(tmp_path / "d", per_split={"validation": 1}, durations=(1.0,))
    with pytest.raises(DatasetError, match="no readable training images"):
        load_data(_config(data, tmp_path / "m.pt"), lambda e: None)


def test_validate_gives_the_cross_entropy_and_metrics_of_the_logits(tiny):
    import numpy as np
    from scipy.special import log_softmax

    from glitchnet.evaluate import predict_logits
    from glitchnet.model import GlitchNet
    from glitchnet.train import load_data, validate

    data = load_data(_config(tiny, "unused.pt"), lambda e: None)
    torch.manual_seed(0)
    model = GlitchNet(width=8).to(memory_format=torch.channels_last).eval()
    loss, metrics = validate(model, data.x_val, data.y_val, torch.device("cpu"), data.classes)
    logits = predict_logits(model, data.x_val)
    log_p = log_softmax(logits.astype(np.float64), axis=1)
    assert loss == pytest.approx(-log_p[np.arange(len(data.y_val)), data.y_val].mean(), rel=1e-5)
    assert metrics["n"] == 6 and metrics["accuracy"] == pytest.approx((logits.argmax(1) == data.y_val).mean())


@pytest.mark.slow
def test_start_or_resume_restores_the_run_state(tiny, tmp_path):
    from glitchnet.checkpoint import CheckpointError, save_checkpoint
    from glitchnet.train import build_training, start_or_resume

    config = _config(tiny, tmp_path / "r.pt", epochs=2)
    device = torch.device("cpu")
    model, optimizer, scheduler, _ = build_training(config, device, 22)
    assert start_or_resume(config, model, optimizer, scheduler, lambda e: None).start_epoch == 1  # nothing to resume
    train(_config(tiny, tmp_path / "r.pt", epochs=1))
    last = load_checkpoint(last_checkpoint_path(tmp_path / "r.pt"))
    events = []
    resumed = dataclasses.replace(config, resume=True)
    model, optimizer, scheduler, _ = build_training(resumed, device, 22)
    run = start_or_resume(resumed, model, optimizer, scheduler, events.append)
    assert run.start_epoch == 2 and [h["epoch"] for h in run.history] == [1]
    assert run.best_val == last.training_state["best_val_accuracy"]
    assert torch.equal(model.state_dict()["conv1.weight"], last.state_dict["conv1.weight"])
    assert scheduler.last_epoch == 1 and events[-1].message == "resuming after epoch 1"
    save_checkpoint(dataclasses.replace(last, training_state=None), last_checkpoint_path(tmp_path / "r.pt"))
    with pytest.raises(CheckpointError, match="no training state"):
        start_or_resume(resumed, model, optimizer, scheduler, lambda e: None)


def test_make_train_loader_batches_uint8_images_and_reshuffles_each_epoch():
    import numpy as np

    from glitchnet.train import TrainingData, make_train_loader

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 224, 224, 3), dtype=np.uint8)
    labels = np.arange(10) % 3
    data = TrainingData(images, labels, images[:0], labels[:0])
    loader, sampler = make_train_loader(_config("d", "m.pt", batch_size=4, augment="none"), data, torch.device("cpu"))
    assert len(loader) == 2  # the last, partial batch is dropped
    sampler.set_epoch(1)
    first = [y.tolist() for _, y in loader]
    x, _ = next(iter(loader))
    assert x.dtype == torch.uint8 and tuple(x.shape) == (4, 224, 224, 3)
    sampler.set_epoch(2)
    assert [y.tolist() for _, y in loader] != first
    sampler.set_epoch(1)
    assert [y.tolist() for _, y in loader] == first  # the order depends only on (seed, epoch): resumable


def test_save_epoch_keeps_the_best_checkpoint_and_always_the_resumable_state(tmp_path):
    from glitchnet.train import RunState, build_training, save_epoch

    config = _config("d", tmp_path / "m.pt", epochs=2, width=8)
    model, optimizer, scheduler, _ = build_training(config, torch.device("cpu"), 22)
    run = RunState()
    for epoch, val_acc in ((1, 0.5), (2, 0.25)):
        run.history.append({"epoch": epoch, "val_accuracy": val_acc})
        save_epoch(config, model, optimizer, scheduler, run, epoch, {"accuracy": val_acc})
    best, last = load_checkpoint(tmp_path / "m.pt"), load_checkpoint(last_checkpoint_path(tmp_path / "m.pt"))
    assert best.epoch == 1 and best.metrics["validation"]["accuracy"] == 0.5 and best.training_state is None
    assert last.epoch == 2 and last.training_state["best_val_accuracy"] == 0.5 and run.best_val == 0.5
    assert run.best.epoch == 1 and set(last.training_state) == {"optimizer", "scheduler", "history",
                                                                "best_val_accuracy", "world_size"}
    assert last.training_state["world_size"] == 1  # a resume on another number of ranks rescales the rate
