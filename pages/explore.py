"""Explore: class counts per split, sample images per class, one glitch's four views, and trigger metadata."""

import pandas as pd
import plotly.express as px
import streamlit as st

from glitchnet.classes import CLASSES
from glitchnet.data import DatasetScan
from glitchnet.serving import dataset_relative
from pages import _ui as ui

SPLIT_ORDER = ["train", "validation", "test"]
GRID_SIZE = 12


def filters(found: DatasetScan) -> pd.DataFrame:
    df = found.manifest
    cols = st.columns(3)
    present = [c for c in CLASSES if c in set(df["label"])]
    classes = cols[0].multiselect("Classes", present, placeholder="All classes")
    splits = cols[1].multiselect("Splits", [s for s in SPLIT_ORDER if s in set(df["split"])], placeholder="All")
    ifos = cols[2].multiselect("Detectors", sorted(df["ifo"].dropna().unique()), placeholder="Both")
    if classes:
        df = df[df["label"].isin(classes)]
    if splits:
        df = df[df["split"].isin(splits)]
    if ifos:
        df = df[df["ifo"].isin(ifos)]
    return df


def counts(df: pd.DataFrame) -> None:
    st.subheader("Glitches per class and split")
    glitches = df.groupby(["label", "split"])["gravityspy_id"].nunique().rename("glitches").reset_index()
    fig = px.bar(glitches, x="label", y="glitches", color="split", barmode="group",
                 category_orders={"label": list(CLASSES), "split": SPLIT_ORDER},
                 labels={"label": "class", "glitches": "glitches (each has up to four views)"})
    fig.update_layout(height=380, margin={"t": 10, "b": 10}, xaxis_tickangle=-45)
    st.plotly_chart(fig)


def sample_grid(df: pd.DataFrame) -> None:
    st.subheader("Sample images")
    cols = st.columns([2, 1, 1])
    label = cols[0].selectbox("Class", [c for c in CLASSES if c in set(df["label"])], key="explore_class")
    durations = sorted(df["duration"].dropna().unique())
    duration = cols[1].selectbox("View (s)", durations, index=durations.index(1.0) if 1.0 in durations else 0,
                                 key="explore_duration") if durations else None
    if cols[2].button("Another sample", width="stretch"):
        st.session_state["explore_seed"] = st.session_state.get("explore_seed", 0) + 1
    rows = df[df["label"] == label]
    if duration is not None:
        rows = rows[(rows["duration"] == duration) | rows["duration"].isna()]
    rows = rows.sample(min(GRID_SIZE, len(rows)), random_state=st.session_state.get("explore_seed", 0))
    for col, row in ui.grid(rows.to_dict("records")):
        col.image(row["path"], caption=f"{row['ifo'] or ''} {row['gravityspy_id']} ({row['split']})",
                  width="stretch")


def four_views(df: pd.DataFrame) -> None:
    st.subheader("One glitch, four views")
    label = st.session_state.get("explore_class")
    rows = df[df["label"] == label] if label else df
    views_per_id = rows.dropna(subset=["ifo"]).groupby("gravityspy_id").size()
    ids = sorted(views_per_id.index, key=lambda gid: (-views_per_id[gid], gid))  # complete glitches first
    if not ids:
        st.caption("No glitch with Gravity Spy file names in this selection.")
        return
    gid = st.selectbox(f"Glitch id ({label})", ids)
    views = rows[rows["gravityspy_id"] == gid].sort_values("duration")
    for col, row in ui.grid(views.to_dict("records")):
        col.image(row["path"], caption=f"{row['duration']:g} s", width="stretch")
    st.caption("The same glitch over 0.5, 1, 2 and 4 seconds: short views show its shape, long ones its context.")


def metadata_plots(found: DatasetScan, df: pd.DataFrame) -> None:
    meta = found.metadata
    needed = {"peak_frequency", "duration", "snr", "label"}
    if meta is None or not needed.issubset(meta.columns):
        return
    st.subheader("Trigger parameters (metadata CSV)")
    meta = meta[meta["gravityspy_id"].astype(str).isin(set(df["gravityspy_id"]))]
    meta = meta[(meta["peak_frequency"] > 0) & (meta["duration"] > 0) & (meta["snr"] > 0)]
    if meta.empty:
        st.caption("No metadata rows match the current selection.")
        return
    by_ifo = "ifo" if "ifo" in meta.columns else None
    fig = px.scatter(meta, x="duration", y="peak_frequency", color="label", facet_col=by_ifo, log_x=True, log_y=True,
                     category_orders={"label": list(CLASSES)}, hover_data=["gravityspy_id", "snr"],
                     labels={"duration": "duration (s)", "peak_frequency": "peak frequency (Hz)", "label": "class"})
    fig.update_layout(height=460, margin={"t": 30})
    st.plotly_chart(fig)
    fig = px.box(meta, x="label", y="snr", color=by_ifo, log_y=True, category_orders={"label": list(CLASSES)},
                 labels={"label": "class", "snr": "signal-to-noise ratio"})
    fig.update_layout(height=380, margin={"t": 10}, xaxis_tickangle=-45)
    st.plotly_chart(fig)


def skipped_notice(found: DatasetScan) -> None:
    if found.skipped.empty:
        return
    st.warning(f"{len(found.skipped)} file(s) or folder(s) were skipped: unreadable images, unknown class folders "
               "or duplicate glitch ids. They are left out of every count, chart and training run.")
    table = found.skipped
    if ui.hosted():  # no server paths on a public deployment: names relative to the dataset folder
        table = table.assign(path=table["path"].map(lambda p: dataset_relative(p, found.root)))
    with st.expander("Skipped files"):
        st.dataframe(table, hide_index=True)


def main() -> None:
    st.title("Explore the dataset")
    found = ui.current_scan()
    if found is None:
        return
    head = st.columns([4, 1])
    where = found.root.name if ui.hosted() else found.root
    head[0].caption(f"{where} ({found.layout} layout): {len(found.manifest):,} images.")
    if head[1].button("Rescan folder", width="stretch"):
        ui.scan.clear()
        st.rerun()
    skipped_notice(found)
    df = filters(found)
    if df.empty:
        st.info("Nothing matches these filters.")
        return
    counts(df)
    sample_grid(df)
    four_views(df)
    metadata_plots(found, df)


ui.run_page(main)
