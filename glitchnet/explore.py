"""What the Explore page shows, computed from a dataset's manifest and metadata: pure functions on DataFrames.

Each takes the manifest (``DatasetScan.manifest``: one row per image with ``label``, ``split``, ``ifo``,
``gravityspy_id``, ``duration``, ``path``) or the metadata CSV's rows and returns a new DataFrame or list; none
changes its input. The page collects the widget values, calls these and draws the result.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from .config import SPLITS
from .names import dataset_relative

METADATA_COLUMNS = frozenset({"peak_frequency", "duration", "snr", "label"})
"""The metadata CSV columns the trigger-parameter plots need."""


def present_classes(manifest: pd.DataFrame) -> list[str]:
    """The classes that have at least one image, in Gravity Spy's class order (alphabetical, as every class set and
    the Kaggle folders list them)."""
    return sorted(set(manifest["label"].dropna().astype(str)))


def present_splits(manifest: pd.DataFrame) -> list[str]:
    """The splits that have at least one image, in ``SPLITS``."""
    found = set(manifest["split"])
    return [s for s in SPLITS if s in found]


def present_detectors(manifest: pd.DataFrame) -> list[str]:
    """The detectors (``ifo``) named in the manifest, sorted; images without one are not counted."""
    return sorted(manifest["ifo"].dropna().unique())


def filter_manifest(manifest: pd.DataFrame, classes: Sequence[str] = (), splits: Sequence[str] = (),
                    ifos: Sequence[str] = ()) -> pd.DataFrame:
    """The rows whose class, split and detector are among those chosen; an empty choice keeps every value."""
    df = manifest
    if classes:
        df = df[df["label"].isin(classes)]
    if splits:
        df = df[df["split"].isin(splits)]
    if ifos:
        df = df[df["ifo"].isin(ifos)]
    return df


def glitches_per_class_split(manifest: pd.DataFrame) -> pd.DataFrame:
    """Distinct glitches (not images: a glitch has up to four views) per class and split.

    Columns ``label``, ``split``, ``glitches``; one row per (class, split) pair that has any.
    """
    return manifest.groupby(["label", "split"])["gravityspy_id"].nunique().rename("glitches").reset_index()


def view_durations(manifest: pd.DataFrame) -> list[float]:
    """The view durations (seconds) present, ascending; images without a known duration are not counted."""
    return sorted(manifest["duration"].dropna().unique())


def default_duration_index(durations: Sequence[float]) -> int:
    """Index of the view offered first: the 1 s view when present (Gravity Spy's main view), else the first."""
    return list(durations).index(1.0) if 1.0 in durations else 0


def view_rows(manifest: pd.DataFrame, duration: float) -> pd.DataFrame:
    """The images of the view ``duration`` (seconds); images without a known duration count as every view."""
    return manifest[(manifest["duration"] == duration) | manifest["duration"].isna()]


def class_rows(manifest: pd.DataFrame, label: str) -> pd.DataFrame:
    """The images of class ``label``."""
    return manifest[manifest["label"] == label]


def sample_rows(manifest: pd.DataFrame, label: str, duration: float | None, size: int, seed: int) -> pd.DataFrame:
    """Up to ``size`` images of class ``label`` drawn at random (repeatably by ``seed``) from the view ``duration``;
    images without a known duration count as every view. ``duration`` None draws from all views."""
    rows = class_rows(manifest, label)
    if duration is not None:
        rows = view_rows(rows, duration)
    return rows.sample(min(size, len(rows)), random_state=seed)


def glitch_ids_by_completeness(manifest: pd.DataFrame, label: str | None = None) -> list[str]:
    """Glitch ids with Gravity Spy file names (a known detector) of class ``label`` (every class when None), the
    glitches with the most views first, then by id."""
    rows = class_rows(manifest, label) if label else manifest
    views_per_id = rows.dropna(subset=["ifo"]).groupby("gravityspy_id").size()
    return sorted(views_per_id.index, key=lambda gid: (-views_per_id[gid], gid))


def glitch_views(manifest: pd.DataFrame, gravityspy_id: str, label: str | None = None) -> pd.DataFrame:
    """One glitch's images (of class ``label`` when given), shortest view first."""
    rows = class_rows(manifest, label) if label else manifest
    return rows[rows["gravityspy_id"] == gravityspy_id].sort_values("duration")


def has_trigger_metadata(metadata: pd.DataFrame | None) -> bool:
    """Whether a metadata CSV is there with the columns the trigger-parameter plots need."""
    return metadata is not None and METADATA_COLUMNS.issubset(metadata.columns)


def matching_metadata(metadata: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """The metadata rows of the glitches in ``manifest`` whose peak frequency, duration and SNR are all positive (the
    plots' axes are logarithmic)."""
    meta = metadata[metadata["gravityspy_id"].astype(str).isin(set(manifest["gravityspy_id"]))]
    return meta[(meta["peak_frequency"] > 0) & (meta["duration"] > 0) & (meta["snr"] > 0)]


def class_colours(classes: Sequence[str]) -> dict[str, str]:
    """A distinct colour (``#rrggbb``) per class: hues evenly spaced in the given order, neighbours told apart by
    lightness too. Pass every class of the dataset, not a filtered few, so that a class keeps its colour."""
    n = max(len(classes), 1)
    colours = {}
    for i, label in enumerate(classes):
        r, g, b = colorsys.hls_to_rgb(i / n, 0.45 if i % 2 else 0.68, 0.75)
        colours[label] = f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"
    return colours


def decade_ticks(values: Iterable[float]) -> bool:
    """Whether a log axis over these positive values spans two powers of ten or more, so that one labelled tick per
    decade reads well; over a narrower span such ticks would leave the axis without a label."""
    values = [float(v) for v in values if v > 0]
    if not values:
        return False
    return math.floor(math.log10(max(values))) - math.ceil(math.log10(min(values))) >= 1


def dataset_summary(manifest: pd.DataFrame) -> dict[str, int]:
    """How many images, distinct glitches and classes the manifest holds."""
    return {"images": len(manifest), "glitches": int(manifest["gravityspy_id"].nunique()),
            "classes": int(manifest["label"].nunique())}


def relative_paths(table: pd.DataFrame, root: str | Path) -> pd.DataFrame:
    """``table`` with its ``path`` column relative to the dataset folder ``root`` (``serving.dataset_relative``)."""
    return table.assign(path=table["path"].map(lambda p: dataset_relative(p, root)))
