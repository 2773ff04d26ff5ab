"""``--benchmark``: exactly the benchmark's configurations, one warning, recorded in the run."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest

import medvision.catalog.benchmarks as benchmarks
import medvision.runs.spec as spec_module
from medvision.catalog.registry import catalog
from medvision.catalog.spec import DatasetSpec, OfficialTLTask
from medvision.runs.benchmark import benchmark_manifest
from medvision.runs.records import read_records
from medvision.runs.runner import RunError, Runner, RunSpec, select_samples
from medvision.schema import Plane, Sample, TaskFamily


def _s(i: int, ds: str, task: str, fam: TaskFamily, plane: Plane, label: int = 1) -> Sample:
    return Sample(
        sample_id=f"s{i}", dataset=ds, case_id=f"c{i}", split="test", family=fam, plane=plane,
        slice_index=i, label_id=label, label_name=f"l{label}", label_kind="organ",
        label_group="g", modality="CT", image_description="", image_key="k", image_hw=(8, 8),
        spacing_mm_rc=(1.0, 1.0), target=(1.0,) * fam.n_values, unit="mm",
        metric_type="axes" if fam is TaskFamily.TUMOR_LESION_SIZE else "", task_id=task,
    )  # fmt: skip


DET, TL = TaskFamily.DETECTION, TaskFamily.TUMOR_LESION_SIZE
SAMPLES = (
    [_s(i, "KiTS23", "01", DET, Plane.AXIAL) for i in range(4)]  # paper-main Box T01 axial
    + [_s(10 + i, "KiTS23", "01", DET, Plane.CORONAL) for i in range(3)]  # plane-OOD only
    + [_s(20 + i, "KiTS23", "01", TL, Plane.AXIAL, label=2) for i in range(3)]  # T/L T01
    + [_s(30 + i, "KiTS23", "01", TL, Plane.AXIAL, label=3) for i in range(3)]  # no T/L task
    + [_s(40 + i, "ACDC", "01", DET, Plane.AXIAL) for i in range(3)]  # in no paper list
)


def test_selection_keeps_exactly_the_benchmark_configurations() -> None:
    spec = RunSpec(dataset_dir="-", backend="oracle", protocol="official", limit=2)
    main = select_samples(SAMPLES, replace(spec, benchmark="paper-main"))
    assert [s.sample_id for s in main] == ["s0", "s1", "s20", "s21"]  # limit 2 per config
    ood = select_samples(SAMPLES, replace(spec, benchmark="paper-plane-ood"))
    assert [s.sample_id for s in ood] == ["s10", "s11"]
    everything = select_samples(SAMPLES, replace(spec, benchmark="all"))
    assert {s.sample_id for s in everything} == {
        "s0", "s1", "s10", "s11", "s20", "s21", "s40", "s41"
    }  # fmt: skip
    # Without a benchmark every configuration counts (the KiTS23 cyst T/L label too).
    assert len(select_samples(SAMPLES, spec)) == 10


def test_missing_configurations_are_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    spec = RunSpec(dataset_dir="DS", backend="oracle", benchmark="paper-main")
    with caplog.at_level(logging.WARNING, logger="medvision.runs"):
        block = benchmark_manifest(SAMPLES, spec)
    assert block is not None
    assert (block["name"], block["configs"], block["present"]) == ("paper-main", 43, 2)
    assert len(block["missing"]) == 41
    assert "KiTS23_BoxCoordinate_Task01_Axial" not in block["missing"]
    assert "CrossMoDA_BoxCoordinate_Task01_Axial" in block["missing"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "the build lacks 41 of its 43 configurations" in warnings[0].getMessage()
    # Families and planes narrow the benchmark before counting.
    det_only = RunSpec(dataset_dir="DS", backend="oracle", benchmark="paper-main",
                       families=("detection",))  # fmt: skip
    block = benchmark_manifest(SAMPLES, det_only)
    assert block is not None and (block["configs"], block["present"]) == (28, 1)
    assert benchmark_manifest(SAMPLES, RunSpec(dataset_dir="DS", backend="oracle")) is None


def test_a_benchmark_outside_the_runs_planes_is_a_run_error() -> None:
    spec = RunSpec(dataset_dir="DS", backend="oracle", benchmark="paper-plane-ood", planes=(2,))
    with pytest.raises(RunError, match=r"no configuration among .* planes \['A'\]"):
        benchmark_manifest(SAMPLES, spec)


def test_unknown_benchmark_is_a_run_error() -> None:
    with pytest.raises(RunError, match="unknown benchmark 'paper'"):
        benchmark_manifest(SAMPLES, RunSpec(dataset_dir="DS", backend="oracle", benchmark="paper"))


def test_mini_lacks_the_paper_datasets_and_the_run_refuses(
    mini_store: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = RunSpec(dataset_dir=str(mini_store), backend="random", benchmark="paper-main")
    with (
        caplog.at_level(logging.WARNING, logger="medvision.runs"),
        pytest.raises(RunError, match="has none of its 43 configurations"),
    ):
        Runner(spec, tmp_path / "run")
    assert sum(r.levelno == logging.WARNING for r in caplog.records) == 1
    assert not (tmp_path / "run" / "records.jsonl").exists()


def _mini_with_official_fields() -> DatasetSpec:
    """mini, as if its tasks were official: detection and T/L axial, A/D sagittal."""
    mini = catalog()["mini"]
    t1, t2 = mini.tasks
    assert t1.detection is not None and t1.tl is not None
    det = t1.detection.model_copy(update={"official_task": "01", "official_planes": ["A"]})
    tl = t1.tl.model_copy(update={"official": [OfficialTLTask(label=4, task="01", planes=["A"])]})
    t1 = t1.model_copy(update={"detection": det, "tl": tl})
    t2 = t2.model_copy(
        update={"official": t2.official.model_copy(update={"ad": "01", "ad_planes": ["S"]})}
    )
    return DatasetSpec.model_validate(
        {**mini.model_dump(), "tasks": [t1.model_dump(), t2.model_dump()]}
    )


def test_a_benchmark_run_evaluates_its_configurations_and_records_the_name(
    mini_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(benchmarks, "catalog", lambda: {"mini": _mini_with_official_fields()})
    spec = RunSpec(dataset_dir=str(mini_store), backend="oracle", benchmark="all", limit=0)
    out = tmp_path / "run"
    summary = Runner(spec, out).run()
    records = read_records(out / "records.jsonl")
    assert records
    assert {(r.family, r.plane) for r in records} == {("detection", 2), ("tl", 2), ("ad", 0)}
    assert {r.label_name for r in records if r.family == "tl"} == {"brain tumour"}
    assert summary["run"]["benchmark"] == "all"
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["spec"]["benchmark"] == "all"
    assert manifest["benchmark"]["missing"] == []
    # Without the benchmark the same build evaluates every plane.
    plain = Runner(RunSpec(dataset_dir=str(mini_store), backend="oracle", limit=0), tmp_path / "p")
    plain_summary = plain.run()
    assert plain_summary["run"]["benchmark"] is None
    assert plain_summary["num_records"] > summary["num_records"]


def test_fingerprint_of_a_run_without_benchmark_is_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A spec without a benchmark hashes the fields runs hashed before benchmarks existed."""
    hashed: list[dict[str, object]] = []
    real = spec_module._hash

    def spy(obj: dict[str, object]) -> str:
        hashed.append(obj)
        return real(obj)

    monkeypatch.setattr(spec_module, "_hash", spy)
    spec = RunSpec(dataset_dir="DS", backend="oracle")
    plain = spec.fingerprint()
    assert "benchmark" not in hashed[-1]
    assert replace(spec, benchmark="all").fingerprint() != plain
    assert hashed[-1]["benchmark"] == "all"


def test_random_boxes_follow_the_protocols_minimum_side(mini_store: Path, tmp_path: Path) -> None:
    """1.2.1 draws random boxes of at least 3 x 3 px; c221615 of at least 1 x 1 px."""
    sides = {}
    for protocol in ("paper-v1", "official", "strict"):
        spec = RunSpec(dataset_dir=str(mini_store), backend="random", protocol=protocol)
        sides[protocol] = Runner(spec, tmp_path / protocol)._create_backend().min_side  # type: ignore[attr-defined]
    assert sides == {"paper-v1": 1, "official": 3, "strict": 3}
    spec = RunSpec(dataset_dir=str(mini_store), backend="random", protocol="official",
                   families=("detection",), limit=0)  # fmt: skip
    Runner(spec, tmp_path / "boxes").run()
    records = read_records(tmp_path / "boxes" / "records.jsonl")
    assert len(records) > 100
    for r in records:
        assert r.parsed is not None
        x0, y0, x1, y1 = r.parsed
        h, w = r.image_hw
        # Four decimals in the reply: a 3 px side is at least 3 - 1e-4 * size px.
        assert (x1 - x0) * w >= 3 - 1e-4 * w and (y1 - y0) * h >= 3 - 1e-4 * h, r.sample_id
