"""Detector noise: an analytic O1/O2-like LIGO amplitude spectral density, coloured Gaussian strain, whitening by it."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..omega.whiten import divide_by_asd

SEGMENT_S = 8.0
"""Length of one simulated block, s: the 4 s view plus the ~1.5 s reach of the longest tiles on either side."""

SENSITIVITY_SCALE = {"H1": 3.6, "L1": 3.0}
"""ASD relative to the Advanced LIGO design fit: O1/O2 Hanford and Livingston were ~3-4x above design."""

LINES_HZ = {
    "H1": (35.9, 36.7, 60.0, 120.0, 180.0, 331.9, 500.2, 502.6, 504.8, 1003.7, 1083.7, 1455.4),
    "L1": (22.7, 33.2, 60.0, 120.0, 180.0, 331.3, 500.1, 503.1, 506.2, 1006.2, 1083.1, 1472.6),
}
"""Stationary lines (calibration, mains, violin modes), Hz: whitened away, present for a realistic strain series."""


def aligo_asd(frequency_hz: np.ndarray, ifo: str = "H1") -> np.ndarray:
    """O1/O2-like LIGO amplitude spectral density in strain per root hertz.

    The broadband shape is Sathyaprakash & Schutz's (2009) fit to the Advanced LIGO design PSD,
    ``S0 [x^-4.14 - 5 x^-2 + 111 (1 - x^2 + x^4/2) / (1 + x^2/2)]`` with ``x = f / 215 Hz``, scaled to O1/O2
    sensitivity (~8e-24 /rtHz at 200 Hz, ~2e-22 at 20 Hz), with narrow stationary lines added.

    Parameters
    ----------
    frequency_hz : numpy.ndarray
        Frequencies, Hz; values below 1 Hz are treated as 1 Hz (the seismic wall).
    ifo : str
        ``"H1"`` or ``"L1"``.

    Returns
    -------
    numpy.ndarray
        ASD at each frequency, 1/sqrt(Hz).
    """
    f = np.maximum(np.asarray(frequency_hz, dtype=np.float64), 1.0)
    x = f / 215.0
    psd = 1e-49 * (x ** -4.14 - 5.0 / x ** 2 + 111.0 * (1.0 - x ** 2 + x ** 4 / 2.0) / (1.0 + x ** 2 / 2.0))
    psd *= SENSITIVITY_SCALE[ifo] ** 2
    for line in LINES_HZ[ifo]:
        psd *= 1.0 + 400.0 / (1.0 + ((f - line) / 0.05) ** 2)
    return np.sqrt(psd)


@lru_cache(maxsize=4)
def colouring(n_samples: int, sample_rate_hz: float, ifo: str) -> np.ndarray:
    """Per-bin factor taking the FFT of unit-variance white noise to strain with the ``ifo`` ASD (DC zeroed)."""
    f = np.fft.rfftfreq(n_samples, 1.0 / sample_rate_hz)
    out = aligo_asd(f, ifo) * np.sqrt(sample_rate_hz / 2.0)
    out[0] = 0.0
    return out


def colour(white: np.ndarray, sample_rate_hz: float, ifo: str) -> np.ndarray:
    """Strain time series from a series in whitened units (unit-variance noise), through the ``ifo`` ASD.

    Parameters
    ----------
    white : numpy.ndarray
        Time series whose noise part is unit-variance white Gaussian; a periodic block.
    sample_rate_hz : float
        Sample rate, Hz.
    ifo : str
        ``"H1"`` or ``"L1"``.

    Returns
    -------
    numpy.ndarray
        Strain (dimensionless), same length.
    """
    return np.fft.irfft(np.fft.rfft(white) * colouring(white.size, sample_rate_hz, ifo), n=white.size)


def whiten_known(strain: np.ndarray, sample_rate_hz: float, ifo: str) -> np.ndarray:
    """One-sided FFT of strain divided by the model ASD, scaled so noise bins have unit expected power.

    Parameters
    ----------
    strain : numpy.ndarray
        Periodic strain block.
    sample_rate_hz : float
        Sample rate, Hz.
    ifo : str
        ``"H1"`` or ``"L1"``: which ASD.

    Returns
    -------
    numpy.ndarray
        Complex whitened spectrum, ``n // 2 + 1`` bins (DC zero).
    """
    return divide_by_asd(np.fft.rfft(strain), colouring(strain.size, sample_rate_hz, ifo) * np.sqrt(strain.size))
