"""Render a Q scan into Kaggle-format Gravity Spy images: 569x479 RGBA plot areas, viridis, log2 frequency axis.

Geometry, measured on Gravity Spy's 800x600 figures: the axes interior is 573 x 479 pixels spanning the view's
time range and 10-2048 Hz on a log2 axis; the Kaggle image is the crop ``(100, 60, 669, 539)``, i.e. the black
left and top spines plus the first 568 columns and 478 rows of the interior. The spine is 1.1 px wide, so the
first interior row and column are darkened to ~80 %. Each pixel shows the value of the cell of gwpy's
interpolated spectrogram (``tres`` = 2 ms by ``fres`` = 0.5 Hz) under its centre, as ``pcolormesh`` draws it.
"""

from __future__ import annotations

import math

import numpy as np

from ..classes import DURATIONS_S
from ..images import F_MAX_HZ, F_MIN_HZ, PLOT_SIZE, energy_to_rgb
from .qtransform import FRES_HZ, TRES_S, Norm, QScan, make_tiling, q_scan

AXES_WIDTH = 573
"""Interior width of the figure's axes, pixels; the Kaggle crop keeps the first ``PLOT_SIZE[0] - 1`` of them."""

AXES_HEIGHT = 479
"""Interior height of the figure's axes, pixels; the Kaggle crop keeps the first ``PLOT_SIZE[1] - 1`` of them."""

SPINE_SHADE = 0.8
"""Brightness of the interior row and column next to the spines (the 1.1 px spine covers part of them)."""


def pixel_frequencies_hz() -> np.ndarray:
    """Frequency of the gwpy cell shown in each interior image row (top first), Hz; length ``PLOT_SIZE[1] - 1``."""
    rows = np.arange(PLOT_SIZE[1] - 1)
    centre = F_MIN_HZ * (F_MAX_HZ / F_MIN_HZ) ** (1.0 - (rows + 0.5) / AXES_HEIGHT)
    return F_MIN_HZ + FRES_HZ * np.floor((centre - F_MIN_HZ) / FRES_HZ)


def pixel_times_s(duration_s: float) -> np.ndarray:
    """Time of the gwpy cell shown in each interior image column, s from the start of the view."""
    cols = np.arange(PLOT_SIZE[0] - 1)
    centre = (cols + 0.5) * duration_s / AXES_WIDTH
    return TRES_S * np.floor(centre / TRES_S + 1e-9)


def view_energies(scan: QScan, centre_s: float, durations_s: tuple[float, ...]) -> dict[float, np.ndarray]:
    """Normalized energy of every interior pixel of each view, centred on ``centre_s`` (s from block start).

    Returns
    -------
    dict of float to numpy.ndarray
        Per duration (s), a ``(PLOT_SIZE[1] - 1, PLOT_SIZE[0] - 1)`` float32 array, top row = highest frequency.
    """
    if not all(math.isfinite(d) and d > 0 for d in durations_s):
        raise ValueError(f"view durations must be positive, got {durations_s}")
    times = [centre_s - d / 2.0 + pixel_times_s(d) for d in durations_s]
    unique, inverse = np.unique(np.concatenate(times), return_inverse=True)
    rows = scan.plane.frequency_matrix(pixel_frequencies_hz()) @ scan.at_times(unique).T  # (pixel rows, times)
    out = {}
    start = 0
    for d, t in zip(durations_s, times, strict=True):
        out[d] = rows[:, inverse[start:start + t.size]].astype(np.float32)
        start += t.size
    return out


def to_rgba(energy: np.ndarray) -> np.ndarray:
    """Colour interior-pixel energies as Gravity Spy does (viridis, clim 0-25.5) and add the spine frame.

    Parameters
    ----------
    energy : numpy.ndarray
        ``(PLOT_SIZE[1] - 1, PLOT_SIZE[0] - 1)`` normalized energies.

    Returns
    -------
    numpy.ndarray
        ``(PLOT_SIZE[1], PLOT_SIZE[0], 4)`` uint8 RGBA, fully opaque.
    """
    w, h = PLOT_SIZE
    rgba = np.zeros((h, w, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[1:, 1:, :3] = energy_to_rgb(energy)
    rgba[1, 1:, :3] = (rgba[1, 1:, :3] * SPINE_SHADE + 0.5).astype(np.uint8)
    rgba[1:, 1, :3] = (rgba[1:, 1, :3] * SPINE_SHADE + 0.5).astype(np.uint8)
    return rgba


def omega_views(fseries: np.ndarray, duration_s: float, sample_rate_hz: float, centre_s: float,
                norm: Norm = "noise", edge_s: float = 0.0,
                durations_s: tuple[float, ...] = DURATIONS_S) -> dict[float, np.ndarray]:
    """Gravity Spy's four views of whitened data: Q scan (Q 4-64, 10-2048 Hz) and render, as RGBA arrays.

    This is the one path from whitened data to images, shared by the simulator and real-strain scans.

    Parameters
    ----------
    fseries : numpy.ndarray
        One-sided FFT of the whitened block.
    duration_s : float
        Block length, s.
    sample_rate_hz : float
        Block sample rate, Hz.
    centre_s : float
        Time the views are centred on, s from the block start.
    norm : {"noise", "omega", "median"}
        Energy normalization, see :func:`~glitchnet.omega.qtransform.q_scan`.
    edge_s : float
        Block ends left out of the normalization statistics, s.
    durations_s : tuple of float
        View lengths, s.

    Returns
    -------
    dict of float to numpy.ndarray
        ``(479, 569, 4)`` uint8 RGBA per view duration.
    """
    half = max(durations_s) / 2 + 0.05
    scan = q_scan(fseries, make_tiling(duration_s, sample_rate_hz), centre_s, (centre_s - half, centre_s + half),
                  norm=norm, edge_s=edge_s)
    return {d: to_rgba(e) for d, e in view_energies(scan, centre_s, durations_s).items()}
