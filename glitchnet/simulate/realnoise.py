"""Real detector noise as the simulator's background: glitch-free stretches of real strain, whitened.

The coloured Gaussian noise of ``noise.py`` is stationary and has no lines left after whitening. Real strain is
neither: its whitened noise still carries residual lines, slow changes of level and the odd small transient. Given
real strain (``glitchnet simulate --real-noise FILE``, e.g. a GWOSC O3b file), each simulated glitch is added to an
``SEGMENT_S`` block drawn from the stretches of that strain that hold no glitch of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..errors import GlitchNetError
from ..omega.qtransform import SAMPLE_RATE_HZ
from ..omega.whiten import TAPER_S, whiten_estimated
from .noise import SEGMENT_S

GLITCH_SIGMA = 6.0
"""A whitened sample beyond this many robust standard deviations marks a glitch of the real data's own (Gaussian
noise exceeds 6 sigma once in ~5e8 samples: a 128 s file at 8192 Hz has ~1e6)."""

GLITCH_GUARD_S = 2.0
"""Time kept clear either side of such a sample, s: a loud glitch rings for a good part of a second after
whitening."""

MIN_DURATION_S = 2 * TAPER_S + SEGMENT_S
"""The shortest strain that yields a block: one ``SEGMENT_S`` block inside the tapered ends."""


class RealNoiseError(GlitchNetError):
    """Strain that cannot serve as a background; the message is one line."""


@dataclass(frozen=True)
class RealNoise:
    """Whitened real strain at ``SAMPLE_RATE_HZ`` and where its glitch-free ``SEGMENT_S`` blocks start."""

    white: np.ndarray
    """Whitened samples, unit robust variance (float32)."""
    starts: np.ndarray
    """Sample indices at which a glitch-free block may start."""
    source: str
    """Where the strain came from (a file name), recorded in the simulated dataset's metadata."""
    excluded_s: float
    """Seconds of the strain left out around its own glitches."""

    def block(self, rng: np.random.Generator, n_samples: int) -> np.ndarray:
        """A glitch-free block of ``n_samples`` whitened samples starting at a random allowed place."""
        start = int(self.starts[rng.integers(len(self.starts))])
        return self.white[start:start + n_samples].astype(np.float64)


def robust_std(x: np.ndarray) -> float:
    """The standard deviation a Gaussian with ``x``'s median absolute deviation has (insensitive to glitches)."""
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def real_noise(strain: np.ndarray, sample_rate_hz: float, source: str, seed: int = 0) -> RealNoise:
    """Whiten real strain by its own ASD (as a Gravity Spy scan does) and find its glitch-free blocks.

    Parameters
    ----------
    strain : numpy.ndarray
        Strain samples, finite.
    sample_rate_hz : float
        Their sample rate, Hz (at least 4096: Gravity Spy's views reach 2048 Hz).
    source : str
        A name for the strain, kept with every glitch made on it.
    seed : int
        Seeds the white noise that fills the band above the data's Nyquist frequency when it is upsampled.

    Returns
    -------
    RealNoise

    Raises
    ------
    RealNoiseError
        Too short, not finite, constant, sampled too slowly, or no glitch-free block left.
    """
    from scipy import signal

    strain = np.asarray(strain, dtype=np.float64)
    if sample_rate_hz < 4096:
        raise RealNoiseError(f"the strain is sampled at {sample_rate_hz:g} Hz; a background needs at least 4096 Hz")
    if strain.size < MIN_DURATION_S * sample_rate_hz:
        raise RealNoiseError(f"the strain lasts {strain.size / sample_rate_hz:.1f} s; a background needs at least "
                             f"{MIN_DURATION_S:g} s")
    if not np.isfinite(strain).all():
        raise RealNoiseError("the strain has gaps (NaN or infinite samples)")
    if not strain.std() > 0:
        raise RealNoiseError("the strain is constant")
    ratio = Fraction(SAMPLE_RATE_HZ / sample_rate_hz).limit_denominator(64)
    block = signal.resample_poly(strain, ratio.numerator, ratio.denominator) if ratio != 1 else strain
    spectrum = whiten_estimated(block, SAMPLE_RATE_HZ, top_hz=sample_rate_hz / 2)
    f = np.fft.rfftfreq(block.size, 1.0 / SAMPLE_RATE_HZ)
    empty = (f >= sample_rate_hz / 2) & (f > 0)
    if empty.any():  # above the data's own Nyquist frequency: white noise of the same level, so the block is white
        rng = np.random.default_rng(seed)
        level = np.sqrt(np.mean(np.abs(spectrum[(f > 20) & ~empty]) ** 2) / 2)
        spectrum[empty] = level * (rng.standard_normal(empty.sum()) + 1j * rng.standard_normal(empty.sum()))
    white = np.fft.irfft(spectrum, n=block.size)
    edge = int(TAPER_S * SAMPLE_RATE_HZ)
    white = white[edge:white.size - edge]
    white /= robust_std(white)
    loud = np.abs(white) > GLITCH_SIGMA
    guard = int(GLITCH_GUARD_S * SAMPLE_RATE_HZ)
    bad = np.convolve(loud.astype(np.int32), np.ones(2 * guard + 1, np.int32), mode="same") > 0
    n = int(SEGMENT_S * SAMPLE_RATE_HZ)
    # a block starting at s is clean when no bad sample lies in [s, s + n): a running count over the bad mask
    counts = np.concatenate([[0], np.cumsum(bad)])
    candidates = np.arange(0, white.size - n + 1, int(0.25 * SAMPLE_RATE_HZ))
    clean = candidates[(counts[candidates + n] - counts[candidates]) == 0]
    if clean.size == 0:
        raise RealNoiseError(f"no {SEGMENT_S:g} s stretch of the strain is free of glitches")
    return RealNoise(white.astype(np.float32), clean, source, float(bad.sum() / SAMPLE_RATE_HZ))
