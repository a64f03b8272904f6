"""GlitchNet's Streamlit app: page config, navigation over pages/, and the shared dataset and model sidebar.

`streamlit run streamlit_app.py` finds ``app`` at the bottom and serves the app through it (Streamlit's ``st.App``),
with every page's path answering as the root (``glitchnet.webapp``: a page opened by its own URL logs no 404).
Streamlit then runs this file as ``__main__`` for every visitor's script run, which draws the app.
"""

from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent
PAGES = ROOT / "pages"
FAVICON = ROOT / "assets" / "favicon.png"  # bundled: a Material icon as favicon is fetched from a font server

# The app's pages in the sidebar's order: (file in pages/ without ".py", which is also the page's path; title; icon).
# The first is the default page, at the root. (A comment, not a docstring: Streamlit would draw a bare string.)
PAGE_TABLE = [
    ("home", "Home", ":material/home:"),
    ("explore", "Explore", ":material/grid_view:"),
    ("augment", "Augmentations", ":material/auto_fix_high:"),
    ("train", "Train", ":material/model_training:"),
    ("predict", "Predict", ":material/search:"),
]


def page_names() -> list[str]:
    """The pages this checkout has (a page whose file is missing is left out)."""
    return [name for name, _, _ in PAGE_TABLE if (PAGES / f"{name}.py").is_file()]


if __name__ == "__main__":  # a visitor's script run
    from pages import _ui as ui

    st.set_page_config(page_title="GlitchNet: Gravity Spy glitches", page_icon=FAVICON, layout="wide")
    names = page_names()
    # A public server does not train (it would take every CPU core for minutes): there the Train page is left out of
    # the navigation, but a link to /train still opens it, to say so, instead of a "page not found" warning.
    hidden = {"train"} if ui.hosted() else set()
    page = st.navigation([
        st.Page(PAGES / f"{name}.py", title=title, icon=icon, default=name == names[0],
                url_path=None if name == names[0] else name, visibility="hidden" if name in hidden else "visible")
        for name, title, icon in PAGE_TABLE if name in names])
    ui.guard(ui.sidebar)
    with ui.app_shell():
        page.run()
    ui.guard(ui.warm_up)  # after the page, so that loading the model in the background never slows its drawing
else:  # imported by `streamlit run` to serve the app
    from starlette.middleware import Middleware

    from glitchnet.webapp import PagePaths

    app = st.App(__file__, middleware=[Middleware(PagePaths, pages=page_names()[1:])])
