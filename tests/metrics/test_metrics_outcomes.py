"""Backend errors are counted apart and never scored; a metric nothing supports is None."""

from __future__ import annotations

import pytest

from medvision.metrics import get_protocol, sample_metrics, summarize_run
from medvision.metrics.outcomes import outcome_counts
from medvision.reports import leaderboard
from record_factory import make_record


def _ad(parsed: tuple[float, ...] | None, status: str, **kw: object) -> object:
    proto = get_protocol("official")
    target = (10.0,)
    return make_record(
        "ad",
        parsed,
        target,
        status=status,
        metric_type="distance",
        metric_key="d1",
        metrics=sample_metrics("ad", parsed, target, proto),
        **kw,
    )


def test_all_backend_errors_show_no_metric_not_zero() -> None:
    records = [_ad(None, "backend_error") for _ in range(6)]
    summary = summarize_run(records, get_protocol("official"))
    # Before: A/D MAE 0.0 (official quirk: nothing in the numerator over N in the denominator).
    assert summary["ad"]["model"]["MAE"] is None
    row = leaderboard({"m": summary})[0]
    assert row["ad_MAE"] is None and row["ad_MRE"] is None
    assert summary["outcomes"] == {
        "total": 6,
        "answered": 0,
        "backend_error": 6,
        "parse_failure": 0,
        "truncated": 0,
        "refused": 0,
    }
    assert row["num_backend_errors"] == 6 and row["num_failed"] == 0


def test_every_answer_failing_to_parse_gives_no_mae_either() -> None:
    # The same 0 / N came from answered-but-unparsed records: a mean of nothing is None.
    summary = summarize_run([_ad(None, "no_answer") for _ in range(4)], get_protocol("official"))
    assert summary["ad"]["model"]["MAE"] is None
    assert summary["ad"]["model"]["SR"] == 0.0  # the success rate is a real 0


def test_backend_errors_leave_the_metrics_and_are_counted_apart() -> None:
    proto = get_protocol("official")
    good = [_ad((12.0,), "ok") for _ in range(3)]
    cut = [_ad(None, "no_answer", finish_reason="length")]
    refused = [_ad(None, "refusal")]
    errors = [_ad(None, "backend_error") for _ in range(5)]
    mixed = summarize_run(good + cut + refused + errors, proto)
    answered_only = summarize_run(good + cut + refused, proto)
    # The model's numbers are those of its answers alone: errors change nothing.
    assert mixed["ad"] == answered_only["ad"]
    assert mixed["ad"]["model"]["SR"] == pytest.approx(3 / 5)
    assert mixed["ad"]["model"]["MAE"] == pytest.approx(2.0)  # over the parsed answers
    assert mixed["outcomes"] == {
        "total": 10,
        "answered": 5,
        "backend_error": 5,
        "parse_failure": 2,
        "truncated": 1,
        "refused": 1,
    }
    assert mixed["num_records"] == 10
    assert mixed["status_counts"]["backend_error"] == 5
    assert "backend_error" not in mixed["status_counts_by_family"]["ad"]
    assert outcome_counts(good + errors)["answered"] == 3
    row = leaderboard({"m": mixed})[0]
    assert (row["num_records"], row["num_answered"], row["num_backend_errors"]) == (10, 5, 5)
    assert row["num_failed"] == 2


def test_old_summaries_without_outcomes_still_split_the_counts() -> None:
    old = {"num_records": 7, "status_counts": {"ok": 3, "backend_error": 3, "no_answer": 1}}
    row = leaderboard({"m": old})[0]
    assert (row["num_answered"], row["num_backend_errors"], row["num_failed"]) == (4, 3, 1)
