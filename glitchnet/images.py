"""Read any Gravity Spy image (Kaggle crop, full figure, screenshot, GIF frame) into the one canonical model input.

The path is ``open_image`` -> ``plot_area`` -> ``canonical_uint8`` (224x224x3 uint8: what the tensor cache stores,
the augmentation edits and ``Predictor.load`` returns) -> ``to_model_input`` (a batch moved to the device, then
``normalize``d to float (N, 3, H, W) in channels_last memory). ``model.forward_uint8`` runs a model on that input with
the per-device precision; training, validation, evaluation, prediction and Grad-CAM all go through
``to_model_input``, so there is one "resize and normalize" in the project. ``preprocess`` chains the whole path for
one image.
"""

from __future__ import annotations

import io
import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from .errors import GlitchNetError, first_line

if TYPE_CHECKING:  # torch is imported where tensors are made: reading an image for the app does not need it
    import torch

INPUT_SIZE = 224
"""Side of the square model input, pixels."""

PLOT_SIZE = (569, 479)
"""Width, height of a Kaggle/Zenodo image: the plot area of a Gravity Spy Omega scan."""

FULL_FIGURE_BOX = (100, 60, 669, 539)
"""Plot area (left, top, right, bottom) in an 800x600 full figure; other sizes scale it."""

F_MIN_HZ, F_MAX_HZ = 10.0, 2048.0
"""Frequency range of the log2 y axis of every Gravity Spy plot."""

ENERGY_MAX = 25.5
"""Colour scale maximum: normalized energy above it saturates to viridis yellow."""

MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
"""Per-channel normalization applied to [0, 1] RGB; recorded in every checkpoint."""

MAX_PIXELS = 40_000_000
"""Refuse images declaring more pixels than this (decompression bombs)."""

MIN_SIDE = 32
"""Refuse images smaller than this on either side: no spectrogram survives that."""

MAX_FRAMES = 16
"""Most frames read from one file; later frames are never decoded. A golden Gravity Spy GIF has 4 (one per view), so
this is generous for real files and bounds a frame bomb (a small GIF of a thousand frames) to 16 decodes. A hosted
server may pass a lower ``max_frames``."""

MIN_VIRIDIS_FRACTION = 0.60
"""Below this fraction of on-colour-map pixels (``viridis_fraction``) an image is not treated as a Gravity Spy
spectrogram: prediction refuses it, and a training set made mostly of such images is refused."""

Source = Union[str, os.PathLike, bytes, "io.BufferedIOBase", Image.Image]

Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageError(GlitchNetError):
    """An input that cannot be turned into a spectrogram; the message is one line, fit for a user."""


# --------------------------------------------------------------------------------------------- viridis <-> energy


@lru_cache(maxsize=1)
def viridis_lut() -> np.ndarray:
    """The 256-entry viridis colour table as uint8 RGB, shape (256, 3)."""
    from matplotlib import colormaps

    return (colormaps["viridis"](np.linspace(0.0, 1.0, 256))[:, :3] * 255.0 + 0.5).astype(np.uint8)


@lru_cache(maxsize=1)
def _inverse_lut() -> tuple[np.ndarray, np.ndarray]:
    """Nearest viridis index and colour distance for every colour quantized to 6 bits per channel."""
    lut = viridis_lut().astype(np.float32)
    levels = (np.arange(64, dtype=np.float32) * 4.0 + 2.0)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    best = np.empty(len(grid), dtype=np.uint8)
    dist = np.empty(len(grid), dtype=np.float32)
    for start in range(0, len(grid), 16384):
        chunk = grid[start:start + 16384]
        d2 = ((chunk[:, None, :] - lut[None, :, :]) ** 2).sum(-1)
        idx = d2.argmin(1)
        best[start:start + 16384] = idx
        dist[start:start + 16384] = np.sqrt(d2[np.arange(len(chunk)), idx])
    return best.reshape(64, 64, 64), dist.reshape(64, 64, 64)


def _lut_index(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q = (np.asarray(rgb, dtype=np.uint8) >> 2).astype(np.intp)
    best, dist = _inverse_lut()
    return best[q[..., 0], q[..., 1], q[..., 2]], dist[q[..., 0], q[..., 1], q[..., 2]]


@lru_cache(maxsize=1)
def _exact_keys() -> tuple[np.ndarray, np.ndarray]:
    packed = viridis_lut().astype(np.int64) @ np.array([1 << 16, 1 << 8, 1])
    order = np.argsort(packed)
    return packed[order], order


def _energy_and_distance(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalized energy of each pixel and its colour's distance from the map, from one table lookup."""
    rgb = np.asarray(rgb, dtype=np.uint8)
    idx, dist = _lut_index(rgb)
    keys, order = _exact_keys()
    packed = rgb.astype(np.int64) @ np.array([1 << 16, 1 << 8, 1])
    pos = np.clip(np.searchsorted(keys, packed), 0, 255)
    exact = keys[pos] == packed
    idx = np.where(exact, order[pos], idx)
    return idx.astype(np.float32) * (ENERGY_MAX / 255.0), np.where(exact, 0.0, dist)


def rgb_to_energy(rgb: np.ndarray) -> np.ndarray:
    """Invert viridis: uint8 RGB (..., 3) -> normalized energy in [0, 25.5], float32.

    Colours exactly on the map (the simulator's, the augmentation's) invert exactly; others go through the 6-bit
    nearest-colour table, which is right to within a step or two of the 256.
    """
    return _energy_and_distance(rgb)[0]


def energy_to_rgb(energy: np.ndarray) -> np.ndarray:
    """Map normalized energy through viridis with clim (0, 25.5), saturating as Gravity Spy plots do."""
    idx = np.clip(np.rint(np.asarray(energy, dtype=np.float32) * (255.0 / ENERGY_MAX)), 0, 255).astype(np.intp)
    return viridis_lut()[idx]


def viridis_fraction(rgb: np.ndarray, tolerance: float = 24.0) -> float:
    """Fraction of pixels whose colour lies within ``tolerance`` (RGB units) of the viridis map."""
    _, dist = _lut_index(rgb)
    return float((dist <= tolerance).mean())


def frequency_of_row(row: np.ndarray | float, height: int) -> np.ndarray:
    """Frequency in Hz at the centre of pixel row ``row`` (0 = top) of a plot area ``height`` rows tall."""
    frac = 1.0 - (np.asarray(row, dtype=np.float64) + 0.5) / height
    return F_MIN_HZ * (F_MAX_HZ / F_MIN_HZ) ** frac


def row_of_frequency(frequency_hz: np.ndarray | float, height: int) -> np.ndarray:
    """Inverse of ``frequency_of_row``: fractional pixel row of a frequency on the log2 axis."""
    frac = np.log(np.asarray(frequency_hz, dtype=np.float64) / F_MIN_HZ) / np.log(F_MAX_HZ / F_MIN_HZ)
    return (1.0 - frac) * height - 0.5


# ------------------------------------------------------------------------------------------------------ reading


def open_image(source: Source, frame: int = 0) -> Image.Image:
    """Open a file path, bytes, file object or PIL image as an RGB image, with one-line errors for bad input.

    ``frame`` picks the frame of a multi-frame GIF (Gravity Spy's golden GIFs hold the 0.5/1/2/4 s views in order).
    """
    return _checked_rgb(_open(source, frame))


def open_frames(source: Source, max_frames: int | None = MAX_FRAMES) -> list[Image.Image]:
    """Every frame of an image as RGB, in one pass over the file: one frame for most images, the 0.5/1/2/4 s views of
    a golden GIF. Equal to ``open_image(source, k)`` for each ``k``, without reopening (and re-decoding the frames
    before ``k``, which a GIF needs) for every frame: a thousand-frame GIF took minutes that way.

    At most ``max_frames`` frames (``MAX_FRAMES`` when None; a hosted server passes its own, lower cap), and no more
    than ``MAX_PIXELS`` pixels in all, are decoded; later frames never are (``frame_count`` says how many the file
    holds)."""
    img = _open(source)
    frames = [_checked_rgb(img)]
    cap = MAX_FRAMES if max_frames is None else max(1, max_frames)
    budget = max(1, MAX_PIXELS // max(1, img.size[0] * img.size[1]))
    for k in range(1, min(getattr(img, "n_frames", 1), cap, budget)):
        try:
            img.seek(k)
            img.load()
        except EOFError:  # fewer frames than the header said
            break
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"frame {k} of the image is damaged ({first_line(str(exc), 80)})") from None
        frames.append(_checked_rgb(img))
    return frames


def _open(source: Source, frame: int = 0) -> Image.Image:
    """The image (its frame ``frame``) opened and loaded as stored, after the size and format checks."""
    if isinstance(source, Image.Image):
        img = source
    else:
        if isinstance(source, (bytes, bytearray)):
            if len(source) == 0:
                raise ImageError("the file is empty")
            fh = io.BytesIO(source)
        elif isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.is_file():
                raise ImageError(f"no such file: {path}")
            if path.stat().st_size == 0:
                raise ImageError("the file is empty")
            fh = path.open("rb")
        else:
            fh = source
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(fh)
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise ImageError(f"the image declares {w}x{h} pixels, more than the {MAX_PIXELS:,} allowed")
                if frame:
                    if frame >= MAX_FRAMES:
                        raise ImageError(f"frame {frame} requested, but at most {MAX_FRAMES} frames of a file are read")
                    n = getattr(img, "n_frames", 1)
                    if frame >= n:
                        raise ImageError(f"frame {frame} requested but the image has {n} frame(s)")
                    img.seek(frame)
                img.load()
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(f"the image declares more than {MAX_PIXELS:,} pixels (a decompression bomb?)") from None
        except UnidentifiedImageError:
            raise ImageError("not an image file, or not one GlitchNet can read (PNG, JPG or GIF)") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageError(f"the image is damaged or truncated ({first_line(str(exc), 80)})") from None
    return img


def _checked_rgb(img: Image.Image) -> Image.Image:
    if min(img.size) < MIN_SIDE:
        raise ImageError(f"the image is {img.size[0]}x{img.size[1]} pixels, too small to be a spectrogram")
    return _to_rgb(img)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def frame_count(source: Source, limit: int | None = None) -> int:
    """How many frames an image holds, from its headers without decoding any: 1 for a still image, and 1 for an
    unreadable file (which gets its own error when read). With ``limit``, frames are counted only up to
    ``limit + 1`` ("more than ``limit``"): a thousand-frame GIF then costs ``limit`` seeks, not a thousand."""
    def count(img: Image.Image) -> int:
        if limit is None:
            return getattr(img, "n_frames", 1)
        if not getattr(img, "is_animated", False):
            return 1
        n = 1
        while n <= limit:
            try:
                img.seek(n)
            except EOFError:
                break
            n += 1
        return n

    if isinstance(source, Image.Image):  # the caller's image: never moved to another frame
        n = getattr(source, "n_frames", 1)
        return n if limit is None else min(n, limit + 1)
    data = source if isinstance(source, (bytes, bytearray)) else None
    try:
        with Image.open(io.BytesIO(data) if data is not None else source) as img:
            return count(img)
    except Exception:
        return 1


def _is_background(arr: np.ndarray) -> np.ndarray:
    """White or light-grey figure background (never a viridis colour: viridis' lightest is yellow)."""
    a = arr.astype(np.int16)
    return (a.min(-1) > 200) & ((a.max(-1) - a.min(-1)) < 30)


def _is_neutral(arr: np.ndarray) -> np.ndarray:
    """Grey of any brightness: a light margin, a dark frame, window chrome, letterboxing, black spines and text.
    Never a viridis colour: every colour on the map has channels at least 69 apart."""
    a = arr.astype(np.int16)
    return (a.max(-1) - a.min(-1)) < 30


def _longest_run(mask: np.ndarray) -> tuple[int, int]:
    """Start and stop (exclusive) of the longest run of True in a 1-d boolean array."""
    best, start, best_span = (0, 0), None, 0
    for i, v in enumerate(np.append(mask, False)):
        if v and start is None:
            start = i
        elif not v and start is not None:
            if i - start > best_span:
                best, best_span = (start, i), i - start
            start = None
    return best


def find_plot_box(img: Image.Image) -> tuple[int, int, int, int]:
    """Locate the spectrogram's axes interior in a full figure or screenshot, as (left, top, right, bottom).

    The plot area is the largest block of viridis-coloured pixels: columns (then rows) where most pixels are
    on the colour map. The colourbar is also viridis but much narrower, so the longest run of columns wins.
    Falls back to the fixed Gravity Spy box, scaled to the figure size, when the pixels do not tell. A plot-area
    crop inside a dark frame, window chrome or letterboxing (grey of any brightness, no light figure margin) is
    cut out of it as it is.
    """
    arr = np.asarray(img)
    h, w = arr.shape[:2]
    if (w, h) == PLOT_SIZE:
        return (0, 0, w, h)
    background = _is_background(arr[::4, ::4])
    if background.mean() < 0.01:  # no light figure margin: a plot-area crop, perhaps inside a dark frame
        return _framed_crop_box(arr)

    def on_map(pixels: np.ndarray) -> np.ndarray:
        return (_lut_index(pixels)[1] <= 30.0) & ~_is_background(pixels)

    def trim(c0: int, c1: int, frac: np.ndarray) -> tuple[int, int]:
        # Step off the black spines at the ends of a run (at most 4 px a side), never into the interior.
        for _ in range(4):
            if c1 - c0 > 2 and frac[c0] < 0.5:
                c0 += 1
        for _ in range(4):
            if c1 - c0 > 2 and frac[c1 - 1] < 0.5:
                c1 -= 1
        return c0, c1

    # The axes interior is never figure background, and the white gap separates it from the colourbar, so the
    # longest run of mostly-non-background columns (then rows) is the plot; the viridis test only trims the spines.
    # Sampling every 8th row (column) keeps the edges exact to the pixel at a fraction of the cost.
    c0, c1 = _longest_run((~_is_background(arr[::8])).mean(0) > 0.5)
    if c1 - c0 >= 0.3 * w:
        c0, c1 = trim(c0, c1, on_map(arr[::8]).mean(0))
        r0, r1 = _longest_run((~_is_background(arr[:, c0:c1:8])).mean(1) > 0.5)
        if r1 - r0 >= 0.3 * h:
            r0, r1 = trim(r0, r1, on_map(arr[:, c0:c1:8]).mean(1))
            # Kaggle crops keep the 1-px frame line (top, left) and stop 5 px short of the right spine (800x600
            # figure: interior x 101..673 -> crop 100..668); reproduce that so crops and figures look alike.
            s = (c1 - c0) / 573.0
            return (round(c0 - s), round(r0 - s), round(c1 - 5 * s), round(r1 - s))
    sx, sy = w / 800.0, h / 600.0
    left, top, right, bottom = FULL_FIGURE_BOX
    return (round(left * sx), round(top * sy), round(right * sx), round(bottom * sy))


MIN_FRAME_FRACTION = 0.02
"""A grey border narrower than this fraction of the side is kept (a crop's own 1-px frame line, say)."""

FRAME_GREY_FRACTION = 0.9
"""Of the pixels a frame crop would cut off, at least this fraction must be grey (a frame, chrome, letterbox bars):
a run of faint spectrogram rows that JPEG greyed in part is not a frame."""


def _framed_crop_box(arr: np.ndarray) -> tuple[int, int, int, int]:
    """The box of a plot-area crop inside grey borders (a dark frame, window chrome, letterboxing): the longest run
    of mostly non-grey columns, then rows. The whole image when the borders are negligible or the pixels do not
    tell."""
    h, w = arr.shape[:2]
    c0, c1 = _longest_run((~_is_neutral(arr[::8])).mean(0) > 0.5)
    if c1 - c0 < 0.3 * w:
        return (0, 0, w, h)
    r0, r1 = _longest_run((~_is_neutral(arr[:, c0:c1:8])).mean(1) > 0.5)
    if r1 - r0 < 0.3 * h:
        return (0, 0, w, h)
    if w - (c1 - c0) < MIN_FRAME_FRACTION * w and h - (r1 - r0) < MIN_FRAME_FRACTION * h:
        return (0, 0, w, h)
    # what is cut off must be a frame: grey through and through, not a stretch of faint, JPEG-greyed spectrogram
    outside = np.ones((h, w), bool)
    outside[r0:r1, c0:c1] = False
    if outside[::4, ::4].any() and _is_neutral(arr[::4, ::4])[outside[::4, ::4]].mean() < FRAME_GREY_FRACTION:
        return (0, 0, w, h)
    return (c0, r0, c1, r1)


def plot_area(source: Source, frame: int = 0) -> Image.Image:
    """The plot area (axes interior) of any Gravity Spy image, as an RGB PIL image."""
    img = open_image(source, frame)
    box = find_plot_box(img)
    if box != (0, 0, *img.size):
        img = img.crop(box)
    return img


def resized_uint8(source: Source, frame: int = 0, size: int = INPUT_SIZE) -> np.ndarray:
    """Plot area resized to ``size``x``size``, uint8 RGB (H, W, 3), colours as decoded."""
    img = plot_area(source, frame)
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def snap_to_viridis(rgb: np.ndarray) -> np.ndarray:
    """Replace every colour by the nearest viridis colour (energy round trip).

    JPEG blocks, GIF palettes and resizing put colours slightly off the map; the simulator and the augmentation
    emit exact viridis colours. Snapping makes all of them look alike to the model.
    """
    return energy_to_rgb(rgb_to_energy(rgb))


def canonical_uint8(source: Source, frame: int = 0, size: int = INPUT_SIZE) -> np.ndarray:
    """The form the cache stores and the augmentation edits: plot area, resized, snapped to viridis (H, W, 3)."""
    return snap_to_viridis(resized_uint8(source, frame, size))


def canonical_checked(source: Source, frame: int = 0, size: int = INPUT_SIZE,
                      tolerance: float = 24.0) -> tuple[np.ndarray, float, str | None]:
    """``canonical_uint8``, the ``viridis_fraction`` of the unsnapped pixels and the ``uniformity_warning``, all from
    one colour lookup (a second lookup would double the decoding cost of a prediction)."""
    energy, dist = _energy_and_distance(resized_uint8(source, frame, size))
    return energy_to_rgb(energy), float((dist <= tolerance).mean()), _uniformity_warning_of(energy)


DARK_P90_ENERGY = 0.8
"""Gravity Spy's background noise puts a tenth of the pixels above normalized energy ~1.5 (measured on the real pool:
90th percentile 1.3-2.0 in ordinary views). A view whose 90th percentile sits below this is almost uniformly dark:
a very loud glitch elsewhere in the scan set the colour scale (a golden Paired_Doves measures 0.4-0.6), or it is
blank."""
UNIFORM_STD_ENERGY = 0.2
"""A view whose energy varies less than this (standard deviation) is a flat colour, not a spectrogram of noise."""


def uniformity_warning(img_uint8: np.ndarray) -> str | None:
    """A one-line warning when a canonical view is blank, flat or almost uniformly dark, else None: the model's
    answer on such a view says little about the glitch."""
    return _uniformity_warning_of(rgb_to_energy(img_uint8))


def _uniformity_warning_of(energy: np.ndarray) -> str | None:
    if float(energy.std()) < UNIFORM_STD_ENERGY:
        return "this view is a nearly uniform colour, so the answer says little about the glitch"
    if float(np.percentile(energy, 90)) < DARK_P90_ENERGY:
        return ("this view is almost uniformly dark (a very loud glitch elsewhere may have set the colour scale), "
                "so the answer for it is unreliable")
    return None


def normalize(batch_uint8: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 images (..., H, W, 3) -> float tensor (..., 3, H, W) normalized with ``MEAN``/``STD``."""
    import torch

    t = torch.from_numpy(np.array(batch_uint8, dtype=np.uint8, copy=True)) if isinstance(batch_uint8, np.ndarray) \
        else torch.as_tensor(batch_uint8)
    t = t.movedim(-1, -3).float().div_(255.0)
    mean = torch.tensor(MEAN, dtype=t.dtype, device=t.device).view(3, 1, 1)
    std = torch.tensor(STD, dtype=t.dtype, device=t.device).view(3, 1, 1)
    return (t - mean) / std


def normalize_array(batch_uint8: np.ndarray) -> np.ndarray:
    """``normalize`` in numpy, for a forward pass without torch (``glitchnet.engine``'s ONNX Runtime input): uint8
    images (N, H, W, 3) -> float32 (N, 3, H, W), C-contiguous, ``MEAN``/``STD``-normalized with the same float32
    operations, so it equals ``to_model_input`` bit for bit (a test checks it)."""
    a = np.asarray(batch_uint8)
    if a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"expected a batch of RGB images (N, H, W, 3), not shape {a.shape}")
    x = a.astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255.0)
    mean = np.asarray(MEAN, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(STD, dtype=np.float32).reshape(3, 1, 1)
    return np.ascontiguousarray((x - mean) / std)


def to_model_input(batch_uint8: torch.Tensor | np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """Canonical uint8 images (N, H, W, 3), numpy or torch -> the model's input: float (N, 3, H, W) on ``device``,
    ``normalize``d, in channels_last memory (what the model's weights use; faster with oneDNN and cuDNN alike).

    The uint8 batch crosses to the device before the conversion: a quarter of the bytes of float32.
    """
    import torch

    t = torch.from_numpy(np.array(batch_uint8, dtype=np.uint8, copy=True)) if isinstance(batch_uint8, np.ndarray) \
        else torch.as_tensor(batch_uint8)
    if t.dim() != 4 or t.shape[-1] != 3:
        raise ValueError(f"expected a batch of RGB images (N, H, W, 3), not shape {tuple(t.shape)}")
    # moving the channel axis of an NHWC batch is already channels_last; contiguous() then only checks it
    return normalize(t.to(device, non_blocking=True)).contiguous(memory_format=torch.channels_last)


def preprocess(source: Source, frame: int = 0, size: int = INPUT_SIZE) -> torch.Tensor:
    """Any Gravity Spy image -> the model's input tensor (3, size, size), on the CPU."""
    return to_model_input(canonical_uint8(source, frame, size)[None])[0]
