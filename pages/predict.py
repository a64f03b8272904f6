"""Predict: one card per glitch (images, GIFs, bundled samples or a strain file), the combined verdict first, then its
views with Grad-CAM; a volunteer mode that asks for one label per glitch, and a quiz on the bundled samples."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.express as px
import streamlit as st

from glitchnet.classes import ALL_INFO
from glitchnet.engine import format_probability, overlay
from glitchnet.glitches import (
    KEPT_UNLABELLED,
    Glitch,
    Prediction,
    Results,
    View,
    example_glitches,
    glitch_key,
    label_source,
    page_count,
    page_items,
    quiz_score,
    random_glitch,
    results_table,
    view_answers,
    views_disagree,
)
from glitchnet.jobs import one_line
from glitchnet.names import csv_bytes, plain
from glitchnet.serving import MAX_UPLOAD_MB, UPLOAD_TYPES, BudgetError, oversized, take_uploads
from glitchnet.strain import StrainError
from pages import _similar
from pages import _ui as ui

GLITCHES_PER_PAGE = 6
UNPICKED = "Choose…"
# Session state: the volunteer's label per glitch key (kept while the glitch's card is on another page), the
# quiz: the glitch on show (label, paths) and the answers so far (glitch key -> (yours, truth, the model's)), the
# visitor's results over every batch (glitches.Results), the bundled samples picked, and the lines that turned away
# the last upload's files (kept once those files are released).
LABELS_KEY = "volunteer_labels"
QUIZ_KEY = "quiz"
RESULTS_KEY = "predict_results"
SAMPLES_KEY = "predict_samples"
REFUSED_KEY = "predict_refused"
PAGE_KEY = "predict_page"


@dataclass
class Batch:
    """What the visitor asked to classify: image files, the views of a strain scan, and the known answers."""

    files: list[tuple[str, bytes]] = field(default_factory=list)
    strain: list[View] = field(default_factory=list)
    strain_key: str = ""
    truth: dict[str, tuple[str, str]] = field(default_factory=dict)
    """The known label and where it comes from (``glitches.label_source``) by glitch key: bundled samples, the
    quiz."""
    score: Any = None
    """Where the quiz score is drawn, once the cards have recorded this run's answers."""
    upload_ids: tuple[str, ...] = ()
    """The uploaded files' ids: with the rest, what identifies this batch."""
    n_uploaded: int = 0
    """How many of ``files`` (the first) were uploaded; the rest are bundled samples."""
    release: Callable[[], None] | None = None
    """Drops the uploaded files from the server's memory and draws an empty uploader."""
    refused: list[str] = field(default_factory=list)
    """One line per uploaded file turned away (over the size limit)."""


def _read_samples(paths: list[str], label: str, batch: Batch, source: str) -> None:
    for path in paths:
        batch.files.append((Path(path).name, Path(path).read_bytes()))
        batch.truth[glitch_key(Path(path).name)] = (label, source)


def _source(found: Any) -> str:
    """Where the current dataset's labels come from (the simulator, or the dataset's folders), as the cards say."""
    return label_source(found.simulated, found.root.name)


def quiz_state() -> dict:
    return st.session_state.setdefault(QUIZ_KEY, {"current": None, "answers": {}})


def quiz_inputs(batch: Batch) -> None:
    """Volunteer mode on a dataset: a random glitch with its label hidden; ``batch.score`` holds the score's place."""
    found = ui.current_scan()
    if found is None:
        return
    quiz = quiz_state()
    cols = st.columns([2, 3], vertical_alignment="center")
    if cols[0].button("Quiz me: a glitch from the dataset", icon=":material/quiz:"):
        ckpt, _ = ui.current_model()
        quiz["current"] = random_glitch(found.manifest, classes=ckpt.classes if ckpt is not None else None)
    batch.score = cols[1].empty()
    if quiz["current"] is not None:
        _read_samples(quiz["current"][1], quiz["current"][0], batch, _source(found))


def score(batch: Batch) -> None:
    """The quiz's running score: the visitor's and the model's right answers on the glitches labelled so far."""
    answers = list(quiz_state()["answers"].values())
    if batch.score is not None and answers:
        you, model = quiz_score(answers)
        batch.score.markdown(f"**Quiz score:** you {you} of {len(answers)}, the model {model} of {len(answers)}")


def strain_inputs(batch: Batch) -> None:
    """A GWOSC strain file and a GPS time: the four views made by the project's own scan."""
    with st.expander("…or make the views from strain: a GWOSC HDF5 file and a GPS time"):
        cols = st.columns([3, 2])
        upload = cols[0].file_uploader(f"Strain file (GWOSC HDF5, up to {MAX_UPLOAD_MB} MB)",
                                       type=["hdf5", "h5", "hdf"], key="strain_file")
        gps = cols[1].number_input("GPS time of the glitch (s)", min_value=0.0, value=None, step=0.01,
                                   format="%.3f", key="strain_gps")
        if upload is None:
            return
        refusal = oversized(upload.name, upload.size)
        if refusal is not None:
            st.error(refusal)
            return
        if gps is None:
            st.info("Enter the GPS time of the glitch to scan it.")
            return
        data = upload.getvalue()
        try:
            with st.spinner("Scanning the strain (whitening and Q transform)…"):
                batch.strain = ui.strain_views(upload.name, ui.file_digest(data), float(gps), data)
            batch.strain_key = f"{upload.name}:{ui.file_digest(data)}@{gps}"
        except (StrainError, BudgetError) as exc:  # one line, fit for a user, by contract
            text = str(exc)  # one line, fit for a user, by contract; the file's name shown as plain text
            st.error(text.replace(upload.name, plain(upload.name)) if upload.name in text
                     else f"{plain(upload.name)}: {text}")
        except Exception as exc:  # any other reader failure: one line, the traceback to the log
            ui.LOG.exception("scanning %s failed", upload.name)
            st.error(f"{plain(upload.name)}: {ui.public(one_line(exc))}")


def uploader(slot: Any) -> list:
    """The image uploader, drawn in ``slot``; a fresh, empty one once the last uploads are released."""
    return slot.file_uploader(
        f"Upload spectrograms (up to {MAX_UPLOAD_MB} MB each)", type=list(UPLOAD_TYPES), accept_multiple_files=True,
        key=ui.uploader_key(),
        help="Kaggle/Zenodo images, full Gravity Spy figures or screenshots. A golden GIF's four frames are its "
             "four views; files named like H1_<id>_spectrogram_1.0.png are combined per glitch. Classified files "
             "are released from the server's memory: upload more to classify another batch.") or []


def inputs(volunteer: bool) -> Batch:
    """Every uploaded file within the size limit, every bundled sample picked, the quiz glitch and the strain
    views."""
    batch = Batch()
    cols = st.columns([3, 2])
    slot = cols[0].empty()
    uploads = uploader(slot)
    # only the files within the size limit and the batch budget are read; the others are named and let go now
    taken = take_uploads(uploads, ui.budget())
    batch.files, batch.refused = taken.files, taken.refused
    batch.upload_ids, batch.n_uploaded = tuple(u.file_id for u in uploads), len(batch.files)

    def release() -> None:
        ui.release_uploads(uploads)
        uploader(slot)

    if uploads:  # a new upload: its refusals replace the last one's, and stay once its files are released
        st.session_state[REFUSED_KEY] = batch.refused
    else:
        batch.refused = st.session_state.get(REFUSED_KEY, [])
    batch.release = release if uploads else None
    if taken.dropped:  # files turned away: every upload out of the server's memory at once (an empty uploader);
        release()         # the bytes to classify are in hand
        batch.release = None
    found = ui.current_scan()
    samples = example_glitches(found.manifest) if found is not None else {}
    picked = cols[1].multiselect("…or pick bundled samples", list(samples), placeholder="One glitch per class",
                                 key=SAMPLES_KEY,
                                 help="All views of one glitch per class from the current dataset (test split "
                                      "first).")
    for label in picked:
        _read_samples(samples[label], label, batch, _source(found))
    if volunteer:
        quiz_inputs(batch)
    strain_inputs(batch)
    return batch


def top5_chart(pred: Prediction, key: str) -> None:
    names, probs = zip(*pred.top5, strict=True)
    fig = px.bar(x=probs, y=names, orientation="h", range_x=[0, 1], text=[format_probability(p) for p in probs],
                 labels={"x": "probability", "y": ""})
    # colours as strings: a number per bar (a colour axis) makes plotly.js log "Invalid color specifier" per bar
    fig.update_traces(marker_color=px.colors.sample_colorscale("Viridis", list(probs)))
    fig.update_layout(height=200, margin={"t": 5, "b": 5, "l": 5, "r": 5}, yaxis={"autorange": "reversed"})
    st.plotly_chart(fig, key=key)


def verdict(pred: Prediction, classes: list[str], yours: str | None = None,
            truth: tuple[str, str] | None = None) -> None:
    """The combined verdict: label and honest confidence, or how it compares with the volunteer's label and, for a
    dataset's glitch, with its known label (``truth``: the label and where it comes from)."""
    said = f"**{pred.label}** ({format_probability(pred.confidence)})"
    if truth is not None and yours is not None:
        truth, source = truth
        right = "You are right" if yours == truth else f"You said **{yours}**"
        text = f"{right}: {source} **{truth}**. The model says {said}."
        (st.success if yours == truth else st.info)(text)
    elif yours is not None:
        yours_p = float(pred.probabilities[classes.index(yours)]) if yours in classes else 0.0
        if yours == pred.label:
            st.success(f"The model agrees with you: **{pred.label}**, {format_probability(pred.confidence)} sure.")
        else:
            st.info(f"You said **{yours}**; the model says {said}. It gives your label "
                    f"{format_probability(yours_p)}.")
    else:
        st.markdown(f"### {pred.label.replace('_', ' ')} · {format_probability(pred.confidence)}")
    if pred.warning:
        st.warning(f"Careful: {pred.warning}.")
    elif pred.low_confidence:
        st.warning(f"The model is not sure: its best guess has only {format_probability(pred.confidence)} "
                   "probability. This may be a class it confuses, several glitches at once, or something it never saw.")
    info = ALL_INFO.get(pred.label)
    if info is not None:
        st.caption(f"**Field guide, {info.name}:** {info.looks_like}. Origin: {info.origin}.")


def views(glitch: Glitch, opacity: float, answered: bool) -> None:
    """The views side by side (0.5, 1, 2, 4 s when present), with Grad-CAM once the verdict is shown."""
    readable = glitch.readable
    for col, view in zip(st.columns(max(len(readable), 2)), readable, strict=False):
        if not answered or view.heat is None:
            col.image(view.image, caption=view.caption, width="stretch")
            continue
        p = view.prediction
        col.image(overlay(view.image, view.heat, opacity), width="stretch",
                  caption=f"{view.caption}: {p.label} {format_probability(p.confidence)}")


def disagreement(glitch: Glitch) -> None:
    """When the views alone do not all give the combined label: say so, and what each view says."""
    if views_disagree(glitch):
        each = "; ".join(f"{v.caption}: {p.label} {format_probability(p.confidence)}" for v, p in view_answers(glitch))
        st.warning(f"The views disagree. On its own, each says: {each}. The verdict above weighs all "
                   f"{len(glitch.readable)} together.")


def card(glitch: Glitch, classes: list[str], volunteer: bool, opacity: float, labels: dict[str, str],
         truth: dict[str, tuple[str, str]]) -> None:
    n = len(glitch.readable)
    with st.container(border=True):
        what = f"{n} views" if n > 1 else "1 view" if n else "no readable view"
        st.markdown(f"**{plain(glitch.key)}** · {what}")
        for view in glitch.errors:
            st.error(f"{plain(view.name)}: {view.error}")
        if not n:
            return
        yours = None
        if volunteer:
            saved = labels.get(glitch.key, UNPICKED)
            options = [UNPICKED, *classes]  # the loaded model's classes
            yours = st.selectbox("Your label for this glitch", options, index=options.index(saved),
                                 key=f"volunteer-{glitch.key}")
            if yours == UNPICKED:
                labels.pop(glitch.key, None)
                st.caption("Pick your label to see what the model thinks.")
                views(glitch, opacity, answered=False)
                return
            labels[glitch.key] = yours
            if glitch.key in truth:
                quiz_state()["answers"][glitch.key] = (yours, truth[glitch.key][0], glitch.verdict.label)
        cols = st.columns([3, 2])
        with cols[0]:
            verdict(glitch.verdict, classes, yours, truth.get(glitch.key) if volunteer else None)
            disagreement(glitch)
        with cols[1]:
            top5_chart(glitch.verdict, key=f"top5-{glitch.key}")
        label = glitch.verdict.label
        title = ("The view, with Grad-CAM" if n == 1 else
                 f"The {n} views, with Grad-CAM for the combined verdict, {label}" if views_disagree(glitch) else
                 f"The {n} views, with Grad-CAM for {label}")
        with st.expander(title, expanded=True):
            views(glitch, opacity, answered=True)
        _similar.card_section(glitch)


def summary(glitches: list[Glitch], volunteer: bool, labels: dict[str, str]) -> None:
    st.subheader("All results")
    if volunteer:
        glitches = [g for g in glitches if g.key in labels]
        if not glitches:
            st.caption("Label a glitch to see your answers in the results table and download them.")
            return
    table = results_table(glitches, labels)
    # confidences as format_probability writes them (never "100%"); the CSV keeps the numbers
    shown = table.assign(confidence=[None if pd.isna(p) else format_probability(p) for p in table["confidence"]])
    st.dataframe(shown, hide_index=True)
    cols = st.columns(2)
    cols[0].download_button("Download results (CSV)", csv_bytes(table), "glitchnet_predictions.csv",
                            "text/csv", icon=":material/download:")
    cols[1].button("Clear my results", on_click=clear_results, icon=":material/delete:",
                   help="Forget every glitch above, your labels and the quiz score.")


def results_state() -> Results:
    """This visitor's results over every batch, until they clear them."""
    return st.session_state.setdefault(RESULTS_KEY, Results())


def clear_results() -> None:
    """Button callback: forget the visitor's results, labels, quiz and picked samples."""
    results_state().clear()
    st.session_state[LABELS_KEY] = {}
    st.session_state[QUIZ_KEY] = {"current": None, "answers": {}}
    st.session_state[SAMPLES_KEY] = []
    st.session_state.pop(REFUSED_KEY, None)
    ui.forget_batch()


def main() -> None:
    started = time.monotonic()  # this run began with the visitor's request (an upload, a click)
    st.title("Classify a glitch")
    predictor, about = ui.current_predictor()
    if predictor is None:
        st.warning(about)
        job = ui.session_job()
        if job is not None and job.view().checkpoint is not None:
            st.button("Use the checkpoint from my training run", on_click=ui.use_training_run, type="primary")
        return
    st.caption(f"Model: {about}")
    cols = st.columns(2)
    volunteer = cols[0].toggle("Volunteer mode",  # a short label: a longer one was cut off at 1400 and 390 px
                               help="For each glitch, choose your own label; then see whether the model agrees. "
                                    "On the bundled samples it is a quiz, with the dataset's label as the answer "
                                    "(on a simulated dataset, the class the simulator made the glitch as).")
    opacity = cols[1].slider("Heatmap opacity", 0.0, 1.0, 0.45, 0.05)
    batch = inputs(volunteer)
    others = tuple(f"{name}:{ui.file_digest(data)}" for name, data in batch.files[batch.n_uploaded:])
    chosen = (ui.model_key(predictor), batch.upload_ids, others, batch.strain_key)
    for line in batch.refused:  # every file given is classified or named here with its reason
        st.error(line)
    done = ui.classify_batch(predictor, batch.files, batch.strain, chosen, batch.release)
    batch.files = []  # the bytes: released once classified
    results = results_state()
    labels = st.session_state.setdefault(LABELS_KEY, {})
    if done is not None and not done.kept:  # a batch just classified: first in the visitor's results
        results.add(done.glitches, batch.truth, labels)
        done.kept = True
        st.session_state[PAGE_KEY] = 1
    glitches = results.glitches
    if not glitches:
        if not batch.refused:
            st.info("Upload one or more spectrograms, pick bundled samples, or give a strain file and a GPS time.")
        return
    pages = page_count(len(glitches), GLITCHES_PER_PAGE)
    page = 1
    if pages > 1:
        page = st.selectbox("Page", range(1, pages + 1), key=PAGE_KEY, format_func=lambda k: f"{k} of {pages}")
    first, shown = page_items(glitches, page, GLITCHES_PER_PAGE)
    on_page = f"; glitches {first + 1}–{first + len(shown)} on this page" if pages > 1 else ""
    latest = f"{len(done.glitches)} glitch(es) from {done.n_files} file(s)" if done is not None else None
    if latest is not None and len(done.glitches) == len(glitches):
        st.caption(latest + on_page)
    else:
        if latest is not None:
            st.caption(f"Latest batch: {latest}")
        st.caption(f"Your results: {len(glitches)} glitch(es), the latest batch first{on_page}")
    timing = st.empty() if done is not None else None
    if results.dropped:
        st.caption(f"{results.dropped} older glitch(es) without your label were dropped: your results keep "
                   f"{KEPT_UNLABELLED} unlabelled glitches at most.")
    for glitch in shown:
        card(glitch, predictor.classes, volunteer, opacity, labels, results.truth)
    if timing is not None:  # the server's own figures: in line and the model, then the whole run to the last card
        timing.caption(f"Classified in {done.took_s:.1f} s, {done.waited_s:.1f} s of it in line; cards sent "
                       f"{time.monotonic() - started:.1f} s after the request.")
    score(batch)
    summary(glitches, volunteer, labels)


ui.run_page(main)
