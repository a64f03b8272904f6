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
    scan_bytes,
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


# ------------------------------------------------------------------------------------ hostile strain uploads


def _write_h5(path: Path, make) -> bytes:
    import h5py

    with h5py.File(path, "w") as fh:
        make(fh)
    return path.read_bytes()


def _gwosc(fh, data: np.ndarray, rate: float = 4096.0, t0: float = 1e9, **kwargs) -> None:
    ds = fh.create_dataset("strain/Strain", data=data, **kwargs)
    ds.attrs["Xstart"], ds.attrs["Xspacing"] = t0, 1.0 / rate
    fh.create_dataset("meta/Detector", data=b"L1")


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert text and "\n" not in text and len(text) < 200
    return text


def test_gwosc_layout_uploaded_as_bytes_is_scanned(tmp_path):
    data = np.random.default_rng(3).standard_normal(4096 * 16)
    upload = _write_h5(tmp_path / "gwosc.hdf5", lambda fh: _gwosc(fh, data, compression="gzip", chunks=(4096,)))
    block = whitened_block(upload, 1e9 + 8)
    assert block.ifo == "L1" and block.duration_s == pytest.approx(16.0, abs=0.01)
    assert sorted(scan(upload, 1e9 + 8)) == [0.5, 1.0, 2.0, 4.0]


def test_upload_that_is_not_hdf5():
    for data in (b"", b"\x89PNG\r\n\x1a\n" + bytes(500), b"not strain at all\n" * 100):
        with pytest.raises(NotStrainError) as err:
            scan(data, 1e9)
        assert "HDF5" in _one_line(err) or "empty" in str(err.value)


def test_huge_declared_dataset_is_refused_before_reading(tmp_path):
    from glitchnet.strain import MAX_STRAIN_SAMPLES

    def make(fh):  # 2**33 samples (64 GiB) declared, none written: the file is a few kB
        ds = fh.create_dataset("H1:HUGE_STRAIN", shape=(2**33,), dtype="f8", chunks=(2**16,))
        ds.attrs["x0"], ds.attrs["dx"] = 1e9, 1 / 4096

    upload = _write_h5(tmp_path / "huge.hdf5", make)
    assert len(upload) < 100_000
    with pytest.raises(StrainError) as err:
        scan(upload, 1e9 + 100)
    assert f"{MAX_STRAIN_SAMPLES:,}" in _one_line(err) and "8,589,934,592 samples" in str(err.value)


def test_compression_bomb_chunk_is_refused(tmp_path):
    from glitchnet.strain import MAX_CHUNK_BYTES

    n = 2 * MAX_CHUNK_BYTES // 8  # one chunk inflating to twice the limit

    def make(fh):
        ds = fh.create_dataset("strain/Strain", shape=(n,), dtype="f8", chunks=(n,), compression="gzip")
        ds[:] = 0.0
        ds.attrs["Xstart"], ds.attrs["Xspacing"] = 1e9, 1 / 4096

    upload = _write_h5(tmp_path / "bomb.hdf5", make)
    assert len(upload) < 200_000  # 32 MB of zeros in a small file
    with pytest.raises(StrainError) as err:
        scan(upload, 1e9 + 100)
    assert "chunks of 32 MB" in _one_line(err)


def test_long_compressed_file_reads_only_the_scanned_block(tmp_path):
    import tracemalloc

    n = 2**24  # 128 MB of float64 declared, 4096 s at 4 kHz, in 1 MB chunks of zeros but for a noisy minute

    def make(fh):
        ds = fh.create_dataset("strain/Strain", shape=(n,), dtype="f8", chunks=(2**17,), compression="gzip",
                               fillvalue=0.0)
        ds[2**21:2**21 + 4096 * 64] = np.random.default_rng(0).standard_normal(4096 * 64)
        ds.attrs["Xstart"], ds.attrs["Xspacing"] = 1e9, 1 / 4096

    upload = _write_h5(tmp_path / "long.hdf5", make)
    gps = 1e9 + 2**21 / 4096 + 32
    tracemalloc.start()
    try:
        block = whitened_block(upload, gps)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert block.duration_s == pytest.approx(64.0, abs=0.01)
    assert peak < 64 * 2**20, peak  # the whole series would be 128 MB before resampling
    with pytest.raises(StrainError, match="all zero") as err:
        whitened_block(upload, 1e9 + 3000)
    _one_line(err)


def test_wrong_channel_and_wrong_kind_of_dataset(tmp_path):
    data = np.random.default_rng(1).standard_normal(4096 * 16)
    upload = _write_h5(tmp_path / "ok.hdf5", lambda fh: _gwosc(fh, data))
    with pytest.raises(NotStrainError) as err:
        scan(upload, 1e9 + 8, channel="H1:GDS-CALIB_STRAIN")
    assert "no channel `H1:GDS-CALIB_STRAIN`" in _one_line(err) and "strain/Strain" in str(err.value)

    ints = _write_h5(tmp_path / "ints.hdf5", lambda fh: _gwosc(fh, np.arange(4096 * 16)))
    with pytest.raises(NotStrainError, match="not a 1-d series of real numbers") as err:
        scan(ints, 1e9 + 8)
    _one_line(err)
    image = _write_h5(tmp_path / "image.hdf5", lambda fh: _gwosc(fh, np.zeros((64, 64))))
    with pytest.raises(NotStrainError, match="not a 1-d series") as err:
        scan(image, 1e9 + 8)
    _one_line(err)


def test_bad_time_attributes(tmp_path):
    data = np.random.default_rng(2).standard_normal(4096 * 16)
    for xstart, xspacing, match in ((float("nan"), 1 / 4096, "no valid start time"),
                                    (1e9, 0.0, "no valid start time"),
                                    (1e9, -1 / 4096, "no valid start time"),
                                    (1e9, 1e-9, "at most 65,536 Hz")):
        def make(fh, xstart=xstart, xspacing=xspacing):
            ds = fh.create_dataset("strain/Strain", data=data)
            ds.attrs["Xstart"], ds.attrs["Xspacing"] = xstart, xspacing

        with pytest.raises(StrainError, match=match) as err:
            scan(_write_h5(tmp_path / "t.hdf5", make), 1e9 + 8)
        _one_line(err)


def test_nan_strain_upload_is_refused(tmp_path):
    data = np.full(4096 * 16, np.nan)
    with pytest.raises(StrainError, match="gaps") as err:
        scan(_write_h5(tmp_path / "nan.hdf5", lambda fh: _gwosc(fh, data)), 1e9 + 8)
    _one_line(err)


# ------------------------------------------- files that point elsewhere: external storage, links, virtual data


def _secret(tmp_path: Path) -> Path:
    """A file of the server's standing in for /proc/self/environ: noise that scans as strain if it is ever read."""
    path = tmp_path / "server-secret.bin"
    np.random.default_rng(7).standard_normal(4096 * 16).tofile(path)
    return path


def _external_storage(target: Path):
    def make(fh):
        from h5py import h5f

        ds = fh.create_dataset("strain/Strain", shape=(4096 * 16,), dtype="f8", external=[(str(target), 0,
                                                                                          h5f.UNLIMITED)])
        ds.attrs["Xstart"], ds.attrs["Xspacing"] = 1e9, 1 / 4096
    return make


def _pointing_elsewhere(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Hostile strain files (the file, what its refusal says): each would make the reader open another file."""
    import h5py

    secret = _secret(tmp_path)
    target = tmp_path / "server-strain.hdf5"
    _write_h5(target, lambda fh: _gwosc(fh, np.fromfile(secret)))

    def external_link(fh):
        fh["strain"] = h5py.ExternalLink(str(target), "/strain")

    def soft_link(fh):
        _gwosc(fh, np.fromfile(secret))
        fh["strain/Copy"] = h5py.SoftLink("/strain/Strain")
        fh.move("strain/Strain", "hidden")
        fh["strain/Strain"] = h5py.SoftLink("/hidden")

    def virtual(fh):
        layout = h5py.VirtualLayout(shape=(4096 * 16,), dtype="f8")
        layout[:] = h5py.VirtualSource(str(target), "strain/Strain", shape=(4096 * 16,))
        ds = fh.create_virtual_dataset("strain/Strain", layout)
        ds.attrs["Xstart"], ds.attrs["Xspacing"] = 1e9, 1 / 4096

    def detector_elsewhere(fh):
        _gwosc(fh, np.random.default_rng(1).standard_normal(4096 * 16))
        del fh["meta/Detector"]
        fh.create_dataset("meta/Detector", shape=(1,), dtype="S2", external=[(str(secret), 0, 2)])

    cases = {"external storage": (_external_storage(secret), "external file"),
             "external storage, missing target": (_external_storage(tmp_path / "no-such-file"), "external file"),
             "external link": (external_link, "external link"),
             "soft link": (soft_link, "soft link"),
             "virtual dataset": (virtual, "virtual dataset"),
             "detector stored elsewhere": (detector_elsewhere, "external file")}
    out = {}
    for i, (case, (make, says)) in enumerate(cases.items()):
        path = tmp_path / f"hostile{i}.hdf5"
        _write_h5(path, make)
        out[case] = (path, says)
    return out


def test_strain_that_points_at_other_files_is_refused_before_any_read(tmp_path):
    for case, (path, says) in _pointing_elsewhere(tmp_path).items():
        for source in (path, path.read_bytes()):  # the CLI's path and the app's upload
            with pytest.raises(NotStrainError) as err:
                scan(source, 1e9 + 8)
            text = _one_line(err)
            assert says in text, (case, text)
            assert str(tmp_path) not in text and "server-" not in text, (case, text)  # nothing about the target


def test_scan_cli_refuses_an_external_link_in_one_line(tmp_path, capsys):
    from glitchnet.cli import main

    path, _ = _pointing_elsewhere(tmp_path)["external link"]
    out = tmp_path / "views"
    assert main(["scan", "--strain", str(path), "--gps", str(1e9 + 8), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "external link" in err, err
    assert not list(out.glob("*.png"))


def test_names_inside_a_strain_file_are_plain_text_in_messages(tmp_path):
    def make(fh):
        ds = fh.create_dataset("[Log in](https:evil.example)", data=np.zeros((4, 4)))
        ds.attrs["dx"] = 1 / 4096

    upload = _write_h5(tmp_path / "named.hdf5", make)
    with pytest.raises(NotStrainError) as err:
        scan(upload, 1e9 + 8, channel="[Log in](https:evil.example)")
    assert "`/[Log in](https:evil.example)`" in _one_line(err)


def test_a_channel_name_cannot_name_the_views(tmp_path):
    data = np.random.default_rng(4).standard_normal(4096 * 16)
    upload = _write_gwpy(tmp_path / "evil.hdf5", data, 4096.0, name="![x](https:evil.example):STRAIN")
    views = scan_bytes(upload.read_bytes(), 1e9 + 8, "upload.hdf5")
    assert sorted(views) == [f"H1_1000000008000_spectrogram_{d}.png" for d in ("0.5", "1.0", "2.0", "4.0")]


@pytest.mark.parametrize("rate", [4096.0, 16384.0])
def test_constant_strain_is_one_plain_line(tmp_path, rate, recwarn):
    upload = _write_h5(tmp_path / "flat.hdf5", lambda fh: _gwosc(fh, np.full(int(rate) * 16, 1.5), rate=rate))
    with pytest.raises(StrainError, match=r"are constant \(1.5\): there is no noise to whiten") as err:
        scan(upload, 1e9 + 8)
    _one_line(err)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_scan_cli_says_constant_strain_in_one_line(tmp_path, capsys):
    from glitchnet.cli import main

    path = tmp_path / "flat.hdf5"
    _write_h5(path, lambda fh: _gwosc(fh, np.full(16384 * 16, 1.0), rate=16384.0))
    assert main(["scan", "--strain", str(path), "--gps", str(1e9 + 8), "--out", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "constant" in err and "Warning" not in err, err
