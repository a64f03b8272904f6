"""Explore: class counts per split, sample images per class, one glitch's four views, and trigger metadata."""

import pandas as pd
import plotly.express as px
import streamlit as st

from glitchnet import explore
from glitchnet.config import SPLITS
from glitchnet.data import DatasetScan
from pages import _similar
from pages import _ui as ui

GRID_SIZE = 12


def filters(found: DatasetScan) -> pd.DataFrame:
    df = found.manifest
    cols = st.columns(3)
    classes = cols[0].multiselect("Classes", explore.present_classes(df), placeholder="All classes")
    splits = cols[1].multiselect("Splits", explore.present_splits(df), placeholder="All")
    ifos = cols[2].multiselect("Detectors", explore.present_detectors(df), placeholder="Both")
    return explore.filter_manifest(df, classes, splits, ifos)


def counts(df: pd.DataFrame) -> None:
    st.subheader("Glitches per class and split")
    glitches = explore.glitches_per_class_split(df)
    fig = px.bar(glitches, x="label", y="glitches", color="split", barmode="group",  # the classes shown, no others
                 category_orders={"label": explore.present_classes(df), "split": list(SPLITS)},
                 labels={"label": "class", "glitches": "glitches (each has up to four views)"})
    fig.update_layout(height=380, margin={"t": 10, "b": 10}, xaxis_tickangle=-45)
    st.plotly_chart(fig)


def sample_grid(df: pd.DataFrame) -> None:
    st.subheader("Sample images")
    cols = st.columns([2, 1, 1])
    label = cols[0].selectbox("Class", explore.present_classes(df), key="explore_class")
    durations = explore.view_durations(df)
    duration = cols[1].selectbox("View (s)", durations, index=explore.default_duration_index(durations),
                                 key="explore_duration") if durations else None
    if cols[2].button("Another sample", width="stretch"):
        st.session_state["explore_seed"] = st.session_state.get("explore_seed", 0) + 1
    rows = explore.sample_rows(df, label, duration, GRID_SIZE, st.session_state.get("explore_seed", 0))
    for col, row in ui.grid(rows.to_dict("records")):
        col.image(row["path"], caption=f"{row['ifo'] or ''} {row['gravityspy_id']} ({row['split']})",
                  width="stretch")


def four_views(df: pd.DataFrame) -> None:
    st.subheader("One glitch, four views")
    label = st.session_state.get("explore_class")
    ids = explore.glitch_ids_by_completeness(df, label)  # complete glitches first
    if not ids:
        st.caption("No glitch with Gravity Spy file names in this selection.")
        return
    gid = st.selectbox(f"Glitch id ({label})", ids)
    views = explore.glitch_views(df, gid, label)
    for col, row in ui.grid(views.to_dict("records")):
        col.image(row["path"], caption=f"{row['duration']:g} s", width="stretch")
    st.caption("The same glitch over 0.5, 1, 2 and 4 seconds: short views show its shape, long ones its context.")


def metadata_plots(found: DatasetScan, df: pd.DataFrame) -> None:
    if not explore.has_trigger_metadata(found.metadata):
        return
    st.subheader("Trigger parameters (metadata CSV)")
    meta = explore.matching_metadata(found.metadata, df)
    if meta.empty:
        st.caption("No metadata rows match the current selection.")
        return
    by_ifo = "ifo" if "ifo" in meta.columns else None
    shown = explore.present_classes(meta)
    fig = px.scatter(meta, x="duration", y="peak_frequency", color="label", facet_col=by_ifo, log_x=True, log_y=True,
                     category_orders={"label": shown}, hover_data=["gravityspy_id", "snr"],
                     color_discrete_map=explore.class_colours(explore.present_classes(found.manifest)),
                     labels={"duration": "duration (s)", "peak_frequency": "peak frequency (Hz)", "label": "class"})
    # every class in the legend: below the plot, in rows, with room for them all
    rows = -(-len(shown) // 4)
    fig.update_layout(height=420 + 24 * rows, margin={"t": 30},
                      legend={"orientation": "h", "yanchor": "top", "y": -0.15, "xanchor": "left", "x": 0})
    # log axes: one labelled tick per decade, not plotly's 2-and-5 in between, when the points span decades
    if explore.decade_ticks(meta["duration"]):
        fig.update_xaxes(dtick=1)
    if explore.decade_ticks(meta["peak_frequency"]):
        fig.update_yaxes(dtick=1)
    st.plotly_chart(fig)
    fig = px.box(meta, x="label", y="snr", color=by_ifo, log_y=True, category_orders={"label": shown},
                 labels={"label": "class", "snr": "signal-to-noise ratio"})
    fig.update_layout(height=380, margin={"t": 10}, xaxis_tickangle=-45)
    if explore.decade_ticks(meta["snr"]):
        fig.update_layout(yaxis_dtick=1)
    st.plotly_chart(fig)


def skipped_notice(found: DatasetScan) -> None:
    if found.skipped.empty:
        return
    st.warning(f"{len(found.skipped)} file(s) or folder(s) were skipped: unreadable images, unknown class folders "
               "or duplicate glitch ids. They are left out of every count, chart and training run.")
    table = found.skipped
    if ui.hosted():  # no server paths on a public deployment: names relative to the dataset folder
        table = explore.relative_paths(table, found.root)
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
    _similar.map_and_audit(found)


ui.run_page(main)
