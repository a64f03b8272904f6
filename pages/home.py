"""Home: what detector glitches are, the 22-class field guide with an example each, and the model's card."""

from pathlib import Path

import streamlit as st

from glitchnet.classes import DEFAULT_CLASS_SET, get_class_set
from glitchnet.glitches import examples_by_class
from glitchnet.shipped import MODELS_DIR
from pages import _ui as ui

INTRO = """
LIGO's detectors at Hanford (**H1**) and Livingston (**L1**) listen for gravitational waves by measuring changes in
the length of 4 km arms far smaller than a proton. At that sensitivity almost anything can shake the measurement:
a passing truck, wind, a ringing mirror suspension, a radio beat note, laser light scattered off a moving surface.
These short bursts of noise are called **glitches**. They can hide a real signal or mimic one, so knowing what kind
of glitch happened, and how often, helps engineers track down its cause and helps astronomers trust their detections.

[Gravity Spy](https://www.zooniverse.org/projects/zooniverse/gravity-spy) asks volunteers to sort glitches into
classes by eye. Each glitch is shown as an **Omega scan**: time runs left to right, frequency (10 to 2048 Hz, on a
log scale) runs bottom to top, and colour shows how much louder than usual the detector was, from dark blue (quiet)
to yellow (loud). Every glitch is drawn four times, over 0.5, 1, 2 and 4 seconds. **GlitchNet** is a small neural
network that learned the volunteers' classes from those pictures.
"""


def field_guide() -> None:
    ckpt, _ = ui.current_model()
    class_set = ckpt.class_set if ckpt is not None else get_class_set(DEFAULT_CLASS_SET)
    st.header(f"Field guide: the {len(class_set)} classes")
    st.caption(f"{class_set.title}, the classes of the loaded model" + (f" ({class_set.reference})."
                                                                         if class_set.reference else "."))
    found = ui.current_scan()
    examples = examples_by_class(found.manifest) if found is not None else {}
    if found is not None:
        kind = " (simulated by GlitchNet, not real detector data)" if found.simulated else ""
        st.caption(f"Example images: the first training image of each class in {found.root.name}{kind}."
                   + (" Choose a folder of real Gravity Spy images in the sidebar to see real ones here."
                      if found.simulated and not ui.hosted() else ""))
    for col, info in ui.grid(class_set.info):
        with col, st.container(border=True):
            st.markdown(f"**{info.name.replace('_', ' ')}**")
            if info.name in examples:
                st.image(examples[info.name], width="stretch",
                         caption="Simulated example" if found.simulated else f"Example from {found.root.name}")
            else:
                st.caption("No example of this class in the current dataset.")
            low, high = info.band_hz
            st.markdown(f"{info.looks_like}.  \n*Origin:* {info.origin}.  \n*Band:* {low:g}–{high:g} Hz")


def model_card() -> None:
    st.header("The model")
    ckpt, about = ui.current_model()
    if ckpt is None:
        st.warning(about)
        return
    config = ckpt.config
    st.caption(about)
    quality = ckpt.quality()
    if not quality:
        st.info("This checkpoint records no accuracy figures.")
    for col, (label, value, where) in ui.grid(quality):
        col.metric(label, value, help=where)
        col.caption(where)
    data = config.get("data")
    st.markdown(
        f"- **Training data:** {Path(str(data)).name if data else 'not recorded'}\n"
        f"- **Epochs:** {ckpt.epoch} of {config.get('epochs', '?')}; batch size {config.get('batch_size', '?')}; "
        f"learning rate {config.get('lr', '?')}; augmentation {config.get('augment', '?')}\n"
        f"- **View(s):** {', '.join(f'{v} s' for v in ckpt.views)}; {len(ckpt.classes)} classes; "
        f"GlitchNet {ckpt.library_version}")
    card = MODELS_DIR / "MODEL_CARD.md"
    if card.is_file():
        with st.expander("Model card (models/MODEL_CARD.md)"):
            st.markdown(card.read_text(encoding="utf-8"))


def main() -> None:
    st.title("GlitchNet: sorting the noise in gravitational-wave detectors")
    st.markdown(INTRO)
    field_guide()
    model_card()


ui.run_page(main)
