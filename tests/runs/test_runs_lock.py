"""One writer per run folder; duplicated records count once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from medvision.runs.lock import LOCK_NAME, RunLock
from medvision.runs.records import RECORDS_NAME, append_records, read_records
from medvision.runs.runner import RunError, Runner, RunSpec, rescore

HOLD = """
import sys, time
from medvision.runs.lock import RunLock
lock = RunLock(sys.argv[1]); lock.acquire()
print("locked", flush=True)
time.sleep(120)
"""


def _spec(store: Path) -> RunSpec:
    return RunSpec(dataset_dir=str(store), backend="oracle", protocol="official", limit=3)


def _holder(folder: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_second_writer_refuses_and_a_killed_writer_frees_the_folder(
    mini_store: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    holder = _holder(out)
    try:
        with pytest.raises(
            RunError, match=rf"in use by another medvision process \(pid {holder.pid}\)"
        ):
            Runner(_spec(mini_store), out)
        with pytest.raises(RunError, match="in use"):
            rescore(out)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert not (out / RECORDS_NAME).exists()
    # kill -9 released the lock: the folder is usable at once.
    summary = Runner(_spec(mini_store), out).run()
    assert summary["num_records"] > 0 and (out / LOCK_NAME).exists()


def test_lock_is_reentrant_within_one_holder(tmp_path: Path) -> None:
    lock = RunLock(tmp_path)
    with lock, lock:
        assert lock.held
        with pytest.raises(RunError):
            RunLock(tmp_path).acquire()  # another holder, same process: refused too
    assert not lock.held
    RunLock(tmp_path).acquire()


def test_summaries_and_rescore_count_each_sample_once(mini_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    runner = Runner(_spec(mini_store), out)
    first = runner.run()
    records = read_records(out / RECORDS_NAME)
    n = len(records)
    # What two unlocked writers left behind: every record twice.
    append_records(out / RECORDS_NAME, records)
    again = runner.summarize()
    assert again["num_records"] == n and again["run"]["duplicates_dropped"] == n
    assert again["detection"] == first["detection"]
    scored = rescore(out)
    assert scored["num_records"] == n and scored["run"]["duplicates_dropped"] == n
    assert len(read_records(out / RECORDS_NAME)) == n  # repaired on disk
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["run"]["duplicates_dropped"] == n
