"""Many visitors at once against `streamlit run` on loopback: upload -> verdict, Home while busy, server RSS, errors.

Starts the app as a public server (``GLITCHNET_HOSTED=1``, served by the ONNX Runtime engine) and drives it with
headless Chromium (Playwright, Debian's ``/usr/bin/chromium``), one browser context (one Streamlit session) per
visitor. The server and the browsers run on separate CPU cores (``--server-cores``, ``--browser-cores``: the
server's process is pinned before it starts, this script, Playwright's driver and Chromium to the others), so that
the browsers standing in for the visitors' own machines never take the server's CPU:

1. baseline: one visitor uploads the same golden GIFs (four views each) one after another;
2. crowd: ``--visitors`` visitors upload one GIF each at the same moment, while a reader reloads the Home page;
3. soak: ``--soak`` uploads in all (a few visitors in turn), the server's RSS sampled after each round.

4. big upload (``--big-upload N``): one visitor uploads N files of 9.9 MB (the 40 MB budget takes 4); the server's RSS
   before, once the card is drawn, and after the visitor has left.

Prints the server's own figures, read from the page (the queue and the model: "Classified in"; the whole request to
the last card sent: "cards sent ... after the request"), p50 and p95; the browser's upload -> verdict (the GIF's
card: the combined verdict of its four frames and their Grad-CAMs, drawn); Home-page latency while the queue is
busy; the server's peak RSS with the crowd and over the run; the soak's RSS after warm-up. Errors the server made
(an error on the page, a traceback in its log) are counted apart from the browsers' own timeouts. Everything is
bounded: at most ``MAX_VISITORS`` visitors, each wait ``--wait`` s, the whole run ``--time-limit`` s.

    python benchmarks/load_test.py                               # 16 visitors, 200-upload soak (the targets)
    python benchmarks/load_test.py --visitors 4 --soak 40        # a quick run on a busy machine
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import ROOT, start_streamlit, stop  # noqa: E402

sys.path.insert(0, str(ROOT))
from glitchnet.serving import IDLE_TRIM_S  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "real"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
MAX_VISITORS = 32
SERVER_S: list[float] = []
"""The page's own "Classified in ... s" (queue and model, on the server) for every upload, in order."""
SENT_S: list[float] = []
"""The page's own "cards sent ... s after the request" (the script run, on the server) for every upload, in order."""
HOME_TITLE = "GlitchNet"
POLL_MS = 250
"""How often a waiting page checks for what it waits for: Playwright's default, every animation frame in every tab,
took the browsers' core from sixteen tabs at once and left the pages' own rendering waiting."""



def _status_kb(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` memory field (VmRSS, VmHWM) in kB, summed over the process and its children."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_s(pid: int) -> float:
    """CPU time (user + system) the process has used so far, s."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class RssSampler:
    """The server's RSS sampled every 0.2 s in a thread; ``peak_mb`` is the largest sample (and VmHWM)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak_kb = max(self.peak_kb, _status_kb(self.pid, "VmRSS"))

    def now_mb(self) -> float:
        return _status_kb(self.pid, "VmRSS") / 1024

    def peak_mb(self) -> float:
        return max(self.peak_kb, _status_kb(self.pid, "VmHWM")) / 1024

    def stop(self) -> None:
        self._stop.set()


def start_server(model: Path, data: Path, log: Path, cores: set[int]) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "GLITCHNET_HOSTED": "1", "GLITCHNET_MODEL": str(model), "GLITCHNET_DATA": str(data),
           "PYTHONPATH": str(ROOT)}
    return start_streamlit(env, log, timeout_s=120, cores=cores)


def chromium_wrapper(nice: int, cores: set[int], folder: Path) -> Path:
    """Chromium started at a lower CPU priority (``nice``) on the browsers' cores: visitors' browsers run on their
    own machines, here they share the machine with the server, and the figures should be the server's."""
    if nice <= 0 and not cores:
        return CHROMIUM
    wrapper = folder / "chromium"
    pin = f"taskset -c {','.join(map(str, sorted(cores)))} " if cores else ""
    wrapper.write_text(f'#!/bin/sh\nexec {pin}nice -n {max(0, int(nice))} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def cores_of(text: str) -> set[int]:
    """"0", "1-3" or "0,2" as a set of CPU numbers; "" is none (no pinning)."""
    out: set[int] = set()
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def is_browser_timeout(exc: BaseException) -> bool:
    """A wait of the browser that ran out (Playwright's TimeoutError): the visitor's side, not a server error."""
    return type(exc).__name__ == "TimeoutError" or isinstance(exc, asyncio.TimeoutError)


async def wait_drawn(page, wait_s: float) -> None:
    """Until the script has finished and every image on the page has loaded."""
    await page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=wait_s * 1000)
    await page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=wait_s * 1000,
                                 polling=POLL_MS)


async def open_page(context, url: str, wait_s: float):
    page = await context.new_page()
    await page.goto(url, timeout=wait_s * 1000)
    await page.locator('[data-testid="stMain"] h1').first.wait_for(timeout=wait_s * 1000)
    await wait_drawn(page, wait_s)
    return page


async def upload(page, gif: Path, wait_s: float) -> float:
    """Upload one GIF on an open Predict page; seconds until its card (the combined verdict) and its four Grad-CAM
    views are drawn."""
    start = time.monotonic()
    # the browser's own wait too (Playwright's default is 30 s): a saturated browser core is not a server error
    await page.locator('input[type="file"][accept*=".gif"]').set_input_files(str(gif), timeout=wait_s * 1000)
    await page.wait_for_function("""name => {
        const card = [...document.querySelectorAll('[data-testid="stMarkdownContainer"] code')]
            .some(c => c.innerText === name);
        const heat = [...document.querySelectorAll('[data-testid="stExpander"] summary')]
            .some(s => s.innerText.includes('with Grad-CAM'));
        const imgs = [...document.querySelectorAll('[data-testid="stImage"] img')];
        return card && heat && imgs.length >= 4 && imgs.every(i => i.complete && i.naturalWidth > 0);
    }""", arg=gif.name, timeout=wait_s * 1000, polling=POLL_MS)
    elapsed = time.monotonic() - start
    await page.wait_for_function("""() =>  // the rerun that empties the uploader has ended: ready for the next one
        document.querySelectorAll('input[type="file"][accept*=".gif"]').length === 1
        && document.querySelector('[data-testid="stFileUploaderDropzoneInstructions"]')""", timeout=wait_s * 1000,
                                 polling=POLL_MS)
    text = await page.locator('[data-testid="stMain"]').inner_text()
    if "Something went wrong" in text or "Traceback" in text:
        raise RuntimeError(f"{gif.name}: the page shows an error")
    served = re.search(r"Classified in ([0-9.]+) s", text)
    sent = re.search(r"cards sent ([0-9.]+) s after the request", text)
    SERVER_S.append(float(served.group(1)) if served else float("nan"))
    SENT_S.append(float(sent.group(1)) if sent else float("nan"))
    return elapsed


async def home_latency(browser, url: str, wait_s: float) -> float:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        start = time.monotonic()
        page = await open_page(context, url, wait_s)
        elapsed = time.monotonic() - start
        title = await page.locator("h1").first.inner_text()
        if not title.startswith(HOME_TITLE):
            raise RuntimeError(f"Home shows {title!r}")
        return elapsed
    finally:
        await context.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def run(args: argparse.Namespace) -> int:
    from playwright.async_api import async_playwright

    gifs = sorted((REAL / "golden").glob("*/*.gif"))
    if not gifs:
        print(f"no golden GIFs under {REAL / 'golden'}: the ../shared folder is absent", file=sys.stderr)
        return 2
    n = min(args.visitors, MAX_VISITORS)
    errors: list[str] = []
    timeouts: list[str] = []

    def failed(what: str, exc: BaseException) -> None:
        (timeouts if is_browser_timeout(exc) else errors).append(f"{what}: {str(exc).splitlines()[0][:160]}")

    server_cores, browser_cores = cores_of(args.server_cores), cores_of(args.browser_cores)
    if server_cores & browser_cores:
        print("the server's and the browsers' cores must differ", file=sys.stderr)
        return 2
    log = Path(tempfile.mkdtemp(prefix="glitchnet-load-")) / "streamlit.log"
    proc, url = start_server(args.model, args.data, log, server_cores)
    if browser_cores:  # this script, Playwright's driver and (through the wrapper) Chromium
        os.sched_setaffinity(0, browser_cores)
    print(f"server on core(s) {sorted(os.sched_getaffinity(proc.pid))}, browsers on "
          f"{sorted(browser_cores) or 'any core'}")
    rss = RssSampler(proc.pid)
    deadline = time.monotonic() + args.time_limit
    try:
        async with async_playwright() as p:
            chromium = chromium_wrapper(args.browser_nice, browser_cores, log.parent)
            browser = await p.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
            # warm-up: the first visit loads the model and scans the dataset
            idle_home = await home_latency(browser, url, args.wait)
            idle_home = await home_latency(browser, url, args.wait)

            # 1. baseline: the same uploads served one after another
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await open_page(context, f"{url}/predict", args.wait)
            await upload(page, gifs[-1], args.wait)  # warm-up upload (Grad-CAM's first use), not counted
            # and the similarity index of the server's dataset, built once per server after the first card: wait
            # for the card's similar glitches, so that the figures below are the server's steady state
            await page.get_by_role("button", name="Open").first.wait_for(timeout=args.wait * 1000)
            await wait_drawn(page, args.wait)
            serial = []
            cpu0 = cpu_s(proc.pid)
            for k in range(n):
                serial.append(await upload(page, gifs[k % len(gifs)], args.wait))
            serial_cpu = cpu_s(proc.pid) - cpu0
            await context.close()
            serial_total = sum(serial)
            print(f"baseline, {n} uploads one after another: browser upload -> verdict median "
                  f"{statistics.median(serial):.2f} s, total {serial_total:.1f} s; server CPU {serial_cpu:.1f} s; "
                  f"server: {server_figures(SERVER_S[-n:], SENT_S[-n:])}")

            # 2. the crowd: n visitors upload at once; a reader loads Home while they wait
            contexts = [await browser.new_context(viewport={"width": 1280, "height": 900}) for _ in range(n)]
            pages = await asyncio.gather(*(open_page(c, f"{url}/predict", args.wait) for c in contexts))
            busy = asyncio.Event()

            async def visitor(k: int) -> float | None:
                try:
                    busy.set()
                    return await upload(pages[k], gifs[k % len(gifs)], args.wait)
                except Exception as exc:
                    failed(f"visitor {k}", exc)
                    return None

            async def reader() -> list[float]:
                await busy.wait()
                await asyncio.sleep(1.0)
                times = []
                for _ in range(args.home_reads):
                    try:
                        times.append(await home_latency(browser, url, args.wait))
                    except Exception as exc:
                        failed("home", exc)
                return times

            crowd_start, cpu0, before = time.monotonic(), cpu_s(proc.pid), len(SERVER_S)
            results = await asyncio.gather(*(visitor(k) for k in range(n)), reader())
            crowd_s, crowd_cpu = time.monotonic() - crowd_start, cpu_s(proc.pid) - cpu0
            latencies = [r for r in results[:n] if r is not None]
            home = results[n]
            for c in contexts:
                await c.close()
            crowd_peak = rss.peak_mb()
            if latencies:
                p95 = percentile(latencies, 0.95)
                print(f"crowd, {n} visitors uploading at once: server: "
                      f"{server_figures(SERVER_S[before:], SENT_S[before:])}")
                print(f"crowd, browser upload -> verdict drawn: p50 {percentile(latencies, 0.5):.1f} s, p95 "
                      f"{p95:.1f} s, max {max(latencies):.1f} s (all done in {crowd_s:.1f} s; server CPU "
                      f"{crowd_cpu:.1f} s, with the Home loads)")
            if home:
                print(f"Home page while the queue is busy: {', '.join(f'{h:.1f}' for h in home)} s "
                      f"(max {max(home):.1f} s; idle {idle_home:.1f} s)")
            print(f"server peak RSS with {n} visitors: {crowd_peak:.0f} MB")

            # 3. soak: uploads in rounds by a few visitors; RSS after each round
            if args.soak:
                k_visitors = min(4, args.soak)
                contexts = [await browser.new_context(viewport={"width": 1280, "height": 900})
                            for _ in range(k_visitors)]
                pages = await asyncio.gather(*(open_page(c, f"{url}/predict", args.wait) for c in contexts))
                done, samples, g = 0, [], 0
                while done < args.soak and time.monotonic() < deadline:
                    batch = min(k_visitors, args.soak - done)

                    async def one(k: int, gif: Path, number: int) -> None:
                        try:
                            await upload(pages[k], gif, args.wait)
                        except Exception as exc:
                            failed(f"soak upload {number}", exc)

                    await asyncio.gather(*(one(k, gifs[(g + k) % len(gifs)], done + k) for k in range(batch)))
                    g += batch
                    done += batch
                    samples.append((done, rss.now_mb()))
                for c in contexts:
                    await c.close()
                warm = [mb for count, mb in samples if count > max(args.soak // 10, k_visitors)]
                if warm:
                    spread = (max(warm) - min(warm)) / min(warm)
                    print(f"soak, {done} uploads by {k_visitors} visitors: RSS after warm-up {min(warm):.0f} to "
                          f"{max(warm):.0f} MB ({spread:.1%} spread; first {samples[0][1]:.0f} MB, last "
                          f"{samples[-1][1]:.0f} MB)")
                if done < args.soak:
                    errors.append(f"soak stopped by the time limit after {done} uploads")
            # 4. one visitor uploads many files of 9.9 MB: only the batch budget's worth is held
            if args.big_upload:
                await big_upload(browser, url, args, rss, log.parent, failed)
            await browser.close()
    finally:
        rss.stop()
        peak = rss.peak_mb()
        stop(proc)
    tracebacks = log.read_text(errors="replace").count("Traceback")
    if tracebacks:
        errors.append(f"{tracebacks} traceback(s) in the server log {log}")
    print(f"server peak RSS over the run: {peak:.0f} MB")
    print(f"browser timeouts (not counted as server errors): {len(timeouts)}" + "".join(f"\n  {e}" for e in timeouts))
    print(f"server errors: {len(errors)}" + "".join(f"\n  {e}" for e in errors))
    return 1 if errors else 0


def server_figures(served: list[float], sent: list[float]) -> str:
    """The page's own timings, p50 and p95: in the queue and the model, and the request to the last card sent."""
    served, sent = [s for s in served if s == s], [s for s in sent if s == s]  # NaN: the figure was not on the page
    if not served or not sent:
        return "no server figures on the page"
    return (f"queue and model p50 {percentile(served, 0.5):.2f} s, p95 {percentile(served, 0.95):.2f} s; "
            f"request -> cards sent p50 {percentile(sent, 0.5):.2f} s, p95 {percentile(sent, 0.95):.2f} s")


def big_files(folder: Path, count: int) -> list[Path]:
    """``count`` PNGs of 9.9 MB (incompressible noise: not spectrograms, so each gets its one-line error)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    side = 1850  # 1850 x 1850 RGB, stored: 10.3 MB = 9.8 MiB, under the 10 MB upload limit
    paths = []
    for k in range(count):
        path = folder / f"big{k:02d}.png"
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path, compress_level=0)
        paths.append(path)
    return paths


async def big_upload(browser, url: str, args: argparse.Namespace, rss: RssSampler, folder: Path, failed) -> None:
    files = big_files(folder, args.big_upload)
    size_mb = sum(f.stat().st_size for f in files) / 2**20
    before = rss.now_mb()
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = await open_page(context, f"{url}/predict", args.wait)
        await page.locator('input[type="file"][accept*=".gif"]').set_input_files([str(f) for f in files],
                                                                               timeout=args.wait * 1000)
        await page.wait_for_function("""n => [...document.querySelectorAll('[data-testid="stAlert"]')]
            .filter(a => a.innerText.includes('not classified')).length >= n""", arg=max(0, args.big_upload - 4),
                                     timeout=args.wait * 1000, polling=POLL_MS)
        await wait_drawn(page, args.wait)
        drawn = rss.now_mb()
        await asyncio.sleep(IDLE_TRIM_S + 2)  # the visitor still on the page; an idle worker has trimmed the heap
        stayed = rss.now_mb()
    except Exception as exc:
        failed("big upload", exc)
        drawn = stayed = float("nan")
    finally:
        await context.close()
    await asyncio.sleep(15)  # the visitor has left: the session's files are released, the allocator trims
    print(f"big upload, one visitor, {args.big_upload} files ({size_mb:.0f} MB): server RSS {before:.0f} MB before, "
          f"{drawn:.0f} MB with the page drawn, {stayed:.0f} MB {IDLE_TRIM_S + 2:.0f} s later (the visitor still "
          "there), "
          f"{rss.now_mb():.0f} MB 15 s after the visitor left")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=16, help=f"visitors uploading at once (at most {MAX_VISITORS})")
    parser.add_argument("--soak", type=int, default=200, help="uploads in the soak (0: no soak)")
    parser.add_argument("--home-reads", type=int, default=3, help="Home page loads while the queue is busy")
    parser.add_argument("--wait", type=float, default=300.0, help="longest wait for one page or verdict, s")
    parser.add_argument("--time-limit", type=float, default=1800.0, help="the whole run stops after this, s")
    parser.add_argument("--browser-nice", type=int, default=0,
                        help="CPU priority of the browser standing in for the visitors (0: the same as the server)")
    parser.add_argument("--server-cores", default="0", help="CPU cores the server runs on ('' : any)")
    parser.add_argument("--browser-cores", default="1", help="CPU cores this script and the browsers run on ('' : any)")
    parser.add_argument("--big-upload", type=int, default=40, help="files of 9.9 MB one visitor uploads at the end "
                                                                   "(0: none)")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "glitchnet.pt")
    parser.add_argument("--data", type=Path, default=REAL / "golden", help="dataset the server shows")
    args = parser.parse_args()
    if not CHROMIUM.is_file():
        print(f"{CHROMIUM} not found: apt-get install chromium", file=sys.stderr)
        return 2
    print(f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at start; {args.visitors} visitors, "
          f"{args.soak}-upload soak, big upload of {args.big_upload} files; browser at nice {args.browser_nice}")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
