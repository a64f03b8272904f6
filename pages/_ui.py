"""Shared app helpers: hosted-mode flag, the sidebar's dataset and model choice, cached scans, predictor and results."""

from __future__ import annotations

import hashlib
import logging
import os
import runpy
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import streamlit as st
from streamlit.delta_generator import DeltaGenerator
from streamlit.runtime.scriptrunner import get_script_run_ctx

from glitchnet.data import DatasetError, DatasetScan, scan_dataset
from glitchnet.glitches import Glitch, View
from glitchnet.jobs import TrainingJob, job_for, one_line
from glitchnet.shipped import default_model_path

if TYPE_CHECKING:  # torch and the model are imported where used: Home draws without them (~2 s sooner)
    from glitchnet.checkpoint import Checkpoint
    from glitchnet.inference import Predictor

LOG = logging.getLogger("glitchnet.app")
APP_ROOT = Path(__file__).resolve().parents[1]
HOSTED_MAX_FILES = 50
"""Most files classified in one batch on a public server, to keep one visitor from filling the CPU."""

DATASET_DEFAULT, DATASET_FOLDER = "Built-in dataset", "A folder on this computer"
MODEL_SHIPPED, MODEL_RUN, MODEL_FILE = "Shipped model", "My training run", "A checkpoint file"

T = TypeVar("T")

def hosted() -> bool:
    """True on a public deployment (``GLITCHNET_HOSTED=1``): no training, no paths on the server's disk."""
    return os.environ.get("GLITCHNET_HOSTED", "").strip().lower() not in ("", "0", "false", "no")


def session_id() -> str:
    """Id of the browser session running this script."""
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "local"


def guard(body: Callable[[], None]) -> None:
    """Run a page body; an unexpected exception becomes a one-line error, the traceback goes to the server log."""
    try:
        body()
    except Exception as exc:
        LOG.exception("page failed")
        st.error(f"Something went wrong: {one_line(exc)}")


def runs_dir() -> Path:
    """Where the Train page writes checkpoints: ``$GLITCHNET_RUNS_DIR`` or ``runs/app`` (git-ignored)."""
    env = os.environ.get("GLITCHNET_RUNS_DIR")
    return Path(env) if env else APP_ROOT / "runs" / "app"


def grid(items: Sequence[T], columns: int = 4) -> Iterator[tuple[DeltaGenerator, T]]:
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
        runpy.run_path(str(APP_ROOT / "streamlit_app.py"))
        return
    guard(body)


def upload_limit_bytes() -> int:
    """The upload limit set by ``server.maxUploadSize`` (megabytes) in ``.streamlit/config.toml``."""
    return int(st.get_option("server.maxUploadSize")) * 1024 * 1024


# ------------------------------------------------------------------------------------------------------ dataset


class _DatasetBuild:
    """Making the built-in dataset in a background thread, once per process, whichever session asked first.

    A thread rather than the script: a rerun (any click) interrupts a script, and would restart the build.
    """

    def __init__(self, make: Callable[..., Path]) -> None:
        self.done, self.total = 0, 0
        self.root: Path | None = None
        self.error: str | None = None
        self.finished = threading.Event()
        threading.Thread(target=self._run, args=(make,), name="glitchnet-dataset", daemon=True).start()

    def _run(self, make: Callable[..., Path]) -> None:
        try:
            self.root = Path(make(progress=self._progress))
        except Exception as exc:  # reported on the page; the next run tries again
            LOG.exception("making the built-in dataset failed")
            self.error = one_line(exc)
        self.finished.set()

    def _progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total


_build: list[_DatasetBuild] = []
_build_lock = threading.Lock()


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
    with _build_lock:
        if not _build or _build[0].error is not None:
            _build[:] = [_DatasetBuild(default_dataset)]
        build = _build[0]
    if not build.finished.wait(0.2):  # already made: the build ends at once
        st.caption("The built-in simulated dataset is being made (first use only, about a minute).")
        return None
    if build.error is not None:
        st.error(f"The built-in dataset could not be made: {build.error}")
    return build.root


def _pending_build() -> _DatasetBuild | None:
    """The built-in dataset's build while it runs, if this session's sidebar chose that dataset."""
    if st.session_state.get("dataset_root") or os.environ.get("GLITCHNET_DATA"):
        return None
    if not hosted() and st.session_state.get("dataset_source", DATASET_DEFAULT) != DATASET_DEFAULT:
        return None
    with _build_lock:
        build = _build[0] if _build else None
    return build if build is not None and not build.finished.is_set() else None


def dataset_root() -> str | None:
    """The dataset chosen in the sidebar. While the built-in one is being made: its progress bar here, then a rerun."""
    build = _pending_build()
    if build is not None:
        bar = st.progress(0.0, text="Making the built-in simulated dataset (first use only, about a minute)…")
        while not build.finished.wait(0.5):
            if build.total:
                bar.progress(build.done / build.total,
                             text=f"Making the built-in simulated dataset: {build.done} of {build.total} glitches")
        st.rerun()  # the sidebar then names the new dataset and every page sees it
    return st.session_state.get("dataset_root")


def default_dataset_label() -> str:
    """How the sidebar names the default dataset."""
    env = os.environ.get("GLITCHNET_DATA")
    return f"Server dataset ({Path(env).name})" if env else "Built-in simulated dataset"


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
        st.error(str(exc))
        return None


def _checked(root: Path | None) -> Path | None:
    """``root`` if it holds a usable dataset (with a one-line summary in the sidebar), else None and the reason."""
    if root is None:
        return None
    try:
        found = scan(str(root))
    except DatasetError as exc:
        st.error(str(exc))
        return None
    glitches = found.manifest["gravityspy_id"].nunique()
    st.caption(f"{len(found.manifest):,} images of {glitches:,} glitches in {found.manifest['label'].nunique()} "
               f"classes ({found.layout} layout)" + (f"; {len(found.skipped)} skipped" if len(found.skipped) else ""))
    return root


# -------------------------------------------------------------------------------------------------------- model


MAX_LOADED_MODELS = 4
_loads: dict[tuple[str, int], Future[Predictor]] = {}
_loads_lock = threading.Lock()
_loader = ThreadPoolExecutor(1, thread_name_prefix="glitchnet-model")
"""One background thread loads models and warms them up, in the order asked."""
_warmed: set[tuple[str, int]] = set()


def _load(path: str) -> Predictor:
    from glitchnet.inference import Predictor

    return Predictor(path)


def _loading(path: Path) -> tuple[tuple[str, int], Future[Predictor]]:
    """The Predictor of a checkpoint file version, loaded once per process in the background thread and shared by
    every session (it is thread-safe)."""
    key = (str(path), path.stat().st_mtime_ns)
    with _loads_lock:
        if key not in _loads:
            while len(_loads) >= MAX_LOADED_MODELS:
                _loads.pop(next(iter(_loads)))
            _loads[key] = _loader.submit(_load, str(path))
        return key, _loads[key]


def warm_up() -> None:
    """Load the sidebar's model and pay its one-off costs (torch's import, Grad-CAM's, the colour lookup table:
    several seconds) in the background, once per model, before the first upload. The app calls it after drawing
    each page, so that it never slows the drawing."""
    path = model_path()
    if path is None or not path.is_file():
        return
    key, loading = _loading(path)
    with _loads_lock:
        if key in _warmed:
            return
        _warmed.add(key)
    _loader.submit(_warm_up, loading)


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
    return default_model_path()


def _missing_model(path: Path | None) -> str | None:
    """Why the sidebar's model cannot be used (no path, no file), or None."""
    if path is None:
        if st.session_state.get("model_source", MODEL_SHIPPED) == MODEL_RUN:
            return "Your training run has no checkpoint yet (one is written after each epoch)."
        return "Enter the path of a checkpoint file in the sidebar."
    if not path.is_file():
        if path == default_model_path():
            return (f"No shipped model found ({path.name} is missing). Train one on the Train page"
                    + (" and pick “My training run” in the sidebar." if not hosted() else "."))
        return f"No checkpoint at {path}."
    return None


@st.cache_data(show_spinner=False, max_entries=16)
def _description(path: str, mtime_ns: int) -> Checkpoint:
    from glitchnet.checkpoint import read_description

    return read_description(path)


def _about(path: Path, ckpt: Checkpoint) -> str:
    quality = ckpt.quality()
    acc = f"; {quality[0][0].lower()} {quality[0][1]}" if quality else ""
    return f"{path.name}: view(s) {', '.join(ckpt.views)}{acc}"


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
        return None, str(exc)
    return ckpt, _about(path, ckpt)


def current_predictor() -> tuple[Predictor | None, str]:
    """The chosen model, loaded once per process, and a one-line description (or why there is none)."""
    path = model_path()
    reason = _missing_model(path)
    if reason is not None:
        return None, reason
    key, loading = _loading(path)
    if not loading.done():
        with st.spinner("Loading the model…"):
            loading.exception()  # waits
    from glitchnet.checkpoint import CheckpointError

    try:
        predictor = loading.result()
    except Exception as exc:
        with _loads_lock:  # not kept: the next run tries again
            _loads.pop(key, None)
            _warmed.discard(key)
        if isinstance(exc, CheckpointError):
            return None, str(exc)
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
        if os.environ.get("GLITCHNET_DATA"):
            return _checked(Path(os.environ["GLITCHNET_DATA"]).expanduser())
        return _checked(_embedded_dataset())


def _choose_model() -> None:
    with st.sidebar:
        st.subheader("Model")
        if not hosted():
            source = st.radio("Model", [MODEL_SHIPPED, MODEL_RUN, MODEL_FILE], key="model_source",
                              label_visibility="collapsed")
            if source == MODEL_FILE:
                st.text_input("Checkpoint file", key="model_file", placeholder="runs/glitchnet.pt")
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


@st.cache_data(show_spinner=False, max_entries=256, ttl=3600)
def decoded(name: str, digest: str, _data: bytes) -> list[View]:
    """``Predictor.decode`` cached per file name and content: each upload is decoded once."""
    from glitchnet.inference import Predictor

    return Predictor.decode(name, _data)


@st.cache_data(show_spinner=False, max_entries=16, ttl=3600)
def strain_views(filename: str, digest: str, gps: float, _data: bytes) -> list[View]:
    """The four views of a strain file at a GPS time (``strain.scan_bytes``), decoded; cached per file and time."""
    from glitchnet.inference import Predictor
    from glitchnet.strain import scan_bytes

    return [v for name, image in scan_bytes(_data, gps, filename).items() for v in Predictor.decode(name, image)]


@st.cache_data(show_spinner=False, max_entries=32, ttl=3600)
def classified(model: str, batch: tuple[str, ...], _predictor: Predictor, _views: Sequence[View]) -> list[Glitch]:
    """``Predictor.classify`` (verdicts and Grad-CAM, one forward pass) cached per model version and batch of files,
    so a slider or a volunteer's label does not recompute anything."""
    return _predictor.classify(_views)
