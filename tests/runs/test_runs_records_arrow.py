"""Scoring straight from records.jsonl: the Arrow columns equal the record objects' exactly."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medvision.metrics import get_protocol, records_to_table, summarize_run
from medvision.metrics.headline import headline, prepare
from medvision.metrics.jsonvalues import loads
from medvision.metrics.outcomes import BACKEND_ERROR, answered_rows
from medvision.runs.integrity import records_digest
from medvision.runs.records import (
    RECORDS_NAME,
    RecordsError,
    append_records,
    dedupe,
    read_records,
    record_to_json,
)
from medvision.runs.records_arrow import read_scoring_table, scoring_table
from medvision.runs.report import write_reports
from medvision.runs.scoring import rescore
from medvision.schema import Record
from record_factory import assert_same_table, make_record

PROTOCOLS = ("official", "paper-v1", "strict")


def _varied() -> list[Record]:
    """Every family, failures, backend errors, odd values, box ratios and image sizes."""
    rng = np.random.default_rng(7)
    out: list[Record] = []
    for i in range(60):
        x0, y0 = rng.uniform(0, 0.5, 2)
        box = (float(x0), float(y0), float(x0 + 0.3), float(y0 + 0.2))
        guess = tuple(float(v + rng.normal(0, 0.05)) for v in box)
        plane = int(rng.integers(0, 3))
        kind = ("organ", "tumour", "lesion")[i % 3]
        out.append(
            make_record(
                "detection",
                guess if i % 7 else None,
                box,
                plane=plane,
                label_name=f"l{i % 5}",
                label_group=("Kidney", "Liver", "Tumor")[i % 3],
                label_kind=kind,
                modality=("CT", "MRI", "ultrasound")[i % 3],
                dataset=f"D{i % 2}",
                box_img_ratio=0.06 if i % 2 else None,
                image_hw=(64 + i, 80),
                seen_hw=(32 + i, 40),
                seen_spacing_mm_rc=(0.7, 1.3),
                finish_reason="length" if i % 11 == 0 else None,
            )
        )
    for i in range(40):
        t = (float(rng.uniform(5, 40)), float(rng.uniform(2, 20)))
        parsed: tuple[float, ...] | None = (t[0] * 1.1, t[1] * 0.8)
        if i % 9 == 0:
            parsed = None
        elif i % 9 == 1:
            parsed = (1.0, 2.0, 3.0)  # the wrong number of values: a failure
        out.append(
            make_record(
                "tl",
                parsed,
                t,
                label_name=f"tumor{i % 3}",
                label_kind="tumour",
                plane=i % 3,
                status="ok" if parsed is not None else "no_answer",
                seen_spacing_mm_rc=(0.0, 0.0) if i % 13 == 0 else (0.9, 0.9),
            )
        )
    for i in range(40):
        t1 = float(rng.uniform(1, 120)) if i % 10 else 0.05  # near-zero targets too
        mtype = ("angle", "distance")[i % 2]
        out.append(
            make_record(
                "ad",
                (t1 * 1.2,) if i % 6 else None,
                (t1,),
                dataset=("Ceph-Biometrics-400", "FeTA24")[i % 2],
                metric_type=mtype,
                metric_key=f"K{i % 4}",
                label_kind="landmark",
                modality=("X-ray", "MRI")[i % 2],
                status="ok" if i % 6 else ("refusal" if i % 4 else "no_answer"),
            )
        )
    # Backend errors hold no answer.
    for r in out[::17]:
        out.append(
            make_record(
                r.family, None, r.target, status="backend_error", raw_output="", reason="down"
            )
        )
    return out


def _write(path: Path, records: list[Record]) -> None:
    path.write_text("".join(record_to_json(r) + "\n" for r in records), encoding="utf-8")


def _python_path(path: Path) -> tuple[list[Record], int]:
    return dedupe(read_records(path))


def test_arrow_columns_and_summaries_equal_the_record_path(tmp_path: Path) -> None:
    path = tmp_path / RECORDS_NAME
    records = _varied()
    # Duplicates by sample id: two writers appended some samples again, with other answers.
    again = [replace(r, parsed=None, status="no_answer") for r in records[5:30:4]]
    _write(path, records + again)
    got = read_scoring_table(path)
    assert got is not None  # the fast reader read it
    table, duplicates = got
    want_records, want_dups = _python_path(path)
    assert duplicates == want_dups == len(again)
    assert table.num_rows == len(records)
    assert_same_table(table, records_to_table(want_records))
    # The last written record of a sample counts, in order of first appearance.
    assert table["status"][5].as_py() == "no_answer"
    for name in PROTOCOLS:
        proto = get_protocol(name)
        assert summarize_run(table, proto) == summarize_run(want_records, proto)


def test_missing_optional_fields_and_null_values_read_as_the_record_path(tmp_path: Path) -> None:
    path = tmp_path / RECORDS_NAME
    lines = []
    for r in _varied()[:80]:
        d: dict[str, Any] = json.loads(record_to_json(r))
        # Lines of older versions: no finish_reason, annotation, judge_output, usage.
        for key in ("finish_reason", "annotation", "judge_output", "prompt_tokens", "latency_s"):
            d.pop(key, None)
        if d["parsed"] is not None and d["family"] == "tl":
            d["parsed"][0] = None  # older files wrote a non-finite value as null
        lines.append(json.dumps(d))
    path.write_text("\n".join(lines) + "\n")
    got = read_scoring_table(path)
    assert got is not None
    want, _ = _python_path(path)
    assert_same_table(got[0], records_to_table(want))
    assert summarize_run(got[0], get_protocol("official")) == summarize_run(
        want, get_protocol("official")
    )


def test_non_finite_strings_read_as_the_record_path_reads_them(tmp_path: Path) -> None:
    path = tmp_path / RECORDS_NAME
    records = _varied()
    records[70] = replace(records[70], parsed=(math.inf, 3.0), status="ok")
    records[71] = replace(records[71], parsed=(-math.inf, 3.0), status="ok")
    records[72] = replace(records[72], parsed=(math.nan, 3.0), status="ok")
    records[3] = replace(records[3], seen_spacing_mm_rc=(math.nan, 1.0))
    records[4] = replace(records[4], raw_output='it is "inf" or "nan"')
    _write(path, records)
    assert '"inf"' in path.read_text() and '"-inf"' in path.read_text()
    got = read_scoring_table(path)
    assert got is not None  # read by the fast reader, the strings as floats
    want, _ = _python_path(path)
    assert_same_table(got[0], records_to_table(want))
    assert got[0]["p0"][70].as_py() == math.inf and got[0]["p0"][71].as_py() == -math.inf
    for name in PROTOCOLS:
        proto = get_protocol(name)
        assert summarize_run(got[0], proto) == summarize_run(want, proto)


@pytest.mark.parametrize(
    "change",
    [
        {"label_name": "nan"},  # the token in a string field: the JSON reader refuses a number
        {"metric_key": "inf"},
        {"raw_output": 'he said "inf'},  # the token ends a longer string
    ],
)
def test_non_finite_tokens_elsewhere_fall_back_to_the_record_path(
    tmp_path: Path, change: dict[str, Any]
) -> None:
    path = tmp_path / RECORDS_NAME
    records = _varied()
    records[10] = replace(records[10], **change)
    # A non-finite answer makes the fast reader decode the tokens, and then refuse the file.
    records[70] = replace(records[70], parsed=(math.inf, 3.0), status="ok")
    _write(path, records)
    assert read_scoring_table(path) is None
    table, _ = scoring_table(path)
    want, _ = _python_path(path)
    assert_same_table(table, records_to_table(want))
    assert summarize_run(table, get_protocol("official")) == summarize_run(
        want, get_protocol("official")
    )


@pytest.mark.parametrize(
    "bad",
    [
        "garbage",
        "",  # a blank line: the JSON reader would skip it
        "[1, 2]",
        '{"sample_id": "x"}',  # required fields missing
        "DOUBLE",  # two objects on one line: the JSON reader would read two rows
    ],
)
def test_a_bad_line_still_names_the_file_and_line(tmp_path: Path, bad: str) -> None:
    path = tmp_path / RECORDS_NAME
    lines = [record_to_json(r) for r in _varied()[:10]]
    lines.insert(4, lines[3] + lines[5] if bad == "DOUBLE" else bad)
    path.write_text("\n".join(lines) + "\n")
    assert read_scoring_table(path) is None
    with pytest.raises(RecordsError, match=rf"{RECORDS_NAME}:5: not a valid record"):
        scoring_table(path)
    with pytest.raises(RecordsError, match=rf"{RECORDS_NAME}:5"):
        rescore(tmp_path)


def test_a_torn_last_line_is_ignored_as_the_record_path_ignores_it(tmp_path: Path) -> None:
    path = tmp_path / RECORDS_NAME
    records = _varied()[:20]
    whole = record_to_json(records[19])
    path.write_text("".join(record_to_json(r) + "\n" for r in records[:19]) + whole)
    assert read_scoring_table(path) is None  # a complete object, but no newline
    table, _ = scoring_table(path)
    assert table.num_rows == 19
    path.write_text("".join(record_to_json(r) + "\n" for r in records[:19]) + whole[:40])
    assert scoring_table(path)[0].num_rows == 19


def test_a_target_with_too_many_values_is_refused_on_both_paths(tmp_path: Path) -> None:
    path = tmp_path / RECORDS_NAME
    records = _varied()[:5]
    records[2] = replace(records[2], target=(1.0, 2.0, 3.0, 4.0, 5.0))
    _write(path, records)
    with pytest.raises(ValueError, match="target has 5 values; at most 4 expected"):
        scoring_table(path)
    with pytest.raises(ValueError, match="target has 5 values; at most 4 expected"):
        records_to_table(read_records(path))


def _run_folder(tmp_path: Path, records: list[Record]) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    append_records(run / RECORDS_NAME, records)
    return run


def test_score_under_the_runs_protocol_does_not_rewrite_records(tmp_path: Path) -> None:
    records = _varied()
    run = _run_folder(tmp_path, records)
    before = (run / RECORDS_NAME).read_bytes()
    summary = rescore(run)
    assert (run / RECORDS_NAME).read_bytes() == before  # nothing to rewrite
    assert summary["records_digest"] == records_digest(run / RECORDS_NAME)
    assert summary["run"]["rescored"] == "recomputed"
    assert loads((run / "summary.json").read_text()) == summary
    expected = summarize_run(records, get_protocol("official"))
    assert {k: v for k, v in summary.items() if k not in ("run", "records_digest")} == expected
    # Re-parsing or another protocol still goes through the records (and writes them).
    strict = rescore(run, protocol="strict")
    assert strict["run"]["rescored_from"] == "official"
    assert (run / "records-strict.jsonl").exists()


def test_score_repairs_duplicates_on_disk_and_reports_read_columns(tmp_path: Path) -> None:
    records = _varied()
    run = _run_folder(tmp_path, records)
    append_records(run / RECORDS_NAME, records[:10])
    unwritten = rescore(run, write=False)
    assert unwritten["run"]["duplicates_dropped"] == 10
    assert len(read_records(run / RECORDS_NAME)) == len(records) + 10  # write=False: as is
    summary = rescore(run)
    assert summary["run"]["duplicates_dropped"] == 10
    assert len(read_records(run / RECORDS_NAME)) == len(records)  # repaired on disk
    assert {k: v for k, v in summary.items() if k != "run"} == {
        k: v for k, v in unwritten.items() if k != "run"
    } | {"records_digest": summary["records_digest"]}
    rows = write_reports([run], tmp_path / "report", bootstrap=20, formats=("md", "json"))
    assert rows[0]["num_records"] == len(records)


def test_report_numbers_from_columns_equal_those_from_records(tmp_path: Path) -> None:
    path = tmp_path / RECORDS_NAME
    records = _varied()
    _write(path, records)
    table, _ = scoring_table(path)
    for name in PROTOCOLS:
        proto = get_protocol(name)
        from_columns = headline(prepare(answered_rows(table), proto))
        from_records = headline(prepare([r for r in records if r.status != BACKEND_ERROR], proto))
        assert from_columns.keys() == from_records.keys()
        for key, value in from_records.items():
            assert from_columns[key] == value or (
                math.isnan(value) and math.isnan(from_columns[key])
            )
