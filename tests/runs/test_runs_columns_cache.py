"""The column file beside records.jsonl is used only while it is the records' own table."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from medvision.metrics import get_protocol, records_to_table, summarize_run, to_jsonable
from medvision.runs.columns_cache import (
    columns_path,
    file_state,
    scoring_table,
    with_scoring_table,
    write_columns,
)
from medvision.runs.integrity import records_digest
from medvision.runs.records import (
    RECORDS_NAME,
    append_records,
    dedupe,
    read_records,
    record_to_json,
)
from medvision.runs.runner import Runner, RunSpec
from medvision.runs.scoring import rescore
from medvision.schema import Record
from record_factory import assert_same_table, make_record

OFFICIAL = get_protocol("official")


def _records(n: int = 40, *, seed: int = 3) -> list[Record]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x0, y0 = (float(v) for v in rng.uniform(0.1, 0.5, 2))
        box = (x0, y0, x0 + 0.3, y0 + 0.2)
        guess = (x0 + 0.01 * (i % 5), y0, x0 + 0.3, y0 + 0.25)
        out.append(make_record("detection", guess, box, label_name=f"l{i % 4}", case_id=f"c{i}"))
    for _ in range(n // 2):
        t = (float(rng.uniform(5, 40)), float(rng.uniform(2, 20)))
        out.append(make_record("tl", (t[0] * 1.25, t[1]), t, label_kind="tumour"))
    return out


def _write(path: Path, records: list[Record]) -> None:
    path.write_text("".join(record_to_json(r) + "\n" for r in records), encoding="utf-8")


def _truth(path: Path) -> pa.Table:
    """The table from the record objects (the Python reader, no cache involved)."""
    return records_to_table(dedupe(read_records(path))[0])


def test_first_read_writes_the_file_and_the_second_uses_it(tmp_path: Path) -> None:
    path = tmp_path / RECORDS_NAME
    _write(path, _records())
    first = scoring_table(path)
    assert not first.cached and columns_path(path).name == "records.columns.arrow"
    assert columns_path(path).exists()
    second = scoring_table(path)
    assert second.cached
    assert second.digest == first.digest == records_digest(path)
    assert_same_table(second.table, _truth(path))
    assert summarize_run(second.table, OFFICIAL) == summarize_run(_truth(path), OFFICIAL)


def test_appended_records_make_it_stale_and_it_is_rewritten(tmp_path: Path) -> None:
    path = tmp_path / RECORDS_NAME
    records = _records()
    _write(path, records)
    scoring_table(path)
    # A resumed run appends; one sample is written again (the later record counts).
    again = replace(records[0], parsed=None, status="no_answer")
    extra = _records(6, seed=9)
    append_records(path, [*extra, again])
    got = scoring_table(path)
    assert not got.cached and got.duplicates == 1
    assert got.table.num_rows == len(records) + len(extra)
    assert got.table["status"][0].as_py() == "no_answer"
    assert_same_table(got.table, _truth(path))
    assert scoring_table(path).cached  # written again for the new digest


def test_an_edit_of_the_same_size_is_seen_by_the_hash(tmp_path: Path) -> None:
    path = tmp_path / RECORDS_NAME
    records = _records()
    records[0] = replace(records[0], parsed=(0.125, 0.25, 0.5, 0.75))
    _write(path, records)
    scoring_table(path)
    text = path.read_text()
    edited = text.replace("[0.125,0.25,0.5,0.75]", "[0.925,0.25,0.5,0.75]", 1)
    assert edited != text and len(edited) == len(text)
    stat = path.stat()
    path.write_text(edited)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with the old time stamp
    got = scoring_table(path)
    assert not got.cached
    assert got.table["p0"][0].as_py() == pytest.approx(0.925)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other_format", "other_schema"])
def test_a_damaged_or_foreign_file_is_ignored(tmp_path: Path, damage: str) -> None:
    path = tmp_path / RECORDS_NAME
    _write(path, _records())
    scoring_table(path)
    cols = columns_path(path)
    if damage == "garbage":
        cols.write_bytes(b"not arrow at all")
    elif damage == "truncated":
        cols.write_bytes(cols.read_bytes()[:200])
    else:
        table = ipc.open_file(cols).read_all()
        meta = dict(table.schema.metadata or {})
        if damage == "other_format":
            meta[b"medvision.columns_format"] = b"0"
        else:
            table = table.drop_columns(["diag_mm"])
        with ipc.new_file(cols, table.schema.with_metadata(meta)) as w:
            w.write_table(table.replace_schema_metadata(meta))
    got = scoring_table(path)
    assert not got.cached
    assert_same_table(got.table, _truth(path))
    assert scoring_table(path).cached


def test_a_table_read_while_the_records_changed_is_not_kept(tmp_path: Path) -> None:
    path = tmp_path / RECORDS_NAME
    _write(path, _records())
    before = file_state(path)
    table = _truth(path)
    append_records(path, _records(2, seed=5))  # a writer appended during the read
    assert not write_columns(path, table, 0, records_digest(path), unchanged_since=before)
    assert not columns_path(path).exists()
    assert write_columns(
        path, _truth(path), 0, records_digest(path), unchanged_since=file_state(path)
    )


def test_a_file_that_cannot_be_written_or_read_does_not_stop_scoring(tmp_path: Path) -> None:
    path = tmp_path / RECORDS_NAME
    _write(path, _records())
    columns_path(path).mkdir()  # a folder in its place: neither readable nor replaceable
    got = scoring_table(path)
    assert not got.cached and columns_path(path).is_dir()
    assert_same_table(got.table, _truth(path))
    assert not list(tmp_path.glob("*.tmp"))  # no temporary file left behind


def test_a_stale_file_never_gives_its_result(tmp_path: Path) -> None:
    """The computation on a stale table is thrown away, even when it was already done."""
    path = tmp_path / RECORDS_NAME
    records = _records()
    _write(path, records)
    scoring_table(path)
    text = path.read_text()
    # Same size, so the hash (not the size) must tell: every detection answer becomes a miss.
    path.write_text(text.replace('"status":"ok"', '"status":"no"'))
    seen: list[int] = []

    def count_ok(table: pa.Table, _: int) -> int:
        seen.append(1)
        return sum(s == "ok" for s in table["status"].to_pylist())

    got = with_scoring_table(path, count_ok)
    assert got is not None
    assert got[1] == 0 and not got[0].cached
    assert len(seen) == 2  # computed on the stale table, then again on the records


def test_an_error_on_a_stale_table_is_not_raised(tmp_path: Path) -> None:
    path = tmp_path / RECORDS_NAME
    _write(path, _records())
    scoring_table(path)
    append_records(path, _records(2, seed=8))

    def refuse_the_old_table(table: pa.Table, _: int) -> int:
        if table.num_rows == 60:
            raise ValueError("the stale table")
        return int(table.num_rows)

    got = with_scoring_table(path, refuse_the_old_table)
    assert got is not None and got[1] == 63


def test_rescore_uses_the_file_and_equals_the_record_path(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    path = run / RECORDS_NAME
    _write(path, _records())
    first = rescore(run)  # from records.jsonl; writes the column file
    assert columns_path(path).exists()
    second = rescore(run)  # from the column file
    want = to_jsonable(summarize_run(dedupe(read_records(path))[0], OFFICIAL))
    assert want.keys() <= first.keys()
    for key, value in want.items():
        assert first[key] == second[key] == value, key
    assert first["records_digest"] == second["records_digest"] == records_digest(path)
    # `write=False` (a report reading a stale summary) leaves the folder untouched.
    columns_path(path).unlink()
    rescore(run, write=False)
    assert not columns_path(path).exists()


def test_a_finished_eval_leaves_a_current_column_file(mini_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    spec = RunSpec(dataset_dir=str(mini_store), backend="oracle", protocol="official", limit=2)
    summary = Runner(spec, out).run()
    path = out / RECORDS_NAME
    got = scoring_table(path)
    assert got.cached  # written by the runner: `score` and `report` need not parse the JSON
    assert_same_table(got.table, _truth(path))
    assert got.digest == summary["records_digest"]
