"""The glitchnet command: predict --json contract, errors, evaluate."""

import json
import subprocess
import sys

import pytest
from conftest import synthetic_crop

from glitchnet.cli import main


def _json_lines(out):
    return [json.loads(line) for line in out.strip().splitlines()]


def test_predict_json_good_and_broken(tmp_path, random_checkpoint, capsys):
    good = tmp_path / "H1_abcdefghij_spectrogram_1.0.png"
    synthetic_crop(0, 1).save(good)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    rc = main(["predict", "--model", str(random_checkpoint), "--json", str(good), str(broken), str(empty),
               str(tmp_path / "missing.png")])
    rows = _json_lines(capsys.readouterr().out)
    assert rc == 2 and len(rows) == 4  # bad input, as README and --help say; the good file is still answered
    ok = rows[0]
    assert ok["path"] == str(good) and ok["label"] in {c for c, _ in ok["top5"]}
    assert len(ok["top5"]) == 5 and 0.0 < ok["confidence"] <= 1.0
    assert ok["top5"][0][0] == ok["label"] and ok["top5"][0][1] == pytest.approx(ok["confidence"], abs=1e-5)
    assert sum(p for _, p in ok["top5"]) <= 1.0 + 1e-6
    assert [set(r) for r in rows[1:]] == [{"path", "error"}] * 3
    assert "not an image" in rows[1]["error"] and "empty" in rows[2]["error"] and "no such file" in rows[3]["error"]


def test_exit_statuses_are_the_ones_the_help_names(tmp_path, random_checkpoint, capsys):
    from glitchnet.cli import EXIT_BAD_INPUT, build_parser

    good = tmp_path / "a.png"
    synthetic_crop(0, 1).save(good)
    for by_glitch in ([], ["--by-glitch"]):
        assert main(["predict", "--model", str(random_checkpoint), *by_glitch, str(good),
                     str(tmp_path / "missing.png")]) == EXIT_BAD_INPUT == 2
        assert main(["predict", "--model", str(random_checkpoint), *by_glitch, str(good)]) == 0
    capsys.readouterr()
    assert main(["predict", "--help"]) == 0
    assert "exit status 2 for bad input" in " ".join(capsys.readouterr().out.split())
    simulate = next(a for a in build_parser()._subparsers._group_actions[0].choices["simulate"]._actions
                    if "--out" in a.option_strings)
    assert simulate.help  # every option of every command says what it is


def test_simulate_draws_no_stray_progress_line(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "sim"), "--per-class", "1", "--workers", "1"]) == 0
    out, err = capsys.readouterr()
    assert out == f"wrote {tmp_path / 'sim'}\n"
    drawn = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert drawn and all("/22 " in line for line in drawn), drawn  # the total known from the first draw: no "0glitch"


def test_predict_without_a_model_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GLITCHNET_MODEL", str(tmp_path / "none.pt"))
    f = tmp_path / "a.png"
    synthetic_crop(0, 1).save(f)
    assert main(["predict", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("glitchnet: error: no model at") and "\n" not in err


@pytest.mark.slow
def test_console_script_runs(tmp_path, random_checkpoint):
    f = tmp_path / "a.png"
    synthetic_crop(1, 2).save(f)
    proc = subprocess.run([sys.executable, "-m", "glitchnet.cli", "predict", "--json", "--model",
                           str(random_checkpoint), str(f)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert _json_lines(proc.stdout)[0]["path"] == str(f)


def test_evaluate_json(kaggle_dataset, random_checkpoint, capsys):
    assert main(["evaluate", "--data", str(kaggle_dataset), "--model", str(random_checkpoint), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == 6 and metrics["split"] == "test"
    assert sum(map(sum, metrics["confusion"])) == 6
    correct = sum(row[i] for i, row in enumerate(metrics["confusion"]))
    assert metrics["accuracy"] == pytest.approx(correct / 6)


def test_bad_dataset_is_one_line_error(tmp_path, random_checkpoint, capsys):
    assert main(["evaluate", "--data", str(tmp_path / "nope"), "--model", str(random_checkpoint)]) == 2
    assert capsys.readouterr().err.strip() == f"glitchnet: error: no such folder: {tmp_path / 'nope'}"


def test_scan_without_the_strain_extra_names_it(tmp_path, monkeypatch, capsys):
    for name in ("gwpy", "gwpy.timeseries", "h5py"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it now fails, as when it is not installed
    assert main(["scan", "--strain", str(tmp_path / "x.hdf5"), "--gps", "1e9", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == ("glitchnet: error: reading strain files needs gwpy and h5py: "
                                       "pip install 'glitchnet[strain]'\n")


def test_calibrate_fits_a_temperature_and_lowers_ece(tmp_path, random_checkpoint, capsys):
    import shutil

    from conftest import make_kaggle

    from glitchnet.checkpoint import load_checkpoint

    data = make_kaggle(tmp_path / "d", per_split={"train": 1, "validation": 8, "test": 1}, durations=(1.0,))
    model = tmp_path / "m.pt"
    shutil.copy(random_checkpoint, model)
    assert main(["calibrate", "--data", str(data), "--model", str(model)]) == 0
    cal = load_checkpoint(model).metrics["calibration"]
    assert cal["n"] == 24 and 0.0 <= cal["ece_after"] <= 1.0 and 0.0 <= cal["ece_before"] <= 1.0
    assert load_checkpoint(model).temperature == pytest.approx(cal["temperature"]) != 1.0


@pytest.mark.slow
def test_evaluate_figures_on_the_golden_set(real, random_checkpoint, capsys):
    assert main(["evaluate", "--figures", str(real / "golden"), "--model", str(random_checkpoint), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["per_glitch"]["n"] == 69  # 3 subjects per class, 6 for None_of_the_Above
    assert result["per_image"]["n"] == 21 * (1 + 2 * 4) + (1 + 5 * 4)  # JPGs one view, GIFs four
    assert {r["views"] for r in result["glitches"]} == {1, 4}


def test_temperature_scaling_fixes_overconfidence():
    import numpy as np

    from glitchnet.evaluate import expected_calibration_error, fit_temperature, softmax

    rng = np.random.default_rng(0)
    y = rng.integers(0, 22, 4000)
    logits = rng.normal(0, 1, (4000, 22))
    logits[np.arange(4000), y] += 2.0  # right about 60% of the time ...
    logits *= 4.0  # ... but far too sure
    t = fit_temperature(logits, y)
    assert 1.5 < t < 5.0
    assert expected_calibration_error(softmax(logits, t), y) < 0.03 < expected_calibration_error(softmax(logits), y)
