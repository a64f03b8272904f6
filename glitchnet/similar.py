"""Glitches like this one: embeddings from any checkpoint, a cached exact-cosine index, its map and a label audit.

A view's embedding is the model's pooled features before its classifier (``GlitchNet.features``), L2-normalised. A
glitch's embedding combines its views by one rule, ``combine_views``: the normalised mean of its views' normalised
embeddings (a query of one image is a glitch of one view). Cosine similarity is then a dot product, and the search is
exact (numpy, a matrix product): a dataset of one observing run (tens of thousands of glitches) answers in
milliseconds. The index of a dataset is cached on disk per (checkpoint weights, dataset files), so a second start
reads it instead of running the model.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .checkpoint import Checkpoint
from .config import SIMILAR_K, SIMILAR_MAX_K
from .data import DatasetScan, cache_key, default_cache_dir, load_cached
from .errors import GlitchNetError, one_line
from .files import atomic_path, clean_stale_temps, write_text_atomic
from .glitches import Glitch, glitch_key
from .scores import normalise

LOG = logging.getLogger("glitchnet.similar")

INDEX_VERSION = 1
"""Bump when the embedding or the combining rule changes: it is part of every index's cache key."""
DEFAULT_K, MAX_K = SIMILAR_K, SIMILAR_MAX_K
"""Neighbours shown per query by default, and the most one query may ask for (``config``: the CLI reads them)."""
GPS_TOLERANCE_S = 0.5
"""A GPS time names the dataset's glitch whose event time lies nearest it, within this many seconds."""
AUDIT_NEIGHBOURS = 10
"""Neighbours each glitch is compared with in the label audit."""
MAP_MAX_GLITCHES = 5000
"""At most this many glitches (a seeded sample) are drawn on the map: t-SNE grows as N log N, and a map of more
points than pixels shows no more."""
MAP_PLACEMENT_NEIGHBOURS = 10
"""A new glitch is placed on the map at the similarity-weighted mean position of this many nearest glitches."""
QUERY_CHUNK = 1024
"""Queries scored at once: a (chunk, N) float32 similarity matrix, 4 MB per thousand glitches of the index."""
ONE_THREAD_FROM = 5_000
"""From this many vectors a few queries are scored on one BLAS thread: a matrix-vector product gains nothing from a
second thread and, on a busy machine, often waits a whole scheduler slice for it (100,000 vectors on two busy cores:
8 ms on two threads, 1.2 ms on one; ``benchmarks/bench_similar.py``)."""

ProgressFn = Callable[[str, int, int], None]
"""``progress(stage, done, total)``; stage is "decoding" (images into the decoded-image cache) or "embedding"."""


class SimilarityError(GlitchNetError):
    """A similarity query or index that cannot be answered; the message is one line, fit for a user."""


# ------------------------------------------------------------------------------------------------- embeddings


def combine_views(vectors: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """The one rule for a glitch's embedding from its views' (V, D): the normalised mean of the normalised views.

    With ``groups`` (a glitch number 0..G-1 per row), the (G, D) embeddings of every glitch at once; without, the
    (D,) embedding of one glitch.
    """
    v = normalise(vectors)
    if groups is None:
        return normalise(v.mean(0)) if len(v) else np.zeros(v.shape[-1:], np.float32)
    groups = np.asarray(groups, dtype=np.int64)
    sums = np.zeros((int(groups.max()) + 1 if len(groups) else 0, v.shape[1]), np.float64)
    np.add.at(sums, groups, v)
    return normalise(sums)


def embed_images(model: Any, images_uint8: np.ndarray, batch_size: int = 64,
                 progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """L2-normalised embeddings (N, D) of canonical uint8 images (N, H, W, 3), in batches, through the one input
    path. ``model`` is an ``engine.Engine`` (a Predictor or the ONNX Runtime engine: its ``embedding_features``) or
    a torch GlitchNet in eval mode (``model.forward_uint8``; a shared Predictor's model is)."""
    n = len(images_uint8)
    out: np.ndarray | None = None
    for start in range(0, n, batch_size):
        f = _features(model, images_uint8[start:start + batch_size])
        if out is None:
            out = np.empty((n, f.shape[1]), np.float32)
        out[start:start + len(f)] = f
        if progress:
            progress(min(start + batch_size, n), n)
    return normalise(out) if out is not None else np.zeros((0, getattr(model, "width", 0)), np.float32)


def _features(model: Any, images_uint8: np.ndarray) -> np.ndarray:
    if hasattr(model, "embedding_features"):
        return np.asarray(model.embedding_features(images_uint8), dtype=np.float32)
    import torch

    from .model import forward_uint8

    with torch.no_grad():
        return forward_uint8(model, images_uint8, features=True).float().cpu().numpy()


def glitch_vector(model: Any, glitch: Glitch) -> np.ndarray:
    """A classified or merely decoded glitch's embedding (``combine_views`` over its readable views)."""
    readable = glitch.readable
    if not readable:
        raise SimilarityError(f"{glitch.key}: no readable view to compare")
    return combine_views(embed_images(model, np.stack([v.image for v in readable])))


def weights_digest(checkpoint: Checkpoint) -> str:
    """Identifies a checkpoint's model by what it computes: architecture, width, classes and every weight (an ONNX
    export records its checkpoint's, ``engine.OnnxEngine.weights_digest``)."""
    import torch

    h = hashlib.sha256(f"{checkpoint.arch}\0{checkpoint.width}\0{','.join(checkpoint.classes)}".encode())
    for name in sorted(checkpoint.state_dict):
        h.update(name.encode())
        h.update(checkpoint.state_dict[name].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()[:24]


def index_key(checkpoint: Checkpoint, paths: Sequence[str], digest: str | None = None) -> str:
    """The cache key of a dataset's index: the model (``weights_digest``, or ``digest`` when the caller knows it) and
    the dataset's files (``data.cache_key``: every path, size and modification time, and the preprocessing
    version)."""
    text = f"similar-v{INDEX_VERSION}\0{digest or weights_digest(checkpoint)}\0{cache_key(list(paths))}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def default_index_dir() -> Path:
    """Where indexes are cached: ``embeddings/`` in the decoded-image cache folder (``data.default_cache_dir``)."""
    return default_cache_dir() / "embeddings"


# ------------------------------------------------------------------------------------------------- the search


def nearest(vectors: np.ndarray, queries: np.ndarray, k: int,
            exclude: Sequence[int | None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine search: for each of the (Q, D) unit ``queries``, the indices (Q, k) and similarities (Q, k) of
    its ``k`` most similar rows of the (N, D) unit ``vectors``, most similar first. ``exclude`` gives, per query, a
    row it may not return (itself), or None."""
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    k = min(int(k), len(vectors) - (1 if exclude is not None else 0))
    if k <= 0:
        return np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32)
    if len(queries) <= 8 and len(vectors) >= ONE_THREAD_FROM:
        with _blas().limit(limits=1, user_api="blas"):
            return _nearest(vectors, queries, k, exclude)
    return _nearest(vectors, queries, k, exclude)


@functools.cache
def _blas():
    from threadpoolctl import ThreadpoolController  # scikit-learn's own dependency

    return ThreadpoolController()


def _nearest(vectors: np.ndarray, queries: np.ndarray, k: int,
             exclude: Sequence[int | None] | None) -> tuple[np.ndarray, np.ndarray]:
    indices = np.empty((len(queries), k), np.int64)
    sims = np.empty((len(queries), k), np.float32)
    for start in range(0, len(queries), QUERY_CHUNK):
        s = queries[start:start + QUERY_CHUNK] @ vectors.T
        if exclude is not None:
            for row, skip in enumerate(exclude[start:start + QUERY_CHUNK]):
                if skip is not None:
                    s[row, skip] = -np.inf
        top = np.argpartition(-s, k - 1, axis=1)[:, :k] if k < s.shape[1] else np.tile(np.arange(k), (len(s), 1))
        top_s = np.take_along_axis(s, top, axis=1)
        order = np.argsort(-top_s, axis=1, kind="stable")
        indices[start:start + len(s)] = np.take_along_axis(top, order, axis=1)
        sims[start:start + len(s)] = np.take_along_axis(top_s, order, axis=1)
    return indices, sims


def check_k(k: int) -> int:
    """``k`` if it is a usable number of neighbours (1 to ``MAX_K``), else ``SimilarityError``."""
    if not 1 <= int(k) <= MAX_K:
        raise SimilarityError(f"the number of similar glitches must be 1 to {MAX_K}, not {k}")
    return int(k)


RESULT_COLUMNS = ["rank", "glitch", "label", "ifo", "gravityspy_id", "split", "similarity", "path", "paths"]
"""What a search returns per neighbour: ``path`` is the thumbnail (the 1 s view when there is one), ``paths`` every
view, shortest first."""


@dataclass
class SimilarityIndex:
    """A dataset's glitches embedded by one checkpoint: a row and a unit vector per view and per glitch."""

    key: str
    dataset: str
    """The dataset folder's name, as the app says "Most similar glitches in <dataset>"."""
    views: pd.DataFrame
    """One row per embedded image: the manifest's columns and ``glitch`` (its ``glitches.glitch_key``)."""
    view_vectors: np.ndarray
    glitches: pd.DataFrame
    """One row per glitch: glitch, label, split, ifo, gravityspy_id, views, path (thumbnail), paths."""
    glitch_vectors: np.ndarray
    view_glitch: np.ndarray
    """The ``glitches`` row of each ``views`` row."""
    errors: dict[str, str] = field(default_factory=dict)
    """Images that could not be decoded (left out), with the reason."""
    event_times: pd.Series | None = None
    """GPS event time by glitch key, from the dataset's metadata CSV, where it has one."""

    @classmethod
    def from_vectors(cls, key: str, dataset: str, views: pd.DataFrame, view_vectors: np.ndarray,
                     errors: dict[str, str] | None = None, metadata: pd.DataFrame | None = None) -> SimilarityIndex:
        views, codes, glitches = glitch_table(views)
        glitch_vectors = combine_views(view_vectors, codes) if len(views) else np.zeros((0, view_vectors.shape[1]),
                                                                                         np.float32)
        return cls(key=key, dataset=dataset, views=views, view_vectors=view_vectors, glitches=glitches,
                   glitch_vectors=glitch_vectors, view_glitch=codes, errors=dict(errors or {}),
                   event_times=event_times(glitches, metadata))

    def __len__(self) -> int:
        return len(self.glitches)

    @property
    def nbytes(self) -> int:
        """Memory the index holds: vectors and tables (``pandas.DataFrame.memory_usage(deep=True)``)."""
        tables = sum(int(df.memory_usage(deep=True).sum()) for df in (self.views, self.glitches))
        return int(self.view_vectors.nbytes + self.glitch_vectors.nbytes + self.view_glitch.nbytes + tables)

    def row_of(self, key: str) -> int:
        """The ``glitches`` row of a glitch key."""
        hits = np.flatnonzero(self.glitches["glitch"].to_numpy() == key)
        if not len(hits):
            raise SimilarityError(f"{key} is not a glitch of {self.dataset}")
        return int(hits[0])

    def search(self, vector: np.ndarray, k: int = DEFAULT_K, exclude: str | None = None) -> pd.DataFrame:
        """The ``k`` glitches most similar to a glitch embedding (``RESULT_COLUMNS``), most similar first;
        ``exclude`` (a glitch key of the index, the query itself) is never returned."""
        skip = [self.row_of(exclude)] if exclude is not None else None
        idx, sims = nearest(self.glitch_vectors, vector, check_k(k), skip)
        return self.results(idx[0], sims[0])

    def results(self, rows: np.ndarray, sims: np.ndarray) -> pd.DataFrame:
        """The ``glitches`` rows ``rows`` as search results with their similarities."""
        out = self.glitches.iloc[rows].reset_index(drop=True)
        out.insert(0, "rank", np.arange(1, len(out) + 1))
        out["similarity"] = sims.astype(float)
        return out[RESULT_COLUMNS]

    def search_views(self, vector: np.ndarray, k: int = DEFAULT_K, exclude: int | None = None) -> pd.DataFrame:
        """The ``k`` single views most similar to an embedding: the ``views`` rows with a ``similarity`` column;
        ``exclude`` is a ``views`` row never returned (the query view itself)."""
        idx, sims = nearest(self.view_vectors, vector, check_k(k), [exclude] if exclude is not None else None)
        return self.views.iloc[idx[0]].assign(similarity=sims[0].astype(float)).reset_index(drop=True)

    def find(self, text: str) -> list[str]:
        """The glitch keys a query names (``find_glitches``)."""
        return find_glitches(self.glitches, self.event_times, text)


GLITCH_COLUMNS = ["glitch", "label", "split", "ifo", "gravityspy_id", "views", "path", "paths"]


def glitch_table(views: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """A manifest's images gathered into glitches by ``glitches.glitch_key``: (the images with a ``glitch`` column,
    each image's glitch number, one row per glitch in first-seen order: ``GLITCH_COLUMNS``, its thumbnail ``path``
    the 1 s view when there is one, ``paths`` every view, shortest first)."""
    views = views.reset_index(drop=True)
    views = views.assign(glitch=views["path"].map(glitch_key))
    codes, keys = pd.factorize(views["glitch"])
    ordered = views.assign(_code=codes, _dur=views["duration"].fillna(1.0)).sort_values(["_code", "_dur"],
                                                                                         kind="stable")
    rows = []
    for code, df in ordered.groupby("_code", sort=True):
        first = df.iloc[0]
        one_s = df[df["_dur"] == 1.0]
        rows.append({"glitch": keys[code], "label": first["label"], "split": first["split"], "ifo": first["ifo"],
                     "gravityspy_id": first["gravityspy_id"], "views": len(df),
                     "path": (one_s if len(one_s) else df)["path"].iloc[0], "paths": tuple(df["path"])})
    return views, codes.astype(np.int64), pd.DataFrame(rows, columns=GLITCH_COLUMNS)


def find_glitches(glitches: pd.DataFrame, times: pd.Series | None, text: str) -> list[str]:
    """The glitch keys a query names: a glitch key (``H1_<id>``), a Gravity Spy id, or a GPS time (the glitch
    whose event time ``times`` lies nearest, within ``GPS_TOLERANCE_S``). Empty when it names none."""
    text = text.strip()
    keys = glitches.loc[(glitches["glitch"] == text) | (glitches["gravityspy_id"].astype(str) == text), "glitch"]
    if len(keys):
        return keys.tolist()
    try:
        gps = float(text)
    except ValueError:
        return []
    if times is None or not np.isfinite(gps):
        return []
    gap = (times - gps).abs()
    if gap.empty or gap.min() > GPS_TOLERANCE_S:
        return []
    return gap.index[gap == gap.min()].tolist()


def event_times(glitches: pd.DataFrame, metadata: pd.DataFrame | None) -> pd.Series | None:
    """GPS event time by glitch key: the metadata CSV's ``event_time`` where there is one, else an id that is a GPS
    time (``glitchnet scan`` and detector-characterisation tools name Omega scans so); None when no glitch has one."""
    times = pd.to_numeric(glitches["gravityspy_id"], errors="coerce")
    times = times.where(times > 1e8)  # a number that small is an id, not a GPS time in the detectors' era
    if metadata is not None and {"gravityspy_id", "event_time"}.issubset(metadata.columns):
        by_id = dict(zip(metadata["gravityspy_id"].astype(str), pd.to_numeric(metadata["event_time"], errors="coerce")))
        from_csv = glitches["gravityspy_id"].astype(str).map(by_id)
        times = from_csv.where(from_csv.notna(), times)
    times = pd.Series(times.to_numpy(dtype=float), index=glitches["glitch"].to_numpy()).dropna()
    return times if len(times) else None


# ----------------------------------------------------------------------------------------------- the index file


def build_index(scan: DatasetScan, checkpoint: Checkpoint, model: Any = None,
                cache_dir: str | os.PathLike | None = None, image_cache_dir: str | os.PathLike | None = None,
                batch_size: int = 64, workers: int = 0, progress: ProgressFn | None = None) -> SimilarityIndex:
    """The index of every image of a dataset scan, embedded by ``checkpoint`` (``model``: its model, already
    built: a shared ``Predictor``, its ``.model``, or the ONNX Runtime engine, whose ``checkpoint`` holds no
    weights: its ``weights_digest`` keys the index).

    Read from ``cache_dir`` (default ``default_index_dir()``) when this checkpoint has indexed these very files
    before; otherwise the images go through the decoded-image cache (``data.load_cached``, shared with training and
    evaluation) and the model, in batches of ``batch_size``, and the vectors are written atomically.
    """
    manifest = scan.manifest
    paths = manifest["path"].astype(str).tolist()
    key = index_key(checkpoint, paths, getattr(model, "weights_digest", None))
    folder = Path(cache_dir) if cache_dir is not None else default_index_dir()
    vectors_file, meta_file = folder / f"{key}.npy", folder / f"{key}.json"
    dataset = Path(scan.root).name
    if vectors_file.is_file() and meta_file.is_file():
        try:
            meta = json.loads(meta_file.read_text())
            vectors = np.load(vectors_file)
            kept = manifest[~manifest["path"].isin(meta["errors"])]
            if vectors.shape == (len(kept), meta["dim"]):
                return SimilarityIndex.from_vectors(key, dataset, kept, vectors, meta["errors"], scan.metadata)
        except (OSError, ValueError, KeyError) as exc:  # a damaged cache is rebuilt, never fatal
            LOG.warning("rebuilding the similarity index %s: %s", key, one_line(exc))
    if model is None:
        model = checkpoint.build_model()
    if hasattr(model, "eval"):
        model.eval()
    cached = load_cached(paths, image_cache_dir, workers=workers,
                         progress=(lambda d, t: progress("decoding", d, t)) if progress else None)
    keep = np.flatnonzero(cached.ok)
    images = cached.images if len(keep) == len(paths) else cached.images[keep]
    vectors = embed_images(model, images, batch_size,
                           progress=(lambda d, t: progress("embedding", d, t)) if progress else None)
    folder.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(vectors_file)
    with atomic_path(vectors_file) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, vectors)
    write_text_atomic(meta_file, json.dumps({"key": key, "count": len(keep), "dim": int(vectors.shape[1]),
                                             "errors": cached.errors}))
    return SimilarityIndex.from_vectors(key, dataset, manifest.iloc[keep], vectors, cached.errors, scan.metadata)


class IndexBuild:
    """``build_index`` in a background thread, for a page to follow (``stage``, ``done``, ``total``) and share: a
    rerun of the page (any click) interrupts a script, not a thread. Ends in ``index`` or a one-line ``error``.

    A build still running when the process exits is stopped at its next batch (``_stop_builds``), so that the
    interpreter never finalises under a forward pass."""

    def __init__(self, build: Callable[[ProgressFn], SimilarityIndex]) -> None:
        self.stage, self.done, self.total = "starting", 0, 0
        self.index: SimilarityIndex | None = None
        self.error: str | None = None
        self.finished = threading.Event()
        self.cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(build,), name="glitchnet-similar", daemon=True)
        with _BUILDS_LOCK:
            _BUILDS.add(self)
        self._thread.start()

    @property
    def fraction(self) -> float:
        return self.done / max(1, self.total)

    def _progress(self, stage: str, done: int, total: int) -> None:
        if self.cancel.is_set():
            raise SimilarityError("the similarity index build was stopped")
        self.stage, self.done, self.total = stage, done, total

    def _run(self, build: Callable[[ProgressFn], SimilarityIndex]) -> None:
        try:
            self.index = build(self._progress)
        except Exception as exc:  # reported by the page that follows the build
            if not self.cancel.is_set():
                LOG.exception("building the similarity index failed")
            self.error = one_line(exc)
        finally:
            with _BUILDS_LOCK:
                _BUILDS.discard(self)
            self.finished.set()


_BUILDS: set[IndexBuild] = set()
_BUILDS_LOCK = threading.Lock()


@atexit.register
def _stop_builds(timeout_s: float = 30.0) -> None:
    """Stop every running build and wait for it (each stops at its next batch of images)."""
    with _BUILDS_LOCK:
        running = list(_BUILDS)
    for build in running:
        build.cancel.set()
    for build in running:
        build.finished.wait(timeout_s)


# ------------------------------------------------------------------------------------------- audit and the map


AUDIT_COLUMNS = ["glitch", "label", "neighbours_say", "disagreeing", "neighbours", "similarity", "path", "paths"]


def label_audit(index: SimilarityIndex, k: int = AUDIT_NEIGHBOURS) -> pd.DataFrame:
    """The glitches whose label disagrees with most of their ``k`` nearest glitches, the likeliest mislabels first.

    Columns (``AUDIT_COLUMNS``): the glitch and its label; ``neighbours_say``, the commonest other label among its
    neighbours; ``disagreeing``, the share of neighbours with another label (over one half); ``neighbours``, how many
    were compared; ``similarity``, their mean similarity. Ranked by ``disagreeing``, then by how many of them agree
    on ``neighbours_say``, then by ``similarity``.
    """
    n = len(index)
    if n < 2:
        return pd.DataFrame(columns=AUDIT_COLUMNS)
    idx, sims = nearest(index.glitch_vectors, index.glitch_vectors, min(check_k(k), n - 1), list(range(n)))
    labels = index.glitches["label"].astype(str).to_numpy()
    neighbour_labels = labels[idx]
    other = neighbour_labels != labels[:, None]
    share = other.mean(1)
    rows = []
    for i in np.flatnonzero(share > 0.5):
        names, counts = np.unique(neighbour_labels[i][other[i]], return_counts=True)
        best = int(np.argmax(counts))  # ties: the first label alphabetically
        g = index.glitches.iloc[i]
        rows.append({"glitch": g["glitch"], "label": g["label"], "neighbours_say": names[best],
                     "disagreeing": float(share[i]), "neighbours": idx.shape[1], "similarity": float(sims[i].mean()),
                     "path": g["path"], "paths": g["paths"], "_agree": int(counts[best])})
    if not rows:
        return pd.DataFrame(columns=AUDIT_COLUMNS)
    table = pd.DataFrame(rows).sort_values(["disagreeing", "_agree", "similarity"], ascending=False, kind="stable")
    return table[AUDIT_COLUMNS].reset_index(drop=True)


MAP_COLUMNS = ["glitch", "x", "y", "label", "ifo", "gravityspy_id", "split", "path"]


def dataset_map(index: SimilarityIndex, seed: int = 0, max_glitches: int = MAP_MAX_GLITCHES,
                cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """A 2-D map of the index's glitches (``MAP_COLUMNS``): scikit-learn's t-SNE of their embeddings, seeded, over
    at most ``max_glitches`` (a seeded sample), cached on disk beside the index."""
    from sklearn.manifold import TSNE  # 1 s to import: only where a map is drawn

    n = len(index)
    if n < 4:
        raise SimilarityError(f"{index.dataset} has {n} glitch(es): a map needs at least 4")
    rows = np.arange(n)
    if n > max_glitches:
        rows = np.sort(np.random.default_rng(seed).choice(n, max_glitches, replace=False))
    folder = Path(cache_dir) if cache_dir is not None else default_index_dir()
    cached = folder / f"{index.key}-map-seed{seed}-n{len(rows)}.npy"
    xy = None
    if cached.is_file():
        try:
            xy = np.load(cached)
            xy = xy if xy.shape == (len(rows), 2) else None
        except (OSError, ValueError):
            xy = None
    if xy is None:
        perplexity = float(min(30.0, (len(rows) - 1) / 3))
        # One OpenMP thread: scikit-learn's own OpenMP runtime, started beside torch's in a server thread, aborted the
        # process at exit ("terminate called without an active exception") in a test session that also ran the app.
        with _blas().limit(limits=1, user_api="openmp"):
            xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
                index.glitch_vectors[rows]).astype(np.float32)
        folder.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(cached)
        with atomic_path(cached) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, xy)
    out = index.glitches.iloc[rows].reset_index(drop=True).assign(x=xy[:, 0].astype(float), y=xy[:, 1].astype(float))
    return out[MAP_COLUMNS]


def place_on_map(index: SimilarityIndex, dataset_map_: pd.DataFrame, vector: np.ndarray,
                 k: int = MAP_PLACEMENT_NEIGHBOURS) -> tuple[float, float]:
    """Where a glitch that is not on the map goes: the similarity-weighted mean position of its ``k`` most similar
    glitches on it (t-SNE has no transform for new points; this is the usual stand-in)."""
    on_map = np.array([index.row_of(key) for key in dataset_map_["glitch"]])
    idx, sims = nearest(index.glitch_vectors[on_map], vector, min(k, len(on_map)))
    weights = np.maximum(sims[0].astype(float), 0.0) + 1e-6
    xy = dataset_map_[["x", "y"]].to_numpy(float)[idx[0]]
    x, y = (weights[:, None] * xy).sum(0) / weights.sum()
    return float(x), float(y)


def map_rows(points: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """The map's rows of the glitches ``keys`` (a selection drawn on it), in the map's order."""
    return points[points["glitch"].isin(set(keys))].reset_index(drop=True)
