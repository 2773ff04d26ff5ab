"""Streaming index of official plans: the same cases, splits and records as ``json.load``."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from medvision.store.official_plan import (
    PlanFormatError,
    iter_cases,
    load_plan,
    official_split,
    official_split_by_image,
)
from medvision.store.plan_stream import index_plan, load_case


def _case(cid: str, n: int) -> dict[str, Any]:
    return {
        "case_ID": cid,
        "image_file": f"Images/{cid}.nii.gz",
        "mask_file": f"Masks/{cid}.nii.gz",
        "image_file_info": {"voxel_size": [0.8, 1.2, 2.5], "array_size": [24, 30, 12]},
        "slice_profiles_z": [
            {"slice_idx": i, "slice_profile": [{"label": 1, "bboxes": [{"min_coords": [i, 1]}]}]}
            for i in range(n)
        ],
    }


def _plan() -> dict[str, Any]:
    # Key orders vary on purpose: task_ID after the case lists, test_cases before train_cases,
    # an unknown top-level field before `tasks` and dataset_info after it.
    return {
        "version": {"planner": "1.4.0", "notes": [1, 2, {"x": None}]},
        "tasks": [
            {
                "task_type": "Detection",
                "labels_map": {"1": "liver", "2": "tumour"},
                "train_cases": [_case("a0", 2), _case("a1", 0)],
                "test_cases": [_case("a2", 3)],
                "task_ID": "01",
            },
            {
                "task_ID": "02",
                "test_cases": [_case("b1", 1)],
                "target_label": 2,
                "train_cases": [_case("b0", 1), _case("a2", 1)],
                "image_modality": "CT",
            },
        ],
        "dataset_info": {"dataset": "Toy", "nested": {"k": [1.5, 2]}},
    }


def _write(path: Path, obj: Any, gz: bool = True) -> Path:
    data = json.dumps(obj).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [True, False])
def test_index_matches_json_load(tmp_path: Path, gz: bool) -> None:
    path = _write(tmp_path / ("p.json.gz" if gz else "p.json"), _plan(), gz)
    plan = load_plan(path)
    index = index_plan(path, tmp_path / "spool.jsonl")
    assert index.dataset_info == plan["dataset_info"]
    assert index.tasks == [
        {k: v for k, v in t.items() if k not in ("train_cases", "test_cases")}
        for t in plan["tasks"]
    ]
    expected = iter_cases(plan)
    got = [(c.task_id, c.case_id, c.split, c.image_file) for c in index.cases]
    assert got == [(c.task_id, c.case_id, c.split, c.image_file) for c in expected]
    for ref, case in zip(index.cases, expected, strict=True):
        assert load_case(index.spool or "", ref) == case  # the whole record comes back
    assert index.split("01") == official_split(plan, "01")
    assert index.split_by_image("02") == official_split_by_image(plan, "02")
    with pytest.raises(PlanFormatError, match="both train_cases and test_cases"):
        index.split()  # a2 is test in task 01 and train in task 02, as official_split says
    with pytest.raises(KeyError, match="no task '09'"):
        index.split("09")


def test_index_without_spool_keeps_no_records(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.json.gz", _plan())
    index = index_plan(path)
    assert index.spool is None and len(index.cases) == 6
    with pytest.raises(PlanFormatError, match="was not spooled"):
        load_case("unused", index.cases[0])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"tasks": [{"task_ID": "01"}]}', "lacks 'train_cases'"),
        (b'{"tasks": [{"train_cases": [], "test_cases": []}]}', "lacks 'task_ID'"),
        (b'{"dataset_info": {}}', "'tasks' list"),
        (b'{"tasks": {"01": {}}}', "'tasks' list"),
        (b'{"tasks": [3]}', "is not an object"),
        (b'{"tasks": [{"task_ID": 1, "train_cases": [{"x": 1}], "test_cases": []}]}', "case_ID"),
        (
            b'{"tasks": [{"task_ID": 1, "train_cases": [{"case_ID": "c"}], "test_cases": []}]}',
            "no 'image_file'",
        ),
        (b'{"tasks": [', "cannot read"),
        (b"not json at all", "cannot read"),
    ],
)
def test_bad_plans_are_refused_like_load_plan(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.json.gz"
    path.write_bytes(gzip.compress(content))
    with pytest.raises(PlanFormatError, match=message) as err:
        index_plan(path, tmp_path / "spool.jsonl")
    assert str(path) in str(err.value)


def test_truncated_gzip_is_refused(tmp_path: Path) -> None:
    full = _write(tmp_path / "p.json.gz", _plan())
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(full.read_bytes()[:150])
    with pytest.raises(PlanFormatError, match="cannot read"):
        index_plan(cut)
