"""Pool workers never outlive a build killed with ``kill -9``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from medvision.builder.executors import run_jobs as _run

    OUT = Path(sys.argv[1])

    def slow(job):
        (OUT / f"{os.getpid()}.pid").write_text("")
        time.sleep(120)

    if __name__ == "__main__":
        for _ in _run(slow, list(range(4)), 2, "local"):
            pass
    """
)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_when_the_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "build.py"
    script.write_text(_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env)
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("*.pid"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = [int(p.stem) for p in tmp_path.glob("*.pid")]
        assert len(workers) == 2 and all(_alive(pid) for pid in workers)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid in workers if _alive(pid)]
    for pid in survivors:  # do not leave them behind if the test fails
        os.kill(pid, signal.SIGKILL)
    assert survivors == []


_AFTER_OPENCV = textwrap.dedent(
    """
    import numpy as np, cv2
    from medvision.annotate.components import slice_components
    from medvision.builder.executors import run_jobs

    # The parent runs OpenCV's parallel labelling first (its thread pool starts), then forks.
    big = (np.random.default_rng(0).random((3000, 3000)) > 0.5).astype(np.uint8)
    cv2.connectedComponentsWithStats(big, connectivity=4, ltype=cv2.CV_32S)

    def job(seed):
        mask = np.random.default_rng(seed).random((40, 50, 30)) > 0.6
        return len(slice_components(mask, 2))

    if __name__ == "__main__":
        print(sorted(run_jobs(job, [1, 2, 3, 4], 2, "local")))
    """
)


def test_pool_workers_label_components_after_the_parent_used_opencv(tmp_path: Path) -> None:
    # Forked workers inherit OpenCV's thread-pool state; reconfiguring it there (for example
    # cv2.setNumThreads in the pool initializer) hangs forever. The timeout only detects a hang.
    script = tmp_path / "after_opencv.py"
    script.write_text(_AFTER_OPENCV)
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    import numpy as np

    from medvision.annotate.components import slice_components

    expected = sorted(
        len(slice_components(np.random.default_rng(s).random((40, 50, 30)) > 0.6, 2))
        for s in (1, 2, 3, 4)
    )
    assert out.stdout.strip() == str(expected)
