"""Reports never show a summary.json older than its records (a resume killed mid-run)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from medvision.backends import ChatRequest, ChatResponse, create_backend
from medvision.runs.integrity import summary_is_current
from medvision.runs.records import RECORDS_NAME, read_records
from medvision.runs.report import write_reports
from medvision.runs.runner import SUMMARY_NAME, Runner, RunSpec


class _KilledAfter:
    """The oracle, killed (KeyboardInterrupt) when asked for batch ``n + 1``."""

    name = "oracle"

    def __init__(self, n: int) -> None:
        self.inner = create_backend("oracle", seed=0)
        self.left = n

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return list(self.inner.generate(requests))

    def close(self) -> None:
        pass


def test_report_recomputes_a_summary_older_than_its_records(
    mini_store: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    spec = RunSpec(
        dataset_dir=str(mini_store),
        backend="oracle",
        protocol="official",
        families=("detection",),
        limit=0,
        batch_size=8,
    )
    with pytest.raises(KeyboardInterrupt):
        Runner(spec, out).run(backend=_KilledAfter(1))
    early = Runner(spec, out).summarize()  # the summary of the first 8 records
    assert early["num_records"] == 8
    with pytest.raises(KeyboardInterrupt):  # the resume appends 16 more, then dies
        Runner(spec, out).run(backend=_KilledAfter(2))
    on_disk = json.loads((out / SUMMARY_NAME).read_text())
    assert on_disk["num_records"] == 8 and len(read_records(out / RECORDS_NAME)) == 24
    assert not summary_is_current(on_disk, out / RECORDS_NAME)

    rows = write_reports([out], tmp_path / "report", bootstrap=0, formats=("md", "json"))
    assert rows[0]["num_records"] == 24  # not the stale 8
    board = json.loads((tmp_path / "report" / "leaderboard.json").read_text())
    assert board[0]["num_records"] == 24
    # A summary made from the records as they are is used as it is.
    fresh = Runner(spec, out).summarize()
    assert summary_is_current(fresh, out / RECORDS_NAME)
