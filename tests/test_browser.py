"""The app in a real browser: `streamlit run` plus headless Chromium, as a visitor meets it.

Covers Home (timed from `streamlit run` to fully drawn), a four-view upload on Predict (timed to the combined verdict),
hosted mode without Train, and a fresh data folder (the intro at once, the dataset's progress bar below it). Every
test fails on a browser console error or warning. Set ``GLITCHNET_SCREENSHOTS=1`` to also write small screenshots of
every page to ``docs/screenshots/``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from test_app import make_golden_kaggle

from benchmarks._server import start_streamlit, stop

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "docs" / "screenshots"
SHIPPED_MODEL = ROOT / "models" / "glitchnet.pt"
WRITE_SCREENSHOTS = os.environ.get("GLITCHNET_SCREENSHOTS") == "1"
MAX_SCREENSHOT_BYTES = 300_000
TITLES = {"": "GlitchNet: sorting the noise", "explore": "Explore the dataset", "augment": "Augmentation",
          "train": "Train GlitchNet", "predict": "Classify a glitch"}
READY = {"Home": "Model card (models/MODEL_CARD.md)", "Explore": "Trigger parameters", "Augmentations": "policy",
         "Train": "Start training"}
NAV_PATHS = {"Home": "", "Explore": "explore", "Augmentations": "augment", "Train": "train", "Predict": "predict"}
FOUR_VIEWS = ("gravityspy-examples/Blip", "H1_uQOcvAIECv_spectrogram_*.png")
"""One real glitch's four views (0.5, 1, 2, 4 s) in the real data folder, named as Gravity Spy names them."""
STRAIN = "strain/H-H1_GWOSC_O3b_4KHZ_R1-1266281937-128.hdf5"
STRAIN_GPS = "1266281982.66"  # a loud glitch in that file


@dataclass
class Server:
    url: str
    started: float
    """``time.monotonic()`` when ``streamlit run`` was launched."""
    random_model: bool
    """True when the app runs with random weights (every prediction is then unsure)."""
    log: Path
    pid: int

    def cpu_s(self) -> float | None:
        """CPU seconds the server process has used (Linux), to read a timing taken on a busy machine."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Console:
    """Browser console errors and warnings, and uncaught page errors, seen by the tabs a test opened."""

    messages: list[str] = field(default_factory=list)

    def watch(self, page) -> None:
        # plotly.js writes its warnings with console.trace ("WARN: ...")
        page.on("console", lambda m: self.messages.append(f"console {m.type}: {m.text} ({m.location.get('url')})")
                if m.type in ("error", "warning", "assert") or (m.type == "trace" and not m.text.startswith("INFO"))
                or os.environ.get("ALLCONSOLE") else None)
        page.on("pageerror", lambda e: self.messages.append(f"page error: {e}"))



@contextmanager
def _streamlit(tmp: Path, model: Path, **env_changes: str | None) -> Iterator[Server]:
    """``streamlit run`` on a free port with the given environment; stopped on exit."""
    env = {**os.environ, "GLITCHNET_MODEL": str(model), "GLITCHNET_CACHE_DIR": str(tmp / "cache"),
           "GLITCHNET_RUNS_DIR": str(tmp / "runs")}
    env.pop("GLITCHNET_HOSTED", None)
    for name, value in env_changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    log = tmp / "streamlit.log"  # kept in pytest's temp folder for a failed run
    started = time.monotonic()
    proc, url = start_streamlit(env, log)
    try:
        yield Server(url, started, model != SHIPPED_MODEL, log, proc.pid)
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory, real: Path) -> Path:
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: install Chromium (Debian: apt-get install chromium) to run browser tests")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    return make_golden_kaggle(tmp_path_factory.mktemp("golden"), real)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, golden: Path, random_checkpoint: Path) -> Iterator[Server]:
    # Screenshots for the docs show the shipped model and the built-in dataset; the test itself uses random weights
    # and real golden images.
    model = SHIPPED_MODEL if WRITE_SCREENSHOTS and SHIPPED_MODEL.is_file() else random_checkpoint
    data = None if WRITE_SCREENSHOTS else str(golden)
    with _streamlit(tmp_path_factory.mktemp("browser"), model, GLITCHNET_DATA=data) as running:
        yield running


@pytest.fixture(scope="module")
def browser(golden: Path) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def console() -> Iterator[Console]:
    """Every test ends with no browser console error or warning."""
    seen = Console()
    yield seen
    assert not seen.messages, "\n".join(seen.messages)


def _tab(browser, console: Console, width: int = 1280, height: int = 900):
    page = browser.new_page(viewport={"width": width, "height": height})
    console.watch(page)
    return page


def _drawn(page, timeout_s: float = 180.0) -> None:
    """Wait until the page's script has finished and every image is drawn: one second with no running indicator,
    skeleton, spinner or loading image (a fast script may finish before its running indicator ever shows)."""
    page.locator('[data-testid="stMain"] h1').first.wait_for(timeout=timeout_s * 1000)
    page.wait_for_function("""() => {
        const busy = !!document.querySelector('[data-testid="stStatusWidget"], [data-testid="stSkeleton"], '
                + '[data-testid="stSkeletonElement"], [data-testid="stSpinner"]')
            || ![...document.images].every(i => i.complete);
        const now = performance.now();
        if (busy || window.__glitchnetQuietSince === undefined) window.__glitchnetQuietSince = now;
        return !busy && now - window.__glitchnetQuietSince >= 1000;
    }""", timeout=timeout_s * 1000)


def _open(browser, console: Console, url: str, nav: str | None = None, timeout_s: float = 180.0):
    """A new tab on the app at ``url``, then on the page named ``nav`` in the sidebar, once drawn.

    Pages are reached by their sidebar link, as a visitor does; ``test_every_page_opens_by_deep_link`` opens each
    by its own URL.
    """
    page = _tab(browser, console)
    page.goto(url)
    _drawn(page, timeout_s)
    if nav is not None:
        page.locator('[data-testid="stSidebarNav"] a', has_text=nav).click()
        page.wait_for_function("t => document.querySelector('[data-testid=\"stMain\"] h1')?.innerText.startsWith(t)",
                               arg=TITLES[NAV_PATHS[nav]], timeout=timeout_s * 1000)
        _drawn(page, timeout_s)
    return page


def _save_small(png: bytes, dest: Path) -> None:
    """Downscale a screenshot to 960 px wide and 256 colours so it stays under ``MAX_SCREENSHOT_BYTES``."""
    import io

    img = Image.open(io.BytesIO(png)).convert("RGB")
    img = img.resize((960, round(img.height * 960 / img.width)), Image.Resampling.LANCZOS)
    img = img.quantize(256, method=Image.Quantize.MEDIANCUT)
    dest.parent.mkdir(parents=True, exist_ok=True)
    img.save(dest, optimize=True)
    assert dest.stat().st_size < MAX_SCREENSHOT_BYTES, f"{dest.name} is {dest.stat().st_size:,} bytes"


def test_home_is_drawn_soon_after_streamlit_run(browser, server: Server, console: Console) -> None:
    page = _tab(browser, console)
    page.goto(server.url)
    # the whole page: the field guide's 22 example images, drawn, and the model's card below them
    page.wait_for_function("""() => {
        const imgs = [...document.querySelectorAll('[data-testid="stImage"] img')];
        return imgs.length >= 22 && imgs.every(i => i.complete && i.naturalWidth > 0);
    }""", timeout=180_000)
    page.get_by_role("heading", name="The model").wait_for(timeout=180_000)
    home_s, cpu_s = time.monotonic() - server.started, server.cpu_s()
    _drawn(page)
    assert page.locator("h1").first.inner_text().startswith(TITLES[""])
    assert page.locator('[data-testid="stImage"] img').count() == 22
    if server.random_model:
        assert page.locator('[data-testid="stSidebar"]').get_by_text("random.pt").count() == 1
    assert "Traceback" not in page.content()
    cpu = f"the server used {cpu_s:.1f} s of CPU; " if cpu_s is not None else ""
    print(f"\nstreamlit run -> Home fully drawn: {home_s:.1f} s ({cpu}load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores)")
    page.close()


def _uploader(page, label: str):
    return page.locator('[data-testid="stFileUploader"]', has_text=label).locator('input[type="file"]')


def _cards(page) -> list:
    """The Predict page's glitch cards: the block around each card's header ("<glitch> · N views")."""
    headers = page.get_by_text(re.compile(r" · (\d+ views|1 view)$"))
    return [headers.nth(i).locator("xpath=ancestor::div[@data-testid='stVerticalBlock'][1]")
            for i in range(headers.count())]


def _views(card):
    """A card's own views, in its Grad-CAM panel (the similar glitches below them are thumbnails of others)."""
    return card.locator('[data-testid="stExpander"]', has_text="Grad-CAM").locator('[data-testid="stImage"] img')


def test_four_views_of_one_glitch_make_one_card_verdict_first(browser, server: Server, console: Console,
                                                              tmp_path: Path, real: Path) -> None:
    four_views = sorted((real / FOUR_VIEWS[0]).glob(FOUR_VIEWS[1]))
    assert len(four_views) == 4, four_views
    page = _open(browser, console, server.url, "Predict")

    start = time.monotonic()
    _uploader(page, "Upload spectrograms").set_input_files([str(p) for p in four_views])
    page.get_by_text("H1_uQOcvAIECv · 4 views").wait_for(timeout=120_000)
    _cards(page)[0].locator("h3").first.wait_for(timeout=120_000)
    verdict_s = time.monotonic() - start
    _views(_cards(page)[0]).nth(3).wait_for(timeout=120_000)
    card_s = time.monotonic() - start
    _drawn(page)
    cards = _cards(page)
    assert len(cards) == 1
    verdict, views = cards[0].locator("h3").first, _views(cards[0])
    assert views.count() == 4
    assert verdict.bounding_box()["y"] < min(views.nth(i).bounding_box()["y"] for i in range(4))  # the answer first
    if server.random_model:
        assert cards[0].get_by_text("The model is not sure").count() == 1  # random weights are never confident
    assert "Traceback" not in page.content()
    (tmp_path / "predict.png").write_bytes(page.screenshot())
    if WRITE_SCREENSHOTS:  # the card: header, verdict and top 5, then the views with Grad-CAM
        cards[0].evaluate("e => e.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(500)
        _save_small(page.screenshot(), SCREENSHOTS / "predict.png")
    print(f"\nupload of one glitch's four views -> combined verdict drawn: {verdict_s:.1f} s; the card with the four "
          f"views and their Grad-CAM: {card_s:.1f} s (load average {os.getloadavg()[0]:.1f})")

    # volunteer mode: one label for the glitch, then the model's verdict, and the combined row in the CSV
    page.get_by_text("Volunteer mode", exact=True).click()
    page.get_by_text("Pick your label to see what the model thinks.").wait_for(timeout=60_000)
    page.locator('[data-testid="stSelectbox"]', has_text="Your label for this glitch").click()
    page.keyboard.type("Blip")
    page.keyboard.press("Enter")
    page.get_by_text(re.compile("The model agrees with you|You said Blip")).first.wait_for(timeout=60_000)
    _drawn(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download results (CSV)").click()
    rows = pd.read_csv(download.value.path())
    combined = rows[rows["row"] == "combined"]
    assert len(rows) == 5 and len(combined) == 1 and rows["your_label"].eq("Blip").all()
    assert combined.iloc[0][["glitch", "views"]].tolist() == ["H1_uQOcvAIECv", 4]
    page.close()


def test_a_similar_glitch_opens_from_a_predict_card_and_from_the_map(browser, server: Server, console: Console,
                                                                    real: Path) -> None:
    four_views = sorted((real / FOUR_VIEWS[0]).glob(FOUR_VIEWS[1]))
    page = _open(browser, console, server.url, "Predict")
    _uploader(page, "Upload spectrograms").set_input_files([str(p) for p in four_views])
    page.get_by_text("H1_uQOcvAIECv · 4 views").wait_for(timeout=120_000)
    similar = _cards(page)[0].locator('[data-testid="stExpander"]', has_text="Most similar glitches in ")
    similar.get_by_role("button", name="Open").first.wait_for(timeout=180_000)  # the index, built in the background
    _drawn(page)
    similar = _cards(page)[0].locator('[data-testid="stExpander"]', has_text="Most similar glitches in ")
    assert similar.locator('[data-testid="stImage"] img').count() == 8
    captions = similar.locator('[data-testid="stImageCaption"]').all_inner_texts()
    sims = [float(c.rsplit(" · ", 1)[1]) for c in captions]
    assert len(sims) == 8 and sims == sorted(sims, reverse=True)
    similar.get_by_role("button", name="Open").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Gravity Spy label").wait_for(timeout=60_000)
    _drawn(page)
    assert dialog.locator('[data-testid="stImage"] img').count() >= 1
    assert "Traceback" not in page.content()
    page.close()

    page = _open(browser, console, server.url, "Explore")
    page.get_by_text("Map of the dataset and label audit", exact=True).click()
    page.get_by_role("heading", name="Label audit").wait_for(timeout=180_000)
    _drawn(page)
    on_map = int(page.get_by_text(re.compile(r"placed by t-SNE")).inner_text().split()[0].replace(",", ""))
    chart = page.locator('[data-testid="stPlotlyChart"]').last  # the map: the last chart above the audit
    chart.scroll_into_view_if_needed()
    box = chart.locator(".nsewdrag").first.bounding_box()  # plotly's plot area
    page.mouse.move(box["x"] + 2, box["y"] + 2)
    page.mouse.down()
    for step in range(1, 21):  # a box over the whole plot area selects every glitch on the map
        page.mouse.move(box["x"] + 2 + step * (box["width"] - 4) / 20, box["y"] + 2 + step * (box["height"] - 4) / 20)
    page.mouse.up()
    page.get_by_text(f"{on_map} glitch(es) selected", exact=True).wait_for(timeout=60_000)
    _drawn(page)
    # the first listed glitch of the selection (the page's first Open button; the sidebar's pickers are not buttons
    # of the page's main part)
    page.locator('[data-testid="stMain"] [data-testid="stButton"] button', has_text="Open").first.click()
    page.get_by_role("dialog").get_by_text("Gravity Spy label").wait_for(timeout=60_000)
    _drawn(page)
    assert "Traceback" not in page.content()
    page.close()


def test_a_file_over_the_limit_is_named_beside_the_one_classified(browser, server: Server, console: Console,
                                                                  tmp_path: Path, real: Path) -> None:
    from glitchnet.serving import MAX_UPLOAD_MB

    huge = tmp_path / "huge.png"
    huge.write_bytes(b"\0" * (MAX_UPLOAD_MB + 4) * 2**20)  # past the app's limit, within what the browser sends
    page = _open(browser, console, server.url, "Predict")
    _uploader(page, "Upload spectrograms").set_input_files([str(huge), str(real / "golden" / "Blip" / "blip-1.jpg")])
    page.get_by_text("blip-1.jpg · 1 view").wait_for(timeout=120_000)
    _drawn(page)
    assert page.get_by_text(f"huge.png: larger than the {MAX_UPLOAD_MB} MB upload limit, skipped.").count() == 1
    assert page.get_by_text("1 glitch(es) from 1 file(s)").count() == 1
    page.close()


def test_a_strain_file_makes_one_glitch_card(browser, server: Server, console: Console, real: Path) -> None:
    pytest.importorskip("gwpy", reason="reading strain needs the strain extra (gwpy, h5py)")
    page = _open(browser, console, server.url, "Predict")
    page.get_by_text("…or make the views from strain").click()
    _uploader(page, "Strain file").set_input_files(str(real / STRAIN))
    gps = page.get_by_label("GPS time of the glitch (s)")
    gps.fill(STRAIN_GPS)
    gps.press("Enter")
    page.get_by_text(re.compile(r" · 4 views$")).wait_for(timeout=180_000)
    _views(_cards(page)[0]).nth(3).wait_for(timeout=120_000)
    _drawn(page)
    cards = _cards(page)
    assert len(cards) == 1 and _views(cards[0]).count() == 4
    assert "Traceback" not in page.content()
    page.close()


def test_the_o3_model_from_the_sidebar_with_its_field_guide_and_a_prediction(browser, server: Server,
                                                                             console: Console, real: Path) -> None:
    o3 = ROOT / "models" / "glitchnet-o3.pt"
    assert o3.is_file(), f"the shipped O3 model {o3.name} is missing"
    page = _open(browser, console, server.url)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.locator('[data-testid="stSelectbox"]', has_text="Shipped model").click()
    page.keyboard.type("Gravity Spy O3")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Field guide: the 23 classes").wait_for(timeout=120_000)
    _drawn(page)
    assert page.get_by_text("Fast Scattering", exact=True).count() == 1
    assert page.get_by_text("None of the Above", exact=True).count() == 0
    assert sidebar.get_by_text("glitchnet-o3.pt: Gravity Spy O3, 23 classes").count() == 1
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Predict", exact=True).click()
    crown = sorted((real / "o3-scattering" / "Fast_Scattering").glob("*.png"))[0]
    _uploader(page, "Upload spectrograms").set_input_files(str(crown))
    page.get_by_text(re.compile(r" · 1 view$")).first.wait_for(timeout=120_000)
    _cards(page)[0].locator("h3").first.wait_for(timeout=120_000)
    _drawn(page)
    assert _cards(page)[0].locator("h3").first.inner_text().startswith("Fast Scattering")
    assert "Traceback" not in page.content()
    page.close()


def test_hosted_mode_has_no_train_page(browser, golden: Path, random_checkpoint: Path, console: Console,
                                       tmp_path: Path) -> None:
    with _streamlit(tmp_path, random_checkpoint, GLITCHNET_DATA=str(golden), GLITCHNET_HOSTED="1") as hosted:
        page = _open(browser, console, hosted.url)
        nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
        assert "Predict" in nav and "Train" not in nav
        # no server paths: no text box in the sidebar (the shipped-model choice is a list, not a path)
        assert page.locator('[data-testid="stSidebar"] [data-testid="stTextInput"]').count() == 0
        page.close()
        page = _open(browser, console, f"{hosted.url}/train")  # a link to the page left out: it says why
        page.get_by_text("Training is switched off on this public server").wait_for(timeout=60_000)
        assert "Train" not in page.locator('[data-testid="stSidebarNav"]').inner_text()
        page.close()


@pytest.mark.parametrize("hosted", [False, True], ids=["local", "hosted"])
def test_every_page_opens_by_deep_link(browser, golden: Path, random_checkpoint: Path, console: Console,
                                       tmp_path: Path, hosted: bool) -> None:
    env = {"GLITCHNET_DATA": str(golden), **({"GLITCHNET_HOSTED": "1"} if hosted else {})}
    with _streamlit(tmp_path, random_checkpoint, **env) as running:
        for nav, path in NAV_PATHS.items():
            page = _open(browser, console, f"{running.url}/{path}")
            title = page.locator('[data-testid="stMain"] h1').first.inner_text()
            assert title.startswith(TITLES[path]), (nav, title)
            if hosted and path == "train":
                page.get_by_text("Training is switched off on this public server").wait_for(timeout=60_000)
            assert "Traceback" not in page.content()
            page.close()
            assert not console.messages, f"/{path}: " + "\n".join(console.messages)


def test_fresh_data_folder_shows_the_intro_at_once(browser, random_checkpoint: Path, console: Console,
                                                   tmp_path: Path) -> None:
    with _streamlit(tmp_path, random_checkpoint, GLITCHNET_DATA=None, GLITCHNET_DATA_HOME=str(tmp_path / "data")) \
            as fresh:
        page = _tab(browser, console)
        page.goto(fresh.url)
        bar = page.locator('[data-testid="stProgress"]')
        bar.wait_for(timeout=60_000)
        intro_s = time.monotonic() - fresh.started
        intro = page.get_by_text("These short bursts of noise are called")
        assert intro.is_visible()
        assert intro.bounding_box()["y"] < bar.bounding_box()["y"]  # the text first, the dataset's progress below
        assert "Making the built-in simulated dataset" in bar.inner_text()
        print(f"\nstreamlit run on a fresh data folder -> intro and progress bar drawn: {intro_s:.1f} s")
        page.close()


@pytest.mark.skipif(not WRITE_SCREENSHOTS, reason="set GLITCHNET_SCREENSHOTS=1 to write docs/screenshots/")
@pytest.mark.parametrize("nav", ["Home", "Explore", "Augmentations", "Train"])
def test_page_screenshots(browser, server: Server, console: Console, nav: str) -> None:
    path = NAV_PATHS[nav]
    page = _open(browser, console, server.url, None if nav == "Home" else nav)
    page.get_by_text(READY[nav]).first.wait_for(timeout=180_000)  # the page's last part, drawn
    _drawn(page)
    assert page.locator("h1").first.inner_text().startswith(TITLES[path])
    assert "Traceback" not in page.content()
    _save_small(page.screenshot(), SCREENSHOTS / f"{path or 'home'}.png")
    page.close()
