"""Many visitors at once against `streamlit run` on loopback: upload -> verdict, Home while busy, server RSS, errors.

Starts the app as a public server (``GLITCHNET_HOSTED=1``) and drives it with headless Chromium (Playwright, Debian's
``/usr/bin/chromium``, run at nice 19 so that the browser standing in for the visitors' own machines takes only
the CPU the server leaves), one browser context (one Streamlit session) per visitor:

1. baseline: one visitor uploads the same golden GIFs (four views each) one after another;
2. crowd: ``--visitors`` visitors upload one GIF each at the same moment, while a reader reloads the Home page;
3. soak: ``--soak`` uploads in all (a few visitors in turn), the server's RSS sampled after each round.

Prints p50/p95 upload -> verdict (the GIF's card: the combined verdict of its four frames and their Grad-CAMs),
Home-page latency while the queue is busy, the server's peak RSS and the soak's RSS after warm-up, and every error.
Everything is bounded: at most ``MAX_VISITORS`` visitors, each wait ``--wait`` s, the whole run ``--time-limit`` s.

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

REAL = ROOT.parent / "shared" / "data" / "real"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
MAX_VISITORS = 32
SERVER_S: list[float] = []
"""The page's own "Classified in ... s" (queue and model, on the server) for every upload, in order."""
HOME_TITLE = "GlitchNet"



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


def start_server(model: Path, data: Path, log: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "GLITCHNET_HOSTED": "1", "GLITCHNET_MODEL": str(model), "GLITCHNET_DATA": str(data),
           "PYTHONPATH": str(ROOT)}
    return start_streamlit(env, log, timeout_s=120)


def chromium_at_nice(nice: int, folder: Path) -> Path:
    """Chromium started at a lower CPU priority (``nice``): visitors' browsers run on their own machines, here they
    share the server's cores, and the figures should be the server's. 0 runs it as it is."""
    if nice <= 0:
        return CHROMIUM
    wrapper = folder / "chromium"
    wrapper.write_text(f'#!/bin/sh\nexec nice -n {int(nice)} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


async def wait_drawn(page, wait_s: float) -> None:
    """Until the script has finished and every image on the page has loaded."""
    await page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=wait_s * 1000)
    await page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=wait_s * 1000)


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
    await page.locator('input[type="file"][accept*=".gif"]').set_input_files(str(gif))
    await page.wait_for_function("""name => {
        const card = [...document.querySelectorAll('[data-testid="stMarkdownContainer"] code')]
            .some(c => c.innerText === name);
        const heat = [...document.querySelectorAll('[data-testid="stExpander"] summary')]
            .some(s => s.innerText.includes('with Grad-CAM'));
        const imgs = [...document.querySelectorAll('[data-testid="stImage"] img')];
        return card && heat && imgs.length >= 4 && imgs.every(i => i.complete && i.naturalWidth > 0);
    }""", arg=gif.name, timeout=wait_s * 1000)
    elapsed = time.monotonic() - start
    await page.wait_for_function("""() =>  // the rerun that empties the uploader has ended: ready for the next one
        document.querySelectorAll('input[type="file"][accept*=".gif"]').length === 1
        && document.querySelector('[data-testid="stFileUploaderDropzoneInstructions"]')""", timeout=wait_s * 1000)
    text = await page.locator('[data-testid="stMain"]').inner_text()
    if "Something went wrong" in text or "Traceback" in text:
        raise RuntimeError(f"{gif.name}: the page shows an error")
    served = re.search(r"Classified in ([0-9.]+) s", text)
    SERVER_S.append(float(served.group(1)) if served else float("nan"))
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
    log = Path(tempfile.mkdtemp(prefix="glitchnet-load-")) / "streamlit.log"
    proc, url = start_server(args.model, args.data, log)
    rss = RssSampler(proc.pid)
    deadline = time.monotonic() + args.time_limit
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=str(chromium_at_nice(args.browser_nice, log.parent)),
                                              headless=True, args=CHROMIUM_ARGS)
            # warm-up: the first visit loads the model and scans the dataset
            idle_home = await home_latency(browser, url, args.wait)
            idle_home = await home_latency(browser, url, args.wait)

            # 1. baseline: the same uploads served one after another
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await open_page(context, f"{url}/predict", args.wait)
            await upload(page, gifs[-1], args.wait)  # warm-up upload (Grad-CAM's first use), not counted
            serial = []
            cpu0 = cpu_s(proc.pid)
            for k in range(n):
                serial.append(await upload(page, gifs[k % len(gifs)], args.wait))
            serial_cpu = cpu_s(proc.pid) - cpu0
            await context.close()
            serial_total = sum(serial)
            serial_server = SERVER_S[-n:]
            print(f"baseline, {n} uploads one after another: median {statistics.median(serial):.2f} s per upload, "
                  f"total {serial_total:.1f} s; server CPU {serial_cpu:.1f} s; in queue and model: median "
                  f"{statistics.median(serial_server):.2f} s")

            # 2. the crowd: n visitors upload at once; a reader loads Home while they wait
            contexts = [await browser.new_context(viewport={"width": 1280, "height": 900}) for _ in range(n)]
            pages = await asyncio.gather(*(open_page(c, f"{url}/predict", args.wait) for c in contexts))
            busy = asyncio.Event()

            async def visitor(k: int) -> float | None:
                try:
                    busy.set()
                    return await upload(pages[k], gifs[k % len(gifs)], args.wait)
                except Exception as exc:
                    errors.append(f"visitor {k}: {str(exc).splitlines()[0][:160]}")
                    return None

            async def reader() -> list[float]:
                await busy.wait()
                await asyncio.sleep(1.0)
                times = []
                for _ in range(args.home_reads):
                    try:
                        times.append(await home_latency(browser, url, args.wait))
                    except Exception as exc:
                        errors.append(f"home: {str(exc).splitlines()[0][:160]}")
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
                print(f"crowd, {n} visitors uploading at once: upload -> verdict p50 "
                      f"{percentile(latencies, 0.5):.1f} s, p95 {p95:.1f} s, max {max(latencies):.1f} s "
                      f"(all done in {crowd_s:.1f} s; server CPU {crowd_cpu:.1f} s, with the Home loads); "
                      f"p95 / one-after-another total = {p95 / serial_total:.2f}")
                served = SERVER_S[before:]
                print(f"crowd, in queue and model (the page's own figure): p50 {percentile(served, 0.5):.1f} s, "
                      f"p95 {percentile(served, 0.95):.1f} s")
            if home:
                print(f"Home page while the queue is busy: {', '.join(f'{h:.1f}' for h in home)} s "
                      f"(max {max(home):.1f} s; idle {idle_home:.1f} s)")
            print(f"server peak RSS so far: {crowd_peak:.0f} MB")

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
                            errors.append(f"soak upload {number}: {str(exc).splitlines()[0][:160]}")

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
            await browser.close()
    finally:
        rss.stop()
        peak = rss.peak_mb()
        stop(proc)
    tracebacks = log.read_text(errors="replace").count("Traceback")
    if tracebacks:
        errors.append(f"{tracebacks} traceback(s) in the server log {log}")
    print(f"server peak RSS: {peak:.0f} MB")
    print(f"errors: {len(errors)}" + "".join(f"\n  {e}" for e in errors))
    return 1 if errors else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=16, help=f"visitors uploading at once (at most {MAX_VISITORS})")
    parser.add_argument("--soak", type=int, default=200, help="uploads in the soak (0: no soak)")
    parser.add_argument("--home-reads", type=int, default=3, help="Home page loads while the queue is busy")
    parser.add_argument("--wait", type=float, default=300.0, help="longest wait for one page or verdict, s")
    parser.add_argument("--time-limit", type=float, default=1800.0, help="the whole run stops after this, s")
    parser.add_argument("--browser-nice", type=int, default=19,
                        help="CPU priority of the browser standing in for the visitors (0: the same as the server)")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "glitchnet.pt")
    parser.add_argument("--data", type=Path, default=REAL / "golden", help="dataset the server shows")
    args = parser.parse_args()
    if not CHROMIUM.is_file():
        print(f"{CHROMIUM} not found: apt-get install chromium", file=sys.stderr)
        return 2
    print(f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at start; {args.visitors} visitors, "
          f"{args.soak}-upload soak; browser at nice {args.browser_nice}")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
