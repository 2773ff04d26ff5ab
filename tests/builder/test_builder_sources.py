"""A build is identified by its data: source fingerprints, rebuilds of changed cases."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from tests.builder.mini_copy import copy_mini_cases

from medvision.builder.engine import BuildOptions, build_dataset
from medvision.catalog.registry import get_spec
from medvision.store import BuildManifest, open_dataset


@pytest.fixture()
def source(mini_source: Path, tmp_path: Path) -> Path:
    return copy_mini_cases(mini_source, tmp_path / "src", ("case_000", "case_001", "case_002"))


def _build(source: Path, store: Path) -> BuildManifest:
    # Rebuilds compare with the kept per-case files (a build removes them by default).
    return build_dataset(get_spec("mini"), source, store, BuildOptions(keep_cases=True))


def _case_mtimes(store: Path, key: str) -> list[int]:
    return [p.stat().st_mtime_ns for p in sorted((store / "cases").rglob(f"{key}.*.parquet"))]


def _samples(store: Path) -> dict[str, tuple[str, object]]:
    return {s.sample_id: (s.case_id, s.target) for s in open_dataset(store).samples()}


def test_manifest_records_fingerprints_and_the_data_digest(source: Path, tmp_path: Path) -> None:
    manifest = _build(source, tmp_path / "store")
    digests = manifest.options["source_fingerprints"]
    assert set(digests) == {f"{t}-case_00{i}" for t in ("01", "02") for i in range(3)}
    assert len(manifest.options["source_digest"]) == 16
    detail = (tmp_path / "store" / "cases" / "mini" / "01-case_000.source.json").read_text()
    assert "Images-MR/case_000.nii.gz" in detail and "Masks/case_000.nii.gz" in detail
    # The same bytes elsewhere are the same build; a copy keeps the id.
    copy = tmp_path / "copy"
    shutil.copytree(source, copy)
    assert _build(copy, tmp_path / "store2").build_id == manifest.build_id


def test_rebuild_notices_a_changed_case_and_rebuilds_only_it(source: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = _build(source, store)
    before = _samples(store)
    kept = _case_mtimes(store, "01-case_000")
    mask = source / "Masks" / "case_001.nii.gz"
    img = nib.load(mask)
    arr = np.asarray(img.dataobj).copy()
    arr[arr == 2] = 0  # one structure removed from the mask
    nib.save(nib.Nifti1Image(arr, img.affine), mask)

    second = _build(source, store)
    assert second.options["source_changes"] == {"rebuilt": ["01-case_001"], "removed": []}
    assert second.build_id != first.build_id
    assert _case_mtimes(store, "01-case_000") == kept  # unchanged case not rebuilt
    fresh = _build(source, tmp_path / "fresh")
    assert _samples(store) == _samples(tmp_path / "fresh") != before
    assert second.build_id == fresh.build_id


def test_rebuild_removes_cases_whose_source_is_gone(source: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    _build(source, store)
    for folder in ("Images-MR", "Masks"):
        (source / folder / "case_002.nii.gz").unlink()
    second = _build(source, store)
    assert second.options["source_changes"]["removed"] == ["01-case_002"]
    assert not list((store / "cases" / "mini").glob("01-case_002.*"))
    assert "01-case_002" not in {case for case, _ in _samples(store).values()}


def test_touched_but_identical_files_keep_their_cases(source: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = _build(source, store)
    kept = _case_mtimes(store, "01-case_000")
    image = source / "Images-MR" / "case_000.nii.gz"
    st = image.stat()
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    second = _build(source, store)
    assert second.options["source_changes"] == {"rebuilt": [], "removed": []}
    assert _case_mtimes(store, "01-case_000") == kept
    assert second.build_id == first.build_id
