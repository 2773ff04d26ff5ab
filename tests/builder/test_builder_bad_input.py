"""Bad input never stops a build: the case is skipped, named, and listed with its reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from tests.builder.mini_copy import copy_mini_cases

from medvision.builder.engine import BuildOptions, build_dataset
from medvision.catalog.registry import get_spec
from medvision.store import open_dataset


@pytest.fixture()
def source(mini_source: Path, tmp_path: Path) -> Path:
    """A private copy of two mini cases (task 01 only matters here; task 02 stays intact)."""
    return copy_mini_cases(mini_source, tmp_path / "src", ("case_000", "case_001"))


def _build(source: Path, tmp_path: Path) -> tuple[dict[str, str], int]:
    manifest = build_dataset(get_spec("mini"), source, tmp_path / "store", BuildOptions())
    reasons = {s.case_id: s.reason for s in manifest.skipped}
    return reasons, manifest.n_samples


def _rewrite(path: Path, array: np.ndarray) -> None:
    img = nib.load(path)
    nib.save(nib.Nifti1Image(array, img.affine), path)


def test_corrupt_gzip_is_skipped_and_named(source: Path, tmp_path: Path) -> None:
    bad = source / "Images-MR" / "case_000.nii.gz"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])  # truncated download
    reasons, n = _build(source, tmp_path)
    assert set(reasons) == {"01-case_000"}
    assert str(bad) in reasons["01-case_000"]
    assert n > 0  # case_001 and the X-ray task were still built
    ds = open_dataset(tmp_path / "store")
    assert {s.case_id for s in ds.samples()} >= {"01-case_001", "02-case_000"}


def test_shape_mismatch_is_skipped_and_names_both_files(source: Path, tmp_path: Path) -> None:
    mask = source / "Masks" / "case_001.nii.gz"
    arr = np.asarray(nib.load(mask).dataobj)
    _rewrite(mask, np.ascontiguousarray(arr[:, :, :-3]))
    reasons, _ = _build(source, tmp_path)
    assert set(reasons) == {"01-case_001"}
    assert "shape" in reasons["01-case_001"]
    assert "case_001.nii.gz" in reasons["01-case_001"]


def test_empty_mask_is_skipped(source: Path, tmp_path: Path) -> None:
    mask = source / "Masks" / "case_000.nii.gz"
    arr = np.asarray(nib.load(mask).dataobj)
    _rewrite(mask, np.zeros_like(arr))
    reasons, _ = _build(source, tmp_path)
    assert set(reasons) == {"01-case_000"}
    assert str(mask) in reasons["01-case_000"]
    assert "empty" in reasons["01-case_000"].lower()


def test_nan_voxels_are_skipped(source: Path, tmp_path: Path) -> None:
    img = source / "Images-MR" / "case_001.nii.gz"
    arr = np.asarray(nib.load(img).dataobj).astype(np.float32)
    arr[10, 10, 10] = np.nan
    _rewrite(img, arr)
    reasons, _ = _build(source, tmp_path)
    assert set(reasons) == {"01-case_001"}
    assert str(img) in reasons["01-case_001"]
    assert "nan" in reasons["01-case_001"].lower() or "finite" in reasons["01-case_001"].lower()


def test_missing_mask_and_bad_landmarks_are_skipped(source: Path, tmp_path: Path) -> None:
    (source / "Masks" / "case_001.nii.gz").unlink()
    lm = source / "Landmarks" / "case_000.json"
    marks = json.loads(lm.read_text())
    marks["landmarks"]["P2"] = [0, 9999, 5]  # outside the image
    lm.write_text(json.dumps(marks))
    reasons, _ = _build(source, tmp_path)
    assert set(reasons) == {"01-case_001", "02-case_000"}
    assert "mask file" in reasons["01-case_001"] and "not found" in reasons["01-case_001"]
    assert "P2" in reasons["02-case_000"] and "outside" in reasons["02-case_000"]


def test_resume_skips_finished_cases(source: Path, tmp_path: Path) -> None:
    keep = BuildOptions(keep_cases=True)
    first = build_dataset(get_spec("mini"), source, tmp_path / "store", keep)
    stamp = {p: p.stat().st_mtime_ns for p in (tmp_path / "store" / "cases").rglob("*.parquet")}
    assert stamp
    second = build_dataset(get_spec("mini"), source, tmp_path / "store", keep)
    assert first.n_samples == second.n_samples
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp  # nothing rewritten


def test_cases_are_removed_after_a_build_unless_kept(source: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = build_dataset(get_spec("mini"), source, store, BuildOptions())
    assert not (store / "cases").exists()
    assert open_dataset(store).samples() and first.n_samples > 0
    # A later build into the folder rebuilds the cases: same sources, same build.
    again = build_dataset(get_spec("mini"), source, store, BuildOptions())
    assert (again.build_id, again.n_samples) == (first.build_id, first.n_samples)
    kept = build_dataset(get_spec("mini"), source, tmp_path / "kept", BuildOptions(keep_cases=True))
    assert kept.build_id == first.build_id
    assert any((tmp_path / "kept" / "cases" / "mini").glob("*.samples.arrow"))


def test_resume_with_other_options_is_refused(source: Path, tmp_path: Path) -> None:
    from medvision.builder.engine import BuildOptionsMismatch

    store = tmp_path / "store"
    build_dataset(get_spec("mini"), source, store, BuildOptions())
    with pytest.raises(BuildOptionsMismatch, match="other options"):
        build_dataset(get_spec("mini"), source, store, BuildOptions(on_unknown_label="ignore"))


def test_a_smaller_build_into_a_fuller_folder_publishes_only_its_cases(
    source: Path, tmp_path: Path
) -> None:
    full = build_dataset(get_spec("mini"), source, tmp_path / "store", BuildOptions())
    small = build_dataset(get_spec("mini"), source, tmp_path / "store", BuildOptions(max_cases=1))
    fresh = build_dataset(get_spec("mini"), source, tmp_path / "fresh", BuildOptions(max_cases=1))
    assert small.n_samples == fresh.n_samples < full.n_samples


def test_subjects_keep_their_side_across_tasks(source: Path, tmp_path: Path) -> None:
    # Task 02 lacks case_001: a per-task shuffle would split the shared cases differently.
    (source / "Images-XR" / "case_001.nii.gz").unlink()
    (source / "Landmarks" / "case_001.json").unlink()
    for name in ("case_002", "case_003"):
        for folder in ("Images-MR", "Masks", "Images-XR"):
            src = source / folder / "case_000.nii.gz"
            shutil.copy(src, source / folder / f"{name}.nii.gz")
        shutil.copy(source / "Landmarks" / "case_000.json", source / "Landmarks" / f"{name}.json")
    build_dataset(get_spec("mini"), source, tmp_path / "store", BuildOptions())
    sides: dict[str, set[str]] = {}
    for s in open_dataset(tmp_path / "store").samples():
        sides.setdefault(s.case_id.split("-", 1)[1], set()).add(s.split)
    assert sides and all(len(v) == 1 for v in sides.values()), sides


def test_landmark_rounding_to_a_missing_slice_is_a_skipped_case(
    source: Path, tmp_path: Path
) -> None:
    lm = source / "Landmarks" / "case_000.json"
    marks = json.loads(lm.read_text())
    marks["landmarks"]["P1"][0] = 0.6  # the X-ray volume has one slice: 0.6 rounds to slice 1
    lm.write_text(json.dumps(marks))
    reasons, _ = _build(source, tmp_path)
    assert set(reasons) == {"02-case_000"}
    assert "P1" in reasons["02-case_000"] and "outside" in reasons["02-case_000"]
