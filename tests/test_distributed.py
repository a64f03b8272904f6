"""torch.distributed: torchrun's environment, agreed failures, sharding, sharded prediction into one results file."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import make_kaggle, synthetic_crop

from glitchnet import distributed
from glitchnet.bulk import (
    RESULT_TYPES,
    OutputError,
    existing_parts,
    expand_inputs,
    merge,
    part_path,
    predict_to_file,
    read_results,
    typed,
    write_results,
)
from glitchnet.distributed import RankError, World, backend_for, read_env, shard, shard_groups
from glitchnet.glitches import glitch_key, results_table
from glitchnet.inference import Predictor

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


# ------------------------------------------------------------------------------------------------ environment


def test_read_env_defaults_to_a_world_of_one():
    assert read_env({}) == World(rank=0, world_size=1, local_rank=0)
    assert not read_env({}).distributed and read_env({}).is_main


def test_read_env_reads_torchrun_variables():
    world = read_env({"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1"})
    assert (world.rank, world.world_size, world.local_rank) == (5, 8, 1)
    assert world.distributed and not world.is_main


@pytest.mark.parametrize("env, words", [({"RANK": "x", "WORLD_SIZE": "2"}, "RANK='x'"),
                                        ({"RANK": "2", "WORLD_SIZE": "2"}, "0 <= RANK < WORLD_SIZE"),
                                        ({"RANK": "0", "WORLD_SIZE": "0"}, "WORLD_SIZE=0")])
def test_read_env_refuses_nonsense_in_one_line(env, words):
    with pytest.raises(ValueError) as info:
        read_env(env)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_backend_follows_the_device_and_checks_an_override():
    import torch

    assert backend_for(torch.device("cpu")) == "gloo"
    assert backend_for(torch.device("cuda", 0)) == "nccl"
    assert backend_for(torch.device("cpu"), "gloo") == "gloo"
    with pytest.raises(ValueError, match="nccl backend needs CUDA"):
        backend_for(torch.device("cpu"), "nccl")
    with pytest.raises(ValueError, match="backend must be one of auto, gloo, nccl"):
        backend_for(torch.device("cpu"), "mpi")


def test_a_world_of_one_runs_without_a_process_group():
    seen = distributed.run(lambda world: (world.rank, world.world_size, world.backend, str(world.device)),
                           device="cpu")
    assert seen == (0, 1, None, "cpu")
    assert distributed.all_gather_object(7) == [7] and distributed.broadcast_object("x") == "x"
    with pytest.raises(KeyError):  # alone, an error passes through unchanged
        with distributed.all_ranks_ok():
            raise KeyError("k")


def test_rank_error_names_the_rank():
    exc = RankError(3, "no such folder: /data", agreed=True)
    assert str(exc) == "rank 3: no such folder: /data" and isinstance(exc, ValueError) and exc.agreed


def test_device_for_takes_this_ranks_gpu_and_says_when_there_is_none():
    import torch

    from glitchnet.distributed import device_for

    world = World(rank=3, world_size=4, local_rank=1)
    assert device_for(world, "cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        assert device_for(World(local_rank=0), "auto") == torch.device("cuda", 0)
    else:
        assert device_for(world, "auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="no CUDA GPU is available here"):
            device_for(world, "cuda")
    with pytest.raises(ValueError, match="device must be auto, cpu, cuda or cuda:N, not 'tpu9'"):
        device_for(world, "tpu9")


def test_learning_rate_follows_the_global_batch():
    from glitchnet.distributed import lr_scale

    assert [lr_scale("linear", n) for n in (1, 2, 8)] == [1.0, 2.0, 8.0]
    assert [lr_scale("sqrt", n) for n in (1, 4, 64)] == [1.0, 2.0, 8.0]
    assert lr_scale("none", 64) == 1.0
    with pytest.raises(ValueError, match="one of linear, sqrt, none"):
        lr_scale("cubic", 2)


def test_ranks_batches_together_are_one_process_batch():
    """EpochSampler as a DistributedSampler: step k of N ranks x batch B is step k of one process x batch N*B."""
    from glitchnet.data import EpochSampler

    def batches(sampler, size):
        order = [i for i, _ in sampler]
        return [order[k:k + size] for k in range(0, len(order) - size + 1, size)]

    one = EpochSampler(70, shuffle=True, seed=3)
    one.set_epoch(2)
    shares = []
    for r in range(2):
        s = EpochSampler(70, shuffle=True, seed=3, num_replicas=2, rank=r)
        s.set_epoch(2)
        assert all(epoch == 2 for _, epoch in s) and len(s) == 35
        shares.append(batches(s, 16))
    for k, batch in enumerate(batches(one, 32)):
        assert sorted(shares[0][k] + shares[1][k]) == sorted(batch)
    another = EpochSampler(70, shuffle=True, seed=3)
    another.set_epoch(3)
    assert [i for i, _ in another] != [i for i, _ in one]  # reshuffled per epoch
    padded = [[i for i, _ in EpochSampler(5, shuffle=False, num_replicas=3, rank=r)] for r in range(3)]
    assert padded == [[0, 3], [1, 4], [2, 0]]  # padded by repeating the start, like DistributedSampler


# ---------------------------------------------------------------------------------------------------- sharding


def test_shards_are_disjoint_complete_balanced_and_deterministic():
    items = [f"f{i}" for i in range(23)]
    shards = [shard(items, r, 4) for r in range(4)]
    assert sorted(sum(shards, [])) == sorted(items)
    assert sorted(len(s) for s in shards) == [5, 6, 6, 6]
    assert shards == [shard(items, r, 4) for r in range(4)]


def test_group_shards_keep_each_glitch_on_one_rank():
    names = [f"H1_{gid}_spectrogram_{d}.png" for gid in ("aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc")
             for d in (0.5, 1.0, 2.0, 4.0)] + ["loose.png", "other.jpg"]
    shards = [shard_groups(names, glitch_key, r, 2) for r in range(2)]
    assert sorted(sum(shards, [])) == sorted(names)
    for gid in ("aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc"):
        holders = [r for r in range(2) if any(gid in n for n in shards[r])]
        assert len(holders) == 1
        views = [n for n in shards[holders[0]] if gid in n]
        assert len(views) == 4  # consecutive, in input order
        start = shards[holders[0]].index(views[0])
        assert shards[holders[0]][start:start + 4] == views
    # the split depends on the set of files, not on the order they were given in
    assert [sorted(shard_groups(names[::-1], glitch_key, r, 2)) for r in range(2)] == [sorted(s) for s in shards]


# ------------------------------------------------------------------------------------------------ results files


def _rows(*rows: dict) -> pd.DataFrame:
    """A results table from partial rows (missing columns empty)."""
    return typed(pd.DataFrame([{c: r.get(c) for c in RESULT_TYPES} for r in rows], columns=list(RESULT_TYPES)))


def test_result_types_are_the_app_tables_columns(tmp_path, random_checkpoint):
    files = []
    for d in (0.5, 1.0):
        files.append(str(tmp_path / f"H1_abcdefghij_spectrogram_{d}.png"))
        synthetic_crop(0, int(10 * d), (190, 160)).save(files[-1])
    (tmp_path / "bad.png").write_bytes(b"nope")
    files.append(str(tmp_path / "bad.png"))
    table = results_table(Predictor(random_checkpoint).classify_files([(f, f) for f in files], explain=False))
    assert list(table.columns) == list(RESULT_TYPES)
    df = typed(table)
    assert list(df["row"]) == ["view", "view", "combined", "view"]
    assert list(df["views"].astype(object).where(df["views"].notna(), None)) == [1, 1, 2, None]
    assert df.to_csv(index=False).splitlines()[3].split(",")[8] == "2"  # a count, not "2.0"
    assert pd.isna(df.loc[3, "label"]) and len(df.loc[3, "error"]) > 0


def test_a_part_cut_by_a_killed_process_loses_only_its_last_line(tmp_path):
    part = tmp_path / ".out.csv.part00000of00001.csv"
    text = _rows(*({"glitch": f"f{i}.png", "row": "view", "name": f"f{i}.png", "error": "x"}
                   for i in range(3))).to_csv(index=False)
    part.write_text(text[:-7])  # the last row cut short
    assert list(read_results(part)["name"]) == ["f0.png", "f1.png"]
    part.write_text("")
    assert len(read_results(part)) == 0


def test_merge_sorts_by_glitch_and_a_later_row_wins(tmp_path):
    out = tmp_path / "out.csv"
    b = {"glitch": "H1_bbbbbbbbbb", "row": "view", "ifo": "H1", "gravityspy_id": "bbbbbbbbbb", "label": "Blip"}
    write_results(_rows({**b, "name": "b/H1_bbbbbbbbbb_spectrogram_2.0.png", "duration_s": 2.0},
                        {**b, "name": "H1_bbbbbbbbbb (combined, 2 views)", "row": "combined", "views": 2},
                        {**b, "name": "a/H1_bbbbbbbbbb_spectrogram_1.0.png", "duration_s": 1.0},
                        {"glitch": "zz.png", "row": "view", "name": "zz.png", "error": "old reason"}), out)
    part_path(out, 0, 2).write_text(_rows(
        {"glitch": "zz.png", "row": "view", "name": "zz.png", "error": "new reason"},
        {**b, "name": "H1_bbbbbbbbbb (combined, 3 views)", "row": "combined", "views": 3},
        {**b, "name": "c/H1_bbbbbbbbbb_spectrogram_4.0.png", "duration_s": 4.0},
        {"glitch": "H1_aaaaaaaaaa", "row": "view", "name": "H1_aaaaaaaaaa_spectrogram_0.5.png"}).to_csv(index=False))
    df = merge(out, existing_parts(out), previous=True)
    assert list(df["name"]) == ["H1_aaaaaaaaaa_spectrogram_0.5.png", "a/H1_bbbbbbbbbb_spectrogram_1.0.png",
                                "b/H1_bbbbbbbbbb_spectrogram_2.0.png", "c/H1_bbbbbbbbbb_spectrogram_4.0.png",
                                "H1_bbbbbbbbbb (combined, 3 views)", "zz.png"]
    assert df.loc[5, "error"] == "new reason"


def _glitch_folder(root: Path, views: int = 4, glitches: int = 3) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for g in range(glitches):
        for d in (0.5, 1.0, 2.0, 4.0)[:views]:
            synthetic_crop(g % 3, 10 * g + int(4 * d), (190, 160)).save(root / f"H1_gl{g:08d}_spectrogram_{d}.png")
    synthetic_crop(1, 99, (190, 160)).save(root / "loose.png")
    (root / "broken.png").write_bytes(b"not a png")
    return root


def test_predict_to_file_fuses_glitches_and_refuses_to_overwrite(tmp_path, random_checkpoint):
    data = _glitch_folder(tmp_path / "in")
    predictor = Predictor(random_checkpoint)
    files = list(expand_inputs([str(data)]))
    out = tmp_path / "out.csv"
    result = predict_to_file(predictor, files, out, batch_size=5)
    df = read_results(out)
    assert (result.rows, result.predicted, result.skipped, result.errors) == (14 + 3, 14, 0, 1)
    assert len(df) == 17 and df["name"].is_unique
    combined = df[df["row"] == "combined"]
    assert list(combined["name"]) == [f"H1_gl{g:08d} (combined, 4 views)" for g in range(3)]
    # each combined row follows its views
    first = df.index[df["name"] == "H1_gl00000000 (combined, 4 views)"][0]
    assert list(df.loc[first - 4:first - 1, "duration_s"]) == [0.5, 1.0, 2.0, 4.0]
    app = results_table(predictor.classify_files([(f, f) for f in files[:4]], explain=False))
    assert df.loc[first, "label"] == app.iloc[-1]["label"] and df.loc[first, "top5"] == app.iloc[-1]["top5"]
    assert df.loc[df["name"] == str(data / "broken.png"), "error"].notna().item()
    assert not existing_parts(out)
    with pytest.raises(OutputError, match="out.csv exists: add --resume"):
        predict_to_file(predictor, files, out)


def test_resume_classifies_only_what_is_missing(tmp_path, random_checkpoint):
    data = _glitch_folder(tmp_path / "in", views=3)
    predictor = Predictor(random_checkpoint)
    out = tmp_path / "out.parquet"
    predict_to_file(predictor, list(expand_inputs([str(data)])), out)
    assert "H1_gl00000001 (combined, 3 views)" in set(read_results(out)["name"])
    # a fourth view of one glitch arrives, and a new glitch
    synthetic_crop(0, 500, (190, 160)).save(data / "H1_gl00000001_spectrogram_4.0.png")
    synthetic_crop(2, 501, (190, 160)).save(data / "L1_newglitch0_spectrogram_1.0.png")
    result = predict_to_file(predictor, list(expand_inputs([str(data)])), out, resume=True)
    assert result.predicted == 4 + 1 and result.skipped == 3 + 3 + 2
    names = list(read_results(out)["name"])
    assert "H1_gl00000001 (combined, 4 views)" in names and "H1_gl00000001 (combined, 3 views)" not in names
    assert len(names) == len(set(names)) == 13 + 3  # 13 files, 3 fused glitches


def test_an_unfinished_run_is_resumed_from_its_parts(tmp_path, random_checkpoint):
    data = _glitch_folder(tmp_path / "in")
    predictor = Predictor(random_checkpoint)
    files = list(expand_inputs([str(data)]))
    out = tmp_path / "out.csv"
    # what a killed two-rank run leaves: rank 1's part with one whole glitch, cut in its next line
    done = results_table(predictor.classify_files([(f, f) for f in files[:4]], explain=False))
    part_path(out, 1, 2).write_text(typed(done).to_csv(index=False) + "H1_gl00000001,view,data/cut-off")
    with pytest.raises(OutputError, match="unfinished run left parts of out.csv"):
        predict_to_file(predictor, files, out)
    result = predict_to_file(predictor, files, out, resume=True)
    assert result.skipped == 4 and result.predicted == 10 and result.rows == 17
    assert not existing_parts(out)


# ------------------------------------------------------------------------------------- several processes (gloo)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", **extra)
    return env


def launch_ranks(args_per_rank: list[list[str]], cwd: Path, timeout: float = 300) -> list[subprocess.CompletedProcess]:
    """Start one ``python -m glitchnet`` per rank with the environment torchrun would give it (as on separate nodes,
    each rank may get its own arguments), and wait for all."""
    port = str(_free_port())
    procs = [subprocess.Popen([sys.executable, "-m", "glitchnet", *args], cwd=cwd, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE,
                              env=_env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(len(args_per_rank)),
                                       MASTER_ADDR="127.0.0.1", MASTER_PORT=port))
             for r, args in enumerate(args_per_rank)]
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


@pytest.mark.slow
def test_sharded_prediction_equals_single_process_file_for_file(tmp_path, random_checkpoint):
    data = _glitch_folder(tmp_path / "in", glitches=5)
    single = tmp_path / "single.csv"
    assert subprocess.run([sys.executable, "-m", "glitchnet", "predict", "--model", str(random_checkpoint),
                           "--out", str(single), str(data)], env=_env(), capture_output=True,
                          timeout=300).returncode == 0
    sharded = tmp_path / "sharded.csv"
    proc = subprocess.run([*TORCHRUN, "--nproc-per-node", "2", "-m", "glitchnet", "predict", "--model",
                           str(random_checkpoint), "--out", str(sharded), "--batch-size", "3", str(data)],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "on 2 rank(s)" in proc.stdout
    a, b = read_results(single), read_results(sharded)
    assert len(a) == 22 + 5
    pd.testing.assert_frame_equal(a, b)
    assert single.read_bytes() == sharded.read_bytes()
    assert not existing_parts(sharded)


@pytest.mark.slow
def test_a_bad_model_file_on_one_node_ends_both_ranks_with_one_line(tmp_path, random_checkpoint):
    data = _glitch_folder(tmp_path / "in", glitches=2)
    broken = tmp_path / "node1" / "model.pt"  # rank 1's copy of the model, cut short in transfer
    broken.parent.mkdir()
    broken.write_bytes(random_checkpoint.read_bytes()[:1000])
    args = ["predict", "--out", str(tmp_path / "out.csv"), str(data), "--model"]
    runs = launch_ranks([[*args, str(random_checkpoint)], [*args, str(broken)]], tmp_path)
    assert [r.returncode for r in runs] == [2, 2]
    lines = [line for r in runs for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("glitchnet: error: rank 1: model.pt is not a readable"), lines
    assert not (tmp_path / "out.csv").exists() and not existing_parts(tmp_path / "out.csv")


# ------------------------------------------------------------------------------------------------ DDP training


@pytest.fixture(scope="module")
def tiny_train(tmp_path_factory):
    """66 training images (3 classes x 22 glitches, the 1 s view) and 6 for validation: two steps of 32 per epoch."""
    return make_kaggle(tmp_path_factory.mktemp("tiny-train"), per_split={"train": 22, "validation": 2},
                       durations=(1.0,), size=(120, 100))


TRAIN_ARGS = ["--epochs", "2", "--seed", "3", "--precise-bn", "64", "--workers", "0"]


def _torchrun_train(data: Path, out: Path, cache: Path, *extra: str, tag: str = "") -> subprocess.Popen:
    return subprocess.Popen([*TORCHRUN, "--nproc-per-node", "2", "-m", "glitchnet", "train", "--data", str(data),
                             "--out", str(out), "--batch-size", "16", "--lr", "1e-3", *TRAIN_ARGS, *extra],
                            env=_env(GLITCHNET_CACHE_DIR=str(cache), GLITCHNET_TEST_TAG=tag), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture(scope="module")
def ddp_run(tiny_train, tmp_path_factory):
    """Two ranks x batch 16 at --lr 1e-3 (linear scaling: 2e-3 applied), two epochs, uninterrupted."""
    folder = tmp_path_factory.mktemp("ddp")
    proc = _torchrun_train(tiny_train, folder / "ref.pt", folder / "cache")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return folder / "ref.pt"


def _update(state: dict, start: dict, key: str):
    return state[key].double() - start[key].double()


@pytest.mark.slow
def test_two_ranks_of_16_train_as_one_process_of_32(tiny_train, ddp_run, tmp_path):
    """Gradient averaging and global-batch BatchNorm make the runs the same computation; what differs is floating-point
    summation order, which Adam's normalized steps amplify where a gradient is nearly zero. Tolerance: each tensor's
    update (change from the shared initial weights) agrees to 5% in L2 norm (measured: at most 1.3% for the
    convolutions, below 0.1% for BatchNorm and the classifier; one process on 1 thread against 2 threads differs as
    much, 1.2%), BatchNorm and classifier tensors to 0.2%, and the losses to 1e-4."""
    from glitchnet.checkpoint import load_checkpoint
    from glitchnet.model import build_architecture
    from glitchnet.train import TrainConfig, last_checkpoint_path, seed_everything, train

    single_out = tmp_path / "single.pt"
    train(TrainConfig(data=str(tiny_train), out=str(single_out), epochs=2, batch_size=32, lr=2e-3, seed=3,
                      precise_bn=64, workers=0))
    seed_everything(3)
    start = build_architecture("glitchnet").state_dict()
    one = load_checkpoint(last_checkpoint_path(single_out))
    two = load_checkpoint(last_checkpoint_path(ddp_run))
    assert two.training_state["world_size"] == 2 and one.training_state["world_size"] == 1
    assert [h["lr"] for h in one.metrics["history"]] == pytest.approx([h["lr"] for h in two.metrics["history"]])
    for key in start:
        if not start[key].is_floating_point() or "running" in key:
            continue
        a, b = _update(one.state_dict, start, key), _update(two.state_dict, start, key)
        rel = float((a - b).norm() / a.norm())
        assert rel < (0.05 if key.endswith("conv1.weight") or key.endswith("conv2.weight") else 2e-3), (key, rel)
    for h1, h2 in zip(one.metrics["history"], two.metrics["history"]):
        assert h1["loss"] == pytest.approx(h2["loss"], abs=1e-4)
        assert h1["val_loss"] == pytest.approx(h2["val_loss"], abs=1e-3)
    for key in ("bn1.running_mean", "layer2.bn2.running_var"):  # precise BatchNorm over the same batches
        relative = (one.state_dict[key] - two.state_dict[key]).abs().max() / one.state_dict[key].abs().max()
        assert float(relative) < 5e-2, key  # the same batches through weights that differ by the noise above


def _pid_of_rank(tag: str, rank: int) -> int | None:
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            entries = environ.read_bytes().split(b"\0")
        except OSError:
            continue
        if f"GLITCHNET_TEST_TAG={tag}".encode() in entries and f"RANK={rank}".encode() in entries:
            return int(environ.parent.name)
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds rank 1's process through /proc")
def test_resume_after_kill_9_of_rank_1_reaches_the_same_weights(tiny_train, ddp_run, tmp_path):
    import signal
    import time

    import torch

    from glitchnet.checkpoint import load_checkpoint
    from glitchnet.train import TrainConfig, last_checkpoint_path, train

    out = tmp_path / "run.pt"
    last = last_checkpoint_path(out)
    tag = f"kill-{os.getpid()}-{tmp_path.name}"
    proc = _torchrun_train(tiny_train, out, tmp_path / "cache", tag=tag)
    deadline = time.monotonic() + 500
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # into epoch 2 (its first step takes longer than this)
    pid = _pid_of_rank(tag, 1)
    assert pid is not None and proc.poll() is None, "the run ended before rank 1 could be killed"
    os.kill(pid, signal.SIGKILL)
    proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert load_checkpoint(last).epoch == 1  # whole, never half-written
    shutil.copytree(tmp_path, tmp_path.parent / f"{tmp_path.name}-one", ignore=shutil.ignore_patterns("cache"))

    # the same world size: exactly the uninterrupted run's weights
    proc = _torchrun_train(tiny_train, out, tmp_path / "cache", "--resume")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    resumed, reference = load_checkpoint(last), load_checkpoint(last_checkpoint_path(ddp_run))
    assert resumed.epoch == 2
    for key, value in reference.state_dict.items():
        assert torch.equal(value, resumed.state_dict[key]), key

    # another world size: one process carries on, at the learning rate of its own global batch
    other = tmp_path.parent / f"{tmp_path.name}-one" / "run.pt"
    events = []
    train(TrainConfig(data=str(tiny_train), out=str(other), batch_size=16, lr=1e-3, epochs=2, seed=3,
                      precise_bn=64, workers=0, resume=True), progress=events.append)
    assert any("resuming a 2-rank run on 1 rank(s): learning rate × 0.5" in e.message for e in events)
    state = load_checkpoint(last_checkpoint_path(other))
    assert state.epoch == 2 and state.training_state["world_size"] == 1
    assert [g["initial_lr"] for g in state.training_state["optimizer"]["param_groups"]] == [pytest.approx(1e-3)]


@pytest.mark.slow
def test_a_bad_dataset_on_one_rank_ends_both_with_one_clear_line(tiny_train, tmp_path):
    smaller = make_kaggle(tmp_path / "smaller", per_split={"train": 20, "validation": 2}, durations=(1.0,),
                          size=(120, 100))
    for rank1_data, words in ((tmp_path / "not-there", "no such folder"),
                              (smaller, "its dataset differs from rank 0's: 60 training and 6 validation images")):
        args = ["train", "--out", str(tmp_path / "m.pt"), "--batch-size", "16", *TRAIN_ARGS, "--data"]
        runs = launch_ranks([[*args, str(tiny_train)], [*args, str(rank1_data)]], tmp_path)
        assert [r.returncode for r in runs] == [2, 2]
        # (progress bars clear themselves with terminal codes before the line: on a terminal it stands alone)
        lines = [line[line.index("glitchnet: error"):] for r in runs for line in r.stderr.splitlines()
                 if "glitchnet: error" in line]
        assert len(lines) == 1 and lines[0].startswith(f"glitchnet: error: rank 1: {words}"), lines
        assert "Traceback" not in "".join(r.stderr for r in runs)
        assert not (tmp_path / "m.pt").exists()


def _global_batchnorm_rank(rank: int, store: str, x, folder: str) -> None:
    import datetime

    import torch
    import torch.distributed as dist

    from glitchnet.syncbn import GlobalBatchNorm2d

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=120))
    try:
        layer = GlobalBatchNorm2d(3, momentum=0.3)
        with torch.no_grad():
            layer.weight.copy_(torch.tensor([1.0, 2.0, -0.5]))
            layer.bias.copy_(torch.tensor([0.1, 0.0, 0.3]))
        half = x[rank * 4:(rank + 1) * 4].clone().requires_grad_(True)
        out = layer(half)
        (out * torch.arange(out.numel()).reshape(out.shape).sin()).sum().backward()
        # each rank writes its own file: no Manager process to fork from this many-threaded test process
        torch.save((out.detach(), half.grad, layer.weight.grad, layer.running_mean, layer.running_var),
                   Path(folder) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_global_batchnorm_on_two_ranks_matches_torch_batchnorm_on_the_whole_batch(tmp_path):
    import time

    import torch
    import torch.multiprocessing as mp

    torch.manual_seed(0)
    x = torch.randn(8, 3, 5, 6) * 3 + 7  # a large mean: the one-pass variance must not cancel
    context = mp.spawn(_global_batchnorm_rank, args=(str(tmp_path / "store"), x, str(tmp_path)), nprocs=2, join=False)
    deadline = time.monotonic() + 300
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the two ranks did not finish within 300 s")
    result = {rank: torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1)}
    ref = torch.nn.BatchNorm2d(3, momentum=0.3)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor([1.0, 2.0, -0.5]))
        ref.bias.copy_(torch.tensor([0.1, 0.0, 0.3]))
    whole = x.clone().requires_grad_(True)
    out = ref(whole)
    weights = torch.cat([torch.arange(out[:4].numel()).reshape(out[:4].shape).sin()] * 2)
    (out * weights).sum().backward()
    # DDP sums (then averages) the ranks' weight gradients; the whole batch's loss is the sum of the ranks' losses
    torch.testing.assert_close(result[0][2] + result[1][2], ref.weight.grad, rtol=1e-4, atol=1e-5)
    for rank in (0, 1):
        y, gx, _, rm, rv = result[rank]
        torch.testing.assert_close(y, out[rank * 4:(rank + 1) * 4].detach(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(gx, whole.grad[rank * 4:(rank + 1) * 4], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(rm, ref.running_mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(rv, ref.running_var, rtol=1e-5, atol=1e-6)
