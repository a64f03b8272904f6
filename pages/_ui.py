"""Shared app helpers: hosted-mode flag, the sidebar's dataset and model choice, cached scans, predictor and results."""

from __future__ import annotations

import hashlib
import logging
import os
import runpy
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import streamlit as st

from glitchnet.appsession import forget_uploads
from glitchnet.data import DatasetError, DatasetScan, scan_dataset
from glitchnet.errors import GlitchNetError, one_line
from glitchnet.explore import dataset_summary
from glitchnet.glitches import Glitch, View
from glitchnet.jobs import DatasetBuild, TrainingJob, current_build, job_for, shared_build
from glitchnet.names import scrub_paths
from glitchnet.serving import (
    Budget,
    BudgetError,
    InferenceQueue,
    Presence,
    Ticket,
    admit,
    give_back_memory,
    hosted,
    server_dataset,
)
from glitchnet.shipped import SHIPPED_MODELS, default_model_path, shipped_model_path, shipped_title

if TYPE_CHECKING:  # torch and the model are imported where used: Home draws without them (~2 s sooner)
    from glitchnet.checkpoint import Checkpoint
    from glitchnet.engine import Engine as Predictor

LOG = logging.getLogger("glitchnet.app")
APP_ROOT = Path(__file__).resolve().parents[1]
DATASET_DEFAULT, DATASET_FOLDER = "Built-in dataset", "A folder on this computer"
MODEL_SHIPPED, MODEL_RUN, MODEL_FILE = "Shipped model", "My training run", "A checkpoint file"
DEFAULT_SHIPPED = next(iter(SHIPPED_MODELS))

T = TypeVar("T")

def session_id() -> str:
    """This visitor's id (a browser tab: its own session state), made on its first script run and kept in the
    session; each call also marks the visitor as still here (``presence``)."""
    visitor = st.session_state.setdefault("visitor_id", uuid.uuid4().hex)
    presence().seen(visitor)
    return visitor


def guard(body: Callable[[], None]) -> None:
    """Run a page body; any exception becomes a one-line error (GlitchNet's own errors by their message alone), and
    an unexpected one's traceback goes to the server log."""
    try:
        body()
    except GlitchNetError as exc:  # bad input GlitchNet recognised: its message is the whole story
        st.error(public(one_line(exc)))
    except Exception as exc:
        LOG.exception("page failed")
        st.error(f"Something went wrong: {public(one_line(exc))}")


def public(text: str) -> str:
    """``text`` fit to show a visitor: on a hosted server, the server's folders are cut out of any path in it."""
    if not hosted():
        return text
    roots = [APP_ROOT, Path.home(), default_model_path().parent]
    if server_dataset() is not None:
        roots.append(server_dataset().parent)
    root = st.session_state.get("dataset_root")
    if root:
        roots.append(Path(root).parent)
    return scrub_paths(text, roots)


def runs_dir() -> Path:
    """Where the Train page writes checkpoints: ``$GLITCHNET_RUNS_DIR`` or ``runs/app`` (git-ignored)."""
    env = os.environ.get("GLITCHNET_RUNS_DIR")
    return Path(env) if env else APP_ROOT / "runs" / "app"


def grid(items: Sequence[T], columns: int = 4) -> Iterator[tuple[Any, T]]:
    """Lay items out row by row, ``columns`` to a row: yields (column, item)."""
    for start in range(0, len(items), columns):
        yield from zip(st.columns(columns), items[start:start + columns], strict=False)


_shell = threading.local()


@contextmanager
def app_shell() -> Iterator[None]:
    """Mark this script run as drawn inside the entry script (navigation and sidebar): ``streamlit_app.py`` runs the
    chosen page within it."""
    _shell.active = True
    try:
        yield
    finally:
        _shell.active = False


def run_page(body: Callable[[], None]) -> None:
    """Run a page file's body inside the app shell, with ``guard``.

    Streamlit may run a page file on its own: a folder named ``pages/`` beside the entry script makes a fresh
    server (until some session has called ``st.navigation``) and every ``AppTest`` run treat the app as a legacy
    multipage app and run a deep-linked page file (``/predict``) directly. The page then runs the entry script
    instead, which draws the navigation and the sidebar and runs this page inside them (``app_shell``). Only public
    API is involved: ``st.navigation``/``st.Page`` over the files in ``pages/``.
    """
    if not getattr(_shell, "active", False):
        runpy.run_path(str(APP_ROOT / "streamlit_app.py"), run_name="__main__")
        return
    guard(body)


# ------------------------------------------------------------------------------------------------------ dataset


def _embedded_dataset() -> Path | None:
    """The simulated dataset shipped with GlitchNet, or None while it is made on first use (or cannot be).

    The build runs in a background thread; the page that needs the dataset follows it with a progress bar
    (``dataset_root``), below its own text, and the sidebar just says it is being made.
    """
    try:
        from glitchnet.simulate import default_dataset
    except ImportError:
        st.info("The built-in simulated dataset is not available in this installation (glitchnet.simulate is "
                "missing). " + ("" if hosted() else "Choose a dataset folder in the sidebar."))
        return None
    build = shared_build(default_dataset)
    if not build.finished.wait(0.2):  # already made: the build ends at once
        st.caption("The built-in simulated dataset is being made (first use only, about a minute).")
        return None
    if build.error is not None:
        st.error(f"The built-in dataset could not be made: {public(build.error)}")
    return build.root


def _pending_build() -> DatasetBuild | None:
    """The built-in dataset's build while it runs, if this session's sidebar chose that dataset."""
    if st.session_state.get("dataset_root") or server_dataset() is not None:
        return None
    if not hosted() and st.session_state.get("dataset_source", DATASET_DEFAULT) != DATASET_DEFAULT:
        return None
    build = current_build()
    return build if build is not None and not build.finished.is_set() else None


def dataset_root() -> str | None:
    """The dataset chosen in the sidebar. While the built-in one is being made: its progress bar here, then a rerun."""
    build = _pending_build()
    if build is not None:
        bar = st.progress(0.0, text="Making the built-in simulated dataset (first use only, about a minute)…")
        while not build.finished.wait(0.5):
            if build.total:
                bar.progress(build.fraction,
                             text=f"Making the built-in simulated dataset: {build.done} of {build.total} glitches")
        st.rerun()  # the sidebar then names the new dataset and every page sees it
    return st.session_state.get("dataset_root")


def default_dataset_label() -> str:
    """How the sidebar names the default dataset."""
    folder = server_dataset()
    return f"Server dataset ({folder.name})" if folder is not None else "Built-in simulated dataset"


@st.cache_data(show_spinner="Scanning the dataset…", max_entries=16)
def scan(root: str, view: str = "all") -> DatasetScan:
    """``scan_dataset`` cached per folder and view; the Explore page's Rescan button clears it."""
    return scan_dataset(root, view=view)


def current_scan() -> DatasetScan | None:
    """Scan of the dataset chosen in the sidebar (all four views), or None with a message shown."""
    root = dataset_root()
    if not root:
        st.info("No dataset is selected" + ("." if hosted() else ": choose one in the sidebar."))
        return None
    try:
        return scan(root)
    except DatasetError as exc:
        st.error(public(str(exc)))
        return None


def _checked(root: Path | None) -> Path | None:
    """``root`` if it holds a usable dataset (with a one-line summary in the sidebar), else None and the reason."""
    if root is None:
        return None
    try:
        found = scan(str(root))
    except DatasetError as exc:
        st.error(public(str(exc)))
        return None
    n = dataset_summary(found.manifest)
    st.caption(f"{n['images']:,} images of {n['glitches']:,} glitches in {n['classes']} "
               f"classes ({found.layout} layout)" + (f"; {len(found.skipped)} skipped" if len(found.skipped) else ""))
    return root


# -------------------------------------------------------------------------------------------------------- model


MAX_LOADED_MODELS = 4
_loader = ThreadPoolExecutor(1, thread_name_prefix="glitchnet-model")
"""One background thread loads models and warms them up, in the order asked."""


def _load(path: str) -> Predictor:
    """A hosted server classifies with the ONNX Runtime engine (no torch in the process; ``engine.serving_engine``),
    a local app with torch."""
    if hosted():
        from glitchnet.serving import serving_engine

        return serving_engine(path)
    from glitchnet.inference import Predictor

    return Predictor(path)


def _model_key(path: Path) -> tuple[str, int, bool]:
    """A checkpoint file version and the engine that runs it (ONNX Runtime when hosted, torch otherwise)."""
    return str(path), path.stat().st_mtime_ns, hosted()


@st.cache_resource(show_spinner=False, max_entries=MAX_LOADED_MODELS)
def _loading(path: str, mtime_ns: int, public: bool) -> Future[Predictor]:
    """The engine of a checkpoint file version, loaded once per process in the background thread and shared by
    every session (it is thread-safe); the least recently used of more than ``MAX_LOADED_MODELS`` is let go."""
    return _loader.submit(_load, path)


@st.cache_resource(show_spinner=False, max_entries=MAX_LOADED_MODELS)
def _warming(path: str, mtime_ns: int, public: bool) -> Future[None]:
    """The warm-up of that engine, started once per checkpoint version (see ``warm_up``)."""
    return _loader.submit(_warm_up, _loading(path, mtime_ns, public))


def warm_up() -> None:
    """Load the sidebar's model and pay its one-off costs (torch's import, Grad-CAM's, the colour lookup table:
    several seconds) in the background, once per model, before the first upload. The app calls it after drawing
    each page, so that it never slows the drawing."""
    path = model_path()
    if path is None or not path.is_file():
        return
    _warming(*_model_key(path))


def _warm_up(loading: Future[Predictor]) -> None:
    try:
        loading.result().warm_up()
    except Exception:  # only a head start: a bad checkpoint is reported where it is used
        LOG.exception("warm-up failed")


def session_job() -> TrainingJob | None:
    """This browser session's latest training run, if any."""
    return job_for(session_id())


def model_path() -> Path | None:
    """The checkpoint chosen in the sidebar (None when "my training run" has no checkpoint yet)."""
    source = MODEL_SHIPPED if hosted() else st.session_state.get("model_source", MODEL_SHIPPED)
    if source == MODEL_RUN:
        job = session_job()
        return job.view().checkpoint if job is not None else None
    if source == MODEL_FILE:
        text = st.session_state.get("model_file", "").strip()
        return Path(text).expanduser() if text else None
    return shipped_model_path(st.session_state.get("shipped_model", DEFAULT_SHIPPED))


def _missing_model(path: Path | None) -> str | None:
    """Why the sidebar's model cannot be used (no path, no file), or None."""
    if path is None:
        if st.session_state.get("model_source", MODEL_SHIPPED) == MODEL_RUN:
            if session_job() is None:  # runs belong to a browser session: a new tab starts with none
                return ("No training run in this browser tab yet: start one on the Train page (each tab has its "
                        "own runs), or pick another model.")
            return "Your training run has no checkpoint yet (one is written after each epoch)."
        return "Enter the path of a checkpoint file in the sidebar."
    if not path.is_file():
        if path == default_model_path() or path in SHIPPED_MODELS.values():
            return (f"No shipped model found ({path.name} is missing). Train one on the Train page"
                    + (" and pick “My training run” in the sidebar." if not hosted() else "."))
        return public(f"No checkpoint at {path}.")
    return None


@st.cache_data(show_spinner=False, max_entries=16)
def _description(path: str, mtime_ns: int) -> Checkpoint:
    from glitchnet.engine import describe  # from the ONNX export's description when there is one: nothing unpickled

    return describe(path)


def _about(path: Path, ckpt: Checkpoint) -> str:
    quality = ckpt.quality()
    acc = f"; {quality[0][0].lower()} {quality[0][1]}" if quality else ""
    return f"{path.name}: {ckpt.class_set.title}, view(s) {', '.join(ckpt.views)}{acc}"


def current_model() -> tuple[Checkpoint | None, str]:
    """The chosen checkpoint's description, without its weights and without torch (Home and the sidebar draw at
    once), and a one-line summary (or why there is none)."""
    path = model_path()
    reason = _missing_model(path)
    if reason is not None:
        return None, reason
    from glitchnet.checkpoint import CheckpointError

    try:
        ckpt = _description(str(path), path.stat().st_mtime_ns)
    except CheckpointError as exc:
        return None, public(str(exc))
    return ckpt, _about(path, ckpt)


def current_predictor() -> tuple[Predictor | None, str]:
    """The chosen model, loaded once per process, and a one-line description (or why there is none)."""
    path = model_path()
    reason = _missing_model(path)
    if reason is not None:
        return None, reason
    key = _model_key(path)
    loading = _loading(*key)
    if not loading.done():
        with st.spinner("Loading the model…"):
            loading.exception()  # waits
    from glitchnet.checkpoint import CheckpointError

    try:
        predictor = loading.result()
    except Exception as exc:
        _loading.clear(*key)  # not kept: the next run tries again
        _warming.clear(*key)
        if isinstance(exc, CheckpointError):
            return None, public(str(exc))
        raise
    return predictor, _about(path, predictor.checkpoint)


def model_key(predictor: Predictor) -> str:
    """Identifies a loaded checkpoint version, for caches of its results."""
    path = model_path()
    return f"{path}:{path.stat().st_mtime_ns}" if path is not None and path.is_file() else str(id(predictor))


def use_training_run() -> None:
    """Button callback: switch the sidebar's model to this session's training run."""
    st.session_state["model_source"] = MODEL_RUN


# ------------------------------------------------------------------------------------------------------ sidebar


def _choose_dataset() -> Path | None:
    """The sidebar's dataset: the built-in (or ``$GLITCHNET_DATA``) one, or a local folder; None if unusable."""
    with st.sidebar:
        st.subheader("Dataset")
        if hosted():
            source = DATASET_DEFAULT
            st.caption(default_dataset_label())
        else:
            source = st.radio("Dataset", [DATASET_DEFAULT, DATASET_FOLDER], key="dataset_source",
                              label_visibility="collapsed",
                              format_func=lambda s: default_dataset_label() if s == DATASET_DEFAULT else s)
        if source == DATASET_FOLDER:
            text = st.text_input("Dataset folder", key="dataset_path", placeholder="/data/gravity-spy",
                                 help="A Kaggle copy (train/ validation/ test/) or a Zenodo copy (class folders).")
            return _checked(Path(text.strip()).expanduser()) if text.strip() else None
        return _checked(server_dataset() or _embedded_dataset())


def _choose_model() -> None:
    with st.sidebar:
        st.subheader("Model")
        if not hosted():
            source = st.radio("Model", [MODEL_SHIPPED, MODEL_RUN, MODEL_FILE], key="model_source",
                              label_visibility="collapsed")
            if source == MODEL_FILE:
                st.text_input("Checkpoint file", key="model_file", placeholder="runs/glitchnet.pt")
        if hosted() or st.session_state.get("model_source", MODEL_SHIPPED) == MODEL_SHIPPED:
            st.selectbox("Shipped model", list(SHIPPED_MODELS), key="shipped_model", format_func=shipped_title,
                         help="Which taxonomy the model speaks: Gravity Spy's 22 O1/O2 classes, or the 23 classes "
                              "of its O3 model (no None_of_the_Above; adds Blip_Low_Frequency and Fast_Scattering).")
        ckpt, about = current_model()
        (st.caption if ckpt is not None else st.warning)(about)


def sidebar() -> None:
    """Dataset and model pickers; stores the dataset root (str) in ``st.session_state["dataset_root"]``."""
    root = _choose_dataset()
    if root is None:
        st.session_state.pop("dataset_root", None)
    else:
        st.session_state["dataset_root"] = str(root)
    _choose_model()


# ------------------------------------------------------------------------------------------------------ predict


def file_digest(data: bytes) -> str:
    """Identifies a file's content, for the caches below."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _scan_views(filename: str, gps: float, data: bytes) -> list[View]:
    from glitchnet.engine import Engine
    from glitchnet.strain import scan_bytes

    return [v for name, image in scan_bytes(data, gps, filename).items() for v in Engine.decode(name, image)]


def strain_views(filename: str, digest: str, gps: float, data: bytes) -> list[View]:
    """The four views of a strain file at a GPS time (``strain.scan_bytes``), decoded: scanned on the server's queue
    (the scan is the heaviest step a visitor can ask for) and kept in the session for the last file and time."""
    kept = st.session_state.setdefault("strain_scan", {})
    key = (filename, digest, float(gps))
    if key not in kept:
        views = run_queued(partial(_scan_views, filename, float(gps), data), "Scanning the strain")
        kept.clear()
        kept[key] = views
    return kept[key]


# ------------------------------------------------------------------------------------------------------ serving


@st.cache_resource(show_spinner=False)
def server_budget() -> Budget:
    """The server's limits, read once from the environment (``glitchnet.serving.SETTINGS``)."""
    return Budget.from_env()


def budget() -> Budget:
    """Limits for this visitor's batches (``Budget.for_visitor``)."""
    return server_budget().for_visitor(hosted())


@st.cache_resource(show_spinner=False)
def presence() -> Presence:
    """When each visitor of this server process was last seen: the queue drops the work of those who left."""
    return Presence()


@st.cache_resource(show_spinner=False)
def inference_queue() -> InferenceQueue:
    """The one inference queue of this server process, shared by every visitor."""
    limits = server_budget()
    return InferenceQueue(workers=limits.worker_count(), max_batches=limits.queue, per_owner=limits.batches,
                          alive=presence().alive)


def release_uploads(uploads: Sequence[Any]) -> None:
    """Let go of classified uploads: their bytes leave the server now (``appsession.forget_uploads``), the uploader
    gets a fresh key (the page draws an empty one; the next upload starts a new batch) and the old uploader's state
    goes with them."""
    forget_uploads(uploads)
    old = uploader_key()
    st.session_state["upload_generation"] = st.session_state.get("upload_generation", 0) + 1
    if old in st.session_state:  # the old uploader's value holds every file's bytes until its state goes
        del st.session_state[old]
    give_back_memory()  # the freed bytes back to the system, not kept by the allocator


def uploader_key() -> str:
    """Key of the Predict page's uploader; it changes once the uploaded files are classified and released."""
    return f"uploads-{st.session_state.get('upload_generation', 0)}"


@dataclass
class Classification:
    """This visitor's latest batch: what it was made from, its place in the queue, and then its glitches."""

    inputs: tuple
    """(model key, uploaded file ids, other inputs): a new value means a new batch."""
    released: tuple
    """``inputs`` once the uploads are released (no file ids): the same batch."""
    notes: list[str] = field(default_factory=list)
    ticket: object | None = None
    glitches: list[Glitch] | None = None
    n_files: int = 0
    """Files classified (a strain scan counts as one)."""
    took_s: float = 0.0
    """Seconds from submission to the last glitch classified, of which ``waited_s`` in line."""
    waited_s: float = 0.0
    kept: bool = False
    """Whether the page has put its glitches into the visitor's results (once, however often it redraws them)."""


def _wait(ticket: Ticket, doing: str) -> None:
    """Wait for a ticket, showing the visitor their place in line, then their progress."""
    bar = st.progress(0.0, text="Waiting for the model…")
    shown, polls = None, 0
    while not ticket.wait(0.3):
        presence().seen(ticket.owner)  # waiting on the page: still here (a closed tab stops this script)
        polls += 1
        ahead = ticket.position()
        if ticket.done == 0 and ahead > 0:
            now = (0.0, f"Your request is {_ordinal(ahead + 1)} in line: the server works on one glitch of each "
                        "visitor in turn.")
        else:
            now = (ticket.fraction, f"{doing}: {ticket.done} of {ticket.total} done")
        if now != shown or polls % 6 == 0:  # a message when the line moved, and now and then: a rerun or a
            bar.progress(*now)                # closed tab interrupts the script only at a Streamlit call
            shown = now
    bar.empty()


def run_queued(work: Callable[[], T], doing: str) -> T:
    """Run ``work`` as one step on the server's queue and return its result here; its exception is raised here, so
    the page reports it as it would have in its own thread."""

    def captured() -> tuple[T | None, Exception | None]:
        try:
            return work(), None
        except Exception as exc:
            return None, exc

    ticket = inference_queue().submit(session_id(), [captured])
    _wait(ticket, doing)
    if ticket.state != "done":
        raise BudgetError(f"{doing.lower()} stopped: {ticket.error or 'the request was cancelled'}")
    result, error = ticket.results[0]
    if error is not None:
        raise error
    return result


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def forget_batch() -> None:
    """Drop this visitor's latest batch (cancelled if still in line): the next input starts a new one."""
    batch: Classification | None = st.session_state.pop("predict_batch", None)
    if batch is not None and batch.ticket is not None:
        batch.ticket.cancel()


def classify_batch(predictor: Predictor, files: list[tuple[str, bytes]], views: Sequence[View], inputs: tuple,
                   release: Callable[[], None] | None = None) -> Classification | None:
    """Classify a batch through the server's queue, within the visitor's budget, showing their place and progress.

    ``files`` are (name, bytes) to decode; ``views`` are already decoded (a strain scan's). ``inputs`` identifies
    the batch: (model key, uploaded file ids, anything else chosen). Returns the batch with its glitches, or None
    (nothing to classify, or a refusal shown as one line). The glitches stay in the session: a slider or a label
    redraws them without running the model again. Once classified, ``release`` is called (it drops the uploaded
    bytes and draws an empty uploader).
    """
    batch: Classification | None = st.session_state.get("predict_batch")
    dropped = batch is not None and batch.ticket is not None and batch.ticket.state == "cancelled"
    if dropped or not (batch is not None and inputs in (batch.inputs, batch.released)):
        if not files and not views:
            return None
        if batch is not None and batch.ticket is not None:
            batch.ticket.cancel()
        admission = admit(files, budget())
        batch = Classification(inputs, (inputs[0], (), *inputs[2:]), admission.notes,
                               n_files=len(admission.kept) + (1 if views else 0))
        st.session_state["predict_batch"] = batch
        steps = admission.steps(predictor)
        if views:
            steps.append(partial(predictor.classify, list(views)))
        del admission
        try:
            batch.ticket = inference_queue().submit(session_id(), steps)
        except BudgetError as exc:
            st.session_state.pop("predict_batch", None)
            st.error(f"Not classified: {exc}.")
            return None
    for note in batch.notes:
        st.warning(note)
    if batch.glitches is not None:
        return batch
    ticket = batch.ticket
    _wait(ticket, "Classifying your glitches")
    batch.ticket = None
    if ticket.state != "done":
        st.session_state.pop("predict_batch", None)
        st.error("Classification stopped: " + public(ticket.error or "the batch was cancelled") + ".")
        return None
    batch.glitches = [g for found in ticket.results for g in found]
    batch.took_s, batch.waited_s = ticket.took_s or 0.0, ticket.waited_s or 0.0
    if release is not None:
        release()
    return batch
