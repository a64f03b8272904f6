"""Class-specific, physics-aware augmentation of Gravity Spy spectrograms, done in normalized energy.

An image is inverted through viridis to normalized energy, transformed, and mapped back with ``energy_to_rgb``, so
every output pixel is a viridis colour and energy saturates at 25.5 exactly as the real plots do. What each class
may undergo is data (``CLASS_POLICIES``): the training loop, the preview page and the tests read the same table.

Noise model. The normalized energy of whitened Gaussian noise in one Q-tile is |z|^2 for a circular complex
Gaussian z (exponential, mean ~1); neighbouring pixels are correlated over the tile's duration (~Q/f, so long at low
frequency) and bandwidth (~f/Q, a constant number of rows on the log2 axis). Fresh noise is drawn that way, with the
correlation lengths measured on the image itself (gwpy picks one Q per image, so the texture differs from image to
image) and then mapped onto the image's own background energy histogram.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage

from glitchnet.classes import ALL_INFO
from glitchnet.config import AUGMENTATION_MODES
from glitchnet.images import (
    ENERGY_MAX,
    F_MAX_HZ,
    F_MIN_HZ,
    PLOT_SIZE,
    canonical_uint8,
    energy_to_rgb,
    frequency_of_row,
    rgb_to_energy,
)

ENERGY_STEP = ENERGY_MAX / 255.0
"""Normalized energy of one viridis colour step: the resolution of every image."""

OCTAVES_IN_VIEW = math.log2(F_MAX_HZ / F_MIN_HZ)
"""Octaves spanned by the log2 frequency axis (10 Hz to 2048 Hz)."""

_HALF_CORR_PER_SIGMA = math.sqrt(2.0 * math.log(2.0))
"""Intensity correlation of a Gaussian-filtered complex field is exp(-lag^2 / 2 sigma^2): it halves at 1.18 sigma."""

_TIME_LAGS_PX = (1, 2, 3, 5, 8, 13, 21, 34, 55)
_FREQ_LAGS_PX = (1, 2, 3, 5, 8, 13, 21, 34)
_BAND_ROWS = 16
"""Lags at which the background's correlation is measured, and the row band over which time lags are pooled."""

_X_TABLE_MAX = 14.0
"""Quantile table range for exponential(1) variates: beyond 14 (p = 8e-7) they all take the top level."""


def _half_lag(corr: np.ndarray, lags: tuple[int, ...], n: int) -> np.ndarray:
    """Lag (px) where each column of ``corr`` (one row per lag) first falls below 0.5, interpolated linearly."""
    lag_axis = np.array((0, *lags), dtype=np.float64)
    corr = np.vstack([np.ones((1, corr.shape[1])), corr])
    half = np.full(corr.shape[1], min(1.5 * lag_axis[-1], n / 3.0))  # never fell: longer than measured
    for b in range(corr.shape[1]):
        below = np.nonzero(corr[:, b] < 0.5)[0]
        if len(below):
            i = below[0]
            c0, c1 = corr[i - 1, b], corr[i, b]
            half[b] = lag_axis[i - 1] + (c0 - 0.5) / max(c0 - c1, 1e-9) * (lag_axis[i] - lag_axis[i - 1])
    return half


# ------------------------------------------------------------------------------------------------ public records


@dataclass(frozen=True)
class TransformSpec:
    """One row of a class policy: which transform, how often, over what range, and why it is physically allowed."""

    name: str
    prob: float
    params: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    reason: str = ""


@dataclass(frozen=True)
class Applied:
    """A transform that actually changed an image, with its drawn amount (units as in its caption)."""

    name: str
    amount: float

    def __str__(self) -> str:
        fmt = _CAPTIONS.get(self.name, self.name + " {:.2f}")
        return fmt.format(self.amount)


_CAPTIONS: dict[str, str] = {
    "time_shift": "time shift {:+.2f} window",
    "time_roll": "time roll {:+.2f} window",
    "time_reverse": "time reversed",
    "time_stretch": "time stretch ×{:.2f}",
    "freq_shift": "freq shift {:+.2f} oct",
    "freq_stretch": "freq stretch ×{:.2f}",
    "loudness": "glitch energy ×{:.2f}",
    "noise_redraw": "new noise, mean ×{:.2f}",
    "hflip": "horizontal flip",
    "resized_crop": "crop {:.0%} of area",
    "brightness": "brightness ×{:.2f}",
    "contrast": "contrast ×{:.2f}",
    "saturation": "saturation ×{:.2f}",
}


# ------------------------------------------------------------------------------------------------ the image model


@dataclass(frozen=True)
class _Extent:
    """Where the glitch's excess energy sits: columns and rows holding its central 94%, its median row, and which
    plot edges it runs into (a glitch that continues past an edge must not be moved away from that edge)."""

    col_lo: int
    col_hi: int
    row_lo: int
    row_hi: int
    row_centre: int
    touches_left: bool
    touches_right: bool
    touches_top: bool
    touches_bottom: bool

    def room(self, axis: int, size: int) -> tuple[float, float]:
        """Allowed move (px) along ``axis``: (most negative, most positive), keeping edges inside, never vacating a
        side the glitch runs into."""
        lo_idx, hi_idx = (self.col_lo, self.col_hi) if axis == 1 else (self.row_lo, self.row_hi)
        start_touch, end_touch = ((self.touches_left, self.touches_right) if axis == 1
                                  else (self.touches_top, self.touches_bottom))
        most_neg = -math.inf if start_touch else -float(lo_idx)
        most_pos = math.inf if end_touch else float(size - 1 - hi_idx)
        if start_touch:
            most_pos = 0.0
        if end_touch:
            most_neg = 0.0
        return most_neg, most_pos

    def max_zoom(self, axis: int, size: int, centre: float) -> float:
        """Largest stretch factor about ``centre`` keeping the glitch's non-touching edges inside; 1 if none fits."""
        lo_idx, hi_idx = (self.col_lo, self.col_hi) if axis == 1 else (self.row_lo, self.row_hi)
        start_touch, end_touch = ((self.touches_left, self.touches_right) if axis == 1
                                  else (self.touches_top, self.touches_bottom))
        limits = [math.inf]
        if not start_touch and lo_idx < centre:
            limits.append(centre / (centre - lo_idx))
        if not end_touch and hi_idx > centre:
            limits.append((size - 1 - centre) / (hi_idx - centre))
        return max(min(limits), 1.0)

    def min_zoom(self, axis: int) -> float:
        """Shrinking vacates both ends, so a glitch that runs into either end of ``axis`` may not shrink."""
        if axis == 1:
            return 1.0 if (self.touches_left or self.touches_right) else 0.0
        return 1.0 if (self.touches_top or self.touches_bottom) else 0.0


class _Scene:
    """What the transforms need to know about one image: its background statistics and one fresh noise draw."""

    def __init__(self, energy: np.ndarray, noise_seed: int) -> None:
        self.height, self.width = energy.shape
        self._energy0 = energy
        self._noise_seed = noise_seed
        self._noise: np.ndarray | None = None
        self._texture: tuple[np.ndarray, float] | None = None
        self._row_level_ratio = np.ones(self.height, dtype=np.float32)

        level_idx = np.rint(energy * (1.0 / ENERGY_STEP)).astype(np.intp).ravel()
        levels = np.arange(256) * ENERGY_STEP
        bg = np.bincount(level_idx, minlength=256).astype(np.float64)
        for _ in range(2):
            # The median survives a glitch covering up to half the image; for exponential noise mean = median / ln 2.
            median = levels[np.searchsorted(np.cumsum(bg), 0.5 * bg.sum())]
            rough_mean = max(median / math.log(2.0), 2 * ENERGY_STEP)
            # Exponential noise passes 8 x its mean once in 3000 pixels: brighter is glitch, and so is its rim.
            core = energy > 8.0 * rough_mean
            if not core.any():
                break
            # a 9x9 square dilation as a maximum filter: the mask binary_dilation gives, ~10x faster
            keep = ~ndimage.maximum_filter(core, size=9, mode="constant").ravel()
            if keep.sum() < 0.1 * keep.size:
                break  # nearly all glitch: keep the last histogram rather than a handful of pixels
            bg = np.bincount(level_idx[keep], minlength=256).astype(np.float64)
        self.bg_cdf = np.cumsum(bg) / bg.sum()
        self.bg_mean = max(float((bg * levels).sum() / bg.sum()), ENERGY_STEP)
        self.lo_signal = float(levels[np.searchsorted(self.bg_cdf, 0.97)])
        self.hi_signal = max(float(levels[np.searchsorted(self.bg_cdf, 0.995)]), self.lo_signal + 2 * ENERGY_STEP)
        tail = np.maximum(levels - self.hi_signal, 0.0)
        self._noise_excess = float((bg * tail).sum() / bg.sum()) * energy.size
        # Quantile-mapping table: an exponential(1) variate x picks the background level _levels_of_x[x * n / max].
        x_grid = (np.arange(4096) + 0.5) * (_X_TABLE_MAX / 4096)
        cdf_at_x = np.minimum(-np.expm1(-x_grid), self.bg_cdf[-1] * (1 - 1e-12))
        self._levels_of_x = levels[np.searchsorted(self.bg_cdf, cdf_at_x)].astype(np.float32)
        # A Kaggle crop keeps the black axes spines as its top row and left column. They belong to the axes, not
        # the data: they are painted over with their neighbours while the data move, and put back at the end.
        self._frame_row = energy[0].copy() if float(energy[0].mean()) < 0.3 * self.bg_mean else None
        self._frame_col = energy[:, 0].copy() if float(energy[:, 0].mean()) < 0.3 * self.bg_mean else None
        if self._frame_row is not None or self._frame_col is not None:
            self._energy0 = energy = energy.copy()
            if self._frame_row is not None:
                energy[0] = energy[1]
            if self._frame_col is not None:
                energy[:, 0] = energy[:, 1]

    # -------------------------------------------------------------------------------------------- glitch geometry

    def signal_weight(self, energy: np.ndarray, strict: bool = False) -> np.ndarray:
        """0 for background, 1 for glitch: ramps between the 97th and 99.5th background percentiles, dilated 1 px.

        ``strict`` ramps from the 99.5th percentile instead, so that hardly any noise peak counts as glitch.
        """
        lo = self.hi_signal if strict else self.lo_signal
        width = self.hi_signal - self.lo_signal
        w = np.clip((energy - lo) * (1.0 / width), 0.0, 1.0)
        # Dilation keeps the glitch's faint rim with its body, so it is not cut out with a hard edge.
        return ndimage.maximum_filter(w, size=3, mode="nearest")

    def extent(self, energy: np.ndarray) -> _Extent | None:
        """The glitch's bounding box, or None when nothing stands out from the noise (No_Glitch, a faint line)."""
        excess = np.maximum(energy - self.hi_signal, 0.0)
        total = float(excess.sum())
        if total < 3.0 * self._noise_excess or total <= 0.0:
            return None
        col_sum, row_sum = excess.sum(0), excess.sum(1)
        cols, rows = np.cumsum(col_sum) / total, np.cumsum(row_sum) / total
        col_lo, col_hi = int(np.searchsorted(cols, 0.03)), int(np.searchsorted(cols, 0.97))
        row_lo, row_hi = int(np.searchsorted(rows, 0.03)), int(np.searchsorted(rows, 0.97))
        # An edge is touched when its outer 3 px hold at least a quarter of the glitch's typical 3 px of excess.
        col_typ = 0.75 * float(col_sum[col_lo:col_hi + 1].mean())
        row_typ = 0.75 * float(row_sum[row_lo:row_hi + 1].mean())
        return _Extent(
            col_lo=col_lo, col_hi=col_hi, row_lo=row_lo, row_hi=row_hi, row_centre=int(np.searchsorted(rows, 0.5)),
            touches_left=float(col_sum[:3].sum()) >= col_typ, touches_right=float(col_sum[-3:].sum()) >= col_typ,
            touches_top=float(row_sum[:3].sum()) >= row_typ, touches_bottom=float(row_sum[-3:].sum()) >= row_typ,
        )

    # -------------------------------------------------------------------------------------------------- the noise

    @property
    def noise(self) -> np.ndarray:
        """A fresh background realisation with this image's texture and energy histogram, drawn once, lazily."""
        if self._noise is None:
            self._noise = self._draw_noise()
        return self._noise

    @property
    def texture(self) -> tuple[np.ndarray, float]:
        """Background correlation lengths (Gaussian sigma, px): one per row along time, one along frequency."""
        if self._texture is None:
            self._texture = self._measure_texture()
        return self._texture

    def _measure_texture(self) -> tuple[np.ndarray, float]:
        h, w = self.height, self.width
        # The glitch (and the rare noise pixel above the 99.5th percentile) is set to the mean, so it adds nothing:
        # the texture is the background's alone.
        background = self._energy0 <= self.hi_signal
        clipped = np.where(background, self._energy0, np.float32(self.bg_mean))
        # Along time, per 16-row band: the tile duration (~Q/f) changes with frequency. Each row's own mean is
        # removed first, as the background level drifts slowly with frequency.
        x = clipped - clipped.mean(1, keepdims=True)
        x *= background
        starts = np.arange(0, h, _BAND_ROWS)
        den = np.add.reduceat((x * x).sum(1), starts)
        # Every other row is enough to pool 16-row bands, at half the cost.
        xs = x[::2]
        num = np.stack([np.add.reduceat((xs[:, lag:] * xs[:, :-lag]).sum(1), starts // 2) * (2 * w / (w - lag))
                        for lag in _TIME_LAGS_PX if lag < w])
        flat = den <= 1e-9  # a saturated or blank band says nothing about the noise
        sigma_bands = _half_lag(num / np.maximum(den, 1e-9), _TIME_LAGS_PX[:len(num)], w) / _HALF_CORR_PER_SIGMA
        centres = np.minimum(starts + 0.5 * _BAND_ROWS - 0.5, h - 1)
        sigma_t = np.interp(np.arange(h), centres[~flat], sigma_bands[~flat]) if (~flat).any() else np.ones(h)
        # Along frequency, one length for the image (the tile bandwidth ~f/Q is a fixed number of log-f rows).
        # Only the global mean is removed: column means would eat the long vertical correlation being measured.
        y = (clipped[:, ::4] - self.bg_mean) * background[:, ::4]
        den_f = float((y * y).mean())
        corr_f = np.array([[(y[lag:] * y[:-lag]).mean() / max(den_f, 1e-9)] for lag in _FREQ_LAGS_PX if lag < h])
        sigma_f = float(_half_lag(corr_f, _FREQ_LAGS_PX[:len(corr_f)], h)[0]) / _HALF_CORR_PER_SIGMA
        # The background level drifts with frequency too (imperfect whitening): keep each band's own mean.
        n_bg = np.add.reduceat(background.sum(1), starts)
        level = np.add.reduceat((self._energy0 * background).sum(1), starts) / np.maximum(n_bg, 1)
        ok = n_bg >= 0.25 * _BAND_ROWS * w
        ratio = np.interp(np.arange(h), centres[ok], level[ok] / self.bg_mean) if ok.any() else np.ones(h)
        self._row_level_ratio = np.clip(ratio, 0.25, 4.0).astype(np.float32)
        return np.clip(sigma_t, 0.4, w / 4.0), float(np.clip(sigma_f if den_f > 1e-9 else 1.0, 0.4, h / 6.0))

    def seam_ramp_px(self, axis: int) -> np.ndarray | float:
        """How far a seam between image and fresh noise is cross-faded: about one correlation length."""
        sigma_t, sigma_f = self.texture
        if axis == 1:
            return np.clip(1.5 * sigma_t, 1.0, 24.0)
        return float(np.clip(1.5 * sigma_f, 1.0, 24.0))

    def _draw_noise(self) -> np.ndarray:
        h, w = self.height, self.width
        sigma_t, sigma_f = self.texture
        rng = np.random.default_rng(self._noise_seed)
        # Two real white fields (the real and imaginary parts of z), drawn straight in the time-Fourier domain.
        # Each output pixel sums ~w/2 independent coefficients, so uniform coefficients give Gaussian pixels (central
        # limit) at a fraction of the cost of normal variates; sqrt(6 w) gives each real field unit variance.
        spectrum = rng.random((2, h, w // 2 + 1, 2), dtype=np.float32)
        spectrum -= np.float32(0.5)
        spectrum = spectrum.view(np.complex64)[..., 0]
        # Time correlation: a Gaussian filter per row, normalized to unit variance per row (Parseval over the
        # one-sided spectrum: bins other than 0 and w/2 count twice).
        k_t = np.fft.rfftfreq(w)
        gain_t = np.exp(-2.0 * math.pi**2 * sigma_t[:, None] ** 2 * k_t[None, :] ** 2)
        twice = np.full(len(k_t), 2.0)
        twice[0] = 1.0
        if w % 2 == 0:
            twice[-1] = 1.0
        power_t = (gain_t**2 * twice).sum(1) / w
        gain_t = (gain_t * (math.sqrt(6.0 * w) / np.sqrt(power_t))[:, None]).astype(np.float32)
        z = np.fft.irfft(spectrum * gain_t, n=w, axis=2)
        # Frequency correlation: one Gaussian filter along rows.
        k_f = np.fft.rfftfreq(h)
        gain_f = np.exp(-2.0 * math.pi**2 * sigma_f**2 * k_f**2)
        gain_f /= math.sqrt(float(np.exp(-4.0 * math.pi**2 * sigma_f**2 * np.fft.fftfreq(h) ** 2).mean()))
        z = np.fft.irfft(np.fft.rfft(z, axis=1) * gain_f.astype(np.float32)[:, None], n=h, axis=1)
        # |z|^2 / 2 is exponential with mean 1; a table maps it through its CDF onto the image's own background
        # histogram (quantile mapping), so the fresh noise has this image's energy distribution.
        x = 0.5 * (z[0] * z[0] + z[1] * z[1])
        pick = np.minimum((x * (len(self._levels_of_x) / _X_TABLE_MAX)).astype(np.intp), len(self._levels_of_x) - 1)
        return self._levels_of_x[pick] * self._row_level_ratio[:, None]

    @property
    def energy(self) -> np.ndarray:
        """The image's normalized energy, spines painted over."""
        return self._energy0

    def restore_frame(self, energy: np.ndarray) -> np.ndarray:
        """Put the axes spines back where they were (``energy`` is modified in place and returned)."""
        if self._frame_row is not None:
            energy[0] = self._frame_row
        if self._frame_col is not None:
            energy[:, 0] = self._frame_col
        return energy


# ------------------------------------------------------------------------------------------------ transforms


def _compose(content: np.ndarray, valid: np.ndarray, axis: int, fill: np.ndarray,
             ramp_px: np.ndarray | float) -> np.ndarray:
    """``content`` where ``valid`` (1-d, along ``axis``), ``fill`` elsewhere, cross-faded over ``ramp_px`` next to
    the seam: correlated noise streaks would otherwise end in a hard edge no real plot has."""
    idx = np.arange(valid.size)
    invalid = idx[~valid]
    if invalid.size == 0:
        return content
    dist = np.abs(idx[:, None] - invalid[None, :]).min(1).astype(np.float32)
    if axis == 1:
        a = np.clip(1.0 - dist[None, :] / np.asarray(ramp_px, dtype=np.float32)[:, None], 0.0, 1.0)
    else:
        a = np.clip(1.0 - dist[:, None] / np.float32(ramp_px), 0.0, 1.0)
    return content + a * (fill - content)


def _shift(energy: np.ndarray, k_px: int, axis: int, scene: _Scene) -> np.ndarray:
    """Move the image ``k_px`` pixels along ``axis`` (positive = later / lower row); vacated pixels get new noise."""
    n = energy.shape[axis]
    k = max(-n, min(n, k_px))
    idx = np.arange(n)
    valid = (idx >= k) if k >= 0 else (idx < n + k)
    return _compose(np.roll(energy, k, axis=axis), valid, axis, scene.noise, scene.seam_ramp_px(axis))


def _stretch(energy: np.ndarray, factor: float, axis: int, centre_px: float, scene: _Scene) -> np.ndarray:
    """Scale coordinates along ``axis`` by ``factor`` about ``centre_px`` (linear interpolation); new noise outside."""
    n = energy.shape[axis]
    src = centre_px + (np.arange(n, dtype=np.float32) - centre_px) / factor
    valid = (src >= 0) & (src <= n - 1)
    src = np.clip(src, 0, n - 1)
    i0 = np.minimum(src.astype(np.intp), n - 2)
    frac = (src - i0).astype(np.float32)
    if axis == 1:
        out = energy[:, i0] * (1 - frac) + energy[:, i0 + 1] * frac
    else:
        out = energy[i0] * (1 - frac)[:, None] + energy[i0 + 1] * frac[:, None]
    return _compose(out, valid, axis, scene.noise, scene.seam_ramp_px(axis))


def _uniform(lo: float, hi: float, u: float) -> float:
    return lo + u * (hi - lo)


def _log_uniform(lo: float, hi: float, u: float) -> float:
    """Factors are drawn uniformly in log, so x0.8 and x1.25 are equally likely."""
    return math.exp(_uniform(math.log(lo), math.log(hi), u))


_Result = tuple[np.ndarray, "float | None"]
"""A transform's new energy and the amount it applied (None: it found nothing to do)."""


def _time_shift(energy: np.ndarray, scene: _Scene, label: str, u: float, lo: float, hi: float) -> _Result:
    w = scene.width
    lo_px, hi_px = lo * w, hi * w
    ext = scene.extent(energy)
    if ext is not None:  # the glitch stays inside the window
        most_neg, most_pos = ext.room(1, w)
        lo_px, hi_px = max(lo_px, most_neg), min(hi_px, most_pos)
    k = int(round(_uniform(lo_px, hi_px, u)))
    if k == 0:
        return energy, None
    return _shift(energy, k, 1, scene), k / w


def _time_roll(energy: np.ndarray, scene: _Scene, label: str, u: float, lo: float, hi: float) -> _Result:
    k = int(round(_uniform(lo, hi, u) * scene.width))
    if k == 0:
        return energy, None
    # The two ends of the window meet at column k; a column of fresh noise, cross-faded, hides the seam.
    valid = np.arange(scene.width) != (k % scene.width)
    return _compose(np.roll(energy, k, axis=1), valid, 1, scene.noise, scene.seam_ramp_px(1)), k / scene.width


def _time_reverse(energy: np.ndarray, scene: _Scene, label: str, u: float, lo: float, hi: float) -> _Result:
    return energy[:, ::-1], 1.0


def _zoom_range(ext: _Extent | None, axis: int, size: int, centre: float, lo: float, hi: float) -> tuple[float, float]:
    if ext is None:
        return lo, hi
    lo = max(lo, ext.min_zoom(axis))
    hi = min(hi, ext.max_zoom(axis, size, centre))
    return (lo, hi) if lo <= hi else (1.0, 1.0)


def _time_stretch(energy: np.ndarray, scene: _Scene, label: str, u: float, lo: float, hi: float) -> _Result:
    # About the window centre: Gravity Spy centres every view on the trigger's peak time.
    centre = (scene.width - 1) / 2.0
    lo, hi = _zoom_range(scene.extent(energy), 1, scene.width, centre, lo, hi)
    factor = _log_uniform(lo, hi, u)
    if abs(factor - 1.0) < 0.01:
        return energy, None
    return _stretch(energy, factor, 1, centre, scene), factor


def _freq_shift(energy: np.ndarray, scene: _Scene, label: str, u: float, lo: float, hi: float) -> _Result:
    rows_per_octave = scene.height / OCTAVES_IN_VIEW
    ext = scene.extent(energy)
    if ext is not None:
        # Up in frequency is towards row 0. The glitch stays inside the plot, and its centre inside the class's
        # band (or no further out than it is now).
        most_neg, most_pos = ext.room(0, scene.height)
        band_lo_hz, band_hi_hz = ALL_INFO[label].band_hz if label in ALL_INFO else (10.0, 2048.0)
        centre_hz = float(frequency_of_row(ext.row_centre, scene.height))
        lo = max(lo, min(0.0, math.log2(band_lo_hz / centre_hz)), -most_pos / rows_per_octave)
        hi = min(hi, max(0.0, math.log2(band_hi_hz / centre_hz)), -most_neg / rows_per_octave)
        if lo > hi:
            return energy, None
    k_rows = -int(round(_uniform(lo, hi, u) * rows_per_octave))
    if k_rows == 0:
        return energy, None
    return _shift(energy, k_rows, 0, scene), -k_rows / rows_per_octave


def _freq_stretch(energy: np.ndarray, scene: _Scene, label: str, u: float, lo: float, hi: float) -> _Result:
    ext = scene.extent(energy)
    if ext is None:
        return energy, None  # nothing to stretch about
    centre = float(ext.row_centre)
    lo, hi = _zoom_range(ext, 0, scene.height, centre, lo, hi)
    factor = _log_uniform(lo, hi, u)
    if abs(factor - 1.0) < 0.01:
        return energy, None
    return _stretch(energy, factor, 0, centre, scene), factor


def _loudness(energy: np.ndarray, scene: _Scene, label: str, u: float, lo: float, hi: float) -> _Result:
    if float((energy >= ENERGY_MAX - 0.5 * ENERGY_STEP).mean()) > 0.002:
        # Saturation hides how loud it was: a quieter copy would show a flat plateau no real plot has.
        lo = max(lo, 1.0)
        if lo > hi:
            return energy, None
    gain = _log_uniform(lo, hi, u)
    if abs(gain - 1.0) < 0.01:
        return energy, None
    # A louder glitch has more signal energy over the same noise: scale only the excess over the background mean.
    weight = scene.signal_weight(energy)
    out = energy + weight * (gain - 1.0) * np.maximum(energy - scene.bg_mean, 0.0)
    return out, gain


def _noise_redraw(energy: np.ndarray, scene: _Scene, label: str, u: float, lo: float, hi: float) -> _Result:
    scale = _uniform(lo, hi, u)
    # Strict: the glitch keeps its own pixels, but the old noise peaks around it must go with the old noise.
    weight = scene.signal_weight(energy, strict=True)
    return weight * energy + (1.0 - weight) * (scene.noise * scale), scale


@dataclass(frozen=True)
class _Transform:
    fn: Callable[[np.ndarray, _Scene, str, float, float, float], _Result]
    param: str | None
    """Name of the transform's one parameter range (None: no parameter)."""
    range_text: str
    moves_frequency: bool = False
    reverses_time: bool = False


TRANSFORMS: dict[str, _Transform] = {
    # Order matters: geometry first, then loudness and noise, so the new noise is never shifted or stretched.
    "time_reverse": _Transform(_time_reverse, None, "—", reverses_time=True),
    "time_roll": _Transform(_time_roll, "roll_window_frac", "±{hi:.2f} of the window, wrapping around"),
    "time_shift": _Transform(_time_shift, "shift_window_frac", "±{hi:.2f} of the window, glitch kept inside"),
    "time_stretch": _Transform(_time_stretch, "factor", "×{lo:.2f}–{hi:.2f} about the window centre"),
    "freq_shift": _Transform(_freq_shift, "octaves", "±{hi:.2f} octave, centre kept in the class band",
                             moves_frequency=True),
    "freq_stretch": _Transform(_freq_stretch, "factor", "×{lo:.2f}–{hi:.2f} in log f about the glitch centre",
                               moves_frequency=True),
    "loudness": _Transform(_loudness, "gain", "×{lo:.2f}–{hi:.2f} on the glitch's excess energy"),
    "noise_redraw": _Transform(_noise_redraw, "background_mean_scale",
                               "background re-drawn, mean ×{lo:.2f}–{hi:.2f}"),
}
"""Every class-mode transform, in the order they are applied."""

_ORDER = {name: i for i, name in enumerate(TRANSFORMS)}


# ------------------------------------------------------------------------------------------------ the policies


def _spec(name: str, prob: float, reason: str, lo: float | None = None, hi: float | None = None) -> TransformSpec:
    param = TRANSFORMS[name].param
    params = {} if param is None else {param: (float(lo), float(hi))}
    return TransformSpec(name, prob, params, reason)


def _shift_spec(frac: float, reason: str) -> TransformSpec:
    return _spec("time_shift", 0.6, reason, -frac, frac)


def _reverse_spec(reason: str = "no preferred direction in time") -> TransformSpec:
    return _spec("time_reverse", 0.5, reason)


def _noise_spec(prob: float = 0.5) -> TransformSpec:
    return _spec("noise_redraw", prob, "another stretch of Gaussian noise; whitening leaves the mean ~1, not exactly",
                 0.85, 1.2)


CLASS_POLICIES: dict[str, tuple[TransformSpec, ...]] = {
    "1080Lines": (
        _reverse_spec("dashes of a stationary line have no direction"),
        _spec("time_roll", 0.6, "the line is stationary: any window of it looks alike", -0.5, 0.5),
        _spec("loudness", 0.5, "the disturbance's amplitude varies; frequency stays at ~1080 Hz", 0.7, 1.4),
        _noise_spec(),
    ),
    "1400Ripples": (
        _reverse_spec("ripples are symmetric in time"),
        _shift_spec(0.15, "trigger peak time jitters around the window centre"),
        _spec("loudness", 0.5, "ripple amplitude varies; frequency pinned near 1400 Hz", 0.7, 1.4),
        _noise_spec(),
    ),
    "Air_Compressor": (
        _reverse_spec("the compressor's hum has no direction"),
        _shift_spec(0.15, "trigger peak time jitters around the window centre"),
        _spec("time_stretch", 0.4, "compressor cycles last more or less long", 0.85, 1.2),
        _spec("loudness", 0.5, "coupling strength varies; the ~50 Hz frequency does not", 0.7, 1.4),
        _noise_spec(),
    ),
    "Blip": (
        _reverse_spec("the teardrop is symmetric in time"),
        _shift_spec(0.2, "a short glitch; trigger peak time jitters"),
        _spec("freq_shift", 0.5, "blips span ~30-500 Hz with varying centre", -0.25, 0.25),
        _spec("freq_stretch", 0.4, "bandwidth varies from blip to blip", 0.9, 1.1),
        _spec("loudness", 0.5, "SNR varies; kept mild so a blip does not become a Koi_Fish", 0.75, 1.3),
        _noise_spec(),
    ),
    "Chirp": (
        _shift_spec(0.1, "the track ends at the peak time, near the centre: small jitter only"),
        _spec("time_stretch", 0.4, "the sweep rate depends on the chirp mass", 0.85, 1.2),
        _spec("freq_shift", 0.4, "masses move the track's frequency; it still rises", -0.15, 0.15),
        _spec("loudness", 0.5, "distance sets the SNR", 0.7, 1.4),
        _noise_spec(),
    ),
    "Extremely_Loud": (
        _reverse_spec("saturated broadband bursts have no direction"),
        _shift_spec(0.1, "trigger peak time jitters; the burst fills much of the window"),
        _spec("time_stretch", 0.4, "burst durations vary", 0.85, 1.2),
        _spec("loudness", 0.5, "only louder: a quieter one would stop being extremely loud", 1.0, 1.5),
        _noise_spec(0.3),
    ),
    "Helix": (
        _shift_spec(0.1, "trigger peak time jitters around the window centre"),
        _spec("freq_shift", 0.3, "small moves of a broadband pattern", -0.1, 0.1),
        _spec("loudness", 0.5, "SNR varies", 0.8, 1.25),
        _noise_spec(),
    ),
    "Koi_Fish": (
        _reverse_spec("body and fins are symmetric in time"),
        _shift_spec(0.2, "a short glitch; trigger peak time jitters"),
        _spec("freq_shift", 0.4, "broadband; the centre frequency varies", -0.15, 0.15),
        _spec("freq_stretch", 0.4, "the body's bandwidth varies", 0.9, 1.1),
        _spec("loudness", 0.5, "louder stays a Koi_Fish; much quieter would look like a Blip", 0.9, 1.5),
        _noise_spec(),
    ),
    "Light_Modulation": (
        _shift_spec(0.1, "trigger peak time jitters around the window centre"),
        _spec("freq_shift", 0.3, "broadband spikes; small moves only", -0.1, 0.1),
        _spec("loudness", 0.5, "modulation depth varies", 0.8, 1.25),
        _noise_spec(),
    ),
    "Low_Frequency_Burst": (
        _reverse_spec("the hump is symmetric in time"),
        _shift_spec(0.15, "trigger peak time jitters around the window centre"),
        _spec("time_stretch", 0.4, "ground-motion bursts last ~1 s, more or less", 0.8, 1.25),
        _spec("freq_shift", 0.4, "the hump moves within 10-50 Hz", -0.15, 0.15),
        _spec("loudness", 0.5, "SNR varies", 0.75, 1.35),
        _noise_spec(),
    ),
    "Low_Frequency_Lines": (
        _reverse_spec("stationary lines have no direction"),
        _spec("time_roll", 0.6, "the lines cross the whole view: any window looks alike", -0.5, 0.5),
        _spec("loudness", 0.5, "line amplitude varies; the frequencies do not", 0.75, 1.35),
        _noise_spec(),
    ),
    "No_Glitch": (
        _reverse_spec("stationary noise has no direction"),
        _shift_spec(0.15, "noise is stationary; not a roll, which could bring an edge feature to the centre"),
        _spec("noise_redraw", 0.8, "a fresh draw of the same noise is exactly another No_Glitch", 0.85, 1.2),
    ),
    "None_of_the_Above": (
        _shift_spec(0.1, "trigger peak time jitters; the morphology is unknown so nothing bolder"),
        _spec("loudness", 0.4, "SNR varies", 0.85, 1.2),
        _noise_spec(),
    ),
    "Paired_Doves": (
        _shift_spec(0.1, "trigger peak time jitters; the pair must stay in the window"),
        _spec("freq_shift", 0.3, "beam-splitter motion amplitude moves the tracks slightly", -0.1, 0.1),
        _spec("loudness", 0.5, "SNR varies", 0.8, 1.25),
        _noise_spec(),
    ),
    "Power_Line": (
        _reverse_spec("a mains line has no direction"),
        _shift_spec(0.15, "trigger peak time jitters around the window centre"),
        _spec("time_stretch", 0.4, "the line's duration varies", 0.8, 1.25),
        _spec("loudness", 0.5, "coupling varies; 60 Hz does not", 0.7, 1.4),
        _noise_spec(),
    ),
    "Repeating_Blips": (
        _reverse_spec("a train of symmetric blips is symmetric"),
        _shift_spec(0.1, "trigger peak time jitters; the train fills the window"),
        _spec("time_stretch", 0.4, "the repetition interval varies (~0.25-0.5 s)", 0.85, 1.2),
        _spec("freq_shift", 0.4, "blips span ~30-500 Hz with varying centre", -0.2, 0.2),
        _spec("loudness", 0.5, "SNR varies", 0.75, 1.3),
        _noise_spec(),
    ),
    "Scattered_Light": (
        _reverse_spec("the arches are symmetric in time"),
        _shift_spec(0.1, "trigger peak time jitters; the arches fill the window"),
        _spec("time_stretch", 0.4, "the surface's motion period varies", 0.85, 1.2),
        _spec("freq_shift", 0.4, "arch height is 2 v / lambda: a faster surface scales f, a shift in log f",
              -0.2, 0.2),
        _spec("loudness", 0.5, "scattered power varies", 0.75, 1.35),
        _noise_spec(),
    ),
    "Scratchy": (
        _reverse_spec("the wiggly band has no direction"),
        _shift_spec(0.1, "trigger peak time jitters; the band lasts ~1 s"),
        _spec("time_stretch", 0.4, "duration varies", 0.85, 1.2),
        _spec("freq_shift", 0.4, "the band's centre varies within 30-300 Hz", -0.15, 0.15),
        _spec("loudness", 0.5, "SNR varies", 0.75, 1.3),
        _noise_spec(),
    ),
    "Blip_Low_Frequency": (
        _reverse_spec("the low blob is symmetric in time"),
        _shift_spec(0.2, "a short glitch; trigger peak time jitters"),
        _spec("freq_shift", 0.4, "centre varies, kept below ~100 Hz", -0.12, 0.12),
        _spec("freq_stretch", 0.3, "bandwidth varies a little", 0.9, 1.1),
        _spec("loudness", 0.5, "SNR varies", 0.75, 1.3),
        _noise_spec(),
    ),
    "Fast_Scattering": (
        _reverse_spec("each arch is symmetric in time, and so is the train"),
        _spec("time_roll", 0.5, "the arches repeat through the window: any phase of the train is as likely", -0.5, 0.5),
        _spec("time_stretch", 0.4, "the ground-motion period varies (arch spacing 0.2-0.5 s)", 0.85, 1.2),
        _spec("freq_shift", 0.4, "arch height is 2 v / lambda: faster ground motion scales f, a shift in log f",
              -0.15, 0.15),
        _spec("loudness", 0.5, "scattered power varies", 0.75, 1.35),
        _noise_spec(),
    ),
    "Tomte": (
        _reverse_spec("the triangle is symmetric in time"),
        _shift_spec(0.2, "a short glitch; trigger peak time jitters"),
        _spec("freq_shift", 0.4, "centre varies, kept in its band below Blip's", -0.15, 0.15),
        _spec("freq_stretch", 0.4, "bandwidth varies", 0.9, 1.1),
        _spec("loudness", 0.5, "SNR varies", 0.75, 1.3),
        _noise_spec(),
    ),
    "Violin_Mode": (
        _reverse_spec("a ringing resonance has no direction"),
        _shift_spec(0.15, "trigger peak time jitters around the window centre"),
        _spec("loudness", 0.5, "excitation varies; the ~500 Hz resonance does not", 0.7, 1.4),
        _noise_spec(),
    ),
    "Wandering_Line": (
        _shift_spec(0.1, "trigger peak time jitters around the window centre"),
        _spec("freq_shift", 0.3, "the line wanders anyway; small moves within its band", -0.1, 0.1),
        _spec("loudness", 0.5, "SNR varies", 0.8, 1.25),
        _noise_spec(),
    ),
    "Whistle": (
        _shift_spec(0.15, "trigger peak time jitters around the window centre"),
        _spec("time_stretch", 0.4, "the beat note's sweep rate varies", 0.85, 1.2),
        _spec("freq_shift", 0.4, "radio-frequency beat notes land at any high frequency", -0.2, 0.2),
        _spec("loudness", 0.5, "SNR varies", 0.75, 1.35),
        _noise_spec(),
    ),
}
"""Per class, the transforms that are physically true for it, in application order."""

UNKNOWN_CLASS_POLICY: tuple[TransformSpec, ...] = (
    _shift_spec(0.1, "trigger peak time jitters; the morphology is unknown, so nothing bolder"),
    _spec("loudness", 0.4, "SNR varies", 0.85, 1.2),
    _noise_spec(),
)
"""The policy of a class GlitchNet has no physics for (a researcher's own taxonomy): only what is true of any
glitch in a Gravity Spy image."""


def _check_policies() -> None:
    """Refuse a table that breaks the physics flags of classes.py: fail at import, not mid-training."""
    if set(CLASS_POLICIES) != set(ALL_INFO):
        raise ValueError(f"policies must cover exactly the classes; differ on {set(CLASS_POLICIES) ^ set(ALL_INFO)}")
    for label, specs in CLASS_POLICIES.items():
        info = ALL_INFO[label]
        order = [_ORDER[s.name] for s in specs]
        if order != sorted(order) or len(set(order)) != len(order):
            raise ValueError(f"{label}: transforms must be unique and in application order")
        for s in specs:
            t = TRANSFORMS[s.name]
            if t.moves_frequency and info.pinned_frequency:
                raise ValueError(f"{label} is frequency-pinned but has {s.name}")
            if t.reverses_time and not info.time_symmetric:
                raise ValueError(f"{label} has a direction in time but has {s.name}")
            if not 0.0 <= s.prob <= 1.0:
                raise ValueError(f"{label}.{s.name}: probability {s.prob} outside [0, 1]")


_check_policies()


def policy(label: str) -> tuple[TransformSpec, ...]:
    """The class's transforms, in application order (``UNKNOWN_CLASS_POLICY`` for a class of no shipped set)."""
    return CLASS_POLICIES.get(label, UNKNOWN_CLASS_POLICY)


def policy_table(label: str) -> pd.DataFrame:
    """The class's policy for display: transform, probability, range, reason."""
    rows = []
    for s in policy(label):
        t = TRANSFORMS[s.name]
        lo, hi = s.params[t.param] if t.param else (0.0, 0.0)
        rows.append({"transform": s.name, "probability": s.prob, "range": t.range_text.format(lo=lo, hi=hi),
                     "reason": s.reason})
    return pd.DataFrame(rows, columns=["transform", "probability", "range", "reason"])


# ------------------------------------------------------------------------------------------------ entry points


def augment(img_uint8: np.ndarray, label: str, rng: np.random.Generator,
            enabled: set[str] | None = None) -> tuple[np.ndarray, list[Applied]]:
    """Apply the class's policy to a canonical uint8 RGB image; returns a viridis image and what was applied.

    The random draws do not depend on ``enabled``: switching one transform off leaves the others' amounts as they
    were, which is what a side-by-side preview needs. The output is always re-quantized to the viridis colours.
    """
    specs = policy(label)
    if enabled is not None:
        unknown = set(enabled) - set(TRANSFORMS)
        if unknown:
            raise ValueError(f"unknown transform(s) {sorted(unknown)}; known: {', '.join(TRANSFORMS)}")
    draws = rng.random((len(specs), 2))
    scene = _Scene(rgb_to_energy(img_uint8), int(rng.integers(2**63 - 1)))
    energy = scene.energy
    applied: list[Applied] = []
    for spec, (coin, u) in zip(specs, draws, strict=True):
        if (enabled is not None and spec.name not in enabled) or coin >= spec.prob:
            continue
        t = TRANSFORMS[spec.name]
        lo, hi = spec.params[t.param] if t.param else (0.0, 0.0)
        energy, amount = t.fn(energy, scene, label, float(u), lo, hi)
        if amount is not None:
            applied.append(Applied(spec.name, float(amount)))
    energy = scene.restore_frame(np.array(energy, dtype=np.float32))
    return np.ascontiguousarray(energy_to_rgb(energy)), applied


_TORCH_RNG = threading.Lock()
"""Held while the generic baseline seeds torch's global generator, which torchvision's transforms draw from."""


@lru_cache(maxsize=4)
def _generic_transforms(height: int, width: int) -> tuple:
    """torchvision.transforms.v2's ImageNet-style flip, resized crop (back to the same size) and colour jitter."""
    from torchvision.transforms import v2

    return (v2.RandomHorizontalFlip(0.5),
            v2.RandomResizedCrop((height, width), scale=(0.8, 1.0), ratio=(3 / 4, 4 / 3), antialias=True),
            v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2))


def generic_augment(img_uint8: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[Applied]]:
    """The comparison baseline, torchvision.transforms.v2's ImageNet recipe: flip, resized crop, colour jitter.

    Physics-blind on purpose: the flip reverses time for every class and the jitter leaves the viridis map.
    The transforms draw from torch's global generator, so each call seeds it from ``rng`` inside
    ``torch.random.fork_rng`` (the caller's torch stream is left as it was): the output depends on ``rng`` alone,
    which keeps the training loop's per-(seed, epoch, index) augmentation reproducible.
    """
    import torch

    h, w = img_uint8.shape[:2]
    flip, crop, jitter = _generic_transforms(h, w)
    x = torch.from_numpy(np.ascontiguousarray(img_uint8)).permute(2, 0, 1)
    applied: list[Applied] = []
    threads = torch.get_num_threads()
    with _TORCH_RNG, torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**63 - 1)))
        # One 224 px image is too small for the intra-op thread pool: with 2 threads on a busy 2-core machine a call
        # took 101 ms, with 1 thread 8 ms (DataLoader workers run on 1 thread anyway).
        torch.set_num_threads(1)
        try:
            # make_params + transform is each transform's forward, unrolled to record the amounts it drew
            if torch.rand(1) < flip.p:  # RandomHorizontalFlip.forward's coin
                x = flip.transform(x, flip.make_params([x]))
                applied.append(Applied("hflip", 1.0))
            params = crop.make_params([x])
            x = crop.transform(x, params)
            applied.append(Applied("resized_crop", params["height"] * params["width"] / (h * w)))
            params = jitter.make_params([x])
            x = jitter.transform(x, params)
        finally:
            torch.set_num_threads(threads)
    applied += [Applied(name, float(params[f"{name}_factor"])) for name in ("brightness", "contrast", "saturation")]
    return np.ascontiguousarray(x.permute(1, 2, 0).numpy()), applied


RENDER_SIDES_PX = (427, 569)
"""Plot-area widths an upload comes at: a 600x450 golden figure's and an 800x600 figure's (the Kaggle crop)."""
JPEG_QUALITY = (55, 95)
"""JPEG qualities a re-encoded upload is drawn from (Zooniverse serves figures as JPG; volunteers re-save them)."""


def render_variation(img_uint8: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[Applied]]:
    """Domain randomisation of the rendering: the image as it reaches us after an upload's journey.

    The canonical image is scaled to a figure's plot-area size, stored as a JPEG of random quality or as a
    palette GIF (Gravity Spy's golden GIFs, 256 adaptive colours), decoded and brought back through the same
    resize and viridis snapping as every upload (``images.canonical_uint8``).
    """
    h = img_uint8.shape[0]
    side = int(RENDER_SIDES_PX[int(rng.integers(len(RENDER_SIDES_PX)))])
    big = Image.fromarray(np.ascontiguousarray(img_uint8)).resize((side, round(side * PLOT_SIZE[1] / PLOT_SIZE[0])),
                                                                   Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    if rng.random() < 0.75:
        quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
        big.save(buf, format="JPEG", quality=quality)
        applied = [Applied("jpeg_quality", float(quality))]
    else:
        big.quantize(256, method=Image.Quantize.MEDIANCUT).save(buf, format="GIF")
        applied = [Applied("gif_palette", 256.0)]
    applied.append(Applied("rescale_px", float(side)))
    return canonical_uint8(buf.getvalue(), size=h), applied


class Augmenter:
    """Per-sample augmentation for the training loop: ``augmenter(img_uint8, label, rng) -> img_uint8``.

    A plain class holding only the mode string and the rendering probability, so it pickles into DataLoader workers.
    ``render_prob``: the chance that an image also goes through ``render_variation`` (after the mode's transforms).
    """

    def __init__(self, mode: str, render_prob: float = 0.0) -> None:
        if mode not in AUGMENTATION_MODES:
            raise ValueError(f"augmentation mode must be one of {', '.join(AUGMENTATION_MODES)}, not {mode!r}")
        if not 0.0 <= render_prob <= 1.0:
            raise ValueError(f"render_prob must lie in [0, 1], not {render_prob}")
        self.mode = mode
        self.render_prob = render_prob

    def __call__(self, img_uint8: np.ndarray, label: str, rng: np.random.Generator) -> np.ndarray:
        if self.mode == "class":
            img_uint8 = augment(img_uint8, label, rng)[0]
        elif self.mode == "generic":
            img_uint8 = generic_augment(img_uint8, rng)[0]
        if self.render_prob and rng.random() < self.render_prob:
            img_uint8 = render_variation(img_uint8, rng)[0]
        return img_uint8

    def __repr__(self) -> str:
        return f"Augmenter({self.mode!r}, render_prob={self.render_prob})"


def make_augmenter(mode: str, render_prob: float = 0.0) -> Callable[[np.ndarray, str, np.random.Generator], np.ndarray]:
    """The augmenter for a mode in ``AUGMENTATION_MODES`` ("class", "generic" or "none"), optionally followed by
    rendering variation (JPEG, GIF palette, rescaling) with probability ``render_prob``."""
    return Augmenter(mode, render_prob)


def preview(img_uint8: np.ndarray, label: str, seed: int, n: int = 8, mode: str = "class",
            enabled: set[str] | None = None) -> list[tuple[np.ndarray, list[Applied]]]:
    """``n`` augmented versions of one image, reproducible from ``seed``: the class's policy (``mode="class"``, only
    the ``enabled`` transforms when given) or the generic baseline (``mode="generic"``). The app's preview grid."""
    if mode not in ("class", "generic"):
        raise ValueError(f"a preview shows the class or the generic augmentation, not {mode!r}")
    rng = np.random.default_rng(seed)
    if mode == "class":
        return [augment(img_uint8, label, rng, enabled=enabled) for _ in range(n)]
    return [generic_augment(img_uint8, rng) for _ in range(n)]
