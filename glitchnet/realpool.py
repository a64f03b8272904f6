"""The real labelled Gravity Spy pool: images grouped by glitch, decoded once, split into leave-glitch-out folds.

The pool is the real images a user may hold without the full dataset: Gravity Spy's golden subjects (full figures; a
GIF's frames are one glitch's views), training-set examples named ``{ifo}_{id}_spectrogram_{dur}.png``, the Scratchy
test fixtures and hobbyist-labelled Zooniverse subjects (labels unverified). Every image belongs to one glitch, and
the folds never put two images of one glitch, or two near-identical images, on both sides of a split.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .classes import CLASS_TO_INDEX, DURATIONS_S
from .data import IMAGE_SUFFIXES, NAME_RE
from .images import ImageError, canonical_uint8, n_frames, rgb_to_energy

SOURCES = {
    "golden": "Gravity Spy golden subjects (full figures; GIF frames = the 0.5/1/2/4 s views)",
    "gravityspy-examples": "O1 training-set glitches, four views each (full figures)",
    "scratchy-fixtures": "Scratchy test fixtures, four views each (full figures)",
    "scratchy-fixtures-latex": "one Scratchy fixture rendered with LaTeX fonts (a duplicate glitch)",
    "zooniverse-hobbyist-labels": "Zooniverse subjects labelled by a hobbyist (labels unverified, one view each)",
}
"""The pool's folders under ``../shared/data/real`` and what each holds."""

VERIFIED_SOURCES = ("golden", "gravityspy-examples", "scratchy-fixtures", "scratchy-fixtures-latex")
"""Sources whose labels come from Gravity Spy itself; the headline figures are computed on these."""

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
        return self.table["label"].map(CLASS_TO_INDEX).to_numpy()


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def scan_real_pool(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per image (a GIF frame is an image): path, frame, label, source, glitch, view (duration or "")."""
    root = Path(root) if root is not None else default_real_root()
    if not root.is_dir():
        raise FileNotFoundError(f"no real Gravity Spy pool at {root}")
    rows: list[dict] = []

    def add(path: Path, label: str, source: str, glitch: str, view: str = "") -> None:
        count = n_frames(path) if path.suffix.lower() == ".gif" else 1
        for frame in range(count):
            rows.append({"path": str(path), "frame": frame, "label": label, "source": source, "glitch": glitch,
                         "view": view or (str(DURATIONS_S[frame]) if count == len(DURATIONS_S) else "")})

    golden = root / "golden"
    if golden.is_dir():
        for class_dir in sorted(p for p in golden.iterdir() if p.is_dir() and p.name in CLASS_TO_INDEX):
            for f in _image_files(class_dir):
                add(f, class_dir.name, "golden", f"golden/{class_dir.name}/{f.stem}")
    examples = root / "gravityspy-examples"
    if examples.is_dir():
        for class_dir in sorted(p for p in examples.iterdir() if p.is_dir() and p.name in CLASS_TO_INDEX):
            for f in _image_files(class_dir):
                m = NAME_RE.match(f.stem)
                if m:
                    add(f, class_dir.name, "gravityspy-examples", f"{m['ifo']}_{m['gid']}", f"{float(m['dur'])}")
    for name in ("scratchy-fixtures", "scratchy-fixtures-latex"):
        folder = root / name
        if folder.is_dir():
            for f in _image_files(folder):
                m = NAME_RE.match(f.stem)
                if m:  # the LaTeX fixture is the same glitch id as one plain fixture: one glitch, one group
                    add(f, "Scratchy", name, f"{m['ifo']}_{m['gid']}", f"{float(m['dur'])}")
    hobby = root / "zooniverse-hobbyist-labels"
    if hobby.is_dir():
        for class_dir in sorted(p for p in hobby.iterdir() if p.is_dir() and p.name in HOBBYIST_CLASSES):
            for f in _image_files(class_dir):
                add(f, HOBBYIST_CLASSES[class_dir.name], "zooniverse-hobbyist-labels", f"hobbyist/{f.stem}")
    return pd.DataFrame(rows, columns=["path", "frame", "label", "source", "glitch", "view"])


def _thumbnail(img_uint8: np.ndarray) -> np.ndarray:
    energy = rgb_to_energy(img_uint8).astype(np.float32)
    small = energy.reshape(28, 8, 28, 8).mean((1, 3)).ravel()
    small -= small.mean()
    return small / (np.linalg.norm(small) + 1e-9)


def duplicate_groups(images: np.ndarray, glitch: np.ndarray, threshold: float = DUPLICATE_CORRELATION) -> np.ndarray:
    """A group id per image: glitches joined (union-find) whenever any two of their images nearly coincide."""
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


def glitch_folds(pool: RealPool, k: int = 5, seed: int = 0) -> np.ndarray:
    """A fold number in [0, k) per image: stratified by class, grouped so one glitch (and its near-duplicates) sits in
    one fold only (scikit-learn's ``StratifiedGroupKFold``)."""
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    fold = np.full(len(pool.table), -1)
    for i, (_, test) in enumerate(splitter.split(np.zeros(len(pool.table)), pool.labels, pool.table["group"])):
        fold[test] = i
    return fold
