"""Named benchmarks resolve the official task lists (reference section 6.3) via the catalog."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pytest

from medvision.catalog.benchmarks import benchmark_names, config_counts, get_benchmark
from medvision.catalog.registry import catalog
from medvision.catalog.spec import SpecError
from medvision.runs.selection import config_key
from medvision.schema import Plane, Sample, TaskFamily

# Transcribed from official-eval-protocol.md section 6.3 (tasks_MedVision-detect.json / -TL.json).
MAIN_DETECTION = {
    ("CrossMoDA", "01"), ("ISLES24", "01"), ("FeTA24", "01"), ("AMOS22", "01"),
    ("AbdomenAtlas1.0Mini", "01"), ("AbdomenCT-1K", "01"), ("autoPET-III", "01"),
    ("BCV15", "01"), ("BraTS24", "01"), ("BraTS24", "06"), ("BraTS24", "10"), ("CAMUS", "01"),
    ("FLARE22", "01"), ("HNTSMRG24", "01"), ("KiPA22", "01"), ("KiTS23", "01"),
    *(("MSD", t) for t in ("01", "05", "06", "07", "09", "10", "11", "12", "14")),
    ("OAIZIB-CM", "01"), ("SKM-TEA", "01"), ("TopCoW24", "01"),
}  # fmt: skip
MAIN_TL = {
    ("autoPET-III", "01"), ("BraTS24", "04"), ("BraTS24", "05"), ("BraTS24", "10"),
    ("HNTSMRG24", "02"), ("KiPA22", "01"), ("KiTS23", "01"), ("MSD", "03"), ("MSD", "05"),
    ("MSD", "06"),
}  # fmt: skip


def _ids(configs: object, family: str) -> set[tuple[str, str]]:
    return {(c.dataset, c.official_task) for c in configs if c.family == family}  # type: ignore[attr-defined]


def test_names() -> None:
    assert benchmark_names() == ["paper-main", "paper-plane-ood", "paper-task-ood", "all"]
    with pytest.raises(KeyError, match=r"unknown benchmark 'nope'.*paper-main"):
        get_benchmark("nope")


def test_paper_main_is_the_official_main_lists() -> None:
    b = get_benchmark("paper-main")
    det = [c for c in b.configs if c.family == "detection"]
    tl = [c for c in b.configs if c.family == "tl"]
    ad = [c for c in b.configs if c.family == "ad"]
    assert len(det) == 28 and {c.plane for c in det} == {"A"}
    assert _ids(det, "detection") == MAIN_DETECTION
    assert len(tl) == 10 and {c.plane for c in tl} == {"A"}
    assert _ids(tl, "tl") == MAIN_TL
    # A/D: Ceph distance and angle (sagittal), FeTA24 sagittal, coronal and axial.
    assert sorted((c.dataset, c.metric_type, c.plane) for c in ad) == [
        ("Ceph-Biometrics-400", "angle", "S"),
        ("Ceph-Biometrics-400", "distance", "S"),
        ("FeTA24", "distance", "A"),
        ("FeTA24", "distance", "C"),
        ("FeTA24", "distance", "S"),
    ]
    ceph = {c.metric_type: c for c in ad if c.dataset == "Ceph-Biometrics-400"}
    assert len(ceph["distance"].labels) == 11 and len(ceph["angle"].labels) == 8
    names = {c.official_name for c in b.configs}
    assert "BraTS24_BoxCoordinate_Task01_Axial" in names
    assert "Ceph-Biometrics-400_BiometricsFromLandmarks_Angle_Task01_Sagittal" in names


def test_tl_configs_name_their_target_label_and_our_task() -> None:
    b = get_benchmark("paper-main")
    kits = next(c for c in b.configs if c.family == "tl" and c.dataset == "KiTS23")
    assert (kits.target, kits.label_id, kits.task_id, kits.metric_type) == (
        "kidney tumor",
        2,
        "01",
        "axes",
    )
    # BraTS24 official T/L task 10 is PED label 2 of our task 10.
    brats = next(c for c in b.configs if c.family == "tl" and c.official_task == "10")
    assert (brats.task_id, brats.label_id) == ("10", 2)


def test_config_key_equals_the_samples_config_key() -> None:
    for c in get_benchmark("paper-main").configs:
        fam = TaskFamily(c.family)
        s = Sample(
            sample_id="x", dataset=c.dataset, case_id="c", split="test", family=fam,
            plane=Plane(c.key[3]), slice_index=0, label_id=c.label_id if c.label_id else 1,
            label_name="l", label_kind="organ", label_group="g", modality="CT",
            image_description="", image_key="k", image_hw=(8, 8), spacing_mm_rc=(1.0, 1.0),
            target=(1.0,) * fam.n_values, unit="mm", metric_type=c.metric_type,
            task_id=c.task_id,
        )  # fmt: skip
        assert config_key(s) == c.key


def test_plane_ood_is_main_on_coronal_and_sagittal_where_official() -> None:
    b = get_benchmark("paper-plane-ood")
    assert {c.plane for c in b.configs} == {"C", "S"}
    assert _ids(b.configs, "detection") <= MAIN_DETECTION
    # Axial-only official tasks (BraTS24 Box T06, MSD Box T12, CAMUS) have no OOD planes.
    missing = MAIN_DETECTION - _ids(b.configs, "detection")
    assert missing == {("BraTS24", "06"), ("MSD", "12"), ("CAMUS", "01")}
    assert _ids(b.configs, "tl") == MAIN_TL
    assert all(c.unverified for c in b.configs)
    assert not any(c.family == "ad" for c in b.configs)


def test_task_ood() -> None:
    b = get_benchmark("paper-task-ood")
    det = [c for c in b.configs if c.family == "detection"]
    assert _ids(det, "detection") == {
        ("ISLES24", "02"), ("AMOS22", "02"), ("BCV15", "02"), ("BraTS24", "11"), ("BraTS24", "05")
    }  # fmt: skip
    assert Counter(c.plane for c in det) == {"S": 5, "C": 5, "A": 5}
    assert _ids(b.configs, "tl") == {
        ("BraTS24", "02"), ("BraTS24", "03"), ("BraTS24", "07"), ("BraTS24", "08"),
        ("HNTSMRG24", "03"), ("HNTSMRG24", "04"), ("MSD", "01"),
    }  # fmt: skip


def test_all_holds_every_official_configuration() -> None:
    everything = get_benchmark("all").keys()
    for name in ("paper-main", "paper-plane-ood", "paper-task-ood"):
        assert get_benchmark(name).keys() <= everything
    # ACDC has official task YAMLs but is in no list: only in "all".
    assert any(k[0] == "ACDC" for k in everything)
    assert not any(k[0] == "mini" for k in everything)


def test_a_listed_plane_the_catalog_lacks_is_an_error() -> None:
    specs = dict(catalog())
    kits = specs["KiTS23"]
    task = kits.tasks[0]
    assert task.detection is not None
    det = task.detection.model_copy(update={"official_planes": ["S"]})
    specs["KiTS23"] = kits.model_copy(
        update={"tasks": [task.model_copy(update={"detection": det}), *kits.tasks[1:]]}
    )
    with pytest.raises(SpecError, match="KiTS23 official detection task 01 has no official"):
        get_benchmark("paper-main", specs)


def test_config_counts_key_tl_by_label_only() -> None:
    table = pa.table(
        {
            "dataset": ["D", "D", "D", "D"],
            "task_id": ["01", "01", "01", "01"],
            "family": ["detection", "detection", "tl", "tl"],
            "plane": pa.array([2, 2, 2, 2], pa.int8()),
            "metric_type": ["", "", "axes", "axes"],
            "label_id": [1, 2, 3, 4],
        }
    )
    assert config_counts(table) == {
        ("D", "01", "detection", 2, "", -1): 2,
        ("D", "01", "tl", 2, "axes", 3): 1,
        ("D", "01", "tl", 2, "axes", 4): 1,
    }
