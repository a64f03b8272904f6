"""Gravity Spy views of real detector strain: read a GWOSC file, whiten, and scan with :mod:`glitchnet.omega`.

A scan takes up to 64 s of data centred on the GPS time (Gravity Spy's block; less when the file ends sooner, but
at least ``MIN_HALF_BLOCK_S`` either side), brings it to the scan's 8192 Hz, whitens it by a median-averaged
Welch ASD, and hands the whitened spectrum to :func:`glitchnet.omega.render.omega_views`, the same Q scan and
rendering the simulated images come from; tile energies are normalized by Omega's outlier-rejecting mean.

Sample rate: Gravity Spy resamples to 16384 Hz so that the Q-tiling can reach 2048 Hz (its lowest-Q rows need
up to ~2.6 kHz); 8192 Hz is enough for that and is what the simulator uses too. GWOSC's 4 kHz files (Nyquist
2048 Hz, anti-alias filtered from ~1.7 kHz) are upsampled, and the whitened spectrum above their Nyquist frequency
is set to zero rather than amplified: the top rows of the image then hold whatever content the file has, which
is nothing above 2048 Hz. Files sampled below 4096 Hz cannot reach 2048 Hz at all and are refused.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import signal

from .omega.png import encode_png
from .omega.qtransform import SAMPLE_RATE_HZ
from .omega.render import omega_views
from .omega.whiten import TAPER_S, whiten_estimated

BLOCK_S = 64.0
"""Longest stretch of data scanned, s (Gravity Spy's block)."""

MIN_HALF_BLOCK_S = 4.0
"""Data needed either side of the GPS time, s: half the 4 s view plus 2 s for whitening and filter tails."""

MIN_SAMPLE_RATE_HZ = 4096.0
"""Lowest sample rate whose Nyquist frequency reaches the top of Gravity Spy's 10-2048 Hz axis, Hz."""


class StrainError(ValueError):
    """A strain file or GPS time that cannot be scanned; the message is one line, fit for a user."""


class NotStrainError(StrainError):
    """The file is not readable strain: not HDF5, or no strain time series in it."""


class GPSRangeError(StrainError):
    """The GPS time is outside the file or too close to its edges."""


class SampleRateError(StrainError):
    """The data are sampled too slowly to show frequencies up to 2048 Hz."""


def _find_channel(path: Path) -> tuple[str | None, str]:
    """The gwpy dataset name (``None`` for a GWOSC-format file) and gwpy format of the strain in ``path``."""
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            if isinstance(fh.get("strain/Strain"), h5py.Dataset):
                return None, "hdf5.gwosc"
            names: list[str] = []
            fh.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset)
                          and obj.ndim == 1 and obj.dtype.kind == "f" and "dx" in obj.attrs else None)
    except OSError:
        raise NotStrainError(f"{path.name} is not an HDF5 strain file") from None
    if not names:
        raise NotStrainError(f"{path.name} holds no strain time series (no 1-d dataset with a sample spacing)")
    strain = [n for n in names if "STRAIN" in n.upper()]
    return (strain or names)[0], "hdf5"


def read_strain(strain_file: str | os.PathLike) -> tuple[np.ndarray, float, float, str | None]:
    """Read a GWOSC strain file (gwpy HDF5 or GWOSC's own HDF5 layout) with gwpy.

    Returns
    -------
    tuple of (numpy.ndarray, float, float, str or None)
        Strain samples, GPS start time (s), sample rate (Hz), and the detector prefix of the channel if named.

    Raises
    ------
    NotStrainError
        If the file is missing, not HDF5, or holds no strain series.
    StrainError
        If gwpy or h5py, the optional ``strain`` dependencies, are not installed.
    """
    try:
        import h5py  # noqa: F401  (read by _find_channel)
        from gwpy.timeseries import TimeSeries
    except ImportError:
        raise StrainError("reading strain files needs gwpy and h5py: pip install 'glitchnet[strain]'") from None

    path = Path(strain_file).expanduser()
    if not path.is_file():
        raise NotStrainError(f"no such strain file: {path}")
    channel, fmt = _find_channel(path)
    try:
        ts = TimeSeries.read(path, channel, format=fmt) if channel else TimeSeries.read(path, format=fmt)
    except Exception as exc:  # gwpy raises many types for malformed files
        raise NotStrainError(f"cannot read strain from {path.name}: {str(exc).splitlines()[0][:100]}") from None
    name = str(ts.name or channel or "")
    ifo = name.split(":")[0] if ":" in name else None
    return np.asarray(ts.value, dtype=np.float64), float(ts.t0.value), float(ts.sample_rate.value), ifo


def _ifo_from_name(path: Path) -> str | None:
    """Detector from a GWOSC file name such as ``H-H1_GWOSC_...``."""
    parts = path.name.split("-")
    if len(parts) > 1 and len(parts[1]) >= 2 and parts[1][1].isdigit():
        return parts[1][:2]
    return None


@dataclass(frozen=True)
class WhitenedBlock:
    """Whitened data around a GPS time, ready for the Q scan."""

    fseries: np.ndarray
    """One-sided FFT of the tapered block divided by its ASD; zero above the file's Nyquist frequency."""
    duration_s: float
    sample_rate_hz: float
    centre_s: float
    """The GPS time, s from the block start."""
    ifo: str | None
    """Detector named by the file's channel, if any."""


def whitened_block(strain_file: str | os.PathLike, gps: float) -> WhitenedBlock:
    """Read ``strain_file`` and whiten up to ``BLOCK_S`` seconds of it centred on ``gps``, at ``SAMPLE_RATE_HZ``.

    Raises
    ------
    NotStrainError, GPSRangeError, SampleRateError, StrainError
        As :func:`scan`.
    """
    data, t0, fs, channel_ifo = read_strain(strain_file)
    if fs < MIN_SAMPLE_RATE_HZ:
        raise SampleRateError(f"the data are sampled at {fs:g} Hz; Gravity Spy's 10-2048 Hz views need at least "
                              f"{MIN_SAMPLE_RATE_HZ:g} Hz")
    t1 = t0 + data.size / fs
    gps = float(gps)
    if not math.isfinite(gps) or not t0 <= gps < t1:
        raise GPSRangeError(f"GPS time {gps} is outside the file, which covers {t0:.3f} to {t1:.3f}")
    half = min(BLOCK_S / 2, gps - t0, t1 - gps)
    if half < MIN_HALF_BLOCK_S:
        raise GPSRangeError(f"GPS time {gps} is {half:.2f} s from the edge of the file ({t0:.3f} to {t1:.3f}); "
                            f"a scan needs {MIN_HALF_BLOCK_S:g} s of data either side")
    centre = int(round((gps - t0) * fs))
    n_half = int(math.floor(half * fs)) - 1
    block = data[centre - n_half:centre + n_half]
    if not np.isfinite(block).all():
        raise StrainError(f"the data within {half:.1f} s of GPS {gps} contain gaps (NaN or infinite samples)")
    ratio = Fraction(SAMPLE_RATE_HZ / fs).limit_denominator(64)
    if ratio != 1:
        block = signal.resample_poly(block, ratio.numerator, ratio.denominator)
    rate = fs * ratio.numerator / ratio.denominator
    return WhitenedBlock(whiten_estimated(block, rate, top_hz=fs / 2), block.size / rate, rate,
                         n_half / fs + (gps - (t0 + centre / fs)), channel_ifo)


def _scan_arrays(strain_file: str | os.PathLike, gps: float, ifo: str | None) -> tuple[str, dict[float, np.ndarray]]:
    """The detector naming the views and the four views as RGBA arrays keyed by duration, s."""
    block = whitened_block(strain_file, gps)
    views = omega_views(block.fseries, block.duration_s, block.sample_rate_hz, block.centre_s, norm="omega",
                        edge_s=TAPER_S)
    return ifo or block.ifo or _ifo_from_name(Path(strain_file)) or "H1", views


def scan(strain_file: str | os.PathLike, gps: float, out_dir: str | os.PathLike | None = None,
         ifo: str | None = None) -> dict[float, Image.Image]:
    """Make Gravity Spy's four views (0.5, 1, 2, 4 s) of GPS time ``gps`` in a GWOSC strain file.

    Parameters
    ----------
    strain_file : str or os.PathLike
        GWOSC strain file, HDF5 (gwpy's layout, e.g. dataset ``H1:GWOSC-4KHZ_R1_STRAIN``, or GWOSC's own).
    gps : float
        GPS time to centre the views on, s.
    out_dir : str or os.PathLike, optional
        If given, write ``{ifo}_{label}_spectrogram_{dur}.png`` there, ``label`` being the GPS time in
        milliseconds (digits only, so the files read as a Gravity Spy glitch id).
    ifo : str, optional
        Detector for the file names; default from the channel name or the file name, else ``"H1"``.

    Returns
    -------
    dict of float to PIL.Image.Image
        569x479 RGBA images keyed by view duration, s.

    Raises
    ------
    NotStrainError
        The file is not strain data.
    GPSRangeError
        ``gps`` lies outside the file or within ``MIN_HALF_BLOCK_S`` of its edges.
    SampleRateError
        The file is sampled below 4096 Hz.
    StrainError
        The data around ``gps`` have gaps.
    """
    ifo, views = _scan_arrays(strain_file, gps, ifo)
    if out_dir is not None:
        out = Path(out_dir).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        for d, a in views.items():
            path = out / view_file_name(ifo, gps, d)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(encode_png(a))
            os.replace(tmp, path)
    return {d: Image.fromarray(a, "RGBA") for d, a in views.items()}


def view_file_name(ifo: str, gps: float, duration_s: float) -> str:
    """The Gravity Spy file name of a scan's view: ``{ifo}_{gps in ms}_spectrogram_{duration}.png``."""
    return f"{ifo}_{int(round(float(gps) * 1000))}_spectrogram_{duration_s:.1f}.png"


def scan_bytes(data: bytes, gps: float, filename: str = "strain.hdf5") -> dict[str, Image.Image]:
    """:func:`scan` of an uploaded strain file's bytes: the four views keyed by their Gravity Spy file names.

    ``filename`` is the upload's own name (its detector prefix, as in ``H-H1_GWOSC_...``, names the views when the
    channel does not). The bytes go through a private temporary file, since gwpy reads HDF5 from a path.

    Raises
    ------
    NotStrainError, GPSRangeError, SampleRateError, StrainError
        As :func:`scan`.
    """
    import tempfile

    if not data:
        raise NotStrainError(f"{Path(filename).name} is empty")
    name = Path(filename).name or "strain.hdf5"
    with tempfile.TemporaryDirectory(prefix="glitchnet-strain-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        ifo, views = _scan_arrays(path, gps, None)
    return {view_file_name(ifo, gps, d): Image.fromarray(a, "RGBA") for d, a in sorted(views.items())}
