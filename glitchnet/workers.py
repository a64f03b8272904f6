"""Process pools that never outlive the process that made them (the simulator's and the image cache's)."""

from __future__ import annotations

import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent(parent: int) -> None:
    """Pool worker initializer: a plain SIGTERM again, and on Linux a SIGTERM when the parent dies.

    Workers are forked, so they inherit the parent's Python signal handlers: under ``streamlit run`` that is
    Streamlit's SIGTERM handler, which in a worker stops nothing, and a worker blocked on the pool's queue then
    outlives a server stopped mid-build, forever. The standard library has no call for a parent-death signal; the
    kernel's ``prctl(PR_SET_PDEATHSIG)`` is reached through ctypes (it fires when the forking thread ends, and a pool's
    threads live until the pool is shut down)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the call: nobody will send the signal
            os._exit(1)


def _start_worker(parent: int, initializer, initargs: tuple) -> None:
    _die_with_parent(parent)
    if initializer is not None:
        initializer(*initargs)


def process_pool(workers: int, initializer=None, initargs: tuple = ()) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` of ``workers`` processes that end with their parent and on SIGTERM; each worker then
    runs ``initializer(*initargs)`` (state every task shares, sent once per worker rather than with every task)."""
    return ProcessPoolExecutor(max_workers=workers, initializer=_start_worker,
                               initargs=(os.getpid(), initializer, initargs))
