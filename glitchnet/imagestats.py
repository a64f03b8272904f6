"""Per-image and per-class statistics of canonical spectrogram images, to compare real and simulated scans."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from .classes import CLASSES
from .images import ENERGY_MAX, frequency_of_row, rgb_to_energy

ENERGY_STEP = ENERGY_MAX / 255.0
"""One colour step of the viridis scale in normalized energy."""

SATURATED_ENERGY = ENERGY_MAX - ENERGY_STEP
"""Pixels at or above this energy count as saturated (the top two colours of the map)."""

BRIGHT_ENERGY = 10.0
"""Pixels above this energy count as bright."""

FLOOR_ENERGY = 5.0
"""Pixels above this energy count as signal for the frequency and time statistics; each weighs its excess over it."""

COLUMN_FRACTION = 0.1
"""A column belongs to the glitch's time extent when its excess energy reaches this fraction of the largest column's."""

LINE_HALF_WIDTH_ROWS = 3
"""``dominant_frequency_hz`` averages this many rows either side of the row holding the most excess energy."""

STATISTICS = ("saturated_fraction", "bright_fraction", "peak_energy", "frequency_centroid_hz", "dominant_frequency_hz",
              "frequency_extent_octaves", "time_extent_fraction", "median_energy")
"""The statistics ``image_statistics`` returns, in order."""


def image_statistics(img_uint8: np.ndarray) -> dict[str, float]:
    """Statistics of one canonical (H, W, 3) uint8 image, from its normalized energy (viridis inverted).

    - ``saturated_fraction``: fraction of pixels at or above ``SATURATED_ENERGY``;
    - ``bright_fraction``: fraction of pixels above ``BRIGHT_ENERGY``;
    - ``peak_energy``: 99.9th percentile of the energy;
    - ``frequency_centroid_hz``: centroid on the log2 frequency axis (rows run 2048 Hz at the top to 10 Hz at the
      bottom) of the pixels above ``FLOOR_ENERGY``, each weighted by its excess over the floor; NaN when none;
    - ``dominant_frequency_hz``: the same centroid over the row holding the most excess energy and the
      ``LINE_HALF_WIDTH_ROWS`` rows either side: where a line sits, undisturbed by its harmonics; NaN when none;
    - ``frequency_extent_octaves``: octaves between the weighted 5th and 95th frequency percentiles of those pixels;
      NaN when none;
    - ``time_extent_fraction``: fraction of columns whose summed excess over the floor reaches ``COLUMN_FRACTION`` of
      the largest column's; 0 when no pixel is above the floor;
    - ``median_energy``: median energy, the background level.
    """
    img = np.asarray(img_uint8)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {img.shape} {img.dtype}")
    energy = rgb_to_energy(img).astype(np.float64)
    height = energy.shape[0]
    excess = np.clip(energy - FLOOR_ENERGY, 0.0, None)
    row_weight = excess.sum(axis=1)
    total = float(row_weight.sum())
    if total > 0:
        log_f = np.log2(frequency_of_row(np.arange(height), height))
        keep = row_weight > 0
        centroid = float(2.0 ** np.average(log_f[keep], weights=row_weight[keep]))
        lo, hi = np.percentile(log_f[keep], [5.0, 95.0], weights=row_weight[keep], method="inverted_cdf")
        extent = float(hi - lo)
        top = int(np.argmax(row_weight))
        near = slice(max(0, top - LINE_HALF_WIDTH_ROWS), top + LINE_HALF_WIDTH_ROWS + 1)
        dominant = float(2.0 ** np.average(log_f[near], weights=row_weight[near]))
        column_weight = excess.sum(axis=0)
        time_extent = float(np.mean(column_weight >= COLUMN_FRACTION * column_weight.max()))
    else:
        centroid = dominant = extent = float("nan")
        time_extent = 0.0
    return {
        "saturated_fraction": float(np.mean(energy >= SATURATED_ENERGY - ENERGY_STEP / 2)),  # half a step for rounding
        "bright_fraction": float(np.mean(energy > BRIGHT_ENERGY)),
        "peak_energy": float(np.percentile(energy, 99.9)),
        "frequency_centroid_hz": centroid,
        "dominant_frequency_hz": dominant,
        "frequency_extent_octaves": extent,
        "time_extent_fraction": time_extent,
        "median_energy": float(np.median(energy)),
    }


def statistics_frame(images: Iterable[np.ndarray]) -> pd.DataFrame:
    """One row of ``image_statistics`` per image, columns in ``STATISTICS`` order."""
    return pd.DataFrame([image_statistics(im) for im in images], columns=list(STATISTICS))


def class_statistics(images: Iterable[np.ndarray], labels: Iterable[int | str]) -> pd.DataFrame:
    """Per class (index: class name, in ``CLASSES`` order, only classes present): ``count`` and, per statistic, its
    median ``<stat>`` and quartiles ``<stat>_q25``, ``<stat>_q75`` (NaN values ignored).

    ``labels`` are class indices into ``CLASSES`` or class names.
    """
    per_image = statistics_frame(images)
    names = [CLASSES[int(v)] if isinstance(v, (int, np.integer)) else str(v) for v in labels]
    if len(names) != len(per_image):
        raise ValueError(f"{len(per_image)} images but {len(names)} labels")
    per_image["label"] = names
    grouped = per_image.groupby("label", sort=False)
    out = pd.DataFrame({"count": grouped.size()})
    for stat in STATISTICS:
        col = grouped[stat]
        out[stat] = col.median()
        out[f"{stat}_q25"] = col.quantile(0.25)
        out[f"{stat}_q75"] = col.quantile(0.75)
    order = [c for c in CLASSES if c in out.index] + sorted(set(out.index) - set(CLASSES))
    return out.loc[order]


def compare_classes(real: pd.DataFrame, sim: pd.DataFrame) -> pd.DataFrame:
    """Join two ``class_statistics`` tables: per class and statistic the real and simulated medians, and ``<stat>_off``
    True where the simulated median falls outside the real interquartile range (False when either is missing)."""
    rows = []
    for label in [c for c in real.index if c in sim.index] + [c for c in sim.index if c not in real.index]:
        row: dict[str, object] = {"label": label,
                                  "real_count": int(real.loc[label, "count"]) if label in real.index else 0,
                                  "sim_count": int(sim.loc[label, "count"])}
        for stat in STATISTICS:
            r = real.loc[label, stat] if label in real.index else float("nan")
            s = sim.loc[label, stat]
            lo = real.loc[label, f"{stat}_q25"] if label in real.index else float("nan")
            hi = real.loc[label, f"{stat}_q75"] if label in real.index else float("nan")
            row[f"{stat}_real"] = float(r)
            row[f"{stat}_sim"] = float(s)
            row[f"{stat}_off"] = bool(np.isfinite([s, lo, hi]).all() and not lo <= s <= hi)
        rows.append(row)
    return pd.DataFrame(rows).set_index("label")

