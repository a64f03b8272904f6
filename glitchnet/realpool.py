"""The real labelled Gravity Spy pool: images grouped by glitch, decoded once, split into leave-glitch-out folds.

The pool is the real images a user may hold without the full dataset: Gravity Spy's golden subjects (full figures; a
GIF's frames are one glitch's views), training-set examples named ``{ifo}_{id}_spectrogram_{dur}.png``, the Scratchy
test fixtures, hobbyist-labelled Zooniverse subjects (labels unverified), 766 O3 Livingston glitches (4.0 s view,
named by GPS time) and the golden subjects of the O3 volunteer classes. Every image belongs to one glitch, and the
folds never put two images of one glitch, two near-identical images, or two O3 glitches less than
``TRAIN_GAP_S`` apart (trains of scattering come seconds apart), on both sides of a split.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .classes import ALIASES, CLASS_SETS, DURATIONS_S, ClassSet, get_class_set, map_label
from .data import IMAGE_SUFFIXES
from .images import MAX_FRAMES, ImageError, canonical_uint8, frame_count, rgb_to_energy
from .names import glitch_key, parse_name

SOURCES = {
    "golden": "Gravity Spy golden subjects (full figures; GIF frames = the 0.5/1/2/4 s views)",
    "gravityspy-examples": "O1 training-set glitches, four views each (full figures)",
    "scratchy-fixtures": "Scratchy test fixtures, four views each (full figures)",
    "scratchy-fixtures-latex": "one Scratchy fixture rendered with LaTeX fonts (a duplicate glitch)",
    "zooniverse-hobbyist-labels": "Zooniverse subjects labelled by a hobbyist (labels unverified, one view each)",
    "o3-scattering": "O3 Livingston glitches, 4.0 s view: Scattered_Light, Koi_Fish, Fast_Scattering (GPS-time names)",
    "golden-o3-only": "golden subjects of O3 volunteer classes (Crown = Fast_Scattering, LowFreqBlip = "
                      "Blip_Low_Frequency; the other three have no model class)",
}
"""The pool's folders under ``../shared/data/real`` and what each holds."""

VERIFIED_SOURCES = ("golden", "gravityspy-examples", "scratchy-fixtures", "scratchy-fixtures-latex", "o3-scattering",
                    "golden-o3-only")
"""Sources whose labels come from Gravity Spy or a published LIGO labelling; the headline figures use these."""

SOURCE_GROUPS: dict[str, tuple[str, ...]] = {
    "golden": ("golden",), "gravityspy-examples": ("gravityspy-examples",),
    "scratchy-fixtures": ("scratchy-fixtures", "scratchy-fixtures-latex"),
    "zooniverse-hobbyist-labels": ("zooniverse-hobbyist-labels",), "o3-scattering": ("o3-scattering",),
}
"""The sources a leave-source-out estimate holds out one at a time (the LaTeX fixture is a copy of a plain one, so
the two go together; the O3 golden subjects, three glitches of each O3 class, always train)."""

TRAIN_GAP_S = 60.0
"""O3 glitches closer in time than this are one group for the folds: scattering comes in trains seconds apart."""

HOBBYIST_CLASSES = {"blip": "Blip", "koifish": "Koi_Fish", "power": "Power_Line", "violin": "Violin_Mode",
                    "whistle": "Whistle"}
"""Folder names of the hobbyist set -> Gravity Spy class names."""

DUPLICATE_CORRELATION = 0.97
"""Two images whose 28x28 energy thumbnails correlate above this are taken as the same glitch (the same subject
re-encoded or re-hosted); measured on the pool: images of distinct glitch ids correlate at 0.945 at most, while
a hobbyist subject and the Gravity Spy example it copies reach 0.986."""


def default_real_root() -> Path:
    """``$GLITCHNET_REAL`` if set, else ``../shared/data/real`` beside the repository."""
    env = os.environ.get("GLITCHNET_REAL")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


@dataclass
class RealPool:
    """Decoded real images and the glitch each belongs to."""

    images: np.ndarray
    """(N, 224, 224, 3) canonical uint8 images."""
    table: pd.DataFrame
    """One row per image: path, frame, label, source, glitch (an id), group (glitches merged by near-duplicates)."""
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def labels(self) -> np.ndarray:
        """Label ids in the default class set (-1 for an image whose class it lacks)."""
        return self.labels_in(get_class_set("gravityspy-o1o2"))

    def labels_in(self, class_set: ClassSet) -> np.ndarray:
        """Label ids in ``class_set`` (``classes.map_label``), -1 where the image's class has no counterpart."""
        ids = {n: i for i, n in enumerate(class_set.names)}
        return np.array([ids.get(map_label(c, class_set), -1) for c in self.table["label"]], dtype=np.int64)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def scan_real_pool(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per image (a GIF frame is an image): path, frame, label, source, glitch, view (duration or "")."""
    root = Path(root) if root is not None else default_real_root()
    if not root.is_dir():
        raise FileNotFoundError(f"no real Gravity Spy pool at {root}")
    rows: list[dict] = []

    def add(path: Path, label: str, source: str, glitch: str, view: str = "") -> None:
        count = min(frame_count(path, MAX_FRAMES), MAX_FRAMES) if path.suffix.lower() == ".gif" else 1
        for frame in range(count):
            rows.append({"path": str(path), "frame": frame, "label": label, "source": source, "glitch": glitch,
                         "view": view or (str(DURATIONS_S[frame]) if count == len(DURATIONS_S) else "")})

    known = {n for s in CLASS_SETS.values() for n in s.names}
    golden = root / "golden"
    if golden.is_dir():
        for class_dir in sorted(p for p in golden.iterdir() if p.is_dir() and p.name in known):
            for f in _image_files(class_dir):
                add(f, class_dir.name, "golden", f"golden/{class_dir.name}/{f.stem}")
    examples = root / "gravityspy-examples"
    if examples.is_dir():
        for class_dir in sorted(p for p in examples.iterdir() if p.is_dir() and p.name in known):
            for f in _image_files(class_dir):
                _, gid, dur = parse_name(f.name)
                if gid:
                    add(f, class_dir.name, "gravityspy-examples", glitch_key(f.name), f"{dur}")
    for name in ("scratchy-fixtures", "scratchy-fixtures-latex"):
        folder = root / name
        if folder.is_dir():
            for f in _image_files(folder):
                _, gid, dur = parse_name(f.name)
                if gid:  # the LaTeX fixture is the same glitch id as one plain fixture: one glitch, one group
                    add(f, "Scratchy", name, glitch_key(f.name), f"{dur}")
    hobby = root / "zooniverse-hobbyist-labels"
    if hobby.is_dir():
        for class_dir in sorted(p for p in hobby.iterdir() if p.is_dir() and p.name in HOBBYIST_CLASSES):
            for f in _image_files(class_dir):
                add(f, HOBBYIST_CLASSES[class_dir.name], "zooniverse-hobbyist-labels", f"hobbyist/{f.stem}")
    o3 = root / "o3-scattering"
    if o3.is_dir():
        for class_dir in sorted(p for p in o3.iterdir() if p.is_dir() and p.name in known):
            for f in _image_files(class_dir):
                _, gid, dur = parse_name(f.name)  # named by GPS time: L1_1238507926.062500000_spectrogram_4.0
                if gid:
                    add(f, class_dir.name, "o3-scattering", glitch_key(f.name), f"{dur}")
    o3_golden = root / "golden-o3-only"
    if o3_golden.is_dir():
        for class_dir in sorted(p for p in o3_golden.iterdir() if p.is_dir() and ALIASES.get(p.name) in known):
            for f in _image_files(class_dir):
                add(f, ALIASES[class_dir.name], "golden-o3-only", f"golden-o3/{class_dir.name}/{f.stem}")
    return pd.DataFrame(rows, columns=["path", "frame", "label", "source", "glitch", "view"])


def gps_of(glitch: str) -> float | None:
    """The GPS time in an O3 glitch key (``L1_1238507926.0625``), or None for a glitch named otherwise."""
    ifo, _, rest = glitch.partition("_")
    try:
        return float(rest) if len(ifo) == 2 and rest[:1].isdigit() and "." in rest else None
    except ValueError:
        return None


def _thumbnail(img_uint8: np.ndarray) -> np.ndarray:
    energy = rgb_to_energy(img_uint8).astype(np.float32)
    small = energy.reshape(28, 8, 28, 8).mean((1, 3)).ravel()
    small -= small.mean()
    return small / (np.linalg.norm(small) + 1e-9)


def duplicate_groups(images: np.ndarray, glitch: np.ndarray, threshold: float = DUPLICATE_CORRELATION,
                     gap_s: float = TRAIN_GAP_S) -> np.ndarray:
    """A group id per image: glitches joined (union-find) whenever any two of their images nearly coincide, or their
    GPS times (``gps_of``) lie less than ``gap_s`` apart."""
    keys, inverse = np.unique(np.asarray(glitch), return_inverse=True)
    parent = np.arange(len(keys))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if len(images):
        thumbs = np.stack([_thumbnail(im) for im in images])
        corr = thumbs @ thumbs.T
        for a, b in zip(*np.nonzero(np.triu(corr > threshold, 1))):
            ra, rb = find(inverse[a]), find(inverse[b])
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    timed = sorted((t, i) for i, k in enumerate(keys) if (t := gps_of(str(k))) is not None)
    for (t0, a), (t1, b) in zip(timed, timed[1:]):
        if t1 - t0 < gap_s:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(i) for i in range(len(keys))])
    return roots[inverse]


def load_real_pool(root: str | os.PathLike | None = None, sources: tuple[str, ...] | None = None,
                   progress: Callable[[int, int], None] | None = None) -> RealPool:
    """Decode the pool (the same ``canonical_uint8`` path as training and prediction); unreadable images skipped."""
    table = scan_real_pool(root)
    if sources is not None:
        table = table[table["source"].isin(sources)].reset_index(drop=True)
    images, keep, skipped = [], [], []
    for i, row in enumerate(table.itertuples()):
        try:
            images.append(canonical_uint8(row.path, row.frame))
            keep.append(i)
        except ImageError as exc:
            skipped.append((f"{row.path}#{row.frame}", str(exc)))
        if progress:
            progress(i + 1, len(table))
    table = table.iloc[keep].reset_index(drop=True)
    arr = np.stack(images) if images else np.zeros((0, 224, 224, 3), np.uint8)
    table["group"] = duplicate_groups(arr, table["glitch"].to_numpy()) if len(table) else []
    return RealPool(arr, table, skipped)


def glitch_folds(pool: RealPool, k: int = 5, seed: int = 0, mask: np.ndarray | None = None) -> np.ndarray:
    """A fold number in [0, k) per image: stratified by class, grouped so one glitch (and its near-duplicates, and
    an O3 train) sits in one fold only (scikit-learn's ``StratifiedGroupKFold``). With ``mask``, only those images
    are dealt into folds; the rest get -1 (they train in every fold)."""
    from sklearn.model_selection import StratifiedGroupKFold

    mask = np.ones(len(pool.table), bool) if mask is None else np.asarray(mask, bool)
    idx = np.flatnonzero(mask)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    fold = np.full(len(pool.table), -1)
    labels = pool.table["label"].to_numpy()[idx]
    for i, (_, test) in enumerate(splitter.split(np.zeros(len(idx)), labels, pool.table["group"].to_numpy()[idx])):
        fold[idx[test]] = i
    return fold


def source_folds(pool: RealPool, groups: dict[str, tuple[str, ...]] | None = None) -> dict[str, np.ndarray]:
    """Leave-source-out: per held-out source (``SOURCE_GROUPS``), a boolean mask of its images; a model scored on a
    mask is trained on the rest. Near-duplicates across sources (a hobbyist copy of a Gravity Spy example) are held
    out with the source they are scored in, so no copy of a scored glitch trains its model (``leakage_mask``)."""
    groups = groups or SOURCE_GROUPS
    return {name: pool.table["source"].isin(sources).to_numpy() for name, sources in groups.items()
            if pool.table["source"].isin(sources).any()}


def leakage_mask(pool: RealPool, test: np.ndarray) -> np.ndarray:
    """The images that must not train a model scored on ``test``: ``test`` and every image in a group with it."""
    groups = set(pool.table["group"].to_numpy()[np.asarray(test, bool)])
    return pool.table["group"].isin(groups).to_numpy()
