"""One reader for every Gravity Spy image form: crops, full figures, screenshots, GIF frames, every mode."""

import io

import numpy as np
import pytest
import torch
from conftest import synthetic_crop
from PIL import Image, ImageDraw

from glitchnet.images import (
    ENERGY_MAX,
    PLOT_SIZE,
    ImageError,
    canonical_uint8,
    energy_to_rgb,
    find_plot_box,
    frame_count,
    frequency_of_row,
    open_image,
    plot_area,
    preprocess,
    rgb_to_energy,
    row_of_frequency,
    viridis_fraction,
    viridis_lut,
)


def test_viridis_round_trip_is_exact_on_the_map():
    energy = np.linspace(0, ENERGY_MAX, 256, dtype=np.float32)
    back = rgb_to_energy(energy_to_rgb(energy))
    # exact on the map, except the two pairs of neighbouring entries that round to the same 8-bit colour
    assert np.abs(back - energy).max() <= 0.1 + 1e-5
    assert np.count_nonzero(np.abs(back - energy) > 1e-5) <= 2
    assert rgb_to_energy(energy_to_rgb(np.array([40.0, -3.0]))).tolist() == pytest.approx([ENERGY_MAX, 0.0])
    assert viridis_fraction(viridis_lut()[None]) == 1.0


def test_frequency_axis_is_log2_10_to_2048():
    assert frequency_of_row(-0.5, 479) == pytest.approx(2048.0)
    assert frequency_of_row(478.5, 479) == pytest.approx(10.0)
    assert row_of_frequency(frequency_of_row(100.0, 479), 479) == pytest.approx(100.0)


def test_kaggle_crop_passes_through_unchanged():
    img = synthetic_crop(0, 1)
    assert find_plot_box(img.convert("RGB")) == (0, 0, *PLOT_SIZE)
    arr = canonical_uint8(img)
    assert arr.shape == (224, 224, 3) and arr.dtype == np.uint8


@pytest.mark.parametrize("mode", ["RGBA", "RGB", "P", "L"])
def test_modes(mode):
    img = synthetic_crop(1, 2).convert(mode)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    arr = canonical_uint8(buf.getvalue())
    assert arr.shape == (224, 224, 3)
    if mode in ("RGBA", "RGB"):
        assert np.array_equal(arr, canonical_uint8(synthetic_crop(1, 2)))


def test_preprocess_is_normalized_tensor():
    x = preprocess(synthetic_crop(2, 3))
    assert isinstance(x, torch.Tensor) and x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0


@pytest.mark.slow
def test_scratchy_full_figures_crop_to_the_kaggle_box(real):
    files = sorted((real / "scratchy-fixtures").glob("*.png"))
    assert len(files) == 32
    for f in files:
        img = open_image(f)
        assert img.size == (800, 600)
        assert find_plot_box(img) == (100, 60, 669, 539)
        area = np.asarray(plot_area(f))
        assert area.shape == (479, 569, 3)
        assert viridis_fraction(area[2:, 2:]) > 0.97  # nothing but the spectrogram inside
    latex = next((real / "scratchy-fixtures-latex").glob("*.png"))
    assert find_plot_box(open_image(latex)) == (100, 60, 669, 539)


@pytest.mark.slow
def test_golden_jpgs_and_gif_frames(real):
    for cls_dir in sorted((real / "golden").iterdir()):
        for f in sorted(cls_dir.iterdir()):
            frames = frame_count(f)
            assert frames == (4 if f.suffix == ".gif" else 1), f
            for frame in range(frames):
                img = open_image(f, frame)
                assert img.size == (600, 450)
                left, top, right, bottom = find_plot_box(img)
                # 0.75 x the 800x600 box (100, 60, 669, 539), to within a pixel or two; a few O2 golden
                # subjects were drawn with a shorter plot (bottom at 359): the box must follow the pixels there
                assert abs(left - 75) <= 2 and abs(top - 45) <= 2 and abs(right - 502) <= 3
                assert abs(bottom - 404) <= 3 or abs(bottom - 359) <= 1, (f, frame, bottom)
                assert viridis_fraction(canonical_uint8(f, frame)) > 0.8  # JPEG and GIF palettes blur a few colours


def test_screenshot_with_extra_margins_finds_the_plot(real):
    fig = open_image(real / "scratchy-fixtures" / "H1_0BydFQWn2G_spectrogram_1.0.png")
    canvas = Image.new("RGB", (1100, 800), (240, 240, 240))
    canvas.paste(fig.resize((1000, 750)), (60, 30))
    left, top, right, bottom = find_plot_box(canvas)
    assert abs(left - (60 + 125)) <= 2 and abs(top - (30 + 75)) <= 2
    assert abs(right - (60 + 836)) <= 3 and abs(bottom - (30 + 674)) <= 3
    a = canonical_uint8(canvas).astype(int)
    b = canonical_uint8(fig).astype(int)
    assert np.abs(a - b).mean() < 6  # the same spectrogram either way


def _framed(view: Image.Image, kind: str) -> tuple[Image.Image, tuple[int, int]]:
    """``view`` inside a dark frame, a window's chrome (title bar, coloured buttons) or letterboxing to 16:9; and
    where the view lies in it."""
    w, h = view.size
    if kind == "dark frame":
        canvas, at = Image.new("RGB", (w + 80, h + 80), (18, 18, 18)), (40, 40)
    elif kind == "window chrome":
        canvas, at = Image.new("RGB", (w + 4, h + 34), (60, 60, 60)), (2, 32)
        draw = ImageDraw.Draw(canvas)
        for i, colour in enumerate([(255, 95, 86), (255, 189, 46), (39, 201, 63)]):
            draw.ellipse((8 + 20 * i, 8, 20 + 20 * i, 20), fill=colour)
        draw.rectangle((90, 6, 300, 22), fill=(40, 40, 40))
        draw.text((100, 8), "Gravity Spy - scan.png", fill=(220, 220, 220))
    else:
        width = round(h * 16 / 9)
        canvas, at = Image.new("RGB", (width, h), (0, 0, 0)), ((width - w) // 2, 0)
    canvas.paste(view, at)
    return canvas, at


@pytest.mark.parametrize("kind", ["dark frame", "window chrome", "letterbox"])
def test_dark_borders_around_a_plot_area_are_cropped_like_light_margins(real, kind):
    """A screenshot of a plot-area view inside dark borders gives the model the view, not the borders."""
    view = plot_area(real / "golden" / "Scattered_Light" / "scatteredlight-2.gif", 2).resize(PLOT_SIZE)
    canvas, (x, y) = _framed(view, kind)
    left, top, right, bottom = find_plot_box(canvas)
    # the view's own 1-px frame line (top, left) is grey too and may go with the border
    assert 0 <= left - x <= 1 and 0 <= top - y <= 1 and (right, bottom) == (x + view.width, y + view.height)
    a = canonical_uint8(canvas).astype(int)
    b = canonical_uint8(view).astype(int)
    assert np.abs(a - b).mean() < 3  # the same spectrogram either way
    figure, (x, y) = _framed(open_image(real / "scratchy-fixtures" / "H1_0BydFQWn2G_spectrogram_1.0.png"), kind)
    assert np.abs(find_plot_box(figure) - np.array([x, y, x, y]) - (100, 60, 669, 539)).max() <= 1  # full figure


def test_bad_inputs_give_one_line_errors(tmp_path):
    cases = {
        "empty": b"",
        "text": b"this is not an image\n" * 10,
        "pdf": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
    }
    buf = io.BytesIO()
    synthetic_crop(0, 0).save(buf, "PNG")
    cases["truncated"] = buf.getvalue()[: len(buf.getvalue()) // 2]
    tiny = io.BytesIO()
    Image.new("RGB", (1, 1)).save(tiny, "PNG")
    cases["1x1"] = tiny.getvalue()
    for name, data in cases.items():
        with pytest.raises(ImageError) as info:
            canonical_uint8(data)
        assert "\n" not in str(info.value) and str(info.value), name
    with pytest.raises(ImageError, match="no such file"):
        canonical_uint8(tmp_path / "missing.png")


def test_blank_and_dark_views_are_flagged():
    from glitchnet.images import energy_to_rgb, uniformity_warning

    rng = np.random.default_rng(0)
    noise = rng.exponential(1.0, (224, 224)).astype(np.float32)
    assert uniformity_warning(energy_to_rgb(noise)) is None
    assert "uniform colour" in uniformity_warning(energy_to_rgb(np.full((224, 224), 3.0, np.float32)))
    dark = noise * 0.2
    dark[100:104, 80:90] = 25.5  # a loud glitch took the colour scale: the rest of the view goes dark
    assert "dark" in uniformity_warning(energy_to_rgb(dark))


def test_prediction_on_a_blank_view_carries_the_warning(random_checkpoint):
    from glitchnet.images import energy_to_rgb
    from glitchnet.inference import Predictor

    predictor = Predictor(random_checkpoint)
    blank = energy_to_rgb(np.zeros((479, 569), np.float32))
    pred = predictor.predict([Image.fromarray(blank)], names=["blank.png"])[0]
    assert pred.warning and pred.low_confidence
    assert pred.to_json()["warning"] == pred.warning


def test_to_model_input_normalizes_a_batch_into_channels_last_memory():
    from glitchnet.images import MEAN, STD, to_model_input

    batch = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    x = to_model_input(batch)
    assert x.shape == (2, 3, 224, 224) and x.dtype == torch.float32 and x.device.type == "cpu"
    assert x.is_contiguous(memory_format=torch.channels_last)
    expected = (batch.transpose(0, 3, 1, 2) / 255.0 - MEAN[0]) / STD[0]
    assert np.allclose(x.numpy(), expected, atol=1e-6)
    assert torch.equal(to_model_input(torch.from_numpy(batch)), x)  # a loader's torch batch: the same input
    readonly = batch.copy()
    readonly.setflags(write=False)  # as a memory-mapped cache is
    assert torch.equal(to_model_input(readonly), x)
    with pytest.raises(ValueError, match="batch of RGB images"):
        to_model_input(batch[0])


def test_preprocess_is_one_image_of_to_model_input():
    from glitchnet.images import to_model_input

    assert torch.equal(preprocess(synthetic_crop(2, 3)), to_model_input(canonical_uint8(synthetic_crop(2, 3))[None])[0])


def test_a_faint_jpeg_crop_is_not_mistaken_for_a_framed_one():
    """JPEG greys part of a faint spectrogram's dark rows; that is not a frame, and nothing is cut off."""
    import io

    from PIL import Image

    from glitchnet.images import energy_to_rgb, find_plot_box

    rng = np.random.default_rng(0)
    energy = rng.exponential(1.0, (224, 224)).astype(np.float32)
    energy[100:110, 50:170] = 22.0
    big = Image.fromarray(energy_to_rgb(energy)).resize((427, 359), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    big.save(buf, format="JPEG", quality=77)
    assert find_plot_box(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")) == (0, 0, 427, 359)
