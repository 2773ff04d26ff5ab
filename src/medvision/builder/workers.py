"""Build worker processes that die with their parent.

``ProcessPoolExecutor`` workers blocked in a long case outlive a parent killed with
``kill -9``: nothing tells them, and they keep writing into the store and holding memory.
:func:`init_worker` (the pool's initializer) makes each worker follow its parent two ways:

* Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, so the kernel kills the worker the moment its
  parent exits, whatever the worker is doing (even inside a long C call).
* Everywhere: a daemon thread that polls the parent pid and exits the process once the
  worker has been re-parented (the check :func:`parent_gone` makes).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

__all__ = ["PR_SET_PDEATHSIG", "WATCH_INTERVAL_S", "init_worker", "parent_gone"]

#: ``prctl`` option that asks the kernel for a signal when the parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1
#: Seconds between two checks of the parent pid by the watchdog thread.
WATCH_INTERVAL_S = 0.5


def parent_gone(parent_pid: int) -> bool:
    """Whether this process is no longer a child of ``parent_pid`` (it was re-parented)."""
    return os.getppid() != parent_pid


def _set_pdeathsig() -> bool:
    """Ask the Linux kernel to SIGKILL this process when its parent exits; False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int) -> None:
    while not parent_gone(parent_pid):
        time.sleep(WATCH_INTERVAL_S)
    os._exit(1)  # no cleanup: the parent that would collect our results is gone


def init_worker(parent_pid: int) -> None:
    """Pool initializer: tie this worker's life to ``parent_pid`` (see the module docstring).

    Args:
        parent_pid: The pid of the process that created the pool (``os.getpid()`` there).
    """
    _set_pdeathsig()
    if parent_gone(parent_pid):  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid,), daemon=True, name="parent-watch").start()
