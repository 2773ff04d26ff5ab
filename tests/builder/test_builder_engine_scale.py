"""Engine: more bad input, reason counts, official splits, process pool and Ray Data."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from tests.builder.mini_copy import copy_mini_cases

from medvision.builder.engine import BuildOptions, build_dataset
from medvision.catalog.registry import get_spec
from medvision.store import open_dataset

CASES = ("case_000", "case_001", "case_002")


@pytest.fixture()
def source(mini_source: Path, tmp_path: Path) -> Path:
    return copy_mini_cases(mini_source, tmp_path / "src", CASES)


def _resave(path: Path, array: np.ndarray | None = None, affine: np.ndarray | None = None) -> None:
    img = nib.load(path)
    data = np.asarray(img.dataobj) if array is None else array
    nib.save(nib.Nifti1Image(data, img.affine if affine is None else affine), path)


def _sample_keys(store: Path) -> set[tuple[str, str]]:
    return {(s.case_id, s.sample_id) for s in open_dataset(store).samples()}


def test_affine_mismatch_and_shear_and_unknown_labels_are_counted(
    source: Path, tmp_path: Path
) -> None:
    mask0 = source / "Masks" / "case_000.nii.gz"
    shifted = nib.load(mask0).affine.copy()
    shifted[0, 3] += 5.0  # same shape, grid moved by 5 mm
    _resave(mask0, affine=shifted)
    img1 = source / "Images-MR" / "case_001.nii.gz"
    sheared = nib.load(img1).affine.copy()
    sheared[0, 1] += 0.3 * np.linalg.norm(sheared[:3, 1])  # non-orthonormal axes
    _resave(img1, affine=sheared)
    mask2 = source / "Masks" / "case_002.nii.gz"
    labels = np.asarray(nib.load(mask2).dataobj).copy()
    labels[0, 0, 0] = 9  # not in the mini catalog (1..4)
    _resave(mask2, array=labels)

    manifest = build_dataset(get_spec("mini"), source, tmp_path / "store", BuildOptions())
    reasons = {s.case_id: s.reason for s in manifest.skipped}
    assert set(reasons) == {"01-case_000", "01-case_001", "01-case_002"}
    assert "affines differing" in reasons["01-case_000"]
    assert "sheared" in reasons["01-case_001"] and str(img1) in reasons["01-case_001"]
    assert "[9]" in reasons["01-case_002"] and "does not define" in reasons["01-case_002"]
    assert manifest.options["skipped_by_reason"] == {
        "affine_mismatch_or_invalid": 2,
        "unknown_label_ids": 1,
    }
    # The X-ray task was unaffected; its 3 cases are all in the store.
    assert {c for c, _ in _sample_keys(tmp_path / "store")} == {f"02-{c}" for c in CASES}

    # The "ignore" policy builds the case with unknown labels anyway (they get no samples).
    again = build_dataset(
        get_spec("mini"), source, tmp_path / "store2", BuildOptions(on_unknown_label="ignore")
    )
    assert "01-case_002" not in {s.case_id for s in again.skipped}


def _official_plan(path: Path, train: list[str], test: list[str]) -> Path:
    def case(c: str, folder: str) -> dict[str, str]:
        return {"case_ID": c, "image_file": f"{folder}/{c}.nii.gz"}

    plan = {
        "dataset_info": {"dataset": "mini"},
        "tasks": [
            {
                "task_ID": "01",
                "train_cases": [case(c, "Images-MR") for c in train],
                "test_cases": [case(c, "Images-MR") for c in test],
            },
            {
                "task_ID": "02",
                "train_cases": [case(c, "Images-XR") for c in CASES],
                "test_cases": [],
            },
        ],
    }
    path.write_bytes(gzip.compress(json.dumps(plan).encode()))
    return path


def test_split_from_official_plan(source: Path, tmp_path: Path) -> None:
    plan = _official_plan(tmp_path / "benchmark_plan.json.gz", ["case_002"], ["case_000"])
    options = BuildOptions(split_from=str(plan))
    manifest = build_dataset(get_spec("mini"), source, tmp_path / "store", options)
    split = {s.case_id: s.split for s in open_dataset(tmp_path / "store").samples()}
    assert split["01-case_002"] == "train" and split["01-case_000"] == "test"
    assert all(split[f"02-{c}"] == "train" for c in CASES)
    # case_001 of task 01 is in neither list: skipped, named, counted.
    assert [s.case_id for s in manifest.skipped] == ["01-case_001"]
    assert "neither train_cases nor test_cases" in manifest.skipped[0].reason
    assert manifest.options["skipped_by_reason"] == {"not_in_official_plan": 1}
    assert manifest.options["split"] == {"official_plan": "benchmark_plan.json.gz"}
    assert len(manifest.options["split_from_sha256"]) == 64


def test_process_pool_equals_in_process_build(source: Path, tmp_path: Path) -> None:
    seen: list[int] = []
    one = build_dataset(get_spec("mini"), source, tmp_path / "a", BuildOptions(workers=1))
    two = build_dataset(
        get_spec("mini"),
        source,
        tmp_path / "b",
        BuildOptions(workers=2),
        on_progress=lambda done, total, _r: seen.append(done),
    )
    assert _sample_keys(tmp_path / "a") == _sample_keys(tmp_path / "b")
    assert one.n_samples == two.n_samples > 0
    assert seen == list(range(1, 2 * len(CASES) + 1))


@pytest.mark.slow
def test_ray_engine_equals_local_build(source: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    local = build_dataset(get_spec("mini"), source, tmp_path / "local", BuildOptions())
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        distributed = build_dataset(
            get_spec("mini"), source, tmp_path / "ray", BuildOptions(engine="ray", workers=2)
        )
        assert ray.is_initialized()  # a Ray started by the caller is left running
    finally:
        ray.shutdown()
    assert distributed.options["engine"] == "ray"
    assert _sample_keys(tmp_path / "local") == _sample_keys(tmp_path / "ray")
    assert distributed.n_samples == local.n_samples > 0
