"""Pool workers end with the process that made them, even when it installed its own SIGTERM handler."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from glitchnet.workers import process_pool

ROOT = Path(__file__).resolve().parents[1]

PARENT = """
import os, signal, sys, time
sys.path.insert(0, sys.argv[1])
from glitchnet.workers import process_pool
signal.signal(signal.SIGTERM, lambda *a: None)  # like Streamlit's handler, inherited by forked workers
def slow_pid(_):
    time.sleep(0.5)  # long enough that the two calls land on the two workers
    return os.getpid()
pool = process_pool(2)
print(" ".join(map(str, set(pool.map(slow_pid, range(2))))), flush=True)
pool.submit(time.sleep, 600)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for init counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_pool_maps_like_a_process_pool():
    with process_pool(2) as pool:
        assert list(pool.map(abs, [-3, 2, -1])) == [3, 2, 1]
        assert all(p != os.getpid() for p in pool.map(_pid, range(2)))


def _pid(_: int) -> int:
    return os.getpid()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's prctl")
def test_workers_die_with_a_killed_parent_and_on_sigterm():
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(ROOT)], stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(p) for p in parent.stdout.readline().split()]
        assert len(workers) == 2 and all(_alive(p) for p in workers)
        parent.kill()  # SIGKILL: no shutdown, no atexit; the workers are left blocked on the pool's queue
        parent.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers)
    finally:
        if parent.poll() is None:
            parent.kill()
        for p in workers if "workers" in locals() else []:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
