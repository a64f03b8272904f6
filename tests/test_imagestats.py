"""Image statistics: exact values on synthetic energy images, and the per-class table on the real pool."""

from __future__ import annotations

import math

import numpy as np
import pytest

from glitchnet.classes import CLASSES
from glitchnet.images import ENERGY_MAX, energy_to_rgb, frequency_of_row, row_of_frequency
from glitchnet.imagestats import STATISTICS, class_statistics, compare_classes, image_statistics

SIZE = 224
OCTAVES_PER_ROW = math.log2(2048.0 / 10.0) / SIZE


def _image(energy: np.ndarray) -> np.ndarray:
    return energy_to_rgb(energy)


def _line(frequency_hz: float, energy: float = 20.0, rows: int = 3) -> tuple[np.ndarray, int]:
    """A horizontal line ``rows`` rows thick centred on the row of ``frequency_hz``, over a blank background."""
    centre = int(round(float(row_of_frequency(frequency_hz, SIZE))))
    e = np.zeros((SIZE, SIZE), np.float32)
    e[centre - rows // 2:centre + rows // 2 + 1] = energy
    return _image(e), centre


def test_blank_image_gives_zeros():
    s = image_statistics(_image(np.zeros((SIZE, SIZE))))
    assert list(s) == list(STATISTICS)
    assert s["saturated_fraction"] == s["bright_fraction"] == s["peak_energy"] == s["median_energy"] == 0.0
    assert s["time_extent_fraction"] == 0.0
    assert math.isnan(s["frequency_centroid_hz"]) and math.isnan(s["dominant_frequency_hz"])
    assert math.isnan(s["frequency_extent_octaves"])


def test_saturated_image():
    s = image_statistics(_image(np.full((SIZE, SIZE), 40.0)))  # above the colour scale: clips to 25.5
    assert s["saturated_fraction"] == 1.0 and s["bright_fraction"] == 1.0
    assert s["peak_energy"] == pytest.approx(ENERGY_MAX) and s["median_energy"] == pytest.approx(ENERGY_MAX)
    assert s["time_extent_fraction"] == 1.0
    # uniform energy over all rows: 5th-95th percentile spans 90% of the 7.68-octave axis (within a row)
    assert s["frequency_extent_octaves"] == pytest.approx(0.9 * SIZE * OCTAVES_PER_ROW, abs=OCTAVES_PER_ROW)
    # the log-axis centroid of a uniform image is the geometric mid-point of 10-2048 Hz
    assert s["frequency_centroid_hz"] == pytest.approx(math.sqrt(10.0 * 2048.0), rel=0.01)


def test_one_step_below_the_top_counts_as_saturated():
    e = np.zeros((SIZE, SIZE), np.float32)
    e[:SIZE // 2] = ENERGY_MAX - ENERGY_MAX / 255.0  # one colour step below the top
    e[SIZE // 2:SIZE // 2 + 1] = ENERGY_MAX - 2 * ENERGY_MAX / 255.0  # two steps below: not saturated
    assert image_statistics(_image(e))["saturated_fraction"] == pytest.approx(0.5)


@pytest.mark.parametrize("frequency_hz", [16.0, 48.5, 60.0, 65.0, 500.0, 1080.0])
def test_line_frequency(frequency_hz):
    img, centre = _line(frequency_hz)
    s = image_statistics(img)
    # a symmetric line on the log axis: its centroid is its centre row's frequency, within float error ...
    assert s["frequency_centroid_hz"] == pytest.approx(float(frequency_of_row(centre, SIZE)), rel=1e-4)
    assert s["dominant_frequency_hz"] == pytest.approx(float(frequency_of_row(centre, SIZE)), rel=1e-4)
    # ... and within half a row (1.2 %) of the frequency asked for
    assert s["frequency_centroid_hz"] == pytest.approx(frequency_hz, rel=0.5 * OCTAVES_PER_ROW * math.log(2) * 1.01)
    assert s["frequency_extent_octaves"] == pytest.approx(2 * OCTAVES_PER_ROW, rel=1e-3)  # rows centre-1 .. centre+1
    assert s["bright_fraction"] == pytest.approx(3 / SIZE)
    assert s["saturated_fraction"] == 0.0
    assert s["peak_energy"] == pytest.approx(20.0, abs=0.06)  # one colour step is 0.1
    assert s["time_extent_fraction"] == 1.0 and s["median_energy"] == 0.0


def test_dominant_frequency_ignores_a_fainter_harmonic():
    centre = int(round(float(row_of_frequency(60.0, SIZE))))
    e = np.zeros((SIZE, SIZE), np.float32)
    e[centre - 1:centre + 2] = 20.0
    h = int(round(float(row_of_frequency(120.0, SIZE))))
    e[h - 1:h + 2] = 10.0
    s = image_statistics(_image(e))
    assert s["dominant_frequency_hz"] == pytest.approx(float(frequency_of_row(centre, SIZE)), rel=1e-4)
    assert 60.0 < s["frequency_centroid_hz"] < 120.0  # the centroid is pulled up by the harmonic
    assert s["frequency_extent_octaves"] == pytest.approx(1.0, abs=3 * OCTAVES_PER_ROW)


def test_time_extent_and_floor():
    e = np.zeros((SIZE, SIZE), np.float32)
    e[100:110, 50:106] = 15.0  # a blob over a quarter of the columns
    e[0, :] = 4.9  # below the floor: ignored by the frequency and time statistics
    s = image_statistics(_image(e))
    assert s["time_extent_fraction"] == pytest.approx(56 / SIZE)
    assert s["frequency_centroid_hz"] == pytest.approx(
        2 ** np.mean(np.log2(frequency_of_row(np.arange(100, 110), SIZE))), rel=1e-4)


def test_rejects_non_images():
    with pytest.raises(ValueError, match="uint8"):
        image_statistics(np.zeros((SIZE, SIZE), np.uint8))


def test_class_statistics_and_comparison():
    lines = [_line(f)[0] for f in (59.0, 60.0, 61.0, 62.0)]
    blank = _image(np.zeros((SIZE, SIZE)))
    power, blip = CLASSES.index("Power_Line"), CLASSES.index("Blip")
    table = class_statistics(lines + [blank, blank], [power] * 4 + ["Blip", blip])
    assert list(table.index) == ["Blip", "Power_Line"]  # CLASSES order, indices and names both accepted
    assert table.loc["Power_Line", "count"] == 4 and table.loc["Blip", "count"] == 2
    assert 59.5 < table.loc["Power_Line", "frequency_centroid_hz"] < 61.5
    assert table.loc["Power_Line", "frequency_centroid_hz_q25"] < table.loc["Power_Line", "frequency_centroid_hz_q75"]
    assert math.isnan(table.loc["Blip", "frequency_centroid_hz"])  # no pixel above the floor: NaN, not 0

    sim = class_statistics([_line(f)[0] for f in (70.0, 71.0)], [power, power])
    both = compare_classes(table, sim)
    assert list(both.index) == ["Power_Line"]
    assert both.loc["Power_Line", "frequency_centroid_hz_off"]  # 70 Hz lies outside the real 59-62 Hz quartiles
    assert not both.loc["Power_Line", "bright_fraction_off"]
    assert both.loc["Power_Line", "real_count"] == 4 and both.loc["Power_Line", "sim_count"] == 2
    with pytest.raises(ValueError, match="labels"):
        class_statistics(lines, [power])


@pytest.fixture(scope="module")
def verified_pool(real):
    from glitchnet.realpool import load_real_pool

    # the O1/O2 verified sources: every one of the 22 classes, at the rendering the simulator imitates
    return load_real_pool(real, sources=("golden", "gravityspy-examples", "scratchy-fixtures",
                                         "scratchy-fixtures-latex"))


@pytest.mark.slow
def test_real_pool_table(verified_pool):
    table = class_statistics(verified_pool.images, verified_pool.table["label"])
    assert list(table.index) == list(CLASSES)
    assert np.isfinite(table[list(STATISTICS)].to_numpy()).all()


@pytest.mark.slow
def test_real_mains_and_compressor_lines(verified_pool):
    """Every golden Power_Line view has its line at 59-66 Hz (60-61 Hz Hanford, ~65 Hz Livingston); every golden
    Air_Compressor view at 46-50 Hz: measured 59.8-64.6 Hz and 47.3-49.0 Hz, with a row (2.4 %) of margin."""
    t = verified_pool.table
    for label, lo, hi in (("Power_Line", 58.5, 66.5), ("Air_Compressor", 46.0, 50.5)):
        mask = ((t["label"] == label) & (t["source"] == "golden")).to_numpy()
        assert mask.sum() == 9  # three subjects: one JPG, two four-frame GIFs
        f = [image_statistics(im)["dominant_frequency_hz"] for im in verified_pool.images[mask]]
        assert all(lo < v < hi for v in f), (label, np.round(f, 1))
