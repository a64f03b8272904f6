"""Predict: classify uploaded or bundled spectrograms, with top-5 probabilities, Grad-CAM and a volunteer mode."""

from pathlib import Path

import plotly.express as px
import streamlit as st

from glitchnet.classes import CLASSES, INFO_BY_NAME
from glitchnet.inference import Prediction, format_probability, overlay, results_table
from pages import _ui as ui

MAX_CARDS = 24  # results drawn in full; the rest of a large batch is in the table and the CSV
UNPICKED = "Choose…"


def inputs() -> list[tuple[str, bytes]]:
    """(name, bytes) of every uploaded file within the limits and every bundled sample picked."""
    cols = st.columns([3, 2])
    limit = ui.upload_limit_bytes()
    uploads = cols[0].file_uploader(
        "Upload spectrograms", type=["png", "jpg", "jpeg", "gif"], accept_multiple_files=True,
        help="Kaggle/Zenodo images, full Gravity Spy figures or screenshots; a golden GIF's four frames are its "
             "four views. Files named like H1_<id>_spectrogram_1.0.png are also combined per glitch.")
    files = []
    for upload in uploads or []:
        if upload.size > limit:
            st.error(f"{upload.name}: larger than the {limit // 2**20} MB upload limit, skipped.")
        else:
            files.append((upload.name, upload.getvalue()))
    found = ui.current_scan()
    samples = ui.examples_by_class(found, splits=("test", "validation", "train")) if found is not None else {}
    picked = cols[1].multiselect("…or pick bundled samples", list(samples), placeholder="One image per class",
                                 help="Images from the current dataset (test split first).")
    files += [(Path(samples[label]).name, Path(samples[label]).read_bytes()) for label in picked]
    if ui.hosted() and len(files) > ui.HOSTED_MAX_FILES:
        st.warning(f"Only the first {ui.HOSTED_MAX_FILES} files are classified on this public server.")
        files = files[:ui.HOSTED_MAX_FILES]
    return files


def top5_chart(pred: Prediction, key: str) -> None:
    names, probs = zip(*pred.top5, strict=True)
    fig = px.bar(x=probs, y=names, orientation="h", range_x=[0, 1], text=[format_probability(p) for p in probs],
                 labels={"x": "probability", "y": ""}, color=probs, color_continuous_scale="Viridis",
                 range_color=[0, 1])
    fig.update_layout(height=220, margin={"t": 5, "b": 5, "l": 5, "r": 5}, coloraxis_showscale=False,
                      yaxis={"autorange": "reversed"})
    st.plotly_chart(fig, key=key)


def verdict(pred: Prediction, classes: list[str], yours: str | None = None) -> None:
    if yours is not None:
        yours_p = float(pred.probabilities[classes.index(yours)]) if yours in classes else 0.0
        if yours == pred.label:
            st.success(f"The model agrees with you: **{pred.label}**, {format_probability(pred.confidence)} sure.")
        else:
            st.info(f"You said **{yours}**; the model says **{pred.label}** ({format_probability(pred.confidence)}). "
                    f"It gives your label {format_probability(yours_p)}.")
    else:
        st.markdown(f"### {pred.label.replace('_', ' ')} · {format_probability(pred.confidence)}")
    if pred.warning:
        st.warning(f"Careful: {pred.warning}.")
    elif pred.low_confidence:
        st.warning(f"The model is not sure: its best guess has only {format_probability(pred.confidence)} "
                   "probability. This may be a class it confuses, several glitches at once, or something it never saw.")
    info = INFO_BY_NAME.get(pred.label)
    if info is not None:
        st.caption(f"**Field guide, {info.name}:** {info.looks_like}. Origin: {info.origin}.")


def card(result: ui.Result, classes: list[str], index: int, volunteer: bool, opacity: float,
         yours: dict[str, str]) -> None:
    pred = result.prediction
    with st.container(border=True):
        st.markdown(f"**{result.caption or pred.name}**")
        if pred.error is not None:
            st.error(f"{pred.name}: {pred.error}")
            return
        cols = st.columns([1, 1, 1.4])
        cols[0].image(result.image, caption="plot area, as the model sees it", width="stretch")
        with cols[2]:
            if volunteer:
                label = st.selectbox("Your label", [UNPICKED, *CLASSES], key=f"volunteer-{index}-{pred.name}")
                if label == UNPICKED:
                    st.caption("Pick your label to see what the model thinks.")
                    return
                yours[pred.name] = label
            verdict(pred, classes, yours.get(pred.name))
            top5_chart(pred, key=f"top5-{index}-{pred.name}")
        cols[1].image(overlay(result.image, result.heat, opacity), width="stretch",
                      caption="Grad-CAM: where the model looked")


def fused_card(pred: Prediction, classes: list[str], index: int) -> None:
    with st.container(border=True):
        st.markdown(f"**{pred.name}**: all views combined")
        if pred.error is not None:
            st.error(pred.error)
            return
        verdict(pred, classes)
        top5_chart(pred, key=f"fused-{index}-{pred.name}")


def main() -> None:
    st.title("Classify a glitch")
    predictor, about = ui.current_predictor()
    if predictor is None:
        st.warning(about)
        job = ui.session_job()
        if job is not None and job.view().checkpoint is not None:
            st.button("Use the checkpoint from my training run", on_click=ui.use_training_run, type="primary")
        return
    st.caption(f"Model: {about}")
    files = inputs()
    cols = st.columns(2)
    volunteer = cols[0].toggle("Volunteer mode: choose your own label first, then see if the model agrees")
    opacity = cols[1].slider("Heatmap opacity", 0.0, 1.0, 0.45, 0.05)
    if not files:
        st.info("Upload one or more spectrograms, or pick bundled samples, to classify them.")
        return
    with st.spinner(f"Classifying {len(files)} file(s)…"):
        per_file = [ui.classify_cached(ui.model_key(predictor), name, data, predictor) for name, data in files]
        fused = ui.fuse_views(predictor, per_file)
    results = [r for rs in per_file for r in rs]
    yours: dict[str, str] = {}
    for index, result in enumerate(results[:MAX_CARDS]):
        card(result, predictor.classes, index, volunteer, opacity, yours)
    if len(results) > MAX_CARDS:
        st.caption(f"{len(results) - MAX_CARDS} more result(s) are in the table below.")
    all_labelled = all(r.prediction.name in yours or r.prediction.error for r in results[:MAX_CARDS])
    if not volunteer or all_labelled:
        for index, pred in enumerate(fused):
            fused_card(pred, predictor.classes, index)
    summary([r.prediction for r in results] + fused, volunteer, yours)


def summary(predictions: list[Prediction], volunteer: bool, yours: dict[str, str]) -> None:
    st.subheader("All results")
    if volunteer:
        predictions = [p for p in predictions if p.name in yours or p.error is not None]
    table = results_table(predictions, yours)
    st.dataframe(table, hide_index=True)
    st.download_button("Download results (CSV)", table.to_csv(index=False).encode(), "glitchnet_predictions.csv",
                       "text/csv", icon=":material/download:")


ui.run_page(main)
