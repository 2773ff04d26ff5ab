from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from medvision.backends import ChatRequest, ChatResponse, OracleBaseline
from medvision.runs.records import RECORDS_NAME, read_records
from medvision.runs.runner import RunError, Runner, RunSpec, rescore


class _Counting:
    """Oracle that counts the requests it sees and can stop the run after some batches."""

    name = "counting"

    def __init__(self, stop_after: int | None = None) -> None:
        self.inner = OracleBaseline()
        self.seen: list[str] = []
        self.stop_after = stop_after
        self.calls = 0

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise KeyboardInterrupt  # the user pressed Ctrl-C mid-run
        self.calls += 1
        self.seen += [r.request_id for r in requests]
        return self.inner.generate(requests)

    def close(self) -> None:
        pass


def _spec(store: Path, **kw) -> RunSpec:
    return RunSpec(dataset_dir=str(store), backend="oracle", batch_size=16, **kw)


def test_interrupted_run_resumes_without_repeats(mini_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = _Counting(stop_after=3)
    with pytest.raises(KeyboardInterrupt):
        Runner(_spec(mini_store), out).run(backend=first)
    assert len(read_records(out / RECORDS_NAME)) == 48
    # A torn line from a killed writer is repaired, not parsed.
    with (out / RECORDS_NAME).open("a") as fh:
        fh.write('{"sample_id": "half a rec')
    second = _Counting()
    summary = Runner(_spec(mini_store), out).run(backend=second)
    records = read_records(out / RECORDS_NAME)
    ids = [r.sample_id for r in records]
    assert len(ids) == len(set(ids)) == summary["num_records"]
    assert not set(first.seen) & set(second.seen)
    assert set(first.seen) | set(second.seen) == set(ids)


def test_resume_refuses_a_different_spec(mini_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    Runner(_spec(mini_store, families=("ad",)), out).run()
    with pytest.raises(RunError, match="different run"):
        Runner(_spec(mini_store, families=("ad",), protocol="strict"), out)
    Runner(_spec(mini_store, families=("ad",), protocol="strict"), out, overwrite=True).run()


def test_score_recomputes_the_summary_from_records(mini_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    spec = RunSpec(dataset_dir=str(mini_store), backend="oracle", backend_options={"noise": 0.2})
    summary = Runner(spec, out).run()
    (out / "summary.json").unlink()
    again = rescore(out)
    for fam in ("detection", "tl", "ad"):
        assert json.dumps(again[fam], sort_keys=True) == json.dumps(summary[fam], sort_keys=True)
    strict = rescore(out, protocol="strict")
    assert (out / "summary-strict.json").exists()
    assert strict["detection"]["all"]["num_samples"] == summary["detection"]["all"]["num_samples"]


def test_limit_takes_the_first_n_per_configuration(mini_store: Path, tmp_path: Path) -> None:
    spec = _spec(mini_store, families=("detection",), limit=5)
    summary = Runner(spec, tmp_path / "run").run()
    records = read_records(tmp_path / "run" / RECORDS_NAME)
    per_plane: dict[int, int] = {}
    for r in records:
        per_plane[r.plane] = per_plane.get(r.plane, 0) + 1
    assert per_plane == {0: 5, 1: 5, 2: 5}
    assert summary["num_records"] == 15


def test_a_changed_spec_stopped_before_running_is_rebuilt_later(
    mini_store: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    spec = _spec(mini_store, families=("ad",), protocol="strict", prompt_style="official")
    Runner(spec, out).run()
    before = {r.prompt_hash for r in read_records(out / RECORDS_NAME)}
    cot = _spec(mini_store, families=("ad",), protocol="strict", prompt_style="cot")
    Runner(cot, out)  # constructed, then the user stops: nothing is rebuilt yet
    Runner(cot, out).run()
    after = {r.prompt_hash for r in read_records(out / RECORDS_NAME)}
    assert after and not after & before  # every record now carries the CoT prompt


def test_reparse_rewrites_records_and_keeps_the_run_block(mini_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    spec = RunSpec(
        dataset_dir=str(mini_store), backend="oracle", model="m", families=("tl",), limit=4
    )
    Runner(spec, out).run()
    summary = rescore(out, reparse=True)
    assert summary["run"]["model"] == "m" and summary["run"]["rescored"] == "reparsed"
    assert json.loads((out / "summary.json").read_text())["run"]["model"] == "m"
    other = rescore(out, protocol="strict")
    assert (out / "records-strict.jsonl").exists()
    assert {r.protocol for r in read_records(out / "records-strict.jsonl")} == {"strict"}
    assert other["run"]["rescored_from"] == "paper-v1"
