"""GlitchNet's Streamlit app: page config, navigation over pages/, and the shared dataset and model sidebar."""

from pathlib import Path

import streamlit as st

from pages import _ui as ui

PAGES = Path(__file__).resolve().parent / "pages"

st.set_page_config(page_title="GlitchNet: Gravity Spy glitches", page_icon=":material/graphic_eq:", layout="wide")

pages = [
    st.Page(PAGES / "home.py", title="Home", icon=":material/home:", default=True),
    st.Page(PAGES / "explore.py", title="Explore", icon=":material/grid_view:"),
]
if (PAGES / "augment.py").is_file():
    pages.append(st.Page(PAGES / "augment.py", title="Augmentations", icon=":material/auto_fix_high:"))
pages += [
    st.Page(PAGES / "train.py", title="Train", icon=":material/model_training:"),
    st.Page(PAGES / "predict.py", title="Predict", icon=":material/search:"),
]
page = st.navigation(pages)
ui.guard(ui.sidebar)
with ui.app_shell():
    page.run()
