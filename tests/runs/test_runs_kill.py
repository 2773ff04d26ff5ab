"""A real evaluation process killed with SIGKILL mid-run resumes with no duplicate and no gap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from medvision.runs.records import RECORDS_NAME, read_records
from medvision.runs.runner import RunSpec, select_samples
from medvision.store import open_dataset
from medvision.testing.fake_openai import FakeOpenAIServer

# The child evaluates detection on the mini store through the openai backend.
CHILD = """
import sys
from medvision.runs.runner import Runner, RunSpec
spec = RunSpec(
    dataset_dir=sys.argv[1], backend="openai", model="fake-vlm", protocol="official",
    families=("detection",), limit=0, batch_size=1,
    backend_options={"base_url": sys.argv[2], "concurrency": 2},
)
Runner(spec, sys.argv[3]).run()
print("finished", flush=True)
"""


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _child(store: Path, url: str, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store), url, str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_sigkill_mid_run_then_resume(mini_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    spec = RunSpec(dataset_dir=str(mini_store), backend="openai", families=("detection",), limit=0)
    expected = {
        s.sample_id for s in select_samples(open_dataset(mini_store).samples(split="test"), spec)
    }
    assert len(expected) > 100
    with FakeOpenAIServer(latency_s=0.03) as srv:
        proc = _child(mini_store, srv.url, out)
        deadline = time.monotonic() + 60
        while (
            _lines(out / RECORDS_NAME) < 40 and time.monotonic() < deadline and proc.poll() is None
        ):
            time.sleep(0.02)
        assert proc.poll() is None, f"child ended early: {proc.communicate()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        before = read_records(out / RECORDS_NAME)
        assert 40 <= len(before) < len(expected)
        asked_first = len(srv.requests)

        proc = _child(mini_store, srv.url, out)
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        assert "finished" in stdout
        asked = [(r.image_sha256, r.text) for r in srv.requests]

    after = read_records(out / RECORDS_NAME)
    ids = [r.sample_id for r in after]
    assert len(ids) == len(set(ids)), "duplicate records"
    assert set(ids) == expected, "missing or extra records"
    # What was recorded before the kill is kept as it was and never asked again.
    by_id = {r.sample_id: r for r in after}
    assert all(by_id[r.sample_id] == r for r in before)
    # Only the requests in flight at the kill (at most one batch: 4 x concurrency 2) repeat.
    repeats = sum(n - 1 for n in Counter(asked).values())
    assert repeats <= 8
    assert len(asked) - asked_first <= len(expected) - len(before)
