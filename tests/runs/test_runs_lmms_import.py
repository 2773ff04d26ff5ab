"""Importing lmms-eval sample logs of the official MedVision tasks as a run folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from tests.runs.lmms_logs import AD, DET, TL, UNUSABLE, write_lmms_logs
from typer.testing import CliRunner

from medvision.cli.app import app
from medvision.metrics import records_to_table
from medvision.runs.columns_cache import scoring_table
from medvision.runs.lmms_import import import_lmms_eval, parse_task_name
from medvision.runs.records import dedupe, read_records
from medvision.runs.scoring import rescore
from medvision.runs.spec import RunError
from medvision.schema import Plane, TaskFamily
from record_factory import assert_same_table


def _iou(p: list[float], t: list[float]) -> float:
    # medvision-bm 1.2.1 sorts the predicted corners before scoring (official-versions.md).
    p = [min(p[0], p[2]), min(p[1], p[3]), max(p[0], p[2]), max(p[1], p[3])]
    ix = max(0.0, min(p[2], t[2]) - max(p[0], t[0]))
    iy = max(0.0, min(p[3], t[3]) - max(p[1], t[1]))
    inter = ix * iy
    union = (p[2] - p[0]) * (p[3] - p[1]) + (t[2] - t[0]) * (t[3] - t[1]) - inter
    return inter / union if ix > 0 and iy > 0 else 0.0


def test_task_names() -> None:
    t = parse_task_name("Ceph-Biometrics-400_BiometricsFromLandmarks_Angle_Task01_Sagittal")
    assert (t.dataset, t.family, t.metric_type, t.task, t.plane) == (
        "Ceph-Biometrics-400",
        TaskFamily.ANGLE_DISTANCE,
        "angle",
        "01",
        Plane.SAGITTAL,
    )
    t = parse_task_name("BraTS24_BoxCoordinate_Task10_Axial-336x336")
    assert (t.dataset, t.task, t.suffix) == ("BraTS24", "10", "-336x336")
    with pytest.raises(ValueError, match="not an official MedVision task name"):
        parse_task_name(UNUSABLE)


def test_import_writes_scored_records(tmp_path: Path) -> None:
    logs = write_lmms_logs(tmp_path / "logs")
    report = import_lmms_eval(tmp_path / "logs", tmp_path / "run")
    assert report.files == 4 and report.records == 120
    assert report.by_task == {DET: 40, TL: 40, AD: 40}
    assert len(report.skipped) == 1 and UNUSABLE in report.skipped[0][1]
    records = read_records(tmp_path / "run" / "records.jsonl")
    assert len({r.sample_id for r in records}) == 120
    assert {r.model for r in records} == {logs.name}

    lines = {
        (task, json.loads(raw)["doc_id"]): json.loads(raw)
        for task in (DET, TL, AD)
        for raw in (logs / f"20260301_101500_samples_{task}.jsonl").read_text().splitlines()
    }
    det = [r for r in records if r.family == "detection"]
    assert {r.dataset for r in det} == {"KiTS23"} and {r.modality for r in det} == {"CT"}
    names = {1: "kidney", 2: "kidney tumor", 3: "kidney cyst"}  # the catalog's KiTS23 labels
    for r in det:
        assert r.label_name == names[r.label_id]
    checked = 0
    for r in det:
        line = lines[(DET, int(r.slice_index) - 40)]
        text = line["filtered_resps"][0]
        assert r.raw_output == text
        target = json.loads(line["target"])
        assert r.target == pytest.approx(target)
        if text.startswith("<answer>") and text.count("<answer>") == 1 and r.status == "ok":
            pred = [float(v) for v in text[8:-9].split(",")]
            assert r.metrics["iou"] == pytest.approx(_iou(pred, target), abs=1e-6)
            checked += 1
    assert checked >= 5
    statuses = {r.status for r in records}
    assert "ok" in statuses and statuses - {"ok"}  # failures are counted, not dropped

    tl = [r for r in records if r.family == "tl"]
    assert {r.label_name for r in tl} == {"kidney tumor"}
    ok = [r for r in tl if r.status == "ok"]
    for r in ok:
        ae = [abs(p - t) for p, t in zip(r.parsed or (), r.target, strict=True)]
        assert r.metrics["mae"] == pytest.approx(sum(ae) / 2)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["run"]["imported_from"] == "lmms-eval"
    assert summary["num_records"] == 120
    # The logs carry no pixel spacing: nMAE is missing, never inf or 0.
    text = json.dumps(summary)
    assert "Infinity" not in text and "NaN" not in text

    # The import leaves the scoring columns of exactly what it wrote (records read back).
    path = tmp_path / "run" / "records.jsonl"
    columns = scoring_table(path)
    assert columns.cached
    assert_same_table(columns.table, records_to_table(dedupe(read_records(path))[0]))

    again = rescore(tmp_path / "run")
    assert again["num_records"] == 120
    assert again["tl"] == summary["tl"]


def test_cli_import_and_report(tmp_path: Path) -> None:
    write_lmms_logs(tmp_path / "logs", n=12)
    runner = CliRunner()
    res = runner.invoke(
        app, ["import", "lmms-eval", str(tmp_path / "logs"), "-o", str(tmp_path / "r")]
    )
    assert res.exit_code == 0, res.output
    assert "imported 36 records from 4 sample files" in res.output
    res = runner.invoke(
        app, ["import", "lmms-eval", str(tmp_path / "logs"), "-o", str(tmp_path / "r")]
    )
    assert isinstance(res.exception, RunError) and "already holds a run" in str(res.exception)
    res = runner.invoke(
        app, ["report", str(tmp_path / "r"), "-o", str(tmp_path / "rep"), "--bootstrap", "50"]
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "rep" / "leaderboard.md").exists()


def test_no_logs_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="no lmms-eval sample logs"):
        import_lmms_eval(tmp_path, tmp_path / "run")


def test_resp_unwrapping_and_missing_values(tmp_path: Path) -> None:
    out = tmp_path / "logs" / "m"
    out.mkdir(parents=True)
    doc = {"image_file": "x/c1.nii.gz", "slice_dim": 2, "slice_idx": 3, "label": 2}
    lines = [
        {"doc_id": 0, "doc": doc, "target": "[10.0, 5.0]", "resps": [[["<answer>11, 5</answer>"]]]},
        {"doc_id": 1, "doc": doc, "target": "[10.0]", "resps": [["<answer>1, 2</answer>"]]},
        {"doc_id": 2, "target": "[10.0, 5.0]", "resps": [["x"]]},
    ]
    (out / f"d_samples_{TL}.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    report = import_lmms_eval(tmp_path / "logs", tmp_path / "run")
    assert report.records == 1
    reasons = " ".join(r for _, r in report.skipped)
    assert "is not 2 numbers" in reasons and "no 'doc' object" in reasons
    (rec,) = read_records(tmp_path / "run" / "records.jsonl")
    assert rec.parsed == (11.0, 5.0) and math.isclose(rec.metrics["mae"], 0.5)
