"""Imported lmms-eval logs score as the official ``parse_outputs`` (medvision-bm 1.2.1) does.

The logs are written in lmms-eval's format by ``tests/runs/lmms_logs.py``; the official
``parse_outputs._process_jsonl_file`` runs on each file in the official test-only environment
(``official_driver.py``, op ``parse_outputs``) and our importer runs here. Per line: parsed
answer, success, MAE, MRE, IoU and ``box_img_ratio`` must agree; per file, the sums the
official code writes into its results summary must equal ours.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from tests.parity.driver_call import call_driver
from tests.runs.lmms_logs import AD, DATE_ID, DET, TL, write_lmms_logs

from medvision.runs.lmms_import import import_lmms_eval
from medvision.runs.records import read_records
from medvision.schema import make_sample_id

TASK_TYPE = {DET: "Detection", TL: "TL", AD: "AD"}


def _same(ours: float | None, theirs: float | None) -> bool:
    if ours is None or (isinstance(ours, float) and math.isnan(ours)):
        return theirs is None
    return theirs is not None and math.isclose(ours, theirs, rel_tol=1e-5, abs_tol=1e-6)


@pytest.mark.slow
def test_imported_scores_equal_official_parse_outputs(official_python: str, tmp_path: Path) -> None:
    logs = write_lmms_logs(tmp_path / "logs", n=60, seed=3, omit_resps=False)
    import_lmms_eval(tmp_path / "logs", tmp_path / "run", protocol="official")
    records = read_records(tmp_path / "run" / "records.jsonl")
    for task, task_type in TASK_TYPE.items():
        path = logs / f"{DATE_ID}_samples_{task}.jsonl"
        official = call_driver(
            official_python, {"op": "parse_outputs", "path": str(path), "task_type": task_type}
        )
        fam = {"Detection": "detection", "TL": "tl", "AD": "ad"}[task_type]
        by_id = {r.sample_id: r for r in records if r.family == fam}
        theirs = official["lines"]
        assert len(by_id) == len(theirs) == official["count"] == 60
        ours = [by_id[make_sample_id("lmms-eval", task, o["doc_id"])] for o in theirs]
        for r, o in zip(ours, theirs, strict=True):
            parsed = ",".join(f"{v:g}" for v in r.parsed) if r.parsed else ""
            assert (r.parsed is not None) == bool(o["parsed"]), (r.raw_output, o)
            if r.parsed:
                want = [float(v) for v in o["parsed"].split(",")]
                assert r.parsed == pytest.approx(want, rel=1e-6), parsed
            assert r.metrics["success"] == o["success"]
            assert _same(r.metrics["mae"], o["mae"]), (r.metrics, o)
            if fam == "detection":
                assert _same(r.metrics["iou"], o["iou"]), (r.metrics, o)
                assert r.box_img_ratio == pytest.approx(o["box_img_ratio"])
            else:
                assert _same(r.metrics["mre"], o["mre"]), (r.metrics, o)
        sums = official["sums"]
        maes = [r.metrics["mae"] for r in ours if not math.isnan(r.metrics["mae"])]
        assert sums["count_valid_AE"] == len(maes)
        assert sums["sum_MAE"] == pytest.approx(sum(maes), rel=1e-6)
        assert sums["num_success"] == sum(r.metrics["success"] for r in ours)
