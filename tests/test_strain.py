"""Gravity Spy views of real strain: the GWOSC file in ../shared, synthetic files, and every refusal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gwpy", reason="the strain extra is not installed: pip install -e '.[strain]'")
pytest.importorskip("h5py", reason="the strain extra is not installed: pip install -e '.[strain]'")

from glitchnet.images import PLOT_SIZE, rgb_to_energy, row_of_frequency
from glitchnet.omega.qtransform import make_tiling, q_scan
from glitchnet.omega.whiten import TAPER_S
from glitchnet.strain import (
    GPSRangeError,
    NotStrainError,
    SampleRateError,
    StrainError,
    scan,
    whitened_block,
)

STRAIN_FILE = "H-H1_GWOSC_O3b_4KHZ_R1-1266281937-128.hdf5"
LOUD_GPS = 1266281982.66
QUIET_GPS = 1266282020.0


@pytest.fixture(scope="module")
def strain_file(real: Path) -> Path:
    return real / "strain" / STRAIN_FILE


def energy(image) -> np.ndarray:
    return rgb_to_energy(np.asarray(image.convert("RGB")))[1:, 1:]


def _write_gwpy(path: Path, data: np.ndarray, rate: float, t0: float = 1e9, name: str = "H1:TEST_STRAIN") -> Path:
    from gwpy.timeseries import TimeSeries

    TimeSeries(data, sample_rate=rate, t0=t0, name=name, channel=name).write(path, format="hdf5")
    return path


# ----------------------------------------------------------------------------------------------- real data


def test_loud_glitch_peaks_near_90_hz(strain_file, tmp_path):
    views = scan(strain_file, LOUD_GPS, out_dir=tmp_path)
    assert sorted(views) == [0.5, 1.0, 2.0, 4.0]
    for d, img in views.items():
        assert img.size == PLOT_SIZE and img.mode == "RGBA" and (np.asarray(img)[..., 3] == 255).all()
        assert (tmp_path / f"H1_1266281982660_spectrogram_{d:.1f}.png").is_file()
    # the loudest tile of the Q scan, as Gravity Spy's Omicron trigger reports it
    block = whitened_block(strain_file, LOUD_GPS)
    c = block.centre_s
    q = q_scan(block.fseries, make_tiling(block.duration_s, block.sample_rate_hz), c, (c - 0.3, c + 0.3),
               norm="omega", edge_s=TAPER_S)
    assert 70.0 < q.peak_frequency_hz < 115.0, q.peak_frequency_hz
    # in the 0.5 s view the column through the glitch is brightest near 90 Hz and saturated there
    e = energy(views[0.5])
    centre = e[:, e.shape[1] // 2 - 3:e.shape[1] // 2 + 4].mean(1)
    row90 = int(round(float(row_of_frequency(90.0, PLOT_SIZE[1])))) - 1
    assert centre[row90 - 3:row90 + 4].min() >= 25.0
    peak_rows = np.nonzero(centre >= centre.max() - 0.05)[0]
    assert abs(np.median(peak_rows) - row90) < 60  # brightest rows between ~50 and ~160 Hz


def test_quiet_time_looks_like_gravity_spy_noise(strain_file):
    e = energy(scan(strain_file, QUIET_GPS)[1.0])
    assert 0.5 < np.median(e) < 1.0  # Omega normalization: noise median ln 2, as the real training images
    assert e.max() < 20.0


def test_gps_outside_or_near_the_edge(strain_file):
    for gps in (1266281900.0, 1266282100.0, 1266281938.0, 1266282063.5, float("nan")):
        with pytest.raises(GPSRangeError) as err:
            scan(strain_file, gps)
        assert "\n" not in str(err.value) and "GPS" in str(err.value)


# ------------------------------------------------------------------------------------------ synthetic files


def test_16_khz_file_is_scanned_at_the_right_frequency(tmp_path):
    rate, dur = 16384.0, 16.0
    t = np.arange(int(rate * dur)) / rate - dur / 2
    rng = np.random.default_rng(1)
    tau = 0.02
    data = 1e-21 * (rng.standard_normal(t.size) + 6 * np.exp(-(t / tau) ** 2) * np.sin(2 * np.pi * 300.0 * t))
    path = _write_gwpy(tmp_path / "x.hdf5", data, rate)
    gps = 1e9 + dur / 2
    block = whitened_block(path, gps)
    assert block.duration_s == pytest.approx(dur, abs=0.01) and block.ifo == "H1"
    c = block.centre_s
    q = q_scan(block.fseries, make_tiling(block.duration_s, block.sample_rate_hz), c, (c - 0.3, c + 0.3),
               norm="omega", edge_s=TAPER_S)
    assert 270.0 < q.peak_frequency_hz < 330.0
    assert set(scan(path, gps, ifo="L1")) == {0.5, 1.0, 2.0, 4.0}


def test_low_sample_rate_is_refused(tmp_path):
    path = _write_gwpy(tmp_path / "slow.hdf5", np.random.default_rng(0).standard_normal(2048 * 16), 2048.0)
    with pytest.raises(SampleRateError, match="2048 Hz"):
        scan(path, 1e9 + 8)


def test_gaps_are_refused(tmp_path):
    data = np.random.default_rng(0).standard_normal(4096 * 16)
    data[4096 * 7] = np.nan
    path = _write_gwpy(tmp_path / "gap.hdf5", data, 4096.0)
    with pytest.raises(StrainError, match="gaps"):
        scan(path, 1e9 + 8)


def test_files_that_are_not_strain(tmp_path):
    import h5py

    text = tmp_path / "notes.txt"
    text.write_text("not strain\n")
    empty = tmp_path / "empty.hdf5"
    with h5py.File(empty, "w") as fh:
        fh.create_dataset("labels", data=np.arange(10))
        fh.create_group("meta")
    for path in (text, empty, tmp_path / "missing.hdf5"):
        with pytest.raises(NotStrainError) as err:
            scan(path, 1e9)
        assert isinstance(err.value, ValueError) and "\n" not in str(err.value)
