"""Drawing similar glitches: the server's shared similarity index, thumbnails that open a glitch, the Predict card's
"Most similar glitches" and Explore's map and label audit. Every computation is in ``glitchnet.similar``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from glitchnet.data import DatasetScan
from glitchnet.errors import GlitchNetError
from glitchnet.glitches import Glitch
from glitchnet.names import plain
from pages import _ui as ui

if TYPE_CHECKING:
    from glitchnet.engine import Engine as Predictor
    from glitchnet.similar import IndexBuild, SimilarityIndex

CARD_NEIGHBOURS = 8
"""Similar glitches on a Predict card: two rows of four thumbnails."""
LISTED = 12
"""Glitches drawn as thumbnails below the map's selection and at the top of the label audit."""
MAP_SEED = 0


@st.cache_resource(show_spinner=False, max_entries=4)
def _build(root: str, model: str, images: int, _found: DatasetScan, _predictor: Predictor) -> IndexBuild:
    """The similarity index of a dataset folder (as scanned: ``images`` of them) for a model version, built once per
    server process in a background thread and shared by every visitor."""
    from glitchnet.similar import IndexBuild, build_index

    return IndexBuild(lambda progress: build_index(_found, _predictor.checkpoint, _predictor,
                                                   progress=progress))


def _building_text(build: IndexBuild, dataset: str) -> str:
    if build.total:
        return f"Indexing {dataset} for similar glitches (once per server): {build.stage} {build.done} of " \
               f"{build.total} images…"
    return f"Indexing {dataset} for similar glitches (once per server)…"


@st.fragment(run_every=1.0)
def _follow(build: IndexBuild, dataset: str) -> None:
    """The index build's progress, polled without blocking the page; the page is drawn again once it is ready."""
    if build.finished.is_set():
        st.rerun()
    st.progress(build.fraction, text=_building_text(build, dataset))


def shared_index(predictor: Predictor, found: DatasetScan | None, wait: bool) -> SimilarityIndex | None:
    """The sidebar dataset's index for the loaded model, or None while it is built (its progress drawn here: a bar
    that waits with ``wait``, else one that polls and redraws the page when done) or when it cannot be."""
    if found is None:
        return None
    build = _build(str(found.root), ui.model_key(predictor), len(found.manifest), found, predictor)
    dataset = plain(found.root.name)
    if not build.finished.is_set():
        if not wait:
            _follow(build, dataset)
            return None
        bar = st.progress(build.fraction, text=_building_text(build, dataset))
        while not build.finished.wait(0.5):
            bar.progress(build.fraction, text=_building_text(build, dataset))
        bar.empty()
    if build.error is not None:
        _build.clear()  # the next visit tries again
        st.error(ui.public(f"The similarity index of {dataset} could not be built: {build.error}"))
        return None
    return build.index


@st.dialog("A glitch of the dataset", width="large")
def open_glitch(row: dict) -> None:
    """A glitch's views side by side (0.5, 1, 2, 4 s), with its Gravity Spy label."""
    from glitchnet.names import parse_name

    st.markdown(f"**{plain(str(row['glitch']))}** · Gravity Spy label **{row['label']}** · "
                f"{row['ifo'] or 'detector unknown'} · {row['split']} split")
    if "similarity" in row:
        st.caption(f"Similarity to your glitch: {row['similarity']:.2f} (cosine of the model's embeddings)")
    paths = list(row["paths"])
    for col, path in zip(st.columns(max(2, len(paths))), paths, strict=False):
        _, _, duration = parse_name(path)
        col.image(path, caption=f"{duration:g} s view" if duration else None, width="stretch")


def thumbnails(rows: pd.DataFrame, key: str, columns: int = 4) -> None:
    """Each glitch's thumbnail with its label (and similarity), and a button opening its views."""
    for i, (col, row) in enumerate(ui.grid(rows.to_dict("records"), columns)):
        score = f" · {row['similarity']:.2f}" if "similarity" in row else ""
        col.image(row["path"], caption=f"{row['label']}{score}", width="stretch")
        if col.button("Open", key=f"{key}-{i}-{row['glitch']}", icon=":material/open_in_full:",
                      help=f"The views of {plain(str(row['glitch']))}"):
            open_glitch(row)


def _vector(predictor: Predictor, index: SimilarityIndex, glitch: Glitch):
    """A card's glitch embedding, computed once per batch (kept in the session beside the batch's glitches)."""
    from glitchnet.similar import glitch_vector

    kept = st.session_state.setdefault("similar_vectors", {})
    key = (index.key, glitch.key, id(glitch))
    if key not in kept:
        if len(kept) > 64:
            kept.clear()
        kept[key] = glitch_vector(predictor, glitch)
    return kept[key]


def _dataset() -> DatasetScan | None:
    """The sidebar's dataset, scanned, or None without a word (the page says already why there is none)."""
    root = st.session_state.get("dataset_root")
    if not root:
        return None
    try:
        return ui.scan(root)
    except GlitchNetError:
        return None


def card_section(glitch: Glitch) -> None:
    """A Predict card's "Most similar glitches in <dataset>": real glitches that look like this one, and what
    Gravity Spy called them."""
    if not glitch.readable:
        return
    found = _dataset()
    predictor, _ = ui.current_predictor()  # loaded already: the card was classified with it
    if found is None or predictor is None:
        return
    with st.expander(f"Most similar glitches in {plain(found.root.name)}", expanded=True):
        index = shared_index(predictor, found, wait=False)
        if index is None:
            return
        neighbours = index.search(_vector(predictor, index, glitch), CARD_NEIGHBOURS)
        thumbnails(neighbours, key=f"similar-{glitch.key}")
        st.caption("Similarity is the cosine of the model's embeddings (1 = the same to the model). Labels are "
                   "Gravity Spy's.")


# ------------------------------------------------------------------------------------------------------ Explore


@st.cache_data(show_spinner="Drawing the map (t-SNE, once per dataset and model)…", max_entries=8)
def _map(key: str, seed: int, _index: SimilarityIndex) -> pd.DataFrame:
    from glitchnet.similar import dataset_map

    return dataset_map(_index, seed=seed)


@st.cache_data(show_spinner=False, max_entries=8)
def _audit(key: str, _index: SimilarityIndex) -> pd.DataFrame:
    from glitchnet.similar import label_audit

    return label_audit(_index)


def _your_glitches(predictor: Predictor, index: SimilarityIndex, points: pd.DataFrame) -> pd.DataFrame:
    """This visitor's classified glitches (the Predict page's latest batch) placed on the map."""
    from glitchnet.similar import place_on_map

    batch = st.session_state.get("predict_batch")
    glitches = [g for g in (getattr(batch, "glitches", None) or []) if g.readable and g.verdict is not None]
    rows = []
    for glitch in glitches[:24]:
        x, y = place_on_map(index, points, _vector(predictor, index, glitch))
        rows.append({"glitch": glitch.key, "x": x, "y": y, "label": glitch.verdict.label})
    return pd.DataFrame(rows, columns=["glitch", "x", "y", "label"])


def map_and_audit(found: DatasetScan) -> None:
    """Explore's map of the dataset and its label audit, behind a toggle: they need the model."""
    if not st.toggle("Map of the dataset and label audit", key="similar_map_on",
                     help="Embeds every glitch with the sidebar's model (once per server), then draws a t-SNE map "
                          "coloured by label and lists the glitches whose label disagrees with their neighbours."):
        st.caption("Turn on to embed the dataset with the loaded model: a map of every glitch, coloured by label, "
                   "and the glitches whose label most of their nearest neighbours disagree with.")
        return
    predictor, about = ui.current_predictor()
    if predictor is None:
        st.warning(about)
        return
    index = shared_index(predictor, found, wait=True)
    if index is None:
        return
    from glitchnet.similar import AUDIT_NEIGHBOURS, MAP_MAX_GLITCHES, map_rows

    st.subheader("Map of the dataset")
    points = _map(index.key, MAP_SEED, index)
    fig = px.scatter(points, x="x", y="y", color="label", hover_data={"glitch": True, "ifo": True, "split": True,
                                                                      "x": False, "y": False},
                     category_orders={"label": sorted(points["label"].unique())}, labels={"label": "class"})
    fig.update_traces(marker={"size": 7, "opacity": 0.8})
    yours = _your_glitches(predictor, index, points)
    if not yours.empty:
        fig.add_trace(go.Scatter(x=yours["x"], y=yours["y"], mode="markers", name="your glitches",
                                 marker={"symbol": "star", "size": 16, "color": "black"},
                                 text=yours["glitch"], hovertemplate="your glitch %{text}<extra></extra>"))
    fig.update_layout(height=520, margin={"t": 10, "b": 10}, dragmode="select",
                      xaxis={"visible": False}, yaxis={"visible": False})
    sampled = f" (a sample of {MAP_MAX_GLITCHES:,})" if len(points) < len(index) else ""
    st.caption(f"{len(points):,} glitches{sampled}, placed by t-SNE so that glitches the model sees alike lie close. "
               "Drag a box (or, from the toolbar, a lasso) round a region to list its glitches."
               + (" Stars are your glitches from the Predict page, placed among their nearest neighbours."
                  if not yours.empty else ""))
    event = st.plotly_chart(fig, key="similar_map", on_select="rerun", selection_mode=("lasso", "box", "points"))
    chosen = [p["customdata"][0] for p in (event.selection.points if event else []) if p.get("customdata")]
    if chosen:
        picked = map_rows(points, chosen)
        st.markdown(f"**{len(picked)} glitch(es) selected**")
        st.dataframe(picked[["glitch", "label", "ifo", "split"]], hide_index=True)
        thumbnails(picked.head(LISTED), key="map-pick")
    st.subheader("Label audit")
    audit = _audit(index.key, index)
    st.caption(f"Glitches whose label most of their {AUDIT_NEIGHBOURS} nearest glitches disagree with, the likeliest "
               "mislabels first: the first place to look for mislabelled training images.")
    if audit.empty:
        st.success("No glitch disagrees with most of its neighbours.")
        return
    share = st.column_config.ProgressColumn("neighbours disagreeing", format="percent", min_value=0, max_value=1)
    st.dataframe(audit[["glitch", "label", "neighbours_say", "disagreeing", "similarity"]], hide_index=True,
                 column_config={"disagreeing": share, "neighbours_say": "neighbours say", "label": "its label"})
    thumbnails(audit.head(LISTED).assign(label=audit["label"] + " → " + audit["neighbours_say"]), key="audit")
