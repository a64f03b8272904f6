"""Find a Gravity Spy dataset on disk, describe it as a manifest, cache its decoded images, serve them to torch."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from PIL import Image

from .classes import ALIASES, AUTO, CLASS_NAME_RE, CLASS_SETS, ClassSet, choose_class_set, get_class_set
from .config import parse_view
from .errors import DatasetError
from .files import atomic_path, clean_stale_temps, write_text_atomic
from .images import INPUT_SIZE, ImageError, canonical_uint8
from .names import glitch_key, parse_name
from .workers import process_pool

if TYPE_CHECKING:  # torch is imported where tensors are made: scanning a folder for the app does not need it
    import torch

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif"}
MANIFEST_COLUMNS = ["path", "label", "split", "gravityspy_id", "ifo", "duration"]
SIMULATED_MARKER = "SIMULATED.txt"
"""A file the simulator leaves at the root of every dataset it writes: its images are not real detector data."""
PREPROCESSING_VERSION = 2
"""Bump when canonical_uint8 changes behaviour: it is part of every cache key."""

_SHIPPED_NAMES = tuple(CLASS_SETS)
_SHIPPED_SETS = tuple(CLASS_SETS.values())
_SPLIT_ALIASES = {"train": "train", "training": "train", "validation": "validation", "val": "validation",
                  "valid": "validation", "test": "test", "testing": "test"}


@dataclass
class DatasetScan:
    """What was found under a dataset root."""

    root: Path
    layout: str
    """"kaggle", "class-folders" or "metadata"."""
    manifest: pd.DataFrame
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["path", "reason"]))
    metadata: pd.DataFrame | None = None
    simulated: bool = False
    """Made by GlitchNet's simulator (``SIMULATED_MARKER`` at the root), not real Gravity Spy images."""
    class_set: ClassSet = field(default_factory=lambda: get_class_set("gravityspy-o1o2"))
    """The taxonomy the manifest's labels belong to (``classes.choose_class_set``)."""
    class_note: str = ""
    """One line saying which class set was chosen and why, and which class folders it leaves out."""

    def labels(self, df: pd.DataFrame | None = None) -> np.ndarray:
        """Label ids (indices into ``class_set``) of ``df``'s rows (default: the whole manifest)."""
        names = self.class_set.names
        return (self.manifest if df is None else df)["label"].map({n: i for i, n in enumerate(names)}).to_numpy()

    def split(self, name: str) -> pd.DataFrame:
        return self.manifest[self.manifest["split"] == name].reset_index(drop=True)


def split_of_id(gravityspy_id: str, fractions: tuple[float, float] = (0.70, 0.15)) -> str:
    """Deterministic train/validation/test split from a glitch id, so the four views never straddle splits."""
    h = int.from_bytes(hashlib.sha1(gravityspy_id.encode()).digest()[:8], "big") / 2**64
    if h < fractions[0]:
        return "train"
    return "validation" if h < fractions[0] + fractions[1] else "test"


def _class_dirs(folder: Path) -> Iterator[Path]:
    for p in sorted(folder.iterdir()):
        if p.is_dir() and not p.name.startswith("."):
            yield p


def _unwrap(folder: Path) -> Path:
    """Kaggle doubles split folders (train/train/<Class>); look through a same-named single child."""
    inner = folder / folder.name
    return inner if inner.is_dir() else folder


def _find_metadata(root: Path) -> pd.DataFrame | None:
    for csv in sorted(root.glob("*.csv")):
        try:
            df = pd.read_csv(csv)
        except Exception:
            continue
        if {"gravityspy_id", "label"}.issubset(df.columns):
            df.attrs["source"] = str(csv)
            return df
    return None


def folder_label(class_dir: Path) -> str | None:
    """The class a class folder names (a volunteer workflow's name mapped, e.g. Crown -> Fast_Scattering), or None
    when its name cannot be a class name."""
    name = ALIASES.get(class_dir.name, class_dir.name)
    return name if CLASS_NAME_RE.match(name) else None


def _file_rows(class_dir: Path, split: str | None, skipped: list[tuple[str, str]], class_set: ClassSet) -> list[dict]:
    label = folder_label(class_dir)
    if label not in class_set:
        skipped.append((str(class_dir), f"unknown class folder {class_dir.name[:60]!r}" if label is None
                        else f"unknown class folder {label!r} (not a class of {class_set.name})"))
        return []
    rows = []
    files = sorted(p for p in class_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        skipped.append((str(class_dir), "empty class folder"))
    for f in files:
        if f.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append((str(f), "not an image file"))
            continue
        ifo, gid, dur = parse_name(f.name)
        if gid is None:
            gid, dur = f.stem, float("nan")
        rows.append({"path": str(f), "label": label, "split": split, "gravityspy_id": gid, "ifo": ifo,
                     "duration": dur})
    return rows


def _check_readable(path: str) -> str | None:
    """Cheap header check (no decode): None if it looks like an image, else the reason."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file"
        with Image.open(path) as im:
            im.size  # noqa: B018 - forces the header parse
        return None
    except Exception as exc:  # any reader failure means "skip this file", never a crash
        return f"unreadable image ({type(exc).__name__})"


def scan_dataset(root: str | os.PathLike, view: str | float = "1.0", check_images: bool = True,
                 classes: str | ClassSet = AUTO) -> DatasetScan:
    """Describe the dataset under ``root`` as a manifest.

    Layouts: Kaggle (``train/``, ``validation/``, ``test/``, each possibly doubled as ``train/train/``, holding
    ``<Class>/`` folders); class folders with no split (Zenodo ``H1L1/<Class>/`` or ``<Class>/`` directly), split
    deterministically by glitch id; in both, a metadata CSV at the root with ``gravityspy_id``, ``label`` and
    ``sample_type`` decides the split when present. ``view`` keeps one duration ("1.0") or all four ("all") as
    separate samples. ``classes`` picks the taxonomy (``classes.CLASS_SET_CHOICES``; ``auto``: the shipped set that
    covers the class folders, see ``classes.choose_class_set``). Class folders outside it, non-image files and
    unreadable images are listed in ``skipped``.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"no such folder: {root}")
    wanted = parse_view(view)
    skipped: list[tuple[str, str]] = []
    rows: list[dict] = []
    children = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    split_dirs = {_SPLIT_ALIASES[k]: v for k, v in children.items() if k in _SPLIT_ALIASES}
    if split_dirs:
        layout = "kaggle"
        folders = [(split, class_dir) for split, folder in sorted(split_dirs.items())
                   for class_dir in _class_dirs(_unwrap(folder))]
    else:
        layout = "class-folders"
        base = root

        def known(p: Path) -> bool:
            return any(folder_label(p) in s for s in _SHIPPED_SETS)

        if not any(known(p) for p in _class_dirs(root)):
            nested = [p for p in _class_dirs(root) if any(known(q) for q in _class_dirs(p))]
            if len(nested) == 1:
                base = nested[0]  # Zenodo: H1L1/<Class>/
        folders = [(None, class_dir) for class_dir in _class_dirs(base)]
    names = {folder_label(d) for _, d in folders if _has_files(d)} - {None}
    try:
        if names:
            class_set, class_note = choose_class_set(names, classes)
        else:
            class_set, class_note = (classes if isinstance(classes, ClassSet) else get_class_set(
                classes if classes in _SHIPPED_NAMES else "gravityspy-o1o2")), ""
    except ValueError as exc:
        raise DatasetError(f"{root}: {exc}") from None
    for split, class_dir in folders:
        rows += _file_rows(class_dir, split, skipped, class_set)
    if not rows:
        raise DatasetError(f"{root} holds no Gravity Spy images: expected train/validation/test folders or "
                           f"class folders named like Blip/")
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)

    metadata = _find_metadata(root)
    if metadata is not None and "sample_type" in metadata.columns:
        split_by_id = dict(zip(metadata["gravityspy_id"].astype(str),
                               metadata["sample_type"].astype(str).str.lower().map(_SPLIT_ALIASES)))
        from_csv = manifest["gravityspy_id"].map(split_by_id)
        manifest["split"] = from_csv.where(from_csv.notna(), manifest["split"])
        if layout == "class-folders":
            layout = "metadata"
    missing = manifest["split"].isna()
    manifest.loc[missing, "split"] = manifest.loc[missing, "gravityspy_id"].map(split_of_id)

    # One glitch id must sit in one split and one class; a duplicate id elsewhere is reported, not used twice.
    key = manifest["path"].map(glitch_key)
    first = manifest.groupby(key)[["split", "label"]].transform("first")
    clash = (manifest["split"] != first["split"]) | (manifest["label"] != first["label"])
    for p in manifest.loc[clash, "path"]:
        skipped.append((p, "duplicate glitch id already used in another split or class"))
    manifest = manifest[~clash]

    if wanted is not None:
        manifest = manifest[(manifest["duration"] == wanted) | manifest["duration"].isna()]
    if check_images:
        reasons = manifest["path"].map(_check_readable)
        for p, r in zip(manifest["path"][reasons.notna()], reasons[reasons.notna()]):
            skipped.append((p, r))
        manifest = manifest[reasons.isna()]
    manifest = manifest.sort_values(["split", "label", "path"]).reset_index(drop=True)
    return DatasetScan(root=root, layout=layout, manifest=manifest,
                       skipped=pd.DataFrame(skipped, columns=["path", "reason"]), metadata=metadata,
                       simulated=(root / SIMULATED_MARKER).is_file(), class_set=class_set, class_note=class_note)


def _has_files(folder: Path) -> bool:
    return any(p.is_file() and not p.name.startswith(".") for p in folder.iterdir())


# ------------------------------------------------------------------------------------------ cached tensor store


def default_cache_dir() -> Path:
    """Where decoded images are cached: ``$GLITCHNET_CACHE_DIR`` or ``~/.cache/glitchnet/tensors``."""
    env = os.environ.get("GLITCHNET_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "glitchnet" / "tensors"


def cache_key(paths: list[str], size: int = INPUT_SIZE) -> str:
    """Key of a cache: every file's path, size and modification time, plus the preprocessing settings."""
    h = hashlib.sha256(f"glitchnet-pre-v{PREPROCESSING_VERSION}-size{size}".encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def _decode(path: str, size: int) -> tuple[np.ndarray | None, str | None]:
    try:
        return canonical_uint8(path, size=size), None
    except ImageError as exc:
        return None, str(exc)
    except Exception as exc:  # a file that breaks the decoder is skipped, never fatal
        return None, f"unreadable image ({type(exc).__name__})"


def _decode_chunk(args: tuple[list[str], int]) -> list[tuple[np.ndarray | None, str | None]]:
    paths, size = args
    return [_decode(p, size) for p in paths]


@dataclass
class CachedImages:
    """Decoded, canonical uint8 images (N, H, W, 3), memory-mapped from the cache, and which paths failed."""

    images: np.ndarray
    paths: list[str]
    ok: np.ndarray
    """Boolean mask: False where the file could not be decoded (its image is all zeros)."""
    errors: dict[str, str]


def load_cached(paths: list[str], cache_dir: str | os.PathLike | None = None, size: int = INPUT_SIZE,
                workers: int = 0, progress: Callable[[int, int], None] | None = None) -> CachedImages:
    """Decode every image once into an on-disk uint8 cache and memory-map it; later calls only read.

    The cache file is named by ``cache_key``: a changed, added or removed file, or another preprocessing setting,
    gives another key and so a fresh decode. The file is written to a temp name and renamed when complete.
    """
    paths = [str(p) for p in paths]
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = cache_key(paths, size)
    data_file, meta_file = cache_dir / f"{key}.u8", cache_dir / f"{key}.json"
    shape = (len(paths), size, size, 3)
    if not (data_file.is_file() and meta_file.is_file()):
        _build_cache(paths, size, key, data_file, meta_file, workers, progress)
    elif progress:
        progress(len(paths), len(paths))
    errors = json.loads(meta_file.read_text())["errors"]
    images = np.memmap(data_file, dtype=np.uint8, mode="r", shape=shape) if paths else np.zeros(shape, np.uint8)
    ok = np.array([p not in errors for p in paths], dtype=bool)
    return CachedImages(images, paths, ok, errors)


def _reserve(path: Path, n_bytes: int) -> None:
    """Allocate ``path``'s disk space before it is memory-mapped: a page of a sparse map that finds the disk full
    kills the process with SIGBUS, while ``posix_fallocate`` raises ``OSError`` (ENOSPC) at once."""
    if not hasattr(os, "posix_fallocate"):  # macOS and Windows: the map is written as it is
        return
    with open(path, "rb+") as fh:
        try:
            os.posix_fallocate(fh.fileno(), 0, n_bytes)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system that cannot reserve: map as is
                raise


def _build_cache(paths: list[str], size: int, key: str, data_file: Path, meta_file: Path, workers: int,
                 progress: Callable[[int, int], None] | None) -> None:
    """Decode ``paths`` into ``data_file`` (written atomically) and record the failures in ``meta_file``."""
    clean_stale_temps(data_file)  # a killed build's half-written cache
    errors: dict[str, str] = {}
    with atomic_path(data_file) as tmp:
        shape = (len(paths), size, size, 3)
        if paths:
            _reserve(tmp, int(np.prod(shape)))
        out = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=shape) if paths else np.zeros(shape, np.uint8)
        chunk = 64
        jobs = [(paths[i:i + chunk], size) for i in range(0, len(paths), chunk)]
        done = 0
        if workers and workers > 1 and len(jobs) > 1:
            with process_pool(workers) as pool:
                for res in pool.map(_decode_chunk, jobs):
                    done = _store(out, res, done, errors, paths, progress)
        else:
            for job in jobs:
                done = _store(out, _decode_chunk(job), done, errors, paths, progress)
        if paths:
            out.flush()
        del out
    write_text_atomic(meta_file, json.dumps({"key": key, "count": len(paths), "size": size, "errors": errors}))


def _store(out: np.ndarray, results: list, done: int, errors: dict[str, str], paths: list[str],
           progress: Callable[[int, int], None] | None) -> int:
    for img, err in results:
        if img is None:
            errors[paths[done]] = err or "unreadable"
        else:
            out[done] = img
        done += 1
    if progress:
        progress(done, len(paths))
    return done


def load_split(scan: DatasetScan, split: str, cache_dir: str | None, workers: int,
               progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decoded uint8 images (through the cache), label ids and paths of one split; undecodable files dropped."""
    df = scan.split(split)
    cached = load_cached(df["path"].tolist(), cache_dir=cache_dir, workers=workers, progress=progress)
    keep = np.flatnonzero(cached.ok)
    labels = scan.labels(df)[keep]
    images = cached.images if len(keep) == len(df) else cached.images[keep]
    return images, labels, [cached.paths[i] for i in keep]


# ------------------------------------------------------------------------------------------------ torch dataset


class GlitchImages:
    """Canonical uint8 images + labels -> (uint8 HWC tensor, label), augmented per sample on the fly.

    A map-style dataset for ``torch.utils.data.DataLoader``, which needs only ``__len__`` and ``__getitem__``: without
    torch's base class, scanning a folder (the app's first page) does not import torch.

    Samples stay uint8 until the whole batch is normalized at once in the training loop (``images.normalize``):
    a quarter of the bytes through the loader, one vectorized conversion per batch, channels_last for free.

    Indexed by ``(index, epoch)`` pairs (see ``EpochSampler``) so that each sample's augmentation is drawn from
    a generator seeded by (seed, epoch, index): identical with any number of workers, and after a resume.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, label_names: list[str],
                 augmenter: Callable[[np.ndarray, str, np.random.Generator], np.ndarray] | None = None,
                 seed: int = 0) -> None:
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.label_names = label_names
        self.augmenter = augmenter
        self.seed = seed

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        import torch

        index, epoch = item if isinstance(item, tuple) else (item, 0)
        img = np.asarray(self.images[index])
        label = int(self.labels[index])
        if self.augmenter is not None:
            rng = np.random.default_rng([self.seed, epoch, index])
            img = self.augmenter(img, self.label_names[label], rng)
        return torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)), label


class EpochSampler:
    """Yields ``(index, epoch)``; shuffles with a generator seeded by (seed, epoch), so order is reproducible.

    It behaves as torch's ``DistributedSampler`` (``drop_last=False``) does: with ``num_replicas`` ranks, each epoch's
    one permutation (padded by repeating its start to a multiple of ``num_replicas``) is dealt out, rank ``r`` taking
    every ``num_replicas``-th index from ``r``. So the ranks' step-k batches together are exactly step k's batch of
    one process with ``num_replicas`` times the batch size, and one rank yields what the single-process sampler
    always did. No torch base class (``DataLoader`` needs only ``__iter__`` and ``__len__``): scanning a folder for the
    app's first page does not import torch.
    """

    def __init__(self, n: int, shuffle: bool, seed: int = 0, num_replicas: int = 1, rank: int = 0) -> None:
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in a world of {num_replicas}")
        self.n, self.shuffle, self.seed, self.epoch = n, shuffle, seed, 0
        self.num_replicas, self.rank = num_replicas, rank
        self.num_samples = -(-n // num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            import torch

            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        if self.total_size > len(order) and order:
            order += (order * (self.total_size // len(order) + 1))[:self.total_size - len(order)]
        return ((i, self.epoch) for i in order[self.rank:self.total_size:self.num_replicas])
