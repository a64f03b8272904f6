"""GlitchNet's Streamlit app: page config, navigation over pages/, and the shared dataset and model sidebar."""

from pathlib import Path

import streamlit as st

from pages import _ui as ui

ROOT = Path(__file__).resolve().parent
PAGES = ROOT / "pages"
FAVICON = ROOT / "assets" / "favicon.png"  # bundled: a Material icon as favicon is fetched from a font server

st.set_page_config(page_title="GlitchNet: Gravity Spy glitches", page_icon=FAVICON, layout="wide")

pages = [
    st.Page(PAGES / "home.py", title="Home", icon=":material/home:", default=True),
    st.Page(PAGES / "explore.py", title="Explore", icon=":material/grid_view:"),
]
if (PAGES / "augment.py").is_file():
    pages.append(st.Page(PAGES / "augment.py", title="Augmentations", icon=":material/auto_fix_high:"))
# A public server does not train (it would take every CPU core for minutes): there the Train page is left out of the
# navigation, but a link to /train still opens it, to say so, instead of a "page not found" warning.
pages.append(st.Page(PAGES / "train.py", title="Train", icon=":material/model_training:",
                     visibility="hidden" if ui.hosted() else "visible"))
pages.append(st.Page(PAGES / "predict.py", title="Predict", icon=":material/search:"))
page = st.navigation(pages)
ui.guard(ui.sidebar)
with ui.app_shell():
    page.run()
ui.guard(ui.warm_up)  # after the page, so that loading the model in the background never slows its drawing
