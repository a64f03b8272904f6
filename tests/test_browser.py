"""The app in a real browser: `streamlit run` plus headless Chromium; upload a real golden image on Predict.

Set ``GLITCHNET_SCREENSHOTS=1`` to also write small screenshots of every page to ``docs/screenshots/``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from test_app import make_golden_kaggle

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


@dataclass
class Server:
    url: str
    random_model: bool
    """True when the app runs with random weights (every prediction is then unsure)."""
    ready_s: float
    """Seconds from launching ``streamlit run`` to its health endpoint answering."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"streamlit did not answer on {url} within {timeout_s:.0f} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, random_checkpoint: Path, real: Path) -> Iterator[Server]:
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: install Chromium (Debian: apt-get install chromium) to run browser tests")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    tmp = tmp_path_factory.mktemp("browser")
    # Screenshots for the docs show the shipped model when there is one; the test itself uses random weights.
    model = SHIPPED_MODEL if WRITE_SCREENSHOTS and SHIPPED_MODEL.is_file() else random_checkpoint
    env = {**os.environ, "GLITCHNET_MODEL": str(model), "GLITCHNET_CACHE_DIR": str(tmp / "cache"),
           "GLITCHNET_RUNS_DIR": str(tmp / "runs")}
    env.pop("GLITCHNET_HOSTED", None)
    if not WRITE_SCREENSHOTS:
        env["GLITCHNET_DATA"] = str(make_golden_kaggle(tmp / "golden", real))
    port = _free_port()
    started = time.monotonic()
    with (tmp / "streamlit.log").open("wb") as out:  # kept in pytest's temp folder for a failed run
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless",
                                 "true", "--server.port", str(port), "--server.address", "127.0.0.1"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", proc)
        yield Server(f"http://127.0.0.1:{port}", model == random_checkpoint, time.monotonic() - started)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser(server: Server) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _open(browser, url: str, timeout_s: float = 180.0):
    """A new tab on ``url``, once its script has finished and every chart and image is drawn."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url)
    page.locator('[data-testid="stMain"] h1').first.wait_for(timeout=timeout_s * 1000)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=timeout_s * 1000)
    page.wait_for_function("""() =>
        !document.querySelector('[data-testid="stSkeleton"], [data-testid="stSkeletonElement"]')
        && [...document.images].every(i => i.complete)""", timeout=timeout_s * 1000)
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


def test_upload_on_predict_shows_prediction_and_heatmap(browser, server: Server, tmp_path: Path, real: Path) -> None:
    start = time.monotonic()
    page = _open(browser, server.url)
    first_render_s = server.ready_s + time.monotonic() - start
    assert page.locator("h1").first.inner_text().startswith(TITLES[""])
    page.goto(f"{server.url}/predict")
    page.get_by_text(TITLES["predict"]).wait_for(timeout=60_000)

    timings = []
    for image in ["Blip/blip-1.jpg", "Whistle/whistle-1.jpg"]:  # each upload is a batch of its own
        start = time.monotonic()
        page.locator('input[type="file"]').first.set_input_files(str(real / "golden" / image))
        page.wait_for_function("""name => {
            const card = [...document.querySelectorAll('[data-testid="stMarkdownContainer"] code')]
                .some(c => c.innerText === name);
            const cards = [...document.querySelectorAll('[data-testid="stExpander"]')]
                .filter(c => c.innerText.includes('Grad-CAM'));
            const imgs = [...document.querySelectorAll('[data-testid="stImage"] img')];
            return card && cards.length >= 1 && imgs.length >= 1
                && imgs.every(i => i.complete && i.naturalWidth > 0);
        }""", arg=Path(image).name, timeout=60_000)
        timings.append(time.monotonic() - start)
    assert page.get_by_text("Field guide,").count() == 1
    if server.random_model:
        assert page.get_by_text("The model is not sure").count() == 1  # random weights are never confident
    assert "Traceback" not in page.content()

    shot = page.screenshot()
    (tmp_path / "predict.png").write_bytes(shot)
    if WRITE_SCREENSHOTS:
        page.locator('[data-testid="stMain"]').evaluate("e => e.scrollTo(0, 0)")
        _save_small(page.screenshot(), SCREENSHOTS / "predict.png")
    print(f"\nstreamlit run -> server ready {server.ready_s:.1f} s, first page rendered {first_render_s:.1f} s; "
          f"upload -> prediction and heatmap: first {timings[0]:.1f} s, second {timings[1]:.1f} s")
    page.close()


@pytest.mark.skipif(not WRITE_SCREENSHOTS, reason="set GLITCHNET_SCREENSHOTS=1 to write docs/screenshots/")
@pytest.mark.parametrize("path", ["", "explore", "augment", "train"])
def test_page_screenshots(browser, server: Server, path: str) -> None:
    page = _open(browser, f"{server.url}/{path}")
    assert page.locator("h1").first.inner_text().startswith(TITLES[path])
    assert "Traceback" not in page.content()
    _save_small(page.screenshot(), SCREENSHOTS / f"{path or 'home'}.png")
    page.close()
