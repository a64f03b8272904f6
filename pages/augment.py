"""Augmentation preview: one glitch image beside its class-specific augmented versions, with the policy's reasons."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import streamlit as st

from glitchnet import augment as aug
from glitchnet import explore
from glitchnet.augment import CLASS_POLICIES
from glitchnet.classes import ALL_INFO
from glitchnet.errors import one_line
from glitchnet.images import ImageError, canonical_uint8
from glitchnet.names import plain
from glitchnet.serving import MAX_UPLOAD_MB, UPLOAD_TYPES, oversized
from glitchnet.simulate import simulate_glitch
from pages import _ui as ui

N_VARIANTS = 8
PER_ROW = 4
MAX_LISTED_FILES = 500
SEED_KEY = "augment_seed"
SOURCES = ("Dataset", "Upload", "Simulated example")


def dataset_manifest(root: str) -> pd.DataFrame | str:
    """The 1 s view of every glitch under ``root`` (from the app's cached scan), or a one-line reason why there is
    none."""
    try:
        return explore.view_rows(ui.scan(root).manifest, 1.0)
    except Exception as exc:  # a folder the reader refuses: say why in one line, never a traceback
        return one_line(exc)


@st.cache_data(show_spinner="Simulating…")
def simulated_image(label: str, seed: int) -> np.ndarray | str:
    """A simulated 1 s view of the class, or a one-line reason why there is none."""
    try:
        views, _ = simulate_glitch(label, seed)
        view = views.get(1.0) or next(iter(views.values()))
        return canonical_uint8(view)
    except Exception as exc:
        return f"the simulator failed: {one_line(exc)}"


def reseed() -> None:
    st.session_state[SEED_KEY] = random.randrange(1_000_000)


def read_image(label: str, source: str, manifest: pd.DataFrame | None, seed: int) -> tuple[np.ndarray | None, str]:
    """The chosen image as canonical uint8 RGB and a Markdown caption (a file name as literal text); (None, "")
    after showing why there is none."""
    if source == "Dataset" and manifest is not None:
        rows = explore.class_rows(manifest, label)
        if rows.empty:
            st.info(f"The dataset holds no {label} images; pick another class or source.")
            return None, ""
        paths = rows["path"].tolist()[:MAX_LISTED_FILES]
        path = st.selectbox("Image", paths, format_func=lambda p: p.replace("\\", "/").rsplit("/", 1)[-1],
                            key=f"augment_file_{label}")
        try:
            return canonical_uint8(path), plain(path.replace("\\", "/").rsplit("/", 1)[-1])
        except ImageError as exc:
            st.error(str(exc))
            return None, ""
    if source == "Upload":
        upload = st.file_uploader(f"A Gravity Spy image (PNG, JPG or GIF, up to {MAX_UPLOAD_MB} MB)",
                                  type=list(UPLOAD_TYPES),
                                  key="augment_upload")
        if upload is None:
            st.info("Upload an image to see its augmentations.")
            return None, ""
        refusal = oversized(upload.name, upload.size)
        if refusal is not None:
            st.error(refusal)
            return None, ""
        try:
            return canonical_uint8(upload.getvalue()), plain(upload.name)
        except ImageError as exc:
            st.error(str(exc))
            return None, ""
    result = simulated_image(label, seed)
    if isinstance(result, str):
        st.info(result[0].upper() + result[1:] + ".")
        return None, ""
    return result, f"simulated {label}"


def main() -> None:
    st.title("Augmentation")
    st.caption("Each class only gets the transforms that are physically true for it. They act on normalized energy, "
               "so every augmented pixel is still a viridis colour and energy saturates at 25.5 as in the real plots.")

    root = ui.dataset_root() if ui is not None else st.session_state.get("dataset_root")
    manifest_or_reason = dataset_manifest(str(root)) if root else None
    manifest = manifest_or_reason if isinstance(manifest_or_reason, pd.DataFrame) else None
    if isinstance(manifest_or_reason, str):
        st.warning(f"Dataset unavailable: {manifest_or_reason}.")

    left, middle, right = st.columns([2, 2, 3])
    with left:
        names = sorted(CLASS_POLICIES)  # every class of the shipped class sets has a policy
        label = st.selectbox("Class", names, index=names.index("Blip"), key="augment_class")
        info = ALL_INFO[label]
        st.caption(f"{info.looks_like}. Frequency {'pinned' if info.pinned_frequency else 'free'}; "
                   f"{'no direction' if info.time_symmetric else 'a direction'} in time.")
    with middle:
        sources = SOURCES if manifest is not None else SOURCES[1:]
        source = st.radio("Image from", sources, index=len(sources) - 1 if manifest is None else 0,
                          key="augment_source", horizontal=True)
        if SEED_KEY not in st.session_state:
            st.session_state[SEED_KEY] = 0
        seed_col, button_col = st.columns([1, 1], vertical_alignment="bottom")
        seed = int(seed_col.number_input("Seed", min_value=0, step=1, key=SEED_KEY))
        button_col.button("Reseed", on_click=reseed, key="augment_reseed")
    with right:
        # the generic baseline is torchvision's: a hosted server, which never loads torch, shows the class-specific one
        mode = st.radio("Augmentation", ("class",) if ui.hosted() else ("class", "generic"), horizontal=True,
                        key="augment_mode", format_func={"class": "class-specific", "generic": "generic baseline"}.get)
    names = [s.name for s in aug.policy(label)]
    # a row of its own: in the narrow column the chips were cut off
    enabled = st.pills("Transforms", names, selection_mode="multi", default=names, key=f"augment_enabled_{label}",
                       disabled=mode != "class")

    image, image_caption = read_image(label, source, manifest, seed)

    if image is not None:
        original_col, grid_col = st.columns([1, PER_ROW])
        original_col.image(image, caption=f"original: {image_caption}")
        outputs = aug.preview(image, label, seed, N_VARIANTS, mode, enabled=set(enabled))
        with grid_col:
            for start in range(0, N_VARIANTS, PER_ROW):
                for col, (out, applied) in zip(st.columns(PER_ROW), outputs[start:start + PER_ROW], strict=False):
                    col.image(out, caption="; ".join(str(a) for a in applied) or "unchanged")

    st.subheader(f"{label} policy")
    st.dataframe(aug.policy_table(label), hide_index=True)
    if mode == "generic":
        st.caption("The generic baseline (flip, resized crop, colour jitter) ignores the class: it is the comparison "
                   "point for the class-specific policy, not a recommendation.")


ui.run_page(main)
