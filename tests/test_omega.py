"""The Omega scan shared by the simulator and real strain: whitening, the Q transform against gwpy, rendering, PNG."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from scipy import signal

from glitchnet.images import F_MAX_HZ, F_MIN_HZ, PLOT_SIZE, energy_to_rgb
from glitchnet.omega.png import encode_png
from glitchnet.omega.qtransform import FRANGE_HZ, FRES_HZ, QRANGE, SAMPLE_RATE_HZ, TRES_S, make_tiling, q_scan
from glitchnet.omega.render import (
    SPINE_SHADE,
    omega_views,
    pixel_frequencies_hz,
    pixel_times_s,
    to_rgba,
    view_energies,
)
from glitchnet.omega.whiten import divide_by_asd, whiten_estimated
from glitchnet.simulate import simulate_strain
from glitchnet.simulate.noise import SEGMENT_S, whiten_known

# ----------------------------------------------------------------------------------------------- whitening


def test_divide_by_asd_zeroes_empty_and_dropped_bins():
    spectrum = np.array([4 + 2j, 6.0, 8j, 10.0])
    asd = np.array([0.0, 2.0, 4.0, 5.0])
    np.testing.assert_array_equal(divide_by_asd(spectrum, asd), [0, 3.0, 2j, 2.0])
    np.testing.assert_array_equal(divide_by_asd(spectrum, asd, keep=np.array([True, True, False, True])),
                                  [0, 3.0, 0, 2.0])


def test_whitening_by_the_estimated_asd_flattens_coloured_noise():
    fs, n = 4096.0, 32 * 4096
    rng = np.random.default_rng(1)
    b, a = signal.butter(2, 100.0, fs=fs)  # red noise: 100 Hz low-pass, ~50 dB down by 2 kHz
    coloured = signal.lfilter(b, a, rng.standard_normal(n)) + 1e-3 * rng.standard_normal(n)
    out = whiten_estimated(coloured, fs, top_hz=1500.0)
    f = np.fft.rfftfreq(n, 1 / fs)
    assert out.shape == f.shape and out[0] == 0 and not out[f >= 1500.0].any()
    # whitened power is flat: the same in a low and a high band to within 10 % (it differs ~1e5x before)
    power = np.abs(out) ** 2
    low, high = power[(f > 20) & (f < 60)].mean(), power[(f > 800) & (f < 1400)].mean()
    assert high / low == pytest.approx(1.0, abs=0.1)


def test_model_whitening_gives_unit_power_noise():
    strain, row = simulate_strain("No_Glitch", 2)
    out = whiten_known(strain, SAMPLE_RATE_HZ, row["ifo"])
    f = np.fft.rfftfreq(strain.size, 1 / SAMPLE_RATE_HZ)
    assert out[0] == 0
    assert np.mean(np.abs(out[(f > 20) & (f < 2000)]) ** 2) == pytest.approx(1.0, abs=0.05)


# -------------------------------------------------------------------------------------- the transform vs gwpy


@pytest.mark.slow
def test_q_transform_agrees_with_gwpy():
    pytest.importorskip("gwpy", reason="the strain extra is not installed: pip install -e '.[strain]'")
    from gwpy.segments import Segment
    from gwpy.timeseries import TimeSeries

    strain, row = simulate_strain("Blip", 7)
    fseries = whiten_known(strain, SAMPLE_RATE_HZ, row["ifo"])
    white = TimeSeries(np.fft.irfft(fseries, n=strain.size), sample_rate=SAMPLE_RATE_HZ, t0=0)
    centre, dur = SEGMENT_S / 2, 1.0
    outseg = Segment(centre - dur / 2, centre + dur / 2)
    ref = white.q_transform(qrange=QRANGE, frange=FRANGE_HZ, gps=centre, search=0.5, tres=TRES_S, fres=FRES_HZ,
                            outseg=outseg, whiten=False, norm="median")
    scan = q_scan(np.fft.rfft(white.value), make_tiling(SEGMENT_S, SAMPLE_RATE_HZ), centre,
                  (centre - 2.1, centre + 2.1), norm="median")
    assert scan.q == pytest.approx(ref.q)
    ours = scan.grid(np.arange(outseg[0], outseg[1], TRES_S), ref.frequencies.value)
    rel = np.abs(ours - ref.value) / np.maximum(ref.value, 1e-3)
    assert np.median(rel) < 1e-5 and np.percentile(rel, 99) < 1e-4, (np.median(rel), np.percentile(rel, 99))
    # the pixel path samples the same surface: compare at the cells the image shows
    pix = view_energies(scan, centre, (dur,))[dur]
    t_idx = np.floor((np.arange(PLOT_SIZE[0] - 1) + 0.5) * dur / 573 / TRES_S + 1e-9).astype(int)
    f_pix = FRANGE_HZ[0] * (FRANGE_HZ[1] / FRANGE_HZ[0]) ** (1 - (np.arange(PLOT_SIZE[1] - 1) + 0.5) / 479)
    f_idx = np.floor((f_pix - FRANGE_HZ[0]) / FRES_HZ).astype(int)
    expect = ref.value[np.ix_(t_idx, f_idx)].T
    rel = np.abs(pix - expect) / np.maximum(expect, 1e-3)
    assert np.median(rel) < 1e-5 and np.percentile(rel, 99) < 1e-4


def test_normalizations_give_gravity_spy_noise_levels():
    rng = np.random.default_rng(0)
    n = int(SAMPLE_RATE_HZ * SEGMENT_S)
    fseries = np.fft.rfft(rng.standard_normal(n)) / np.sqrt(n)
    tiling = make_tiling(SEGMENT_S, SAMPLE_RATE_HZ)
    c = SEGMENT_S / 2
    for norm, expected in (("median", 1.0), ("omega", np.log(2)), ("noise", np.log(2))):
        scan = q_scan(fseries, tiling, c, (c - 2.1, c + 2.1), norm=norm)
        e = view_energies(scan, c, (1.0,))[1.0]
        assert abs(np.median(e) - expected) < 0.12, (norm, np.median(e))
    with pytest.raises(ValueError, match="norm"):
        q_scan(fseries, tiling, c, (c - 1, c + 1), norm="max")
    with pytest.raises(ValueError, match="sample rate"):
        make_tiling(8.0, 4096.0)


# ------------------------------------------------------------------------------------------------ rendering


def test_pixel_grid_is_gwpys_cells_on_the_log2_axis():
    f = pixel_frequencies_hz()
    assert f.shape == (PLOT_SIZE[1] - 1,) and np.all(np.diff(f) <= 0)  # top row first
    row_ratio = (F_MAX_HZ / F_MIN_HZ) ** (1 / 479)  # one pixel row on the log2 axis
    assert F_MIN_HZ <= f[-1] < F_MIN_HZ * row_ratio and F_MAX_HZ / row_ratio < f[0] <= F_MAX_HZ
    np.testing.assert_allclose((f - F_MIN_HZ) / FRES_HZ, np.round((f - F_MIN_HZ) / FRES_HZ))
    t = pixel_times_s(1.0)
    assert t.shape == (PLOT_SIZE[0] - 1,) and t[0] == 0 and t[-1] < 1.0 and np.all(np.diff(t) >= 0)
    np.testing.assert_allclose(t / TRES_S, np.round(t / TRES_S), atol=1e-9)
    with pytest.raises(ValueError, match="positive"):
        view_energies(None, 0.0, (1.0, -2.0))


def test_to_rgba_colours_viridis_and_shades_the_spine():
    energy = np.full((PLOT_SIZE[1] - 1, PLOT_SIZE[0] - 1), 12.0, dtype=np.float32)
    rgba = to_rgba(energy)
    assert rgba.shape == (PLOT_SIZE[1], PLOT_SIZE[0], 4) and rgba.dtype == np.uint8
    assert (rgba[..., 3] == 255).all() and (rgba[0, :, :3] == 0).all() and (rgba[:, 0, :3] == 0).all()
    colour = energy_to_rgb(np.float32(12.0))
    np.testing.assert_array_equal(rgba[5, 5, :3], colour)
    np.testing.assert_array_equal(rgba[1, 5, :3], (colour * SPINE_SHADE + 0.5).astype(np.uint8))


def test_omega_views_makes_the_four_kaggle_plot_areas():
    strain, row = simulate_strain("Blip", 3)
    views = omega_views(whiten_known(strain, SAMPLE_RATE_HZ, row["ifo"]), SEGMENT_S, SAMPLE_RATE_HZ, SEGMENT_S / 2)
    assert sorted(views) == [0.5, 1.0, 2.0, 4.0]
    for rgba in views.values():
        assert rgba.shape == (PLOT_SIZE[1], PLOT_SIZE[0], 4) and rgba.dtype == np.uint8


# ------------------------------------------------------------------------------------------------------- PNG


def test_png_writer_decodes_with_pillow_to_the_same_pixels():
    rng = np.random.default_rng(5)
    strain, row = simulate_strain("Koi_Fish", 4)
    views = omega_views(whiten_known(strain, SAMPLE_RATE_HZ, row["ifo"]), SEGMENT_S, SAMPLE_RATE_HZ, SEGMENT_S / 2)
    noisy = rng.integers(0, 256, size=(37, 53, 4), dtype=np.uint8)  # every byte value, every row different
    for rgba in (*views.values(), noisy, noisy[:1], noisy[::2, ::3]):
        img = Image.open(io.BytesIO(encode_png(rgba)))
        assert img.format == "PNG" and img.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(img), rgba)


def test_png_writer_refuses_what_is_not_rgba_bytes():
    for bad in (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 4), np.float32), np.zeros((4, 4), np.uint8)):
        with pytest.raises(ValueError, match="uint8"):
            encode_png(bad)
