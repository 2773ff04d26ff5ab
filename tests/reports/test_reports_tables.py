import csv
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from medvision.metrics import get_protocol, summarize_run
from medvision.reports import leaderboard, print_leaderboard, to_csv, to_markdown
from medvision.schema import Record
from record_factory import make_record


def rec(family: str, parsed: tuple[float, ...] | None, target: tuple[float, ...]) -> Record:
    return make_record(
        family,
        parsed,
        target,
        prefix="t",
        dataset="D",
        metric_type="angle" if family == "ad" else "",
        metric_key="A" if family == "ad" else "",
        image_hw=(8, 8),
        seen_hw=(8, 8),
    )


BOX = (0.2, 0.2, 0.6, 0.6)


@pytest.fixture
def summaries() -> dict[str, dict[str, Any]]:
    # 60 detection samples (>= 50, so the anatomy split exists): 45 exact, 15 failed.
    good = [rec("detection", BOX, BOX) for _ in range(45)] + [
        rec("detection", None, BOX) for _ in range(15)
    ]
    good += [rec("tl", (11.0, 10.0), (10.0, 10.0)), rec("tl", None, (10.0, 10.0))]
    good += [rec("ad", (30.0,), (20.0,)), rec("ad", (20.0,), (20.0,))]
    # A small run: no group reaches 50, so only the pooled detection numbers exist.
    small = [rec("detection", BOX, BOX), rec("detection", (0.7, 0.7, 0.9, 0.9), BOX)]
    proto = get_protocol("official")
    return {"good": summarize_run(good, proto), "[red]small": summarize_run(small, proto)}


def test_leaderboard_rows(summaries: dict[str, dict[str, Any]]) -> None:
    rows = leaderboard(summaries)
    assert [r["run"] for r in rows] == ["good", "[red]small"]
    g, s = rows
    assert g["protocol"] == "official"
    assert g["det_anatomy_IoU"] == pytest.approx(45 / 60)
    assert g["det_anatomy_SR"] == pytest.approx(45 / 60)
    assert g["det_anatomy_IoU>=0.5"] == pytest.approx(45 / 60)
    assert g["det_tl_IoU"] is None
    assert g["det_all_IoU"] == pytest.approx(45 / 60)
    assert g["tl_MAE"] == pytest.approx(0.5)  # (|11-10| + 0) / 2; the failure is NaN
    assert g["tl_SR"] == pytest.approx(0.5)
    assert g["tl_MRE<0.1"] == pytest.approx(0.5)
    assert g["ad_MAE"] == pytest.approx(5.0)
    assert g["ad_MRE"] == pytest.approx(0.25)
    assert g["num_failed"] == 16
    assert s["det_anatomy_IoU"] is None
    assert s["det_all_IoU"] == pytest.approx(0.5)
    assert s["tl_MAE"] is None


def test_markdown_states_protocol_and_numbers(summaries: dict[str, dict[str, Any]]) -> None:
    md = to_markdown(leaderboard(summaries))
    assert md.startswith(
        "Benchmark: n/a \u00b7 Protocol: official \u00b7 Ground truth (T/L): not recorded"
    )
    assert "| good | \u2014 | official | \u2014 | 0.7500 |" in md
    assert "\u2014" in md  # missing numbers are dashes, not zeros
    mixed = leaderboard(summaries)
    mixed[1]["protocol"] = "paper-v1"
    assert "Protocol: mixed (official, paper-v1)" in to_markdown(mixed)


def test_csv_round_trip(summaries: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    path = tmp_path / "board.csv"
    to_csv(leaderboard(summaries), path)
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["protocol"] == "official"
    assert float(rows[0]["det_anatomy_IoU"]) == pytest.approx(0.75)
    assert rows[1]["det_anatomy_IoU"] == ""


def test_rich_table_titles_protocol_and_prints_names_literally(
    summaries: dict[str, dict[str, Any]],
) -> None:
    console = Console(record=True, width=400)
    print_leaderboard(leaderboard(summaries), console)
    text = console.export_text()
    assert "Protocol: official" in text
    assert "[red]small" in text  # not swallowed as rich markup
    assert "0.750" in text  # the terminal shows 3 decimals


def test_leaderboards_show_provenance_intervals_and_failure_kinds(
    summaries: dict[str, dict[str, Any]],
) -> None:
    summaries["good"]["run"] = {"benchmark": "medvision-mini", "annotation": "official-1.4.0"}
    summaries["good"]["outcomes"] = {
        "total": 70, "answered": 66, "backend_error": 4, "parse_failure": 16, "truncated": 3,
        "refused": 2,
    }  # fmt: skip
    del summaries["[red]small"]
    rows = leaderboard(summaries)
    assert (rows[0]["parse_failure"], rows[0]["truncated"], rows[0]["refused"]) == (16, 3, 2)
    assert rows[0]["backend_error"] == 4
    iv = {"det_all_IoU": {"estimate": 0.75, "low": 0.7, "high": 0.8, "level": 0.95,
                          "n_boot": 500, "method": "cluster"}}  # fmt: skip
    md = to_markdown(rows, {"good": iv})
    assert md.startswith(
        "Benchmark: medvision-mini \u00b7 Protocol: official \u00b7 "
        "Ground truth (T/L): official-1.4.0"
    )
    assert "Intervals: 95% cluster bootstrap, 500 replicates, cases/subjects" in md
    assert "| 0.7500 [0.7000, 0.8000] |" in md
    assert md.rstrip().endswith("| 16 | 3 | 2 | 4 |")
    console = Console(record=True, width=400)
    print_leaderboard(rows, console, {"good": iv})
    text = " ".join(console.export_text().split())  # the title wraps at the table's width
    assert "Ground truth (T/L): official-1.4.0" in text and "[.700,.800]" in text
    assert "16/3/2/4" in text and "of them truncated" in text


def test_failure_kinds_fall_back_to_records_then_status_counts() -> None:
    from medvision.reports.failures import failure_counts

    recs = [
        rec("detection", BOX, BOX),
        rec("detection", None, BOX),
        dataclasses.replace(rec("detection", None, BOX), finish_reason="length"),
        dataclasses.replace(rec("detection", None, BOX), status="refusal"),
        dataclasses.replace(rec("detection", None, BOX), status="backend_error"),
    ]
    summary = summarize_run(recs, get_protocol("official"))
    summary.pop("outcomes", None)
    assert failure_counts(summary, recs) == {
        "parse_failure": 3, "truncated": 1, "refused": 1, "backend_error": 1,
    }  # fmt: skip
    # Without records the summary cannot tell truncation: unknown, not 0.
    got = failure_counts(summary)
    assert got["truncated"] is None and got["refused"] == 1 and got["backend_error"] == 1
