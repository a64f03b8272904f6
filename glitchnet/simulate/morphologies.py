"""The 22 glitch classes as generative waveform models, with every parameter range in one table (``MODELS``).

Waveforms are built in whitened units: time series in which the detector noise is unit-variance white Gaussian
noise, so a component's matched-filter SNR is simply ``sqrt(sum(x**2))``. The simulator colours the sum with the
detector ASD to get strain and whitens it back, as a real scan does.

Ranges come from the Omicron trigger parameters of the Gravity Spy v1d1 training set (a 726-row sample: per class
10th-90th percentiles of ``peak_frequency``, ``duration``, ``bandwidth`` and ``snr``), widened where the sample is
tiny, and from the morphology volunteers see in the reference ("golden") images. Every range ``(lo, hi)`` is drawn
log-uniformly when ``lo > 0`` (uniformly otherwise); integer ranges are drawn uniformly, inclusive.

Two kinds of entries per class: the Omicron-like parameters and the ``extra`` knobs are drawn once per glitch,
before the waveform is built; the ``dists`` (:class:`Uniform`, :class:`Normal`, ...) are drawn by the waveform as
it builds each component (a repeat's jitter, a harmonic's level), in its own order. Classes with several
morphologies pick a sub-kind (one small function each) by an integer knob whose range is the sub-kind list's.
What stays in the waveform code is shape: fixed orders and tilts, margins from the block's edges, random phases
(uniform over a cycle), and the positions of repeats spread over the whole block.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

Range = tuple[float, float]


class Canvas:
    """A block of whitened-unit samples, centred on the glitch time ``t = 0``, that components are added to.

    Parameters
    ----------
    n_samples : int
        Block length, samples.
    sample_rate_hz : float
        Sample rate, Hz.
    """

    def __init__(self, n_samples: int, sample_rate_hz: float) -> None:
        self.n = n_samples
        self.fs = sample_rate_hz
        self.data = np.zeros(n_samples)
        self.half_s = n_samples / sample_rate_hz / 2.0

    def index(self, time_s: float) -> int:
        """Sample index of ``time_s`` (s from the centre), clipped to the block."""
        return int(min(max(round(time_s * self.fs + self.n / 2), 0), self.n))

    def times(self, start_s: float, stop_s: float) -> tuple[int, np.ndarray]:
        """First index and times (s from centre) of the samples in ``[start_s, stop_s)``, clipped to the block."""
        i0, i1 = self.index(start_s), self.index(stop_s)
        return i0, (np.arange(i0, i1) - self.n / 2) / self.fs

    def add(self, i0: int, values: np.ndarray, snr: float) -> None:
        """Add ``values`` from sample ``i0`` on, scaled to matched-filter SNR ``snr`` (values past the end drop)."""
        values = values[:max(0, self.n - i0)]
        norm = math.sqrt(float(np.sum(values ** 2)))
        if norm > 0 and snr > 0:
            self.data[i0:i0 + values.size] += values * (snr / norm)

    def sine_gaussian(self, t0_s: float, f0_hz: float, tau_s: float, snr: float, phase: float = 0.0) -> None:
        """Add ``exp(-((t - t0) / tau)**2) cos(2 pi f0 (t - t0) + phase)`` at matched-filter SNR ``snr``."""
        i0, t = self.times(t0_s - 4 * tau_s - 2 / self.fs, t0_s + 4 * tau_s + 2 / self.fs)
        x = (t - t0_s) / tau_s
        self.add(i0, np.exp(-x * x) * np.cos(2 * np.pi * f0_hz * (t - t0_s) + phase), snr)

    def pulse(self, t0_s: float, f_lo_hz: float, f_hi_hz: float, snr: float, phase: float = 0.0,
              lo_order: float = 3.0, hi_order: float = 1.0) -> None:
        """Add a minimum-duration broadband pulse with a Butterworth-like band-pass spectrum.

        The amplitude spectrum is ``(1 + (f_lo / f)^(2 lo_order))^-1/2 (1 + (f / f_hi)^(2 hi_order))^-1/2``: a sharp
        low edge gives the flat, wide base of a blip in a Q scan, a gentle high roll-off its tapering tip.
        """
        f_low = max(f_lo_hz / 2.0, 2.0)
        length = int(min(self.n, 2 ** math.ceil(math.log2(self.fs * 6.0 / f_low))))
        f = np.fft.rfftfreq(length, 1.0 / self.fs)
        f[0] = 1e-3
        spec = 1.0 / np.sqrt((1.0 + (f_lo_hz / f) ** (2 * lo_order)) * (1.0 + (f / f_hi_hz) ** (2 * hi_order)))
        spec[0] = 0.0
        i0 = self.index(t0_s) - length // 2
        frac = (t0_s * self.fs + self.n / 2) - (i0 + length // 2)
        spec = spec * np.exp(-2j * np.pi * f * (length // 2 + frac) / self.fs + 1j * phase)
        x = np.fft.irfft(spec, n=length)
        if i0 < 0:
            x, i0 = x[-i0:], 0
        self.add(i0, x, snr)

    def noise_burst(self, rng: np.random.Generator, t0_s: float, width_s: float, f_lo_hz: float, f_hi_hz: float,
                    snr: float, flatness: float = 1.0, tilt: float = 0.0) -> None:
        """Add Gaussian noise band-limited to ``f_lo_hz``-``f_hi_hz`` under an envelope ``width_s`` wide (1 sigma).

        ``flatness`` > 1 flattens the envelope top (super-Gaussian order); ``tilt`` weights the spectrum by
        ``(f / f_lo) ** tilt``.
        """
        half = 3.0 * width_s + 1.0 / f_lo_hz
        i0, t = self.times(t0_s - half, t0_s + half)
        if t.size < 8:
            return
        f = np.fft.rfftfreq(t.size, 1.0 / self.fs)
        edge = 0.15
        band = (_smooth_step(np.log(np.maximum(f, 1e-3) / f_lo_hz) / edge)
                * _smooth_step(np.log(f_hi_hz / np.maximum(f, 1e-3)) / edge))
        band *= (np.maximum(f, f_lo_hz) / f_lo_hz) ** tilt
        spec = np.fft.rfft(rng.standard_normal(t.size)) * band
        x = np.fft.irfft(spec, n=t.size) * np.exp(-np.abs((t - t0_s) / width_s) ** (2 * flatness) / 2)
        self.add(i0, x, snr)

    def track(self, start_s: float, stop_s: float, frequency: Callable[[np.ndarray], np.ndarray],
              envelope: Callable[[np.ndarray], np.ndarray], snr: float, phase: float = 0.0) -> None:
        """Add a tone whose frequency follows ``frequency(t)`` (Hz) under ``envelope(t)``, t in s from centre."""
        i0, t = self.times(start_s, stop_s)
        if t.size < 2:
            return
        f = np.clip(frequency(t), 0.0, self.fs / 2.0)
        ph = 2 * np.pi * np.cumsum(f) / self.fs + phase
        self.add(i0, envelope(t) * np.sin(ph), snr)


def _smooth_step(x: np.ndarray) -> np.ndarray:
    """0 for x <= -1, 1 for x >= 1, a raised cosine between."""
    return 0.5 * (1.0 + np.sin(0.5 * np.pi * np.clip(x, -1.0, 1.0)))


def _tukey(t: np.ndarray, start_s: float, stop_s: float, ramp_s: float) -> np.ndarray:
    """1 inside ``[start_s + ramp_s, stop_s - ramp_s]``, raised-cosine ramps to 0 at the ends."""
    ramp = max(ramp_s, 1e-6)
    up = np.clip((t - start_s) / ramp, 0.0, 1.0)
    down = np.clip((stop_s - t) / ramp, 0.0, 1.0)
    return np.sin(0.5 * np.pi * up) ** 2 * np.sin(0.5 * np.pi * down) ** 2


def spread_snr(snr: float, length_s: float, frequency_hz: float) -> float:
    """Total SNR of a signal ``length_s`` long near ``frequency_hz`` whose loudest Q tile should reach ``snr``.

    A tile holds roughly ``3 / f`` seconds of a tone, so the energy must scale with the number of tiles covered.
    """
    return snr * math.sqrt(max(1.0, length_s * frequency_hz / 3.0))


# --------------------------------------------------------------------------------------- component draws


@dataclass(frozen=True)
class Uniform:
    """Uniform on ``[lo, hi)``: ``rng.uniform(lo, hi)``."""

    lo: float
    hi: float

    def __call__(self, rng: np.random.Generator, size: int | None = None) -> float | np.ndarray:
        return rng.uniform(self.lo, self.hi, size)


@dataclass(frozen=True)
class Normal:
    """Zero-mean normal with standard deviation ``sigma`` (times ``scale``, when the spread is relative)."""

    sigma: float

    def __call__(self, rng: np.random.Generator, size: int | None = None, scale: float = 1.0) -> float | np.ndarray:
        return rng.normal(0, self.sigma * scale, size)


@dataclass(frozen=True)
class LogNormal:
    """Log-normal factor with median 1: ``exp`` of a zero-mean normal of standard deviation ``sigma``."""

    sigma: float

    def __call__(self, rng: np.random.Generator, size: int | None = None) -> float | np.ndarray:
        return rng.lognormal(0, self.sigma, size)


@dataclass(frozen=True)
class Integers:
    """Integer uniform on ``lo..hi``, both ends included."""

    lo: int
    hi: int

    def __call__(self, rng: np.random.Generator, size: int | None = None) -> int | np.ndarray:
        return rng.integers(self.lo, self.hi + 1, size)


@dataclass(frozen=True)
class Chance:
    """True with probability ``p``."""

    p: float

    def __call__(self, rng: np.random.Generator) -> bool:
        return rng.random() < self.p


Distribution = Uniform | Normal | LogNormal | Integers | Chance


def _phase(rng: np.random.Generator) -> float:
    """A random phase, rad: uniform over one cycle."""
    return rng.uniform(0, 2 * np.pi)


def _offset(rng: np.random.Generator, period: float) -> float:
    """Where a periodic train starts within its first period, s: uniform over one period."""
    return rng.uniform(0, period)


# ----------------------------------------------------------------------------------------------- the model


@dataclass
class Draw:
    """The values drawn for one glitch from its class's ranges, and the distributions its components draw from."""

    peak_frequency_hz: float
    duration_s: float
    bandwidth_hz: float
    snr: float
    extra: dict[str, float]
    dist: Mapping[str, Distribution] = field(default_factory=dict)
    """The class's :attr:`GlitchModel.dists`: the waveform draws from these as it builds each component."""


Waveform = Callable[[Canvas, np.random.Generator, Draw], None]


@dataclass(frozen=True)
class GlitchModel:
    """One class's generative model: Omicron-like parameter ranges plus morphology knobs, and its waveform."""

    label: str
    reason: str
    """One-line physical reason for the waveform chosen."""
    h1_fraction: float
    """Fraction of the class seen at Hanford (the rest at Livingston) in the v1d1 training set."""
    peak_frequency_hz: Range
    """Frequency of the glitch's loudest part, Hz (for Violin_Mode the fundamental; Omicron often peaked on a
    harmonic)."""
    duration_s: Range
    """Omicron-like duration, s: the length of lines, bursts and trains; recorded only, for pulses."""
    bandwidth_hz: Range
    """Omicron's bandwidth, Hz: recorded in the metadata (the waveform's band comes from its own knobs)."""
    snr: Range
    """SNR of the loudest Q tile to aim for: the matched-filter SNR of compact components (of each repeat, for
    repeating classes); extended tracks and lines are scaled up by :func:`spread_snr`."""
    waveform: Waveform
    extra: dict[str, Range] = field(default_factory=dict)
    """Class-specific knobs, each a range; integer-valued when both ends are ints."""
    peak_frequency_hz_l1: Range | None = None
    """Livingston's own peak-frequency range where the two detectors differ (None: ``peak_frequency_hz``)."""
    dists: dict[str, Distribution] = field(default_factory=dict)
    """Per-component draws, made while the waveform is built, in its order: time jitter, relative levels,
    frequency and length scatter, the shapes of a sub-kind. Names end in the unit (``_s``, ``_hz``) where they
    have one; ``_ratio`` and ``_level`` multiply the glitch's own frequency, length or SNR."""

    def draw(self, rng: np.random.Generator, ifo: str = "H1") -> Draw:
        """Draw one glitch's parameters from the ranges (the detector's own frequency range where it has one)."""
        f_range = self.peak_frequency_hz_l1 if ifo == "L1" and self.peak_frequency_hz_l1 else self.peak_frequency_hz
        return Draw(_draw(rng, f_range), _draw(rng, self.duration_s), _draw(rng, self.bandwidth_hz),
                    _draw(rng, self.snr), {k: _draw(rng, v) for k, v in self.extra.items()}, self.dists)


def _draw(rng: np.random.Generator, r: Range) -> float:
    lo, hi = r
    if isinstance(lo, int) and isinstance(hi, int):
        return float(rng.integers(lo, hi + 1))
    if lo > 0:
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    return float(rng.uniform(lo, hi))


# ------------------------------------------------------------------------------------------------- waveforms


def _blip_like(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """A band-pass pulse from ``peak / low_ratio`` to ``peak * high_ratio``: a teardrop in the Q scan."""
    f = d.peak_frequency_hz
    c.pulse(d.dist["time_jitter_s"](rng), f / d.extra["low_ratio"], f * d.extra["high_ratio"], d.snr, _phase(rng),
            hi_order=d.extra["tip_order"])


def _koi_fish(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """A loud blip whose body sits in a burst of excess noise: ragged low-frequency fins and speckled scales (the
    O1/O2 look); or, as at O3 Livingston (``o3_form``), a thin broadband spike standing on a fat bright base below
    ~70 Hz, often beside faint low-frequency blobs: the scattering that ground motion kept up through O3."""
    if d.dist["o3_form"](rng):
        f = d.peak_frequency_hz
        c.pulse(d.dist["time_jitter_s"](rng), f / d.extra["low_ratio"], f * d.extra["high_ratio"] * 2.0, d.snr,
                _phase(rng), hi_order=0.8)
        c.noise_burst(rng, d.dist["fin_jitter_s"](rng), d.dist["base_s"](rng), 16.0, d.dist["base_top_hz"](rng),
                      d.snr * d.dist["base_fraction"](rng), flatness=1.2, tilt=-0.3)
        if d.dist["scattering_beside"](rng):
            _background_arches(c, rng, d.dist["beside_snr"](rng))
        return
    _blip_like(c, rng, d)
    c.noise_burst(rng, d.dist["fin_jitter_s"](rng), d.extra["fin_s"], 18.0, d.extra["fin_top_hz"],
                  d.snr * d.extra["fin_fraction"], flatness=1.5, tilt=-0.5)
    c.noise_burst(rng, d.dist["fin_jitter_s"](rng), d.extra["fin_s"] * 0.7, 60.0, 600.0,
                  d.snr * d.extra["scale_fraction"], tilt=-1.0)


def _background_arches(c: Canvas, rng: np.random.Generator, snr: float) -> None:
    """Faint fast-scattering arches (20-35 Hz, every 0.2-0.35 s) over the view: the low-frequency blobs many O3
    Livingston glitches sit beside."""
    period = 1.0 / (2.0 * rng.uniform(1.4, 2.6))
    for t_k in np.arange(-c.half_s + 0.3 + rng.uniform(0, period), c.half_s - 0.3, period):
        if rng.random() < 0.4:  # many arches stay under the noise floor
            continue
        f_top, w = rng.uniform(20.0, 35.0), rng.uniform(0.15, 0.25)

        def freq(t: np.ndarray, t_k: float = t_k, f_top: float = f_top, w: float = w) -> np.ndarray:
            return f_top * np.cos(np.clip(np.pi * (t - t_k) / w, -np.pi / 2, np.pi / 2)) ** 0.5

        def env(t: np.ndarray, t_k: float = t_k, w: float = w) -> np.ndarray:
            return np.cos(np.clip(np.pi * (t - t_k) / w, -np.pi / 2, np.pi / 2)) ** 2

        c.track(t_k - w / 2, t_k + w / 2, freq, env, snr * rng.uniform(0.6, 1.0), _phase(rng))


def _repeating_blips(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """Blips at a steady period (jittered), one of them at the centre."""
    period = d.extra["period_s"]
    count = int(d.extra["count"])
    first = -int(rng.integers(0, count)) * period  # which repeat sits at the centre
    for k in range(count):
        f = d.peak_frequency_hz * d.dist["frequency_ratio"](rng)
        c.pulse(first + k * period + d.dist["period_jitter"](rng, scale=period), f / d.extra["low_ratio"],
                f * d.extra["high_ratio"], d.snr * d.dist["blip_level"](rng), _phase(rng))


def _chirp(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """A Newtonian inspiral ``f(t) = f_end (tau / (tau - t))^(3/8)`` from ``start_hz`` to the peak at ``t = 0``."""
    f_end, span = d.peak_frequency_hz, d.duration_s
    tau = span / ((f_end / d.extra["start_hz"]) ** (8.0 / 3.0) - 1.0)  # so that f(-span) = start_hz

    def freq(t: np.ndarray) -> np.ndarray:
        return f_end * (tau / (tau + np.maximum(-t, 0.0))) ** 0.375

    def env(t: np.ndarray) -> np.ndarray:
        # strain grows as f^(2/3) and the ASD falls towards the bucket: the whitened amplitude rises steeply
        inspiral = (freq(t) / f_end) ** d.extra["rise"] * _tukey(t, -span, 0.004, 0.02)
        return inspiral + np.exp(-np.maximum(t, 0) / 0.004) * (t > 0)  # a short ringdown

    c.track(-span, 0.03, freq, env, d.snr, _phase(rng))


def _sine_gaussian_line(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """A narrow-band burst (``duration_s`` = 2 tau), maybe beating with a tone ``beat_hz`` away, maybe a harmonic."""
    t0 = d.dist["time_jitter_s"](rng)
    c.sine_gaussian(t0, d.peak_frequency_hz, d.duration_s / 2, d.snr, _phase(rng))
    if d.extra["beat_hz"] > 4.0:
        c.sine_gaussian(t0, d.peak_frequency_hz + d.extra["beat_hz"], d.duration_s / 2,
                        d.snr * d.dist["beat_level"](rng), _phase(rng))
    if rng.random() < d.extra["harmonic_chance"]:
        c.sine_gaussian(d.dist["time_jitter_s"](rng), 2 * d.peak_frequency_hz, d.duration_s / 2,
                        d.snr * d.dist["harmonic_level"](rng))


def _dashes(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """A carrier switching on in short packets over the whole block, the loudest at the centre."""
    n = rng.poisson(d.extra["dashes_per_s"] * 2 * c.half_s)
    times = np.concatenate([[d.dist["time_jitter_s"](rng)], rng.uniform(-c.half_s + 0.2, c.half_s - 0.2, n)])
    for k, t0 in enumerate(times):
        snr = d.snr if k == 0 else d.snr * d.extra["dash_level"] * d.dist["dash_level_scatter"](rng)
        c.sine_gaussian(t0, d.peak_frequency_hz + d.dist["frequency_jitter_hz"](rng),
                        d.extra["dash_s"] * d.dist["dash_length_ratio"](rng), snr, _phase(rng))


def _ripples(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """A short high-frequency tone burst at the centre, sometimes with fainter ones elsewhere in the 4 s view."""
    c.sine_gaussian(d.dist["time_jitter_s"](rng), d.peak_frequency_hz, d.duration_s / 2, d.snr, _phase(rng))
    for _ in range(int(d.extra["others"])):
        c.sine_gaussian(d.dist["other_time_s"](rng), d.peak_frequency_hz * d.dist["other_frequency_ratio"](rng),
                        d.duration_s / 2 * d.dist["other_length_ratio"](rng), d.snr * d.dist["other_level"](rng))


def _violin(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """Bursts of the ~500 Hz fibre resonances: a pair of modes and their harmonics, at a few times."""
    n = int(d.extra["bursts"])
    times = np.concatenate([[d.dist["time_jitter_s"](rng)], d.dist["burst_time_s"](rng, n - 1)])
    weight = d.extra["harmonics"]
    for k, t0 in enumerate(times):
        level = d.snr if k == 0 else d.snr * d.dist["burst_level"](rng)
        tau = d.duration_s / 2 * d.dist["burst_length_ratio"](rng)
        for h, w in ((1, 1.0), (2, weight), (3, weight ** 2), (4, weight ** 2)):
            f = h * d.peak_frequency_hz
            if f > 2000:
                break
            c.sine_gaussian(t0, f, tau, level * w, _phase(rng))
            c.sine_gaussian(t0 + d.dist["split_delay_s"](rng), f * d.extra["split_ratio"], tau,
                            level * w * d.dist["split_level"](rng), _phase(rng))
    if d.extra["ground_motion"]:
        # violin modes are rung up by large disturbances (ground motion, lock acquisition), so the scans that show
        # them often also hold loud low-frequency excess below ~50 Hz (two of the three golden Violin_Mode glitches)
        width, top = d.dist["ground_width_s"](rng), d.dist["ground_top_hz"](rng)
        # excess noise spreads its SNR over ~width x bandwidth time-frequency cells: scale it to stay visible
        c.noise_burst(rng, d.dist["ground_time_s"](rng), width, 9.0, top,
                      d.dist["ground_level"](rng) * math.sqrt(width * top), tilt=-1.0)


def _helix(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """Recurring bursts of the harmonics of a ~60 Hz fundamental, each harmonic slightly shifted in time."""
    f1 = d.extra["fundamental_hz"]
    period = d.extra["period_s"]
    loudest = max(1, round(d.peak_frequency_hz / f1))
    t0 = -period * int(d.dist["start_periods"](rng))
    while t0 < c.half_s - 0.3:
        if t0 > -c.half_s + 0.3:
            level = d.snr * (1.0 if abs(t0) < period / 2 else d.dist["burst_level"](rng))
            turn = _phase(rng)
            for h in range(1, int(d.extra["harmonics"]) + 1):
                snr = level * d.dist["harmonic_level"](rng) * (1.4 if h == loudest else 1.0)
                c.sine_gaussian(t0 + d.extra["twist_s"] * math.sin(1.7 * h + turn), h * f1,
                                d.extra["spot_s"] * d.dist["spot_length_ratio"](rng), snr, _phase(rng))
        t0 += period * d.dist["period_ratio"](rng)


def _light_modulation(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """Tall thin broadband spikes at irregular times plus loud low-frequency blobs at their base."""
    n = int(d.extra["spikes"])
    times = np.concatenate([[d.dist["time_jitter_s"](rng)], d.dist["spike_time_s"](rng, n - 1)])
    for k, t0 in enumerate(times):
        c.pulse(t0, d.extra["spike_low_hz"] * d.dist["spike_low_ratio"](rng), d.extra["spike_high_hz"],
                d.snr * (1.0 if k == 0 else d.dist["spike_level"](rng)), _phase(rng))
    for k in range(int(d.extra["blobs"])):
        at = (times[0] + d.dist["blob_jitter_s"](rng) if k == 0
              else rng.choice(times) + d.dist["blob_offset_s"](rng))
        c.noise_burst(rng, at, d.extra["blob_s"] * d.dist["blob_length_ratio"](rng),
                      10.0, d.peak_frequency_hz * d.dist["blob_top_ratio"](rng),
                      d.snr * d.extra["blob_level"] * d.dist["blob_level_ratio"](rng), tilt=-1.0)


def _low_frequency_burst(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """A smooth dome below ~50 Hz: a slow, coherent low-frequency swing (a sine-Gaussian ``duration_s / 8`` wide and
    a weaker band-limited pulse) with a little excess noise around it, sometimes with smaller domes nearby."""
    top = d.peak_frequency_hz * d.extra["top_ratio"]
    t0 = d.dist["time_jitter_s"](rng)
    c.sine_gaussian(t0, d.peak_frequency_hz, d.duration_s / 8, d.snr, _phase(rng))
    c.pulse(t0, 9.0, top, d.snr * 0.2, _phase(rng), lo_order=4.0, hi_order=3.0)
    c.noise_burst(rng, t0, d.duration_s / 4, 9.0, top, d.snr * 0.15, tilt=-1.0)
    for _ in range(int(d.extra["lumps"])):
        c.sine_gaussian(d.dist["lump_time_s"](rng), d.peak_frequency_hz * d.dist["lump_frequency_ratio"](rng),
                        d.duration_s / 8 * d.dist["lump_length_ratio"](rng), d.snr * d.dist["lump_level"](rng),
                        _phase(rng))


def _low_frequency_lines(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """One to three steady low-frequency tones lasting seconds, with slow amplitude wander."""
    for k in range(int(d.extra["lines"])):
        f0 = d.peak_frequency_hz * (1.0 if k == 0 else d.dist["line_frequency_ratio"](rng))
        start = -d.duration_s / 2 + d.dist["end_jitter_s"](rng)
        stop = d.duration_s / 2 + d.dist["end_jitter_s"](rng)
        wobble, rate, phase = d.dist["wobble"](rng), d.dist["wobble_hz"](rng), _phase(rng)

        def env(t: np.ndarray, start=start, stop=stop, wobble=wobble, rate=rate, phase=phase) -> np.ndarray:
            return _tukey(t, start, stop, 0.3) * (1 + wobble * np.sin(2 * np.pi * rate * t + phase))

        snr = spread_snr(d.snr, stop - start, f0) * (1.0 if k == 0 else d.dist["line_level"](rng))
        c.track(start, stop, lambda t, f0=f0: np.full_like(t, f0), env, snr, _phase(rng))


def _scattering(c: Canvas, d: Draw, start_s: float, stop_s: float, fringes: np.ndarray, i0: int) -> None:
    """Add scattered light for surface motion ``fringes`` (``2 x(t) / lambda``, from sample ``i0`` on).

    The phase is ``2 pi n fringes`` for the ``n``-th bounce, so the instantaneous frequency is ``n`` times the
    fringe rate ``2 |v(t)| / lambda``.
    """
    t = (np.arange(i0, i0 + fringes.size) - c.n / 2) / c.fs
    env = _tukey(t, start_s, stop_s, min(0.3, (stop_s - start_s) / 4))
    x = np.zeros_like(t)
    for n in range(1, int(d.extra["harmonics"]) + 1):
        x += d.extra["harmonic_decay"] ** (n - 1) * np.sin(2 * np.pi * n * fringes + n * 1.3)
    c.add(i0, env * x, spread_snr(d.snr, stop_s - start_s, 0.64 * d.peak_frequency_hz))


def _scattered_light(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """A slow (0.1-0.2 Hz) swing of a scattering surface: stacked arches a few seconds long, the top at the centre.

    Displacement in fringes ``A sin(2 pi f_m t)``, ``A`` set so the fastest fringe rate ``2 pi f_m A`` is
    ``peak_frequency_hz``. As at O3 Livingston (``o3_form``): one swing 1-2.6 s long, seen as flat arches stacked
    in harmonics (the n-th bounce at n times the fringe rate) between ~15 and 60 Hz, the fundamental often under the
    noise floor: the fastest half of a swing (the fringe rate within 30% of its top), faded in and out.
    """
    if d.dist["o3_form"](rng):
        length = d.dist["swing_s"](rng)  # the part of the swing seen: its fastest half, so the arches are flat
        start, stop = -length / 2, length / 2
        i0, t = c.times(start, stop)
        f_m = 1.0 / (4.0 * length)
        top = d.dist["o3_fundamental_hz"](rng)
        fringes = top / (2 * np.pi * f_m) * np.sin(2 * np.pi * f_m * t)
        knobs = {**d.extra, "harmonics": d.dist["o3_harmonics"](rng), "harmonic_decay": d.dist["o3_decay"](rng)}
        o3 = Draw(top, d.duration_s, d.bandwidth_hz, d.snr * d.dist["o3_loudness"](rng), knobs, d.dist)
        _scattering(c, o3, start, stop, fringes, i0)
        return
    start, stop = -c.half_s + 0.3, c.half_s - 0.3
    i0, t = c.times(start, stop)
    f_m = d.extra["motion_hz"]
    fringes = d.peak_frequency_hz / (2 * np.pi * f_m) * np.sin(2 * np.pi * f_m * t + d.dist["motion_phase"](rng))
    _scattering(c, d, start, stop, fringes, i0)


def _fast_scattering(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """Scattered light off a surface shaken by ground motion in the anthropogenic band (1-6 Hz at O3 Livingston):
    the fringe rate ``2|v(t)|/lambda`` peaks twice per motion cycle, so short arches repeat every ``1 / (2 f_m)``
    (0.17-0.3 s), their tops at up to ``peak_frequency_hz``, over the seconds the ground motion lasts.

    Each arch is drawn as the part of one velocity peak that clears the ~15 Hz noise floor: a tone whose frequency
    follows ``f_top cos(pi (t - t_k) / w)`` under a Hann window ``w`` long (``arch_s``, 0.16-0.28 s; a few cycles, so
    the Q scan picks a low Q as it does for the real trains). A slow swell (the ground motion's own beat, ``swell``
    deep) makes the arches uneven in height, some lost in the noise; one arch sits at the trigger (t = 0).
    """
    length = min(2 * c.half_s - 0.2, d.duration_s)
    period = 1.0 / (2.0 * d.extra["motion_hz"])
    before = int(rng.integers(0, max(1, int(length / period))))  # which arch of the train is the trigger's
    swell_hz, swell_phase = d.dist["swell_hz"](rng), _phase(rng)
    for k in range(-before, int(length / period) - before + 1):
        t_k = k * period + d.dist["arch_jitter_s"](rng)
        swell = 1.0 - d.extra["swell"] * (1.0 - np.cos(2 * np.pi * swell_hz * t_k + swell_phase * (k != 0))) / 2.0
        f_top = d.peak_frequency_hz * swell
        w = d.extra["arch_s"] * d.dist["arch_length_ratio"](rng)

        def freq(t: np.ndarray, t_k: float = t_k, f_top: float = f_top, w: float = w) -> np.ndarray:
            return f_top * np.cos(np.clip(np.pi * (t - t_k) / w, -np.pi / 2, np.pi / 2)) ** 0.5

        def env(t: np.ndarray, t_k: float = t_k, w: float = w) -> np.ndarray:
            return np.cos(np.clip(np.pi * (t - t_k) / w, -np.pi / 2, np.pi / 2)) ** 2

        c.track(t_k - w / 2, t_k + w / 2, freq, env, d.snr * swell * (1.0 if k == 0 else d.dist["arch_level"](rng)),
                _phase(rng))


def _scratchy(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """A train of short mid-frequency wavelets at irregular intervals over ``duration_s``, tapered at the ends."""
    start = -d.duration_s / 2 + d.dist["start_jitter_s"](rng)
    t0 = start
    while t0 < start + d.duration_s:
        edge = min(1.0, min(t0 - start, start + d.duration_s - t0) / 0.15)
        f = d.peak_frequency_hz * math.exp(d.dist["frequency_log_scatter"](rng))
        c.sine_gaussian(t0, f, d.extra["cycles"] / f * d.dist["length_ratio"](rng),
                        d.snr * d.dist["level_scatter"](rng) * edge, _phase(rng))
        t0 += d.extra["gap_s"] * d.dist["gap_ratio"](rng)


def _paired_doves(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """Pairs of tracks mirrored in log-frequency about ``peak_frequency_hz``: one sweeping up, one sweeping down.

    Each dove is a surface turning round: the two tracks meet at one end (``>``: converging, ``<``: diverging),
    bow slightly (power ``bow``), and recur every ``spacing_s``.
    """
    spacing = d.extra["spacing_s"]
    n = int(d.extra["doves"])
    centred = int(rng.integers(0, n))  # which dove sits at the centre
    first = -spacing * centred
    converge = d.dist["converging"](rng)
    for k in range(n):
        t0 = first + k * spacing + d.dist["spacing_jitter"](rng, scale=spacing)
        length = d.duration_s * d.dist["length_ratio"](rng)
        centre = d.peak_frequency_hz * d.dist["frequency_ratio"](rng)
        span = d.extra["span"] * d.dist["span_ratio"](rng)
        bow = d.extra["bow"] * d.dist["bow_ratio"](rng)
        level = d.snr * (1.0 if k == centred else d.dist["dove_level"](rng))
        wiggle = _phase(rng)
        for sign in (1.0, -1.0 / d.extra["lower_squash"]):
            def freq(t: np.ndarray, t0=t0, length=length, centre=centre, span=span, bow=bow, sign=sign,
                     wiggle=wiggle) -> np.ndarray:
                u = np.clip((t - t0 + length / 2) / length, 0, 1)
                reach = (1 - u if converge else u) ** bow
                return centre * span ** (sign * reach) * (1 + 0.04 * np.sin(2 * np.pi * 3 * u + wiggle))

            def env(t: np.ndarray, t0=t0, length=length) -> np.ndarray:
                return _tukey(t, t0 - length / 2, t0 + length / 2, length / 5)

            c.track(t0 - length / 2, t0 + length / 2, freq, env,
                    spread_snr(level, length, centre) * d.dist["track_level"](rng), _phase(rng))


def _wandering_arches(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """A line frequency-modulated in fast arches (``|sin|``, one per ``arch_s``), in one or two short clusters."""
    f_top = d.peak_frequency_hz
    depth = d.extra["arch_depth"]
    period = d.extra["arch_s"]
    centres = ([d.dist["time_jitter_s"](rng)]
               + list(d.dist["cluster_time_s"](rng, int(d.dist["extra_clusters"](rng)))))
    for k, tc in enumerate(centres):
        arches = int(d.dist["arches"](rng))
        a, b = tc - arches * period / 2, tc + arches * period / 2
        ph = d.dist["arch_phase"](rng)

        def freq(t: np.ndarray, a=a, ph=ph) -> np.ndarray:
            return f_top * (1 - depth * (1 - np.abs(np.sin(np.pi * (t - a) / period + ph))))

        c.track(a, b, freq, lambda t, a=a, b=b: _tukey(t, a, b, period / 2),
                spread_snr(d.snr, b - a, f_top) * (1.0 if k == 0 else d.dist["cluster_level"](rng)) / 2,
                _phase(rng))


def _wandering_segments(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """A line drifting irregularly, on in short segments that each end in a downward hook."""
    knots_t = np.linspace(-c.half_s, c.half_s, 33)
    drift = np.cumsum(rng.normal(0, d.extra["wander"], knots_t.size))
    drift -= drift[knots_t.size // 2]
    f_line = d.peak_frequency_hz
    n = max(1, rng.poisson(d.extra["segments_per_s"] * d.duration_s))
    starts = np.sort(rng.uniform(-d.duration_s / 2, d.duration_s / 2, n))
    starts[np.argmin(np.abs(starts))] = -0.05  # one segment through the centre
    for a in starts:
        b = a + d.extra["segment_s"] * d.dist["segment_length_ratio"](rng)
        hook = d.extra["hook"] * d.dist["hook_ratio"](rng)

        def freq(t: np.ndarray, b=b, hook=hook) -> np.ndarray:
            bend = 1 - hook * np.clip((t - b + 0.05) / 0.05, 0, 1) ** 2
            return f_line * (1 + np.interp(t, knots_t, drift)) * bend

        c.track(a, b, freq, lambda t, a=a, b=b: _tukey(t, a, b, 0.01),
                spread_snr(d.snr, b - a, f_line) * d.dist["segment_level"](rng) / 1.5, _phase(rng))


def _wandering_line(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """A thin high-frequency line whose frequency wanders: hooked segments above 1 kHz, fast arches below."""
    (_wandering_arches if d.peak_frequency_hz < 1000.0 else _wandering_segments)(c, rng, d)


def _whistle_v(rng: np.random.Generator, d: Draw) -> tuple[float, Callable[[np.ndarray], np.ndarray]]:
    """V: the oscillator sweeps linearly through the reference, out past 2 kHz."""
    vertex, slope = d.peak_frequency_hz, d.extra["slope_hz_per_s"]
    return 2200.0 / slope, lambda t: np.sqrt(vertex ** 2 + (slope * t) ** 2)


def _whistle_w(rng: np.random.Generator, d: Draw) -> tuple[float, Callable[[np.ndarray], np.ndarray]]:
    """W: the sweep turns round just past the reference."""
    vertex, slope = d.peak_frequency_hz, d.extra["slope_hz_per_s"]
    sep = 2200.0 / slope * d.dist["w_turn_ratio"](rng)
    return 2 * sep + 800.0 / slope, lambda t: np.sqrt(vertex ** 2 + (slope * (np.abs(t) - sep)) ** 2)


def _whistle_arches(rng: np.random.Generator, d: Draw) -> tuple[float, Callable[[np.ndarray], np.ndarray]]:
    """Arches: the oscillator wobbles sinusoidally, the beat peaking once per cycle."""
    period = d.extra["arch_period_s"]
    top = d.peak_frequency_hz * d.dist["arch_top_ratio"](rng)
    depth = top * d.dist["arch_depth_ratio"](rng)
    half = period * d.dist["arch_half_length"](rng)
    return half, lambda t: top - depth * (1 - np.cos(2 * np.pi * t / period)) / 2


_WHISTLE_SHAPES = (_whistle_v, _whistle_w, _whistle_arches)
"""Whistle sub-kinds by the ``shape`` knob: each gives the track's half-length (s) and its frequency law."""


def _whistle(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """Radio-frequency beat notes: the beat ``|f_vco(t) - f_ref|`` sweeps through audio as V, W or arch tracks."""
    half, freq = _WHISTLE_SHAPES[int(d.extra["shape"])](rng, d)
    c.track(-half, half, freq, lambda t: _tukey(t, -half, half, 0.01),
            spread_snr(d.snr, 2 * half, d.peak_frequency_hz) / 2, _phase(rng))


def _loud_burst(c: Canvas, rng: np.random.Generator, d: Draw, t0: float) -> None:
    """A centred burst, long below 80 Hz and shorter up to ``top_hz``, sometimes with a sharp broadband onset."""
    top = d.extra["top_hz"]
    c.noise_burst(rng, t0, d.duration_s / 2, 9.0, min(top, 80.0), d.snr, flatness=d.extra["flatness"], tilt=-1.0)
    c.noise_burst(rng, t0, d.duration_s / 6, 9.0, top, d.snr * 0.7, tilt=d.extra["tilt"])
    if d.dist["onset"](rng):
        c.pulse(t0, d.peak_frequency_hz / 2, d.peak_frequency_hz * 4, d.snr * 0.3, _phase(rng))


def _loud_saturation(c: Canvas, rng: np.random.Generator, d: Draw, t0: float) -> None:
    """A saturation of the readout that starts (or ends) off-centre and swamps the whole band for seconds."""
    edge = d.dist["saturation_edge_s"](rng) * rng.choice((-1.0, 1.0))
    width = d.dist["saturation_width_s"](rng)
    centre = edge + math.copysign(width, edge)
    c.noise_burst(rng, centre, width, 9.0, 2000.0, d.snr * 10.0, flatness=4.0, tilt=d.extra["tilt"] / 3)


def _loud_ground_motion(c: Canvas, rng: np.random.Generator, d: Draw, t0: float) -> None:
    """Seconds of huge low-frequency motion: a saturated band below ~40 Hz across the view, a dome rising from it."""
    c.noise_burst(rng, d.dist["motion_jitter_s"](rng), d.dist["motion_width_s"](rng), 9.0,
                  d.dist["motion_top_hz"](rng), d.snr * 1.5, flatness=3.0, tilt=-1.0)
    c.noise_burst(rng, t0, d.duration_s / 3, 9.0, min(d.extra["top_hz"], 120.0), d.snr * 0.5,
                  flatness=d.extra["flatness"], tilt=-1.0)


_EXTREMELY_LOUD_FORMS = (_loud_burst, _loud_saturation, _loud_ground_motion)
"""Extremely_Loud sub-kinds by the ``form`` knob."""


def _extremely_loud(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """Huge disturbances (SNR in thousands), in one of three forms: see ``_EXTREMELY_LOUD_FORMS``."""
    t0 = d.dist["time_jitter_s"](rng)
    _EXTREMELY_LOUD_FORMS[int(d.extra["form"])](c, rng, d, t0)


def _comb_spikes(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """A comb of thin spikes confined to high frequencies."""
    rate = d.dist["comb_rate_hz"](rng)
    for t0 in np.arange(-c.half_s + 0.3, c.half_s - 0.3, 1 / rate) + _offset(rng, 1 / rate):
        c.pulse(t0 + d.dist["comb_jitter_s"](rng), d.dist["comb_low_hz"](rng), 2000.0,
                d.snr * d.dist["comb_level"](rng), lo_order=4.0, hi_order=4.0)


def _humps_over_line(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """Periodic flat-topped low-frequency humps over a low line."""
    period = d.dist["hump_period_s"](rng)
    f_line = d.dist["hump_line_hz"](rng)
    c.track(-c.half_s + 0.2, c.half_s - 0.2, lambda t: np.full_like(t, f_line),
            lambda t: _tukey(t, -c.half_s + 0.2, c.half_s - 0.2, 0.3),
            spread_snr(d.snr * d.dist["hump_line_level"](rng), 2 * c.half_s, f_line))
    for t0 in np.arange(-c.half_s + 0.5, c.half_s - 0.5, period) + _offset(rng, period):
        c.noise_burst(rng, t0, period / 6, 15.0, d.dist["hump_top_hz"](rng), d.snr * d.dist["hump_level"](rng),
                      flatness=3.0, tilt=-0.5)


def _lobed_lump(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """A mid-low lump flanked by fainter side lobes."""
    f0 = d.dist["lump_hz"](rng)
    gap = d.dist["lobe_gap_s"](rng)
    for k in range(-2, 3):
        c.sine_gaussian(k * gap + d.dist["lobe_jitter_s"](rng), f0 * d.dist["lobe_frequency_ratio"](rng),
                        d.dist["lobe_tau_s"](rng), d.snr * (1.0 if k == 0 else d.dist["lobe_level"](rng) / abs(k)),
                        _phase(rng))


def _patchy_spots(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """Patchy spots over a wide band around the peak frequency."""
    f = d.peak_frequency_hz
    for _ in range(d.dist["spots"](rng)):
        ff = f * math.exp(d.dist["spot_log_offset"](rng))
        c.sine_gaussian(d.dist["spot_time_s"](rng), ff, d.dist["spot_cycles"](rng) / (math.sqrt(2) * math.pi * ff),
                        d.snr * d.dist["spot_level"](rng))


def _forked_track(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """A forked track: a rising low track meeting a falling high one."""
    meet = d.dist["fork_hz"](rng)
    length = d.dist["fork_length_s"](rng)
    c.track(-length, 0.0, lambda t: meet * (15.0 / meet) ** (-t / length), lambda t: _tukey(t, -length, 0, 0.02),
            spread_snr(d.snr * 0.15, length, meet))
    c.track(-0.3 * length, 0.02, lambda t: meet * 2.5 ** (-t / (0.3 * length)) * 0.95,
            lambda t: _tukey(t, -0.3 * length, 0.02, 0.01), spread_snr(d.snr * 0.2, 0.3 * length, 2 * meet))


def _spot_columns(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """Recurring columns of spots above loud low-frequency lines."""
    for f_line in d.dist["column_line_hz"](rng, int(d.dist["column_lines"](rng))):
        c.track(-c.half_s + 0.1, c.half_s - 0.1, lambda t, f_line=f_line: np.full_like(t, f_line),
                lambda t: _tukey(t, -c.half_s + 0.1, c.half_s - 0.1, 0.3),
                spread_snr(d.snr * d.dist["column_line_level"](rng), 2 * c.half_s, f_line))
    spots = np.exp(np.sort(d.dist["column_spot_log_hz"](rng, int(d.dist["column_spots"](rng)))))
    period = d.dist["column_period_s"](rng)
    for t0 in np.arange(-c.half_s + 0.3, c.half_s - 0.3, period) + _offset(rng, period):
        for ff in spots:
            c.sine_gaussian(t0 + d.dist["column_jitter_s"](rng), ff * d.dist["column_spot_ratio"](rng),
                            d.dist["column_spot_cycles"](rng) / ff, d.snr * d.dist["column_spot_level"](rng))


_NONE_OF_THE_ABOVE_KINDS = (_comb_spikes, _humps_over_line, _lobed_lump, _patchy_spots, _forked_track, _spot_columns)
"""None_of_the_Above sub-kinds by the ``kind`` knob: odd morphologies, none a lone blip, line, arch or dome."""


def _none_of_the_above(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """Odd morphologies no other class describes, one of ``_NONE_OF_THE_ABOVE_KINDS`` by the ``kind`` knob."""
    _NONE_OF_THE_ABOVE_KINDS[int(d.extra["kind"])](c, rng, d)


def _no_glitch(c: Canvas, rng: np.random.Generator, d: Draw) -> None:
    """Nothing: the detector's own noise around a time Omicron flagged at low SNR."""




# ----------------------------------------------------------------------------------------------- the table

# label, reason, h1_fraction, peak_frequency_hz, duration_s, bandwidth_hz, snr, waveform, extra, dists
MODELS: tuple[GlitchModel, ...] = (
    GlitchModel("1080Lines", "a narrow-band disturbance near 1080 Hz (Hanford, O1) switching on and off in dashes",
                1.0, (1074.0, 1098.0), (0.2, 2.0), (160.0, 7900.0), (7.5, 15.0), _dashes,
                {"dashes_per_s": (8.0, 25.0), "dash_s": (0.012, 0.04), "dash_level": (0.6, 1.0)},
                dists={"time_jitter_s": Normal(0.02), "dash_level_scatter": LogNormal(0.4),
                       "frequency_jitter_hz": Normal(2.0), "dash_length_ratio": Uniform(0.5, 1.5)}),
    GlitchModel("1400Ripples", "short high-frequency ripples near 1.5 kHz (Livingston, O1), of unknown origin",
                0.0, (1440.0, 1560.0), (0.045, 0.1), (300.0, 2800.0), (9.0, 16.0), _ripples,
                {"others": (0, 2)},
                dists={"time_jitter_s": Normal(0.005), "other_time_s": Uniform(-2.0, 2.0),
                       "other_frequency_ratio": Uniform(0.97, 1.03), "other_length_ratio": Uniform(0.5, 1.0),
                       "other_level": Uniform(0.4, 0.8)}),
    GlitchModel("Air_Compressor", "air-compressor vibration coupling into the readout as a ~50 Hz tone burst; "
                "measured line positions: golden subjects (all Hanford) 47.8, 49.2, 49.5 Hz; Omicron peak_frequency "
                "sample 48.9 (H1), 54.7 (L1, a narrow trigger), 57.9 Hz (H1, a broad trigger whose peak is not the "
                "line). The range stops at 51 Hz so that no simulated compressor sits near the 60 Hz mains line",
                0.67, (46.5, 51.0), (0.15, 0.6), (15.0, 65.0), (8.0, 14.0),
                _sine_gaussian_line,
                {"harmonic_chance": (0.0, 0.3), "beat_hz": (0.0, 0.0)},
                dists={"time_jitter_s": Normal(0.01), "harmonic_level": Uniform(0.3, 0.7)}),
    GlitchModel("Blip_Low_Frequency", "an O3 blip whose energy stays low (Livingston, O3): a band-pass pulse from "
                "~15 Hz to at most ~100 Hz, rounder and lower than Blip and Tomte (golden LowFreqBlip subjects peak at "
                "30-50 Hz)", 0.15, (25.0, 55.0), (0.05, 0.4), (20.0, 120.0), (12.0, 40.0),
                _blip_like, {"low_ratio": (1.4, 2.2), "high_ratio": (1.0, 1.4), "tip_order": (3.0, 5.0)},
                dists={"time_jitter_s": Normal(0.003)}),
    GlitchModel("Blip", "a ~10 ms broadband transient of unknown origin: a band-pass pulse spanning ~30-500 Hz, its "
                "tip fading well below 2 kHz", 0.86, (70.0, 320.0), (0.02, 0.5), (250.0, 4600.0), (10.0, 100.0),
                _blip_like, {"low_ratio": (1.5, 4.0), "high_ratio": (1.0, 2.5), "tip_order": (1.2, 2.5)},
                dists={"time_jitter_s": Normal(0.003)}),
    GlitchModel("Chirp", "a compact-binary-like inspiral (mostly hardware injections): f rises as (t_c - t)^(-3/8)",
                0.5, (130.0, 320.0), (0.2, 0.5), (230.0, 345.0), (10.0, 22.0), _chirp,
                {"start_hz": (28.0, 45.0), "rise": (1.0, 2.0)}),
    GlitchModel("Extremely_Loud", "huge disturbances (saturations, large ground motion), SNR in thousands: a centred "
                "burst, an off-centre whole-band saturation, or seconds of saturated low-frequency motion",
                0.68, (20.0, 400.0), (0.3, 3.0), (1900.0, 7900.0), (200.0, 3000.0), _extremely_loud,
                {"form": (0, len(_EXTREMELY_LOUD_FORMS) - 1), "top_hz": (60.0, 2000.0), "flatness": (1.0, 3.0),
                 "tilt": (-1.5, -0.3)},
                dists={"time_jitter_s": Normal(0.05), "onset": Chance(0.5), "saturation_edge_s": Uniform(0.03, 0.5),
                       "saturation_width_s": Uniform(1.0, 3.0), "motion_jitter_s": Normal(0.3),
                       "motion_width_s": Uniform(2.5, 4.0), "motion_top_hz": Uniform(25.0, 45.0)}),
    GlitchModel("Fast_Scattering", "light scattered off a surface moving with 1-6 Hz ground motion (O3 Livingston, "
                "\"Crown\"): short arches at 10-60 Hz repeating every 0.2-0.5 s, as the O3 pool's 262 real ones show",
                0.2, (22.0, 45.0), (1.5, 4.0), (10.0, 60.0), (9.0, 20.0), _fast_scattering,
                {"motion_hz": (1.4, 2.6), "swell": (0.2, 0.6), "arch_s": (0.16, 0.28)},
                dists={"swell_hz": Uniform(0.15, 0.6), "arch_jitter_s": Normal(0.01),
                       "arch_length_ratio": Uniform(0.8, 1.2), "arch_level": Uniform(0.4, 1.0)}),
    GlitchModel("Helix", "recurring bursts of ~60 Hz harmonics (Livingston), each slightly delayed: twisted columns",
                0.0, (110.0, 160.0), (0.035, 0.3), (70.0, 850.0), (8.0, 14.0), _helix,
                {"fundamental_hz": (55.0, 66.0), "period_s": (0.15, 0.6), "harmonics": (5, 8),
                 "twist_s": (0.003, 0.008), "spot_s": (0.018, 0.03)},
                dists={"start_periods": Integers(0, 7), "burst_level": Uniform(0.6, 1.0),
                       "harmonic_level": Uniform(0.4, 0.8), "spot_length_ratio": Uniform(0.8, 1.2),
                       "period_ratio": Uniform(0.5, 1.5)}),
    GlitchModel("Koi_Fish", "a very loud blip whose body sits in a burst of excess noise: wide ragged low-frequency "
                "fins", 0.37, (45.0, 300.0), (0.8, 3.4), (320.0, 7900.0), (40.0, 250.0), _koi_fish,
                {"low_ratio": (2.0, 5.0), "high_ratio": (2.0, 6.0), "tip_order": (0.8, 1.2), "fin_s": (0.1, 0.3),
                 "fin_top_hz": (60.0, 150.0), "fin_fraction": (0.2, 0.45), "scale_fraction": (0.1, 0.3)},
                dists={"time_jitter_s": Normal(0.003), "fin_jitter_s": Normal(0.01), "o3_form": Chance(0.5),
                       "base_s": Uniform(0.04, 0.1), "base_top_hz": Uniform(50.0, 90.0),
                       "base_fraction": Uniform(0.6, 1.2), "scattering_beside": Chance(0.5),
                       "beside_snr": Uniform(5.0, 9.0)}),
    GlitchModel("Light_Modulation", "modulated light on the photodiodes (Hanford): thin broadband spikes, loud "
                "low-frequency blobs at their base", 1.0, (12.0, 180.0), (0.1, 5.0), (340.0, 7500.0), (20.0, 100.0),
                _light_modulation,
                {"spikes": (1, 5), "spike_low_hz": (40.0, 150.0), "spike_high_hz": (800.0, 3000.0),
                 "blobs": (1, 4), "blob_s": (0.04, 0.2), "blob_level": (0.4, 1.0)},
                dists={"time_jitter_s": Normal(0.005), "spike_time_s": Uniform(-1.8, 1.8),
                       "spike_low_ratio": Uniform(0.8, 1.25), "spike_level": Uniform(0.3, 1.0),
                       "blob_jitter_s": Normal(0.03), "blob_offset_s": Normal(0.15),
                       "blob_length_ratio": Uniform(0.5, 1.5), "blob_top_ratio": Uniform(1.5, 3.0),
                       "blob_level_ratio": Uniform(0.5, 1.5)}),
    GlitchModel("Low_Frequency_Burst", "ground motion or slow scattering: a smooth coherent dome below ~50 Hz",
                0.39, (10.0, 20.0), (0.3, 1.6), (10.0, 7900.0), (15.0, 80.0), _low_frequency_burst,
                {"top_ratio": (1.4, 2.2), "lumps": (0, 3)},
                dists={"time_jitter_s": Normal(0.03), "lump_time_s": Uniform(-1.8, 1.8),
                       "lump_frequency_ratio": Uniform(0.8, 1.2), "lump_length_ratio": Uniform(0.5, 1.0),
                       "lump_level": Uniform(0.3, 0.8)}),
    GlitchModel("Low_Frequency_Lines", "steady low-frequency tones (10-20 Hz) lasting seconds: thin, often faint",
                0.31, (10.5, 17.0), (2.5, 8.0), (1650.0, 7900.0), (2.5, 4.5), _low_frequency_lines,
                {"lines": (1, 3)},
                dists={"line_frequency_ratio": Uniform(1.2, 2.0), "end_jitter_s": Normal(0.3),
                       "wobble": Uniform(0.05, 0.3), "wobble_hz": Uniform(0.2, 1.0), "line_level": Uniform(0.3, 0.8)}),
    GlitchModel("No_Glitch", "the detector's own Gaussian noise at a time Omicron flagged at low SNR",
                0.62, (10.5, 80.0), (0.5, 4.0), (290.0, 7900.0), (7.5, 19.0), _no_glitch),
    GlitchModel("None_of_the_Above", "anything else: high combs, humps over a line, lobed lumps, patchy spots, "
                "forked tracks, spot columns over low lines", 0.6, (40.0, 220.0), (0.9, 30.0), (160.0, 7700.0),
                (17.0, 90.0), _none_of_the_above, {"kind": (0, len(_NONE_OF_THE_ABOVE_KINDS) - 1)},
                dists={
                    # comb of spikes
                    "comb_rate_hz": Uniform(5.0, 20.0), "comb_jitter_s": Normal(0.01),
                    "comb_low_hz": Uniform(400.0, 700.0), "comb_level": Uniform(0.4, 1.0),
                    # humps over a line
                    "hump_period_s": Uniform(0.15, 0.5), "hump_line_hz": Uniform(11.0, 16.0),
                    "hump_line_level": Uniform(0.1, 0.25), "hump_top_hz": Uniform(25.0, 45.0),
                    "hump_level": Uniform(0.4, 1.0),
                    # lobed lump
                    "lump_hz": Uniform(30.0, 70.0), "lobe_gap_s": Uniform(0.06, 0.12), "lobe_jitter_s": Normal(0.004),
                    "lobe_frequency_ratio": Uniform(0.9, 1.1), "lobe_tau_s": Uniform(0.015, 0.03),
                    "lobe_level": Uniform(0.15, 0.4),
                    # patchy spots
                    "spots": Integers(8, 24), "spot_log_offset": Uniform(-1.2, 1.2), "spot_time_s": Uniform(-1.5, 1.5),
                    "spot_cycles": Uniform(8.0, 30.0), "spot_level": Uniform(0.3, 0.8),
                    # forked track
                    "fork_hz": Uniform(50.0, 110.0), "fork_length_s": Uniform(0.06, 0.15),
                    # spot columns over low lines
                    "column_lines": Integers(1, 2), "column_line_hz": Uniform(10.0, 16.0),
                    "column_line_level": Uniform(0.15, 0.3), "column_spots": Integers(3, 5),
                    "column_spot_log_hz": Uniform(math.log(25.0), math.log(200.0)),
                    "column_period_s": Uniform(0.3, 0.8), "column_jitter_s": Normal(0.01),
                    "column_spot_ratio": Uniform(0.95, 1.05), "column_spot_cycles": Uniform(4.0, 8.0),
                    "column_spot_level": Uniform(0.3, 0.7)}),
    GlitchModel("Paired_Doves", "beam-splitter motion (Hanford, O2): a surface turning round gives a pair of tracks "
                "mirrored in frequency (one up, one down) meeting at one end, 20-150 Hz, recurring each ~1 s",
                1.0, (28.0, 55.0), (0.12, 0.35), (440.0, 6800.0), (6.0, 20.0), _paired_doves,
                {"spacing_s": (0.8, 1.4), "doves": (2, 5), "span": (1.6, 3.0), "lower_squash": (1.0, 2.0),
                 "bow": (0.5, 1.5)},
                dists={"converging": Chance(0.5), "spacing_jitter": Normal(0.05), "length_ratio": Uniform(0.7, 1.3),
                       "frequency_ratio": Uniform(0.9, 1.1), "span_ratio": Uniform(0.85, 1.15),
                       "bow_ratio": Uniform(0.8, 1.25), "dove_level": Uniform(0.6, 1.0),
                       "track_level": Uniform(0.7, 1.0)}),
    GlitchModel("Power_Line", "US mains coupling in for a fraction of a second; measured: the line sits at 60-61 Hz "
                "at Hanford and ~65 Hz at Livingston (golden subjects 60.4, 60.8 Hz H1, 65.3 Hz L1; Omicron "
                "peak_frequency sample H1 59.1-61.9 Hz, L1 64.6-65.5 Hz)", 0.64, (59.5, 61.5), (0.2, 1.0), (4.0, 40.0),
                (10.0, 18.0), _sine_gaussian_line,
                {"harmonic_chance": (0.0, 0.25), "beat_hz": (0.0, 20.0)}, peak_frequency_hz_l1=(64.5, 65.5),
                dists={"time_jitter_s": Normal(0.01), "beat_level": Uniform(0.3, 0.7),
                       "harmonic_level": Uniform(0.3, 0.7)}),
    GlitchModel("Repeating_Blips", "blips recurring at a steady 0.06-0.5 s interval",
                0.94, (100.0, 300.0), (0.03, 0.4), (540.0, 5200.0), (15.0, 60.0), _repeating_blips,
                {"period_s": (0.06, 0.5), "count": (2, 12), "low_ratio": (1.5, 3.5), "high_ratio": (1.0, 3.0)},
                dists={"frequency_ratio": Uniform(0.9, 1.1), "period_jitter": Normal(0.01),
                       "blip_level": Uniform(0.6, 1.0)}),
    GlitchModel("Scattered_Light", "light off a slowly swinging surface: fringe rate 2|v(t)|/lambda traces arches "
                "below ~100 Hz", 0.82, (14.0, 42.0), (1.5, 6.7), (410.0, 7000.0), (8.0, 16.0), _scattered_light,
                {"motion_hz": (0.12, 0.3), "harmonics": (1, 4), "harmonic_decay": (0.5, 0.9)},
                dists={"motion_phase": Normal(0.15), "o3_form": Chance(0.5), "swing_s": Uniform(1.0, 2.6),
                       "o3_fundamental_hz": Uniform(9.0, 22.0), "o3_harmonics": Integers(2, 4),
                       "o3_decay": Uniform(0.6, 0.95), "o3_loudness": Uniform(1.2, 2.5)}),
    GlitchModel("Scratchy", "a wiggly band of short mid-frequency wavelets at ~40-100 ms intervals, for seconds",
                0.14, (80.0, 220.0), (2.0, 8.0), (90.0, 7800.0), (3.5, 6.5), _scratchy,
                {"gap_s": (0.04, 0.1), "cycles": (0.5, 1.0)},
                dists={"start_jitter_s": Normal(0.1), "frequency_log_scatter": Normal(0.15),
                       "length_ratio": Uniform(0.7, 1.3), "level_scatter": LogNormal(0.35),
                       "gap_ratio": Uniform(0.6, 1.4)}),
    GlitchModel("Tomte", "a short triangular blip at lower frequency than Blip, of unknown origin",
                0.5, (30.0, 80.0), (0.1, 1.2), (1000.0, 4700.0), (12.0, 40.0), _blip_like,
                {"low_ratio": (1.5, 2.5), "high_ratio": (1.0, 2.0), "tip_order": (2.0, 3.5)},
                dists={"time_jitter_s": Normal(0.003)}),
    GlitchModel("Violin_Mode", "suspension fibre resonances rung up near 500 Hz, with their harmonics",
                0.65, (492.0, 512.0), (0.02, 0.12), (1470.0, 3900.0), (10.0, 30.0), _violin,
                {"bursts": (2, 8), "split_ratio": (1.1, 1.25), "harmonics": (0.4, 0.8), "ground_motion": (0, 1)},
                dists={"time_jitter_s": Normal(0.01), "burst_time_s": Uniform(-2.0, 2.0),
                       "burst_level": Uniform(0.4, 0.9), "burst_length_ratio": Uniform(0.7, 1.3),
                       "split_delay_s": Normal(0.005), "split_level": Uniform(0.6, 1.0),
                       "ground_width_s": Uniform(0.3, 1.5), "ground_top_hz": Uniform(20.0, 60.0),
                       "ground_time_s": Uniform(-1.5, 1.5), "ground_level": Uniform(3.0, 8.0)}),
    GlitchModel("Wandering_Line", "a thin line whose frequency wanders (Hanford): hooked 1-2 kHz segments, or fast "
                "arches at a few hundred Hz", 1.0, (350.0, 1950.0), (2.0, 8.0), (1400.0, 7600.0), (4.0, 9.0),
                _wandering_line,
                {"wander": (0.002, 0.008), "segments_per_s": (2.0, 6.0), "segment_s": (0.05, 0.3),
                 "hook": (0.15, 0.45), "arch_s": (0.045, 0.08), "arch_depth": (0.55, 0.75)},
                dists={"time_jitter_s": Normal(0.03), "extra_clusters": Integers(0, 1),
                       "cluster_time_s": Uniform(-1.7, 1.7), "arches": Integers(3, 6),
                       "arch_phase": Uniform(0.0, math.pi), "cluster_level": Uniform(0.5, 0.9),
                       "segment_length_ratio": Uniform(0.5, 1.5), "hook_ratio": Uniform(0.5, 1.5),
                       "segment_level": Uniform(0.5, 1.0)}),
    GlitchModel("Whistle", "radio-frequency beat notes sweeping through the audio band as V, W or arch tracks",
                0.0, (250.0, 1000.0), (0.06, 1.5), (1100.0, 7700.0), (7.5, 13.0), _whistle,
                {"shape": (0, len(_WHISTLE_SHAPES) - 1), "slope_hz_per_s": (4000.0, 60000.0),
                 "arch_period_s": (0.2, 0.8)},
                dists={"w_turn_ratio": Uniform(0.3, 0.5), "arch_top_ratio": Uniform(1.5, 3.0),
                       "arch_depth_ratio": Uniform(0.6, 0.85), "arch_half_length": Uniform(0.5, 1.0)}),
)

MODEL_BY_LABEL: dict[str, GlitchModel] = {m.label: m for m in MODELS}
