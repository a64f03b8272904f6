"""Train: start a training run in the background, watch it live, stop it, and see its test-split evaluation."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from glitchnet import jobs
from glitchnet.config import (
    AUGMENTATION_LABELS,
    AUGMENTATION_MODES,
    FIRST_RUN_EPOCHS,
    LEARNING_RATES,
    VIEWS,
    TrainConfig,
)
from glitchnet.errors import GlitchNetError, one_line
from pages import _ui as ui

if TYPE_CHECKING:  # torch comes with them: imported where a run is started or scored, never on a hosted server
    from glitchnet.evaluate import Evaluation

GALLERY_SIZE = 12
# One colour per split in both charts: viridis green and yellow, far apart on the dark theme (its own two categorical
# colours are two blues). A comment: a bare string in a page file is drawn on the page (Streamlit's "magic").
SPLIT_COLOURS = {"training": "#35b779", "validation": "#fde725"}


def form(root: str, last: TrainConfig | None) -> None:
    """The run's settings; after a run they start from that run's (the form is not drawn while it runs, so
    Streamlit forgets the widgets' own values)."""
    with st.form("train"):
        cols = st.columns(3)
        base = last or TrainConfig  # the class's field defaults before any run
        epochs = cols[0].number_input("Epochs", 1, 100, last.epochs if last else FIRST_RUN_EPOCHS)
        batch_size = cols[1].select_slider("Batch size", [4, 8, 16, 32, 64, 128], value=base.batch_size)
        view = cols[2].selectbox("View (s)", VIEWS, index=VIEWS.index(base.view) if base.view in VIEWS else 0,
                                 help="Which duration to train on; 'all' uses the four views as separate images.")
        cols = st.columns(3)
        rates = sorted({*LEARNING_RATES, base.lr})  # a log grid: each step changes the rate visibly
        lr = cols[0].select_slider("Learning rate", rates, value=base.lr, format_func=lambda r: f"{r:g}")
        weight_decay = cols[1].number_input("Weight decay", 0.0, 1.0, base.weight_decay, format="%.3f", step=0.01)
        augment = cols[2].radio("Augmentation", AUGMENTATION_MODES, index=AUGMENTATION_MODES.index(base.augment),
                                format_func=AUGMENTATION_LABELS.get)
        if not st.form_submit_button("Start training", type="primary"):
            return
    out = ui.runs_dir() / f"glitchnet-{time.strftime('%Y%m%d-%H%M%S')}.pt"
    config = TrainConfig(data=root, out=str(out), epochs=int(epochs), batch_size=int(batch_size), lr=float(lr),
                         weight_decay=float(weight_decay), view=view, augment=augment)
    from glitchnet.train import check_training_data, prepare_run

    try:  # refuse up front what the run would refuse after its start (settings, outputs, a meaningless dataset)
        prepared = prepare_run(config)
        prepared.checked = check_training_data(ui.scan(root, view))
    except GlitchNetError as exc:
        st.error(one_line(exc))
        return
    try:
        jobs.start_job(ui.session_id(), config, prepared)  # the run does not check again
    except jobs.JobBusyError as exc:
        st.warning(str(exc))
        return
    st.rerun()


def curves(view: jobs.JobView) -> None:
    cols = st.columns(2)
    if view.batch_losses:
        steps, validation = jobs.loss_curves(view)
        fig = go.Figure(go.Scatter(x=steps["epoch"], y=steps["loss"], mode="lines" if len(steps) > 1 else "markers",
                                   name="training (batches)",  # one point as a marker: a one-point line is blank
                                   line_color=SPLIT_COLOURS["training"], marker_color=SPLIT_COLOURS["training"]))
        if not validation.empty:
            fig.add_scatter(x=validation["epoch"], y=validation["val_loss"], mode="lines+markers", name="validation",
                            line_color=SPLIT_COLOURS["validation"], marker_color=SPLIT_COLOURS["validation"])
        # the title above the chart, not in it: plotly's toolbar sits over a chart's top edge
        fig.update_layout(xaxis_title="epoch", height=320, margin={"t": 30, "b": 10})
        cols[0].markdown("**Loss** (running mean over the epoch)")
        cols[0].plotly_chart(fig)
    if view.history:
        hist = jobs.accuracy_curve(view.history)
        fig = px.line(hist, x="epoch", y="value", color="split", markers=True, range_y=[0, 1],
                      color_discrete_map=SPLIT_COLOURS)
        fig.update_layout(height=320, margin={"t": 30, "b": 10}, yaxis_title="accuracy")
        cols[1].markdown("**Accuracy** per epoch")
        cols[1].plotly_chart(fig)


def evaluation(result: Evaluation) -> None:
    from glitchnet.evaluate import present_classes

    st.subheader(f"Evaluation on the {result.split} split")
    m = result.metrics
    cols = st.columns(3)
    cols[0].metric("Accuracy", f"{m['accuracy']:.1%}")
    cols[1].metric("Macro-F1", f"{m['macro_f1']:.3f}")
    cols[2].metric("Images", f"{m['n']:,}")
    names, matrix, table = present_classes(m)
    fig = px.imshow(matrix, x=names, y=names, color_continuous_scale="Viridis", text_auto=True, aspect="auto",
                    labels={"x": "predicted", "y": "true", "color": "images"})
    fig.update_layout(height=max(360, 28 * len(names)), margin={"t": 10})
    st.plotly_chart(fig)
    st.dataframe(table, hide_index=True, column_config={
        c: st.column_config.NumberColumn(format="%.3f") for c in ("precision", "recall", "f1")})
    wrong = result.misclassified
    st.markdown(f"**Misclassified images** ({len(wrong)}; the most confident mistakes first)")
    for col, row in ui.grid(wrong.head(GALLERY_SIZE).to_dict("records")):
        col.image(row["path"], width="stretch",
                  caption=f"true {row['true']} → {row['predicted']} ({row['confidence']:.0%})")


def progress_panel(job: jobs.TrainingJob) -> None:
    view = job.view()
    event = view.latest
    if view.status == "running":
        if event is not None and event.kind == "cache":
            st.progress(event.step_fraction, text=f"{event.message}: {event.step}/{event.steps}")
        elif event is not None and event.kind in ("batch", "epoch"):
            st.progress(event.fraction, text=f"epoch {event.epoch}/{event.epochs}, batch {event.step}/"
                        f"{event.steps}: loss {event.loss:.3f}, accuracy {event.accuracy:.1%}, "
                        f"{event.images_per_s:.0f} images/s")
        else:
            st.progress(0.0, text=event.message if event is not None and event.message else "starting…")
        stopping = job.stop.is_set()
        # one widget (its key) whose label changes: without a key, a new label made a second button beside the first
        st.button("Stopping after this batch…" if stopping else "Stop", on_click=job.stop.set, key="train_stop",
                  icon=":material/stop:", disabled=stopping)
    elif view.status == "evaluating":
        st.progress(1.0, text="training finished; evaluating the checkpoint on the test split…")
    curves(view)
    for message in view.messages:
        st.caption(message)
    if view.checkpoint is not None:
        st.markdown(f"Checkpoint: `{view.checkpoint}`")
    if view.finished:
        if view.status == "failed":
            st.error(f"Training failed: {view.error}")
        else:
            st.success(f"Training {'stopped' if view.status == 'stopped' else 'finished'} after "
                       f"{view.elapsed_s:.0f} s.")
        if view.checkpoint is not None:
            caveat = jobs.predict_caveat(view)
            if caveat is not None:
                st.warning(caveat)
            st.button("Use this model on the Predict page", on_click=ui.use_training_run)
        if view.evaluation is not None:
            evaluation(view.evaluation)


def main() -> None:
    st.title("Train GlitchNet")
    if ui.hosted():
        st.info("Training is switched off on this public server: it would take every CPU core for minutes. "
                "Install GlitchNet and run `streamlit run streamlit_app.py` to train on your own computer.")
        return
    root = ui.dataset_root()
    if not root:
        st.info("Choose a dataset in the sidebar first.")
        return
    st.caption(f"Dataset: {root}")
    job = ui.session_job()
    if job is None or job.view().finished:
        form(root, job.config if job is not None else None)
        if job is not None:
            progress_panel(job)
        return

    @st.fragment(run_every=1.0)
    def live() -> None:
        ui.guard(lambda: progress_panel(job))
        if job.view().finished:
            st.rerun()  # redraw the whole page once: the results and the form come back, polling stops

    live()


ui.run_page(main)
