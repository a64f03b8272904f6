"""The glitch as the unit: files and GIF frames grouped into glitches, batch caps that keep glitches whole, results.

A glitch is one detector event seen in up to four views (0.5, 1, 2, 4 s). Its views arrive as separate files named
``{ifo}_{gravityspy_id}_spectrogram_{duration}.png`` (Kaggle, Zenodo, ``glitchnet scan``), as the frames of one
golden GIF, or as a single image. ``glitch_key`` names the glitch a file belongs to; ``Predictor.classify`` (in
``inference``) classifies every view and fuses each glitch's views; ``results_table`` is the table the app shows and
downloads and ``glitchnet predict --by-glitch`` prints.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from .classes import DURATIONS_S
from .config import SPLITS, TEST_FIRST
from .names import glitch_key, plain

T = TypeVar("T")


def frame_duration(frame: int, frames: int) -> float | None:
    """View duration (s) of a frame of a multi-frame image: a golden GIF's four frames are the 0.5/1/2/4 s views."""
    return DURATIONS_S[frame] if frames == len(DURATIONS_S) else None


def group_files(names: Sequence[str]) -> list[tuple[str, list[int]]]:
    """(glitch key, indices of its files) for every glitch among ``names``, in first-seen order."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(glitch_key(name), []).append(i)
    return list(groups.items())


def glitch_chunks(names: Sequence[str], size: int) -> Iterator[list[int]]:
    """Indices of ``names`` in chunks of about ``size`` files, never splitting a glitch: whole glitches in first-seen
    order, a chunk closed before the glitch that would take it past ``size`` (a glitch larger than ``size`` is a
    chunk of its own)."""
    chunk: list[int] = []
    for _, indices in group_files(names):
        if chunk and len(chunk) + len(indices) > size:
            yield chunk
            chunk = []
        chunk += indices
    if chunk:
        yield chunk


def fit_glitches(names: Sequence[str], sizes: Sequence[float], limit: float) -> tuple[list[int], list[int]]:
    """The whole glitches among ``names`` whose ``sizes`` (one per file) add up to at most ``limit``: (kept
    indices, left-out indices), each in the original order. Glitches are taken in first-seen order; one that would
    pass the limit is left out whole, and a later, smaller one may still fit. Every cap on a batch (files, bytes)
    is this rule."""
    kept: list[int] = []
    left_out: list[int] = []
    total = 0.0
    for _, indices in group_files(names):
        size = sum(sizes[i] for i in indices)
        if total + size <= limit:
            kept += indices
            total += size
        else:
            left_out += indices
    return sorted(kept), sorted(left_out)


def cap_files(names: Sequence[str], max_files: int | None) -> tuple[list[int], list[str]]:
    """Which files a batch of at most ``max_files`` keeps, never splitting a glitch (``fit_glitches``): (kept
    indices in their original order, names of the files left out)."""
    if max_files is None:
        return list(range(len(names))), []
    kept, left_out = fit_glitches(names, [1] * len(names), max_files)
    return kept, [names[i] for i in left_out]


@dataclass
class Prediction:
    """The model's answer for one image (or one fused glitch), or the reason there is none."""

    name: str
    label: str | None = None
    confidence: float | None = None
    top5: list[tuple[str, float]] = field(default_factory=list)
    probabilities: np.ndarray | None = None
    gravityspy_id: str | None = None
    ifo: str | None = None
    duration: float | None = None
    error: str | None = None
    low_confidence: bool = False
    views: int = 1
    warning: str | None = None
    """Why this answer deserves less trust than its confidence suggests (a blank or uniformly dark view)."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (never NaN): ``{"path", "error"}`` or the answer, with ``views`` when several were fused."""
        if self.error is None and not (self.confidence is not None and np.isfinite(self.confidence)
                                       and all(np.isfinite(p) for _, p in self.top5)):
            return {"path": self.name, "error": "the model gave no finite answer for this image"}
        if self.error is not None:
            return {"path": self.name, "error": self.error}
        return {"path": self.name, "label": self.label, "confidence": round(float(self.confidence), 6),
                "top5": [[c, round(float(p), 6)] for c, p in self.top5], "low_confidence": self.low_confidence,
                **({"views": self.views} if self.views > 1 else {}),
                **({"warning": self.warning} if self.warning else {})}


@dataclass
class View:
    """One view of a glitch, decoded once: a file, or one frame of a multi-frame GIF."""

    name: str
    """The file name, or ``{file}#frame{k}`` for a frame of a multi-frame image."""
    file: str
    frame: int = 0
    duration_s: float | None = None
    image: np.ndarray | None = None
    """The canonical uint8 model input (H, W, 3); None when the view could not be read."""
    warning: str | None = None
    """Why the model's answer on this view deserves less trust (a blank or uniformly dark view)."""
    error: str | None = None
    prediction: Prediction | None = None
    heat: np.ndarray | None = None
    """Grad-CAM heatmap in [0, 1] (H, W) for the glitch's combined label, once classified."""

    @property
    def caption(self) -> str:
        """How a page names the view, as Markdown (Streamlit renders image captions so): its duration when known,
        else its name as literal text."""
        return f"{self.duration_s:g} s view" if self.duration_s is not None else plain(self.name)


@dataclass
class Glitch:
    """One glitch: its views (sorted by duration when known) and, once classified, the combined verdict."""

    key: str
    files: list[str]
    views: list[View] = field(default_factory=list)
    verdict: Prediction | None = None
    """The views' probabilities fused (``fuse_log_probabilities``); ``error`` set when none was readable."""

    @property
    def readable(self) -> list[View]:
        return [v for v in self.views if v.error is None]

    @property
    def errors(self) -> list[View]:
        return [v for v in self.views if v.error is not None]


def page_count(n_items: int, per_page: int) -> int:
    """How many pages ``n_items`` fill, ``per_page`` to a page; at least one (an empty list is one empty page)."""
    return max(1, -(-n_items // per_page))


def page_items(items: Sequence[T], page: int, per_page: int) -> tuple[int, Sequence[T]]:
    """Page ``page`` (from 1) of ``items``: the index of its first item and its items."""
    first = (page - 1) * per_page
    return first, items[first:first + per_page]


def quiz_score(answers: Sequence[tuple[str, str, str]]) -> tuple[int, int]:
    """Right answers in a quiz of (your label, the true label, the model's label) triples: (yours, the model's)."""
    return (sum(yours == truth for yours, truth, _ in answers),
            sum(said == truth for _, truth, said in answers))


def group_views(views: Sequence[View]) -> list[Glitch]:
    """Views gathered into glitches by their file's ``glitch_key``, first-seen order, each sorted by duration."""
    glitches: dict[str, Glitch] = {}
    for view in views:
        key = glitch_key(view.file)
        glitch = glitches.setdefault(key, Glitch(key=key, files=[]))
        if view.file not in glitch.files:
            glitch.files.append(view.file)
        glitch.views.append(view)
    for glitch in glitches.values():
        if all(v.duration_s is not None for v in glitch.views):
            glitch.views.sort(key=lambda v: v.duration_s)
    return list(glitches.values())


def view_answers(glitch: Glitch) -> list[tuple[View, Prediction]]:
    """Each readable view with what the model says of it alone, in the glitch's view order."""
    return [(v, v.prediction) for v in glitch.readable if v.prediction is not None and v.prediction.error is None]


def views_disagree(glitch: Glitch) -> bool:
    """Whether the glitch's views, each on its own, do not all give the combined verdict's label."""
    labels = {p.label for _, p in view_answers(glitch)}
    return len(glitch.readable) > 1 and glitch.verdict is not None and labels != {glitch.verdict.label}


def label_source(simulated: bool, dataset: str) -> str:
    """Who gave a dataset's glitch its label, as a page names it: the simulator (the class a glitch was made as) or
    the dataset's own folders."""
    return "the simulator made it as" if simulated else f"its label in {dataset} is"


KEPT_UNLABELLED = 24
"""Most glitches without the visitor's label that their results keep (four pages); the oldest go first. Glitches the
visitor labelled are kept until they clear their results."""


@dataclass
class Results:
    """A visitor's classified glitches over every batch, the latest batch first, until they clear them.

    A glitch classified again (the same key and the same view images: a bundled sample picked with another) takes
    its earlier place's label and moves up with its new batch; a different glitch with a key already taken (two
    uploads named ``screenshot.png``) gets its own key, ``screenshot.png (2)``.
    """

    glitches: list[Glitch] = field(default_factory=list)
    truth: dict[str, tuple[str, str]] = field(default_factory=dict)
    """The known label and where it comes from (``label_source``) by glitch key: the quiz and bundled samples."""
    dropped: int = 0
    """Unlabelled glitches dropped over ``KEPT_UNLABELLED``, oldest first."""

    def add(self, batch: Sequence[Glitch], truth: dict[str, tuple[str, str]] | None = None,
            labelled: Collection[str] = ()) -> None:
        """Put a classified batch first; ``labelled`` names the glitches with the visitor's label (always kept)."""
        truth = truth or {}
        earlier = list(self.glitches)
        for glitch in batch:
            key = glitch.key
            same = next((g for g in earlier if g.key == key), None)
            if same is not None and _same_views(same, glitch):
                earlier.remove(same)
            elif same is not None:
                taken = {g.key for g in earlier} | {g.key for g in batch}
                glitch.key = next(k for k in (f"{key} ({n})" for n in range(2, len(taken) + 3)) if k not in taken)
            if key in truth:
                self.truth[glitch.key] = truth[key]
        self.glitches = [*batch, *earlier]
        unlabelled = [g for g in self.glitches if g.key not in labelled]
        for glitch in unlabelled[KEPT_UNLABELLED:]:
            self.glitches.remove(glitch)
            self.truth.pop(glitch.key, None)
            self.dropped += 1

    def clear(self) -> None:
        self.glitches, self.truth, self.dropped = [], {}, 0


def _same_views(a: Glitch, b: Glitch) -> bool:
    """Whether two glitches were classified from the same view images."""
    return len(a.views) == len(b.views) and all(
        (x.image is None and y.image is None) or (x.image is not None and y.image is not None
                                                  and np.array_equal(x.image, y.image))
        for x, y in zip(a.views, b.views))


def combined_name(glitch: Glitch) -> str:
    """The name of a glitch's combined row."""
    return f"{glitch.key} (combined, {len(glitch.readable)} views)"


def results_table(glitches: Sequence[Glitch], your_labels: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per view and, for a glitch of two or more views, a combined row after them; ``your_labels`` (by
    glitch key) fills ``your_label`` on every row of that glitch. The app's table and CSV download."""
    your_labels = your_labels or {}
    rows = []

    def row(glitch: Glitch, kind: str, name: str, p: Prediction | None, error: str | None,
            duration_s: float | None) -> dict:
        ok = p is not None and p.error is None and error is None
        return {
            "glitch": glitch.key,
            "row": kind,
            "name": name,
            "label": p.label if ok else None,
            "confidence": round(float(p.confidence), 4) if ok else None,
            "low_confidence": p.low_confidence if ok else None,
            "top5": "; ".join(f"{c} {q:.3f}" for c, q in p.top5) if ok else "",
            "views": (p.views if kind == "combined" else 1) if ok else None,
            "gravityspy_id": p.gravityspy_id if ok else None,
            "ifo": p.ifo if ok else None,
            "duration_s": duration_s,
            "your_label": your_labels.get(glitch.key),
            "error": error if error is not None else (p.error if p is not None else None),
        }

    for glitch in glitches:
        for view in glitch.views:
            rows.append(row(glitch, "view", view.name, view.prediction, view.error, view.duration_s))
        if len(glitch.readable) > 1 and glitch.verdict is not None:
            rows.append(row(glitch, "combined", combined_name(glitch), glitch.verdict, None, None))
    columns = ["glitch", "row", "name", "label", "confidence", "low_confidence", "top5", "views", "gravityspy_id",
               "ifo", "duration_s", "your_label", "error"]
    return pd.DataFrame(rows, columns=columns)


# ----------------------------------------------------------------------------------------- samples from a dataset


def _by_glitch(manifest: pd.DataFrame, splits: Sequence[str]) -> pd.DataFrame:
    """The manifest rows of the given splits, ranked by split order then path, with a ``_glitch`` column (``glitch_key``
    of the path)."""
    rank = {s: i for i, s in enumerate(splits)}
    df = manifest[manifest["split"].isin(rank)]
    df = df.assign(_rank=df["split"].map(rank), _glitch=df["path"].map(glitch_key))
    return df.sort_values(["_rank", "path"])


def examples_by_class(manifest: pd.DataFrame, splits: Sequence[str] = SPLITS,
                      duration_s: float = 1.0) -> dict[str, str]:
    """One image path per class: the first (by path) of the given duration in the first split (in order) holding one.
    Images without a duration in their name count as that duration."""
    df = manifest[(manifest["duration"] == duration_s) | manifest["duration"].isna()]
    return dict(_by_glitch(df, splits).groupby("label", sort=True)["path"].first())


def example_glitches(manifest: pd.DataFrame, splits: Sequence[str] = TEST_FIRST,
                     ) -> dict[str, list[str]]:
    """Every view's path of one glitch per class: the glitch of the first image (by path) of the first split holding
    the class, views sorted by duration."""
    df = _by_glitch(manifest, splits)
    first = df.groupby("label", sort=True)["_glitch"].first()
    return {label: df[(df["label"] == label) & (df["_glitch"] == key)].sort_values("duration")["path"].tolist()
            for label, key in first.items()}


def random_glitch(manifest: pd.DataFrame, rng: np.random.Generator | None = None,
                  splits: Sequence[str] = TEST_FIRST,
                  classes: Sequence[str] | None = None) -> tuple[str, list[str]]:
    """(label, every view's path) of a glitch drawn at random, classes equally likely, for a volunteer quiz.

    ``classes`` (the model's) limits the draw to glitches whose label the model can give: an O3 model is never quizzed
    on a None_of_the_Above."""
    rng = rng if rng is not None else np.random.default_rng()
    df = _by_glitch(manifest, splits)
    if classes is not None:
        df = df[df["label"].isin(list(classes))]
    if df.empty:
        raise ValueError("the dataset has no images of the model's classes to draw a glitch from")
    labels = sorted(df["label"].unique())
    label = labels[int(rng.integers(len(labels)))]
    keys = sorted(df.loc[df["label"] == label, "_glitch"].unique())
    key = keys[int(rng.integers(len(keys)))]
    return label, df[df["_glitch"] == key].sort_values("duration")["path"].tolist()
