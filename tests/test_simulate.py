"""The Omega-scan simulator: image format, determinism, dataset layout and resume, class features."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from glitchnet.classes import ALL_INFO, CLASSES, DURATIONS_S
from glitchnet.data import scan_dataset
from glitchnet.images import PLOT_SIZE, frequency_of_row, rgb_to_energy, row_of_frequency, viridis_fraction
from glitchnet.omega.qtransform import SAMPLE_RATE_HZ
from glitchnet.simulate import (
    DEFAULT_VERSION,
    MODELS,
    class_counts,
    default_dataset,
    glitch_metadata,
    simulate_dataset,
    simulate_glitch,
    simulate_strain,
)
from glitchnet.simulate import dataset as sim_dataset
from glitchnet.simulate.morphologies import Canvas, Chance, Integers, LogNormal, Normal, Uniform
from glitchnet.simulate.noise import SEGMENT_S

NAME = re.compile(r"^(H1|L1)_[A-Za-z0-9]{10}_spectrogram_(0\.5|1\.0|2\.0|4\.0)\.png$")


def energy(image) -> np.ndarray:
    """Normalized energy of the interior pixels (frame row and column dropped), top row = 2048 Hz."""
    return rgb_to_energy(np.asarray(image.convert("RGB")))[1:, 1:]


def bright(image, duration_s: float, threshold: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies (Hz) and times (s from the centre) of the pixels brighter than ``threshold``."""
    rows, cols = np.nonzero(energy(image) > threshold)
    # interior row r is image row r + 1: frequency_of_row's axis spans the full image height
    freqs = frequency_of_row(rows + 1, PLOT_SIZE[1])
    times = (cols + 0.5) / (PLOT_SIZE[0] - 1) * duration_s - duration_s / 2
    return freqs, times


# ----------------------------------------------------------------------------------------------- one glitch


def test_views_are_kaggle_images():
    images, row = simulate_glitch("Blip", 3)
    assert sorted(images) == list(DURATIONS_S)
    for img in images.values():
        assert img.size == PLOT_SIZE and img.mode == "RGBA"
        a = np.asarray(img)
        assert (a[..., 3] == 255).all()
        assert (a[0, :, :3] == 0).all() and (a[:, 0, :3] == 0).all()  # the black spines
        assert viridis_fraction(a[1:, 1:, :3]) > 0.999
        assert np.median(energy(img)) < 3.0  # a dark blue background, as Gravity Spy's
    assert row["label"] == "Blip" and row["ifo"] in ("H1", "L1")
    assert set(row) >= {"peak_frequency", "central_freq", "bandwidth", "duration", "snr", "amplitude", "event_time"}


def test_same_seed_same_images_and_metadata():
    a, ra = simulate_glitch("Whistle", 11)
    b, rb = simulate_glitch("Whistle", 11)
    c, _ = simulate_glitch("Whistle", 12)
    assert ra == rb == glitch_metadata("Whistle", 11)
    for d in DURATIONS_S:
        assert np.array_equal(np.asarray(a[d]), np.asarray(b[d]))
    assert not np.array_equal(np.asarray(a[1.0]), np.asarray(c[1.0]))


def test_ifo_override_and_errors():
    assert simulate_glitch("Tomte", 1, ifo="L1")[1]["ifo"] == "L1"
    with pytest.raises(ValueError, match="unknown Gravity Spy class"):
        simulate_glitch("Nope", 1)
    with pytest.raises(ValueError, match="ifo"):
        simulate_glitch("Blip", 1, ifo="V1")


def test_strain_is_coloured_ligo_noise():
    strain, row = simulate_strain("No_Glitch", 5)
    assert strain.size == int(SAMPLE_RATE_HZ * SEGMENT_S)
    rms = float(np.std(strain))
    assert 1e-22 < rms < 1e-18  # dominated by the low-frequency seismic wall, as real strain
    spec = np.abs(np.fft.rfft(strain))
    f = np.fft.rfftfreq(strain.size, 1 / SAMPLE_RATE_HZ)
    assert spec[(f > 15) & (f < 20)].mean() > 10 * spec[(f > 150) & (f < 300)].mean()


def test_every_class_has_a_model_with_a_reason():
    # every class of every shipped set, each set's classes in its order
    assert sorted(m.label for m in MODELS) == sorted(ALL_INFO)
    for m in MODELS:
        assert m.reason and "\n" not in m.reason
        for lo, hi in (m.peak_frequency_hz, m.duration_s, m.bandwidth_hz, m.snr, *m.extra.values()):
            assert lo <= hi
        for dist in m.dists.values():
            if isinstance(dist, (Uniform, Integers)):
                assert dist.lo < dist.hi, (m.label, dist)
            elif isinstance(dist, Chance):
                assert 0 < dist.p < 1, (m.label, dist)
            else:
                assert dist.sigma > 0, (m.label, dist)


class _Recording(dict):
    """A class's ``dists`` that remembers which names the waveform read."""

    def __init__(self, dists: dict) -> None:
        super().__init__(dists)
        self.read: set[str] = set()

    def __getitem__(self, name: str):
        self.read.add(name)
        return super().__getitem__(name)


SUB_KIND_KNOBS = {"Extremely_Loud": "form", "None_of_the_Above": "kind", "Whistle": "shape"}


@pytest.mark.slow
def test_waveforms_draw_only_from_their_table_and_use_all_of_it():
    n = int(SEGMENT_S * SAMPLE_RATE_HZ)
    for m in MODELS:
        dists = _Recording(m.dists)
        knob = SUB_KIND_KNOBS.get(m.label)
        kinds = range(int(m.extra[knob][1]) + 1) if knob else [None]
        for seed in range(12):
            for kind in kinds:
                rng = np.random.default_rng(seed)
                d = m.draw(rng, "H1" if seed % 2 else "L1")
                if knob:
                    d.extra[knob] = float(kind)
                d.dist = dists  # a name missing from the table raises KeyError here
                canvas = Canvas(n, SAMPLE_RATE_HZ)
                m.waveform(canvas, rng, d)
                assert np.isfinite(canvas.data).all()
                assert m.label == "No_Glitch" or np.abs(canvas.data).max() > 0, (m.label, seed, kind)
        assert dists.read == set(m.dists), (m.label, set(m.dists) - dists.read)


def test_component_distributions():
    rng = np.random.default_rng(0)
    assert set(Integers(3, 5)(rng, 2000).tolist()) == {3, 4, 5}  # both ends included
    u = Uniform(2.0, 3.0)(rng, 2000)
    assert u.min() >= 2.0 and u.max() < 3.0 and abs(u.mean() - 2.5) < 0.03
    assert abs(np.std(Normal(0.5)(rng, 4000, scale=2.0)) - 1.0) < 0.05
    assert abs(np.median(LogNormal(0.4)(rng, 4000)) - 1.0) < 0.05
    assert abs(np.mean([Chance(0.25)(rng) for _ in range(4000)]) - 0.25) < 0.03
    # the same generator state gives the same draw as the numpy call it stands for
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    assert (Uniform(0.3, 0.5)(a), Normal(0.01)(a, scale=3.0), Integers(8, 24)(a)) == (
        b.uniform(0.3, 0.5), b.normal(0, 0.01 * 3.0), b.integers(8, 25))


# ------------------------------------------------------------------------------------------ class features


def _row_with_most(freqs: np.ndarray) -> float:
    rows = np.round(row_of_frequency(freqs, PLOT_SIZE[1])).astype(int)
    return float(frequency_of_row(np.bincount(rows).argmax(), PLOT_SIZE[1]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_class_features(seed):
    views = {label: simulate_glitch(label, seed)[0] for label in (
        "Power_Line", "Air_Compressor", "Violin_Mode", "1080Lines", "Scattered_Light", "Low_Frequency_Burst",
        "Whistle", "Blip", "Chirp", "No_Glitch")}

    f, _ = bright(views["Power_Line"][1.0], 1.0, threshold=15.0)
    assert 56 < _row_with_most(f) < 68, "Power_Line: brightest row at 60-61 Hz (Hanford) to ~65 Hz (Livingston)"
    f, _ = bright(views["Air_Compressor"][1.0], 1.0)
    assert 45 < _row_with_most(f) < 60, "Air_Compressor: ~50 Hz"
    f, _ = bright(views["Violin_Mode"][1.0], 1.0, threshold=15.0)
    assert 470 < _row_with_most(f[f > 100]) < 660, "Violin_Mode: fundamental near 500 Hz"
    f, _ = bright(views["1080Lines"][4.0], 4.0)
    assert 1040 < _row_with_most(f) < 1120, "1080Lines: dashes near 1080 Hz"
    f, _ = bright(views["Scattered_Light"][4.0], 4.0)
    assert f.size and np.mean(f < 110) > 0.95, "Scattered_Light: arches below ~100 Hz"
    f, _ = bright(views["Low_Frequency_Burst"][1.0], 1.0)
    assert f.size and np.mean(f < 90) > 0.9, "Low_Frequency_Burst: hump below ~50-80 Hz"
    f, _ = bright(views["Whistle"][1.0], 1.0, threshold=12.0)
    assert f.size and np.mean(f > 150) > 0.8, "Whistle: high-frequency tracks"
    f, t = bright(views["Blip"][0.5], 0.5)
    assert f.size and np.all(np.abs(t) < 0.06) and 25 < np.median(f) < 1000, "Blip: short, centred, broadband"
    f, t = bright(views["Chirp"][1.0], 1.0, threshold=12.0)
    order = np.argsort(t)
    assert np.corrcoef(t[order], np.log(f[order]))[0, 1] > 0.5, "Chirp: frequency rises with time"
    assert energy(views["No_Glitch"][1.0]).max() < 20.0, "No_Glitch: no bright pixels"


@pytest.mark.slow
def test_violin_modes_come_with_low_frequency_excess_about_half_the_time():
    """Violin modes are rung up by large disturbances, so about half the simulated scans also carry loud ground
    motion below ~60 Hz; the rest are clean there. Either way the ~500 Hz modes are present."""
    with_excess = 0
    for seed in range(24):
        view = simulate_glitch("Violin_Mode", seed)[0][4.0]
        f, _ = bright(view, 4.0, threshold=15.0)
        assert np.any((f > 450) & (f < 1300)), f"seed {seed}: no violin-mode pixels"
        with_excess += int(np.sum(f < 60) > 20)
    assert 5 <= with_excess <= 19  # 10 of these 24 seeds


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reworked_class_features(seed):
    f, _ = bright(simulate_glitch("Paired_Doves", seed)[0][1.0], 1.0)
    assert f.size and np.percentile(f, 1) > 10 and np.percentile(f, 99) < 250, "Paired_Doves: tens to ~200 Hz"
    view = simulate_glitch("Low_Frequency_Lines", seed)[0][1.0]
    f, _ = bright(view, 1.0, threshold=12.0)
    rows = (energy(view) > 12.0).any(axis=1).sum()
    assert f.size and f.max() < 40 and rows < 30, "Low_Frequency_Lines: thin lines below 40 Hz"
    f, _ = bright(simulate_glitch("Wandering_Line", seed)[0][4.0], 4.0, threshold=12.0)
    assert f.size and np.median(f) > 250, "Wandering_Line: a high-frequency line"
    view = simulate_glitch("Extremely_Loud", seed)[0][4.0]
    assert (energy(view) > 20.0).mean() > 0.05, "Extremely_Loud: a huge saturated region"


# ------------------------------------------------------------------------------------------------ datasets


def test_class_counts():
    counts = class_counts()
    assert sum(counts.values()) == sim_dataset.DEFAULT_N_GLITCHES
    assert max(counts, key=counts.get) == "Blip" and counts["Paired_Doves"] < counts["Whistle"]
    small = class_counts(n_glitches=50)
    assert sum(small.values()) == 50 and min(small.values()) >= 2
    assert set(class_counts(n_glitches=220, balanced=True).values()) == {10}
    assert set(class_counts(per_class=3).values()) == {3}
    with pytest.raises(ValueError):
        class_counts(n_glitches=10)
    splits = sim_dataset._split_of(100, np.random.default_rng(0))
    assert (splits.count("train"), splits.count("validation"), splits.count("test")) == (70, 15, 15)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_dataset_layout_determinism_and_resume(tmp_path):
    calls = []
    a = simulate_dataset(tmp_path / "a", per_class=1, seed=4, workers=2, progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, 22) and calls[-1] == (22, 22)
    pngs = sorted(a.rglob("*.png"))
    assert len(pngs) == 22 * 4
    for p in pngs:
        assert NAME.match(p.name), p.name
        assert p.parent.name in CLASSES and p.parent.parent.name in ("train", "validation", "test")
    with (a / "metadata.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(sim_dataset.METADATA_COLUMNS)
    assert sorted(r["label"] for r in rows) == sorted(CLASSES)
    for r in rows:
        views = list((a / r["sample_type"] / r["label"]).glob(f"{r['ifo']}_{r['gravityspy_id']}_spectrogram_*.png"))
        assert len(views) == 4
    assert not list(a.rglob("*.tmp"))
    assert scan_dataset(a).simulated  # the app says so wherever it shows these images

    b = simulate_dataset(tmp_path / "b", per_class=1, seed=4, workers=1)
    assert _tree(a) == _tree(b), "bytes must not depend on the worker count"

    # interrupt: lose some images and the metadata, then resume
    before = _tree(a)
    for p in pngs[::7]:
        p.unlink()
    (a / "metadata.csv").unlink()
    simulate_dataset(a, per_class=1, seed=4, workers=1)
    assert _tree(a) == before


@pytest.mark.slow
def test_default_dataset_is_built_once_and_renamed_into_place(tmp_path, monkeypatch):
    monkeypatch.setenv("GLITCHNET_DATA_HOME", str(tmp_path))
    monkeypatch.setattr(sim_dataset, "DEFAULT_PER_CLASS", 1)
    path = default_dataset()
    assert path == tmp_path / DEFAULT_VERSION and (path / "metadata.csv").is_file()
    assert [p.name for p in tmp_path.iterdir()] == [DEFAULT_VERSION]
    stamp = (path / "metadata.csv").stat().st_mtime_ns
    assert default_dataset() == path and (path / "metadata.csv").stat().st_mtime_ns == stamp


def test_power_line_frequency_follows_the_detector():
    from glitchnet.simulate.dataset import glitch_metadata

    h1 = [glitch_metadata("Power_Line", s, "H1")["peak_frequency"] for s in range(12)]
    l1 = [glitch_metadata("Power_Line", s, "L1")["peak_frequency"] for s in range(12)]
    assert 59.5 <= min(h1) and max(h1) <= 61.5, "Hanford's mains line sits at 60-61 Hz"
    assert 64.5 <= min(l1) and max(l1) <= 65.5, "Livingston's sits near 65 Hz"


def test_counts_beyond_the_limit_are_refused_before_planning():
    most = sim_dataset.MAX_GLITCHES
    assert sum(class_counts(n_glitches=most).values()) == most
    assert set(class_counts(per_class=most // len(CLASSES)).values()) == {most // len(CLASSES)}
    for kwargs in ({"n_glitches": most + 1}, {"per_class": most // len(CLASSES) + 1}, {"per_class": 10**8}):
        with pytest.raises(ValueError, match="at most"):
            class_counts(**kwargs)
