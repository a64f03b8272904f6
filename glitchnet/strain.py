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

import io
import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import signal

from .errors import GlitchNetError, first_line
from .files import clean_stale_temps, write_bytes_atomic
from .names import plain
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


class StrainError(GlitchNetError):
    """A strain file or GPS time that cannot be scanned; the message is one line, fit for a user."""


class NotStrainError(StrainError):
    """The file is not readable strain: not HDF5, or no strain time series in it."""


class GPSRangeError(StrainError):
    """The GPS time is outside the file or too close to its edges."""


class SampleRateError(StrainError):
    """The data are sampled too slowly to show frequencies up to 2048 Hz."""


StrainSource = str | os.PathLike | bytes | bytearray
"""A strain file's path, or its bytes (an upload)."""

MAX_STRAIN_SAMPLES = 4096 * 16384
"""Most samples a strain dataset may declare: a full GWOSC file (4096 s at 16 kHz). Only a scan's block is read."""

MIN_SPREAD = 1e-12
"""Smallest spread of a scanned block's samples (max - min), relative to their largest magnitude, read as data rather
than a constant: float64 round-off is about 1e-16, real strain varies by about its own size."""

MAX_SAMPLE_RATE_HZ = 65536.0
"""Highest sample rate accepted, Hz (GWOSC publishes 4 and 16 kHz)."""

MAX_CHUNK_BYTES = 16 * 2**20
"""Largest HDF5 chunk read, bytes: a compressed chunk is inflated whole, so this bounds a compression bomb."""

MAX_HDF5_OBJECTS = 10_000
"""Most links (groups and datasets) a strain file may hold: every one is checked before anything is read."""

PLAIN_FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32", 4: "szip", 5: "nbit", 6: "scaleoffset", 32000: "lzf"}
"""HDF5 filters a dataset may be stored with: HDF5's own and h5py's LZF. Any other would load a plugin."""

IFO_RE = re.compile(r"[A-Z][0-9]")
"""A detector prefix (H1, L1, V1, K1, G1); anything else read from a file is ignored."""


def _check_links(fh, label: str) -> None:
    """Refuse a file with any link but a hard one (an external link opens another file; a soft link names another
    place) or with more than ``MAX_HDF5_OBJECTS`` links, before any object is opened by name."""
    import h5py

    seen = [0]

    def visit(name: str, link) -> tuple[str, object] | None:
        seen[0] += 1
        if seen[0] > MAX_HDF5_OBJECTS or not isinstance(link, h5py.HardLink):
            return name, link
        return None

    found = fh.visititems_links(visit)
    if found is None:
        return
    name, link = found
    if seen[0] > MAX_HDF5_OBJECTS:
        raise NotStrainError(f"{label} holds more than {MAX_HDF5_OBJECTS:,} groups and datasets")
    kind = ("an external link (to another file)" if isinstance(link, h5py.ExternalLink)
            else "a soft link" if isinstance(link, h5py.SoftLink) else "a user-defined link")
    raise NotStrainError(f"{label}: {plain(name)} is {kind}; a strain file must hold its data in plain datasets")


def _check_plain(ds, label: str) -> None:
    """Refuse a dataset whose samples are not stored in this file (external files, a virtual dataset) or need a
    filter plugin, before any sample is read: only its creation properties are looked at."""
    from h5py import h5d

    if ds.is_virtual:
        raise NotStrainError(f"{label}: {plain(ds.name)} is a virtual dataset (its samples are in other files)")
    if ds.external:
        raise NotStrainError(f"{label}: {plain(ds.name)} stores its samples in an external file")
    plist = ds.id.get_create_plist()
    if plist.get_layout() not in (h5d.COMPACT, h5d.CONTIGUOUS, h5d.CHUNKED):
        raise NotStrainError(f"{label}: {plain(ds.name)} has a storage layout GlitchNet does not read")
    for i in range(plist.get_nfilters()):
        code = plist.get_filter(i)[0]
        if code not in PLAIN_FILTERS:
            raise NotStrainError(f"{label}: {plain(ds.name)} is stored with HDF5 filter {code}, which GlitchNet "
                                 f"does not read (only {', '.join(PLAIN_FILTERS.values())})")


def _ifo(name: str | None) -> str | None:
    """``name`` if it is a detector prefix, else None."""
    return name if name is not None and IFO_RE.fullmatch(name) else None


def _describe(source: StrainSource) -> str:
    return "the file" if isinstance(source, (bytes, bytearray)) else Path(source).name


def _strain_dataset(fh, channel: str | None, label: str):
    """The strain dataset of an open HDF5 file: ``channel`` if given, GWOSC's ``strain/Strain``, else the first 1-d
    dataset with a sample spacing (one whose name says STRAIN first)."""
    import h5py

    if channel is not None:
        obj = fh.get(channel)
        if not isinstance(obj, h5py.Dataset):
            names: list[str] = []

            def listed(name: str, o) -> bool | None:
                if isinstance(o, h5py.Dataset):
                    names.append(name)
                return True if len(names) >= 5 else None

            fh.visititems(listed)
            raise NotStrainError(f"{label} has no channel {plain(channel)}"
                                 + (f" (it holds {', '.join(plain(n) for n in names)})" if names else ""))
        return obj
    gwosc = fh.get("strain/Strain")
    if isinstance(gwosc, h5py.Dataset):
        return gwosc
    found: list[str] = []
    visited = [0]

    def visit(name: str, obj) -> bool | None:
        visited[0] += 1
        if visited[0] > MAX_HDF5_OBJECTS:
            return True
        if isinstance(obj, h5py.Dataset) and len(obj.shape) == 1 and obj.dtype.kind == "f" and "dx" in obj.attrs:
            found.append(name)
        return None

    fh.visititems(visit)
    if not found:
        raise NotStrainError(f"{label} holds no strain time series (no 1-d dataset with a sample spacing)")
    strain = [n for n in found if "STRAIN" in n.upper()]
    return fh[(strain or found)[0]]


def _scalar(attrs, *keys: str) -> float | None:
    for key in keys:
        if key in attrs:
            try:
                return float(np.asarray(attrs[key]).reshape(-1)[0])
            except (TypeError, ValueError, IndexError):
                return None
    return None


@contextmanager
def _open_strain(source: StrainSource, channel: str | None = None,
                 label: str | None = None) -> Iterator[tuple[Any, float, float, str | None]]:
    """Open a strain file and check it before reading any sample: yields (dataset, GPS start s, sample rate Hz, ifo).

    Every check reads only metadata: the file's links (hard links only), the dataset's storage (in this file, no
    filter plugin), declared length, type, chunk size, start time and spacing.
    ``label`` names the file in messages (default: its name, or "the file" for bytes).
    """
    try:
        import h5py
    except ImportError:
        raise StrainError("reading strain files needs gwpy and h5py: pip install 'glitchnet[strain]'") from None

    label = label or _describe(source)
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise NotStrainError("the strain file is empty")
        handle: Any = io.BytesIO(source)
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise NotStrainError(f"no such strain file: {path}")
        handle = path
    try:
        fh = h5py.File(handle, "r")
    except (OSError, ValueError):
        raise NotStrainError(f"{label} is not an HDF5 strain file") from None
    with fh:
        try:
            _check_links(fh, label)
            ds = _strain_dataset(fh, channel, label)
            _check_plain(ds, label)
            if len(ds.shape) != 1 or ds.dtype.kind != "f" or ds.dtype.itemsize > 8:
                raise NotStrainError(f"{label}: {plain(ds.name)} is not a 1-d series of real numbers "
                                     f"(shape {ds.shape}, type {ds.dtype})")
            n = int(ds.shape[0])
            if n == 0:
                raise NotStrainError(f"{label}: {plain(ds.name)} holds no samples")
            if n > MAX_STRAIN_SAMPLES:
                raise StrainError(f"{label} declares {n:,} samples, more than the {MAX_STRAIN_SAMPLES:,} of a full "
                                  "GWOSC file")
            if ds.chunks is not None:
                chunk_bytes = int(np.prod(ds.chunks)) * ds.dtype.itemsize
                if chunk_bytes > MAX_CHUNK_BYTES:
                    raise StrainError(f"{label} stores its strain in chunks of {chunk_bytes / 2**20:,.0f} MB, more "
                                      f"than the {MAX_CHUNK_BYTES // 2**20} MB read at once")
            gwosc = ds.name == "/strain/Strain"
            t0 = _scalar(ds.attrs, "Xstart") if gwosc else _scalar(ds.attrs, "x0", "epoch")
            dt = _scalar(ds.attrs, "Xspacing") if gwosc else _scalar(ds.attrs, "dx")
            if t0 is None or dt is None or not math.isfinite(t0) or not math.isfinite(dt) or dt <= 0:
                raise NotStrainError(f"{label}: {plain(ds.name)} has no valid start time and sample spacing")
            fs = 1.0 / dt
            if fs > MAX_SAMPLE_RATE_HZ:
                raise SampleRateError(f"{label} says it is sampled at {fs:,.0f} Hz; at most "
                                      f"{MAX_SAMPLE_RATE_HZ:,.0f} Hz is accepted")
            name = str(ds.attrs.get("channel", ds.attrs.get("name", ds.name.lstrip("/"))))
            if isinstance(name, bytes):
                name = name.decode(errors="replace")
            ifo = _ifo(name.split(":")[0] if ":" in name else None)
            if gwosc and ifo is None:
                detector = fh.get("meta/Detector")
                if isinstance(detector, h5py.Dataset) and detector.size == 1:
                    _check_plain(detector, label)
                    value = np.asarray(detector[()]).reshape(-1)[0]
                    ifo = _ifo((value.decode(errors="replace") if isinstance(value, bytes) else str(value))[:2])
            yield ds, t0, fs, ifo
        except (OSError, KeyError, RuntimeError) as exc:  # h5py's errors for damaged files
            raise NotStrainError(f"cannot read strain from {label}: {first_line(str(exc), 100)}") from None


def _read(ds, start: int, stop: int, label: str) -> np.ndarray:
    try:
        return np.asarray(ds[start:stop], dtype=np.float64)
    except (OSError, ValueError, RuntimeError) as exc:  # a damaged or undecodable chunk
        raise NotStrainError(f"cannot read strain from {label}: {first_line(str(exc), 100)}") from None


def read_strain(strain_file: StrainSource, channel: str | None = None) -> tuple[np.ndarray, float, float, str | None]:
    """Read a GWOSC strain file (gwpy's HDF5 layout or GWOSC's own), or its bytes, whole.

    Parameters
    ----------
    strain_file : path or bytes
        The file, or its contents.
    channel : str, optional
        Dataset to read; by default GWOSC's ``strain/Strain`` or the first strain-like series.

    Returns
    -------
    tuple of (numpy.ndarray, float, float, str or None)
        Strain samples, GPS start time (s), sample rate (Hz), and the detector prefix of the channel if named.

    Raises
    ------
    NotStrainError
        If the file is missing, not HDF5, or holds no strain series (or not ``channel``).
    StrainError
        If it declares more than ``MAX_STRAIN_SAMPLES`` samples or chunks over ``MAX_CHUNK_BYTES``.
    """
    with _open_strain(strain_file, channel) as (ds, t0, fs, ifo):
        return _read(ds, 0, ds.shape[0], _describe(strain_file)), t0, fs, ifo


def _ifo_from_name(path: Path) -> str | None:
    """Detector from a GWOSC file name such as ``H-H1_GWOSC_...``."""
    parts = path.name.split("-")
    return _ifo(parts[1][:2]) if len(parts) > 1 else None


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


def whitened_block(strain_file: StrainSource, gps: float, channel: str | None = None,
                   label: str | None = None) -> WhitenedBlock:
    """Read up to ``BLOCK_S`` seconds of ``strain_file`` centred on ``gps`` and whiten them, at ``SAMPLE_RATE_HZ``.

    Only that block is read from the file, whatever its length. ``label`` names the file in messages.

    Raises
    ------
    NotStrainError, GPSRangeError, SampleRateError, StrainError
        As :func:`scan`.
    """
    with _open_strain(strain_file, channel, label) as (ds, t0, fs, channel_ifo):
        if fs < MIN_SAMPLE_RATE_HZ:
            raise SampleRateError(f"the data are sampled at {fs:g} Hz; Gravity Spy's 10-2048 Hz views need at "
                                  f"least {MIN_SAMPLE_RATE_HZ:g} Hz")
        t1 = t0 + ds.shape[0] / fs
        gps = float(gps)
        if not math.isfinite(gps) or not t0 <= gps < t1:
            raise GPSRangeError(f"GPS time {gps} is outside the file, which covers {t0:.3f} to {t1:.3f}")
        half = min(BLOCK_S / 2, gps - t0, t1 - gps)
        if half < MIN_HALF_BLOCK_S:
            raise GPSRangeError(f"GPS time {gps} is {half:.2f} s from the edge of the file ({t0:.3f} to "
                                f"{t1:.3f}); a scan needs {MIN_HALF_BLOCK_S:g} s of data either side")
        centre = int(round((gps - t0) * fs))
        n_half = int(math.floor(half * fs)) - 1
        block = _read(ds, centre - n_half, centre + n_half, label or _describe(strain_file))
    if not np.isfinite(block).all():
        raise StrainError(f"the data within {half:.1f} s of GPS {gps} contain gaps (NaN or infinite samples)")
    if not block.any():
        raise StrainError(f"the data within {half:.1f} s of GPS {gps} are all zero")
    if float(np.ptp(block)) <= MIN_SPREAD * float(np.abs(block).max()):
        raise StrainError(f"the data within {half:.1f} s of GPS {gps} are constant ({block[0]:.6g}): there is no "
                          "noise to whiten")
    ratio = Fraction(SAMPLE_RATE_HZ / fs).limit_denominator(64)
    if ratio != 1:
        block = signal.resample_poly(block, ratio.numerator, ratio.denominator)
    rate = fs * ratio.numerator / ratio.denominator
    with np.errstate(all="ignore"):  # a spectrum that cannot be whitened is refused below, in one line
        fseries = whiten_estimated(block, rate, top_hz=fs / 2)
    if not np.isfinite(fseries).all():
        raise StrainError(f"the data within {half:.1f} s of GPS {gps} cannot be whitened (their spectrum is not "
                          "finite)")
    return WhitenedBlock(fseries, block.size / rate, rate,
                         n_half / fs + (gps - (t0 + centre / fs)), channel_ifo)


def _scan_arrays(strain_file: StrainSource, gps: float, ifo: str | None, channel: str | None = None,
                 filename: str | None = None) -> tuple[str, dict[float, np.ndarray]]:
    """The detector naming the views and the four views as RGBA arrays keyed by duration, s."""
    block = whitened_block(strain_file, gps, channel, filename)
    views = omega_views(block.fseries, block.duration_s, block.sample_rate_hz, block.centre_s, norm="omega",
                        edge_s=TAPER_S)
    if filename is None and not isinstance(strain_file, (bytes, bytearray)):
        filename = str(strain_file)
    return ifo or block.ifo or (_ifo_from_name(Path(filename)) if filename else None) or "H1", views


def scan(strain_file: StrainSource, gps: float, out_dir: str | os.PathLike | None = None,
         ifo: str | None = None, channel: str | None = None) -> dict[float, Image.Image]:
    """Make Gravity Spy's four views (0.5, 1, 2, 4 s) of GPS time ``gps`` in a GWOSC strain file.

    Parameters
    ----------
    strain_file : str, os.PathLike or bytes
        GWOSC strain file, HDF5 (gwpy's layout, e.g. dataset ``H1:GWOSC-4KHZ_R1_STRAIN``, or GWOSC's own), or its
        bytes (an upload).
    gps : float
        GPS time to centre the views on, s.
    out_dir : str or os.PathLike, optional
        If given, write ``{ifo}_{label}_spectrogram_{dur}.png`` there, ``label`` being the GPS time in
        milliseconds (digits only, so the files read as a Gravity Spy glitch id).
    ifo : str, optional
        Detector for the file names; default from the channel name or the file name, else ``"H1"``.
    channel : str, optional
        The dataset to scan; by default GWOSC's ``strain/Strain`` or the first strain-like series.

    Returns
    -------
    dict of float to PIL.Image.Image
        569x479 RGBA images keyed by view duration, s.

    Raises
    ------
    NotStrainError
        The file is not strain data (not HDF5, no strain series, no such ``channel``).
    GPSRangeError
        ``gps`` lies outside the file or within ``MIN_HALF_BLOCK_S`` of its edges.
    SampleRateError
        The file is sampled below 4096 Hz.
    StrainError
        The data around ``gps`` have gaps, are all zero or constant; the file declares more than ``MAX_STRAIN_SAMPLES``
        samples or stores them in chunks over ``MAX_CHUNK_BYTES`` (a compression bomb).
    """
    ifo, views = _scan_arrays(strain_file, gps, ifo, channel)
    if out_dir is not None:
        out = Path(out_dir).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        for d, a in views.items():
            path = out / view_file_name(ifo, gps, d)
            clean_stale_temps(path)  # a killed scan's half-written view
            write_bytes_atomic(path, encode_png(a))
    return {d: Image.fromarray(a, "RGBA") for d, a in views.items()}


def view_file_name(ifo: str, gps: float, duration_s: float) -> str:
    """The Gravity Spy file name of a scan's view: ``{ifo}_{gps in ms}_spectrogram_{duration}.png``."""
    return f"{ifo}_{int(round(float(gps) * 1000))}_spectrogram_{duration_s:.1f}.png"


def scan_bytes(data: bytes, gps: float, filename: str = "strain.hdf5") -> dict[str, Image.Image]:
    """:func:`scan` of an uploaded strain file's bytes: the four views keyed by their Gravity Spy file names.

    ``filename`` is the upload's own name (its detector prefix, as in ``H-H1_GWOSC_...``, names the views when the
    channel does not). The bytes are read in memory, with the same checks as a file: only the scanned block is read.

    Raises
    ------
    NotStrainError, GPSRangeError, SampleRateError, StrainError
        As :func:`scan`.
    """
    if not data:
        raise NotStrainError(f"{Path(filename).name} is empty")
    ifo, views = _scan_arrays(data, gps, None, filename=Path(filename).name)
    return {view_file_name(ifo, gps, d): Image.fromarray(a, "RGBA") for d, a in sorted(views.items())}
