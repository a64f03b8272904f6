"""Gravity Spy's multi-Q transform: gwpy's Q-tiling, batched with numpy, and its interpolation onto an output grid.

The tiling (Q planes, frequency rows, bi-square windows, tile counts) is gwpy's ``gwpy.signal.qtransform`` to the
letter; what differs is speed: rows of one plane that share a tile count go through one batched inverse FFT, only
the span around the glitch is kept, and the interpolation that gwpy's ``QGram.interpolate`` does with splines is
evaluated only where an output sample is needed.

gwpy's interpolation is (1) a not-a-knot cubic spline in time through each row's tiles, evaluated on the ``tres``
grid, then (2) an interpolating bicubic spline over (time, row frequency), evaluated on the ``fres`` grid. Because
(2) is evaluated at the same times that (1) produced, it reduces to a not-a-knot cubic spline across the row
frequencies at each time, which is what :meth:`QScan.grid` computes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy import sparse
from scipy.interpolate import CubicSpline

SAMPLE_RATE_HZ = 8192.0
"""Sample rate scans run at, Hz: Nyquist 4096 Hz leaves Gravity Spy's lowest-Q rows (up to ~2.6 kHz) unaliased."""

QRANGE = (4.0, 64.0)
"""Gravity Spy's range of Q searched."""

FRANGE_HZ = (10.0, 2048.0)
"""Gravity Spy's frequency range searched and shown, Hz."""

MISMATCH = 0.2
"""Maximum fractional energy mismatch between neighbouring tiles (gwpy's default)."""

SEARCH_S = 0.5
"""Width of the window around the centre in which the loudest tile picks the Q plane, s."""

TRES_S = 0.002
"""Time resolution of Gravity Spy's interpolated spectrogram, s."""

FRES_HZ = 0.5
"""Frequency resolution of Gravity Spy's interpolated spectrogram, Hz."""

OUTLIER_FACTOR = 2.0
"""Omega's outlier rejection: tiles above the upper quartile plus this many interquartile ranges are left out."""

Norm = Literal["median", "omega", "noise"]


@dataclass(frozen=True)
class RowGroup:
    """Rows of one Q plane sharing a tile count, transformed together by one batched inverse FFT."""

    rows: np.ndarray
    """Indices of the rows in the plane's frequency list."""
    ntiles: int
    """Tiles per row (a power of two): the length of each row's inverse FFT."""
    src: np.ndarray
    """One-sided FFT bin of every windowed sample, all rows concatenated."""
    dst: np.ndarray
    """Flat index of every windowed sample in the ``(len(rows), ntiles)`` buffer, after gwpy's ``ifftshift``."""
    window: np.ndarray
    """Bi-square window values matching ``src``."""
    window_power: np.ndarray
    """Per row, ``sum(window**2) / ntiles**2``: the mean tile energy of data whose FFT bins have unit power."""


@dataclass(frozen=True)
class QPlane:
    """One plane of constant Q: its row frequencies and the batched row groups."""

    q: float
    frequencies_hz: np.ndarray
    groups: tuple[RowGroup, ...]
    _freq_interp: dict = field(default_factory=dict, compare=False, repr=False)

    def frequency_matrix(self, frequencies_hz: np.ndarray) -> sparse.csr_matrix:
        """Linear map from row energies to energies at ``frequencies_hz`` (not-a-knot cubic spline).

        Frequencies outside the rows take the value at the nearest end row, as FITPACK's ``bispev`` (behind gwpy's
        ``RectBivariateSpline``) does. Returns a sparse ``(len(frequencies_hz), n_rows)`` matrix, cached per grid.
        """
        key = (frequencies_hz.size, float(frequencies_hz[0]), float(frequencies_hz[-1]), float(frequencies_hz.sum()))
        if key not in self._freq_interp:
            n = self.frequencies_hz.size
            if n < 4:
                raise ValueError(f"a Q plane needs at least 4 frequency rows to interpolate, this one has {n}")
            spline = CubicSpline(self.frequencies_hz, np.eye(n), axis=0)
            inside = np.clip(frequencies_hz, self.frequencies_hz[0], self.frequencies_hz[-1])
            dense = spline(inside)
            # spline weights fall ~3.7x per row away from the target: dropping those under 1e-9 changes nothing
            # visible and makes the matrix banded (~20 non-zeros per output row)
            dense[np.abs(dense) < 1e-9] = 0.0
            self._freq_interp[key] = sparse.csr_matrix(dense)
        return self._freq_interp[key]


@dataclass(frozen=True)
class QTiling:
    """gwpy's Q-tiling of a data block ``duration_s`` long sampled at ``sample_rate_hz``."""

    duration_s: float
    sample_rate_hz: float
    frange_hz: tuple[float, float]
    planes: tuple[QPlane, ...]


def _deltam(mismatch: float) -> float:
    return 2.0 * math.sqrt(mismatch / 3.0)


def _qs(qrange: tuple[float, float], mismatch: float) -> list[float]:
    cumum = math.log(qrange[1] / qrange[0]) / math.sqrt(2.0)
    nplanes = int(max(math.ceil(cumum / _deltam(mismatch)), 1))
    dq = cumum / nplanes
    return [qrange[0] * math.exp(math.sqrt(2.0) * dq * (i + 0.5)) for i in range(nplanes)]


def _plane_frequencies(q: float, frange_hz: tuple[float, float], duration_s: float, mismatch: float) -> np.ndarray:
    fmin, fmax = frange_hz
    fcum = math.log(fmax / fmin) * math.sqrt(2.0 + q * q) / 2.0
    nfreq = int(max(1, math.ceil(fcum / _deltam(mismatch))))
    fstep = fcum / nfreq
    fstepmin = 1.0 / duration_s
    out: list[float] = []
    for i in range(nfreq):
        this = fmin * math.exp(2.0 / math.sqrt(2.0 + q * q) * (i + 0.5) * fstep) // fstepmin * fstepmin
        if not out or this != out[-1]:
            out.append(this)
    return np.asarray(out)


@lru_cache(maxsize=16)
def make_tiling(duration_s: float, sample_rate_hz: float, qrange: tuple[float, float] = QRANGE,
                frange_hz: tuple[float, float] = FRANGE_HZ, mismatch: float = MISMATCH) -> QTiling:
    """Build (and cache) gwpy's Q-tiling for a block of data.

    Parameters
    ----------
    duration_s : float
        Length of the data block, s.
    sample_rate_hz : float
        Sample rate of the data, Hz; the highest usable frequency is ``sample_rate_hz / 2 / (1 + sqrt(11) / q_min)``.
    qrange : tuple of float
        Lowest and highest Q.
    frange_hz : tuple of float
        Lowest and highest row frequency, Hz.
    mismatch : float
        Maximum fractional mismatch between neighbouring tiles.

    Returns
    -------
    QTiling
        The planes, each with its rows grouped by tile count.

    Raises
    ------
    ValueError
        If the sample rate cannot reach the top of ``frange_hz``.
    """
    qs = _qs(qrange, mismatch)
    max_hz = sample_rate_hz / 2.0 / (1.0 + math.sqrt(11.0) / min(qs))
    if frange_hz[1] > max_hz:
        need = frange_hz[1] * 2 * (1 + math.sqrt(11) / min(qs))
        raise ValueError(f"a sample rate of {sample_rate_hz:g} Hz reaches only {max_hz:.0f} Hz at Q={min(qs):.2f}; "
                         f"{frange_hz[1]:g} Hz needs at least {need:.0f} Hz")
    deltam = _deltam(mismatch)
    n_bins = int(round(duration_s * sample_rate_hz)) // 2 + 1
    planes = []
    for q in qs:
        qprime = q / math.sqrt(11.0)
        freqs = _plane_frequencies(q, frange_hz, duration_s, mismatch)
        by_ntiles: dict[int, list[tuple[int, np.ndarray, np.ndarray]]] = {}
        for row, f in enumerate(freqs):
            ntiles = 2 ** math.ceil(math.log2(duration_s * 2.0 * math.pi * f / q / deltam))
            half = int(f / qprime * duration_s)
            idx = np.arange(-half, half + 1)
            xfreq = idx / duration_s * qprime / f
            norm = ntiles / (duration_s * sample_rate_hz) * math.sqrt(315.0 * qprime / (128.0 * f))
            window = (1.0 - xfreq ** 2) ** 2 * norm
            src = np.round(idx + 1 + f * duration_s).astype(np.int64)
            if src[-1] >= n_bins:
                raise ValueError(f"row at {f:.1f} Hz (Q={q:.1f}) needs FFT bin {src[-1]} beyond Nyquist")
            left = int((ntiles - idx.size - 1) / 2)
            pos = (left + np.arange(idx.size) - ntiles // 2) % ntiles  # position after gwpy's ifftshift
            by_ntiles.setdefault(ntiles, []).append((row, src, window, pos))
        groups = []
        for ntiles, members in sorted(by_ntiles.items()):
            rows = np.array([m[0] for m in members])
            src = np.concatenate([m[1] for m in members])
            window = np.concatenate([m[2] for m in members]).astype(np.float32)
            dst = np.concatenate([k * ntiles + m[3] for k, m in enumerate(members)])
            power = np.array([np.sum(m[2] ** 2) for m in members]) / float(ntiles) ** 2
            groups.append(RowGroup(rows, ntiles, src, dst, window, power))
        planes.append(QPlane(q, freqs, tuple(groups)))
    return QTiling(float(duration_s), float(sample_rate_hz), (float(frange_hz[0]), float(frange_hz[1])), tuple(planes))


@dataclass
class QScan:
    """Normalized tile energies of the chosen (loudest) Q plane around the centre, ready to interpolate."""

    plane: QPlane
    peak_energy: float
    """Normalized energy of the loudest tile within the search window."""
    peak_time_s: float
    """Time of the loudest tile from the start of the block, s."""
    peak_frequency_hz: float
    """Centre frequency of the row holding the loudest tile, Hz."""
    rows: list[tuple[RowGroup, np.ndarray, np.ndarray]]
    """Per row group: (group, tile times from the block start in s, normalized energies (n_times, n_rows))."""

    @property
    def q(self) -> float:
        """Q of the chosen plane."""
        return self.plane.q

    def at_times(self, times_s: np.ndarray) -> np.ndarray:
        """Row energies at ``times_s`` (s from block start): gwpy's per-row cubic spline; shape (n_times, n_rows)."""
        out = np.empty((times_s.size, self.plane.frequencies_hz.size), dtype=np.float64)
        for group, t, energy in self.rows:
            out[:, group.rows] = CubicSpline(t, energy, axis=0)(times_s)
        return out

    def grid(self, times_s: np.ndarray, frequencies_hz: np.ndarray) -> np.ndarray:
        """Normalized energy on a (time, frequency) grid, as gwpy's ``QGram.interpolate``; shape (n_t, n_f)."""
        return np.asarray((self.plane.frequency_matrix(frequencies_hz) @ self.at_times(times_s).T).T)


def _omega_mean(energy: np.ndarray) -> np.ndarray:
    """Omega's per-row mean tile energy: the mean below ``Q3 + OUTLIER_FACTOR * IQR``, corrected for the cut.

    For exponentially distributed (noise) energies the correction makes it an unbiased estimate of the mean.
    """
    q1, q3 = np.percentile(energy, [25.0, 75.0], axis=1)
    cut = (q3 + OUTLIER_FACTOR * (q3 - q1))[:, None]
    keep = energy < cut
    mean = np.sum(np.where(keep, energy, 0.0), axis=1) / np.maximum(np.sum(keep, axis=1), 1)
    a = 4 * 3 ** OUTLIER_FACTOR - 1
    return mean * a / (a - (OUTLIER_FACTOR * math.log(3) + math.log(4)))


def q_scan(fseries: np.ndarray, tiling: QTiling, centre_s: float, keep_s: tuple[float, float],
           search_s: float = SEARCH_S, norm: Norm = "median", edge_s: float = 0.0) -> QScan:
    """Q-transform one-sided FFT data, pick the plane with the loudest tile near ``centre_s``, keep a time span.

    Parameters
    ----------
    fseries : numpy.ndarray
        One-sided FFT (``numpy.fft.rfft``) of the whitened data block; any overall scale.
    tiling : QTiling
        From :func:`make_tiling` for the block's duration and sample rate.
    centre_s : float
        Time of interest from the block start, s; the plane is chosen by its loudest tile within
        ``search_s / 2`` of it, as gwpy's ``q_transform(gps=..., search=...)`` does.
    keep_s : tuple of float
        Start and end (s from block start) of the span whose energies are kept for interpolation.
    search_s : float
        Width of the plane-selection window, s.
    norm : {"median", "omega", "noise"}
        What each row's energies are divided by. ``"median"``: their median (gwpy >= 1.0, the default).
        ``"omega"``: their mean with outliers rejected, as the Omega scan that made Gravity Spy's O1/O2 images
        (noise then has mean 1 and median ``ln 2``). ``"noise"``: the expected energy of noise whose FFT bins
        have unit power, i.e. data whitened to unit variance per bin; the exact value Omega's estimate converges
        to over a long block, whatever glitch the short block holds.
    edge_s : float
        Leave this much at each end of the block out of the ``"median"``/``"omega"`` statistics (filter
        transients).

    Returns
    -------
    QScan
        The chosen plane with its normalized energies over ``keep_s``.
    """
    if not np.isfinite(fseries).all():
        raise ValueError("the data contain non-finite values")
    duration = tiling.duration_s
    best: QScan | None = None
    for plane in tiling.planes:
        kept = []
        peak = (-1.0, 0.0, 0.0)
        for group in plane.groups:
            n = group.ntiles
            buf = np.zeros(len(group.rows) * n, dtype=np.complex64)
            buf[group.dst] = fseries[group.src] * group.window
            buf = buf.reshape(len(group.rows), n)
            z = np.fft.ifft(buf, axis=1)
            dt = duration / n
            if norm == "noise":
                scale = group.window_power
            elif norm in ("median", "omega"):
                e0 = min(n // 2, math.ceil(edge_s / dt))
                inner = z[:, e0:n - e0]
                inner = inner.real ** 2 + inner.imag ** 2
                scale = np.median(inner, axis=1) if norm == "median" else _omega_mean(inner)
            else:
                raise ValueError(f"norm must be 'median', 'omega' or 'noise', not {norm!r}")
            scale = np.where(scale > 0, scale, 1.0)
            s0 = max(0, math.floor((centre_s - search_s / 2) / dt))
            s1 = min(n, math.floor((centre_s + search_s / 2) / dt))
            if s1 > s0:
                seg = z[:, s0:s1]
                e = (seg.real ** 2 + seg.imag ** 2) / scale[:, None]
                r, c = np.unravel_index(int(np.argmax(e)), e.shape)
                if e[r, c] > peak[0]:
                    peak = (float(e[r, c]), (s0 + c) * dt, float(plane.frequencies_hz[group.rows[r]]))
            k0 = max(0, math.floor(keep_s[0] / dt) - 8)
            k1 = min(n, math.ceil(keep_s[1] / dt) + 9)
            seg = z[:, k0:k1]
            energy = ((seg.real ** 2 + seg.imag ** 2) / scale[:, None]).T.astype(np.float64)
            kept.append((group, np.arange(k0, k1) * dt, energy))
        if best is None or peak[0] > best.peak_energy:
            best = QScan(plane, peak[0], peak[1], peak[2], kept)
    assert best is not None
    return best
