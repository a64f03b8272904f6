"""Whitening: strain -> one-sided spectrum divided by the detector's amplitude spectral density (ASD)."""

from __future__ import annotations

import numpy as np

WELCH_SEGMENT_S = 2.0
"""Length of the Welch segments of an estimated ASD, s (Gravity Spy's whitening duration)."""

TAPER_S = 1.0
"""Length of the Tukey taper at each end of a block whitened by its estimated ASD, s; the scan leaves it out of
the energy statistics."""


def divide_by_asd(spectrum: np.ndarray, asd: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """``spectrum / asd`` bin by bin, zero where the ASD is zero or ``keep`` is False.

    Parameters
    ----------
    spectrum : numpy.ndarray
        One-sided FFT of the data (``numpy.fft.rfft``).
    asd : numpy.ndarray
        Amplitude spectral density at each bin, in the units that make the result the scale wanted.
    keep : numpy.ndarray of bool, optional
        Bins to keep (default: all with a positive ASD).

    Returns
    -------
    numpy.ndarray
        Complex whitened spectrum, same length.
    """
    good = asd > 0 if keep is None else keep & (asd > 0)
    out = np.zeros_like(spectrum)
    out[good] = spectrum[good] / asd[good]
    return out


def whiten_estimated(block: np.ndarray, sample_rate_hz: float, top_hz: float) -> np.ndarray:
    """Whiten a block of real strain by its own ASD, as Gravity Spy does for a scan.

    The ASD is a median-averaged Welch estimate (``WELCH_SEGMENT_S`` segments, half overlap); the block is
    Tukey-tapered over ``TAPER_S`` at each end before its FFT.

    Parameters
    ----------
    block : numpy.ndarray
        Strain samples.
    sample_rate_hz : float
        Sample rate, Hz.
    top_hz : float
        Bins at and above this frequency are set to zero (the data's own Nyquist frequency when upsampled), Hz.

    Returns
    -------
    numpy.ndarray
        Complex whitened spectrum, ``block.size // 2 + 1`` bins; DC and bins from ``top_hz`` up are zero.
    """
    from scipy import signal  # here: the simulator imports this module and needs no scipy.signal

    nperseg = int(WELCH_SEGMENT_S * sample_rate_hz)
    f_psd, psd = signal.welch(block, fs=sample_rate_hz, nperseg=nperseg, noverlap=nperseg // 2, average="median")
    taper = signal.windows.tukey(block.size, alpha=2 * TAPER_S * sample_rate_hz / block.size)
    spec = np.fft.rfft(block * taper)
    f = np.fft.rfftfreq(block.size, 1.0 / sample_rate_hz)
    asd = np.sqrt(np.interp(f, f_psd, psd))
    return divide_by_asd(spec, asd, keep=(f > 0) & (f < top_hz))
