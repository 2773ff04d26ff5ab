"""Hostile or damaged input ends as a skipped case naming the file; the rest is built."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from tests.builder.mini_copy import copy_mini_cases

from medvision.builder.engine import BuildOptions, build_dataset
from medvision.catalog.registry import get_spec
from medvision.catalog.spec import DatasetSpec
from medvision.store import BuildManifest, open_dataset
from medvision.volumes import DeclaredSizeError, load_volume


@pytest.fixture()
def source(mini_source: Path, tmp_path: Path) -> Path:
    """A private copy of two mini cases."""
    return copy_mini_cases(mini_source, tmp_path / "src", ("case_000", "case_001"))


def _build(source: Path, tmp_path: Path, spec: DatasetSpec | None = None) -> BuildManifest:
    return build_dataset(spec or get_spec("mini"), source, tmp_path / "store", BuildOptions())


def _skips(manifest: BuildManifest) -> dict[str, tuple[str, str]]:
    return {s.case_id: (s.file, s.reason) for s in manifest.skipped}


def _huge_header(shape: tuple[int, int, int]) -> bytes:
    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape(shape)
    header["vox_offset"] = 352
    return bytes(header.binaryblock) + b"\0" * 4


def test_tiny_gzip_declaring_a_huge_volume_is_skipped(source: Path, tmp_path: Path) -> None:
    bad = source / "Images-MR" / "case_000.nii.gz"
    bad.write_bytes(gzip.compress(_huge_header((10_000, 10_000, 10_000))))
    assert bad.stat().st_size < 200
    manifest = _build(source, tmp_path)
    skips = _skips(manifest)
    assert set(skips) == {"01-case_000"}
    assert skips["01-case_000"][0] == str(bad) and "declares" in skips["01-case_000"][1]
    assert manifest.options["skipped_by_reason"] == {"declared_size_exceeds_file_or_memory": 1}
    assert {s.case_id for s in open_dataset(tmp_path / "store").samples()} >= {"01-case_001"}


def test_uncompressed_header_larger_than_the_file_and_the_memory_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nii = tmp_path / "big.nii"
    nii.write_bytes(_huge_header((4000, 4000, 4000)) + b"\0" * 1000)
    with pytest.raises(DeclaredSizeError, match="holds only 1,000 bytes"):
        load_volume(nii, "image")
    ok = tmp_path / "ok.nii"
    nib.save(nib.Nifti1Image(np.zeros((20, 20, 20), np.float32), np.eye(4)), ok)
    monkeypatch.setenv("MEDVISION_MAX_VOLUME_BYTES", "1000")
    with pytest.raises(DeclaredSizeError, match="memory budget"):
        load_volume(ok, "image")
    monkeypatch.delenv("MEDVISION_MAX_VOLUME_BYTES")
    assert load_volume(ok, "image").shape == (20, 20, 20)


def test_memory_error_in_one_case_skips_only_that_case(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medvision.builder.engine as engine

    real = engine.read_case

    def exploding(task, files):  # type: ignore[no-untyped-def]
        if files.case_id == "case_001" and task.id == "01":
            raise MemoryError
        return real(task, files)

    monkeypatch.setattr(engine, "read_case", exploding)
    manifest = _build(source, tmp_path)
    skips = _skips(manifest)
    assert set(skips) == {"01-case_001"}
    assert "out of memory" in skips["01-case_001"][1]
    assert skips["01-case_001"][0].endswith("case_001.nii.gz")
    assert manifest.n_samples > 0


def test_dangling_link_and_link_loop_are_skipped_and_named(source: Path, tmp_path: Path) -> None:
    dangling = source / "Images-MR" / "case_000.nii.gz"
    dangling.unlink()
    dangling.symlink_to(source / "nowhere.nii.gz")
    loop = source / "Images-MR" / "case_001.nii.gz"
    loop.unlink()
    loop.symlink_to(loop)
    manifest = _build(source, tmp_path)
    skips = _skips(manifest)
    assert set(skips) == {"01-case_000", "01-case_001"}  # never silently dropped
    assert skips["01-case_000"][0] == str(dangling) and "dangling" in skips["01-case_000"][1]
    assert skips["01-case_001"][0] == str(loop) and "loop" in skips["01-case_001"][1]
    assert manifest.options["skipped_by_reason"] == {"broken_symlink": 2}
    assert manifest.n_samples > 0  # the X-ray task was built


def test_case_ids_the_store_cannot_name_are_skipped(source: Path, tmp_path: Path) -> None:
    spec = get_spec("mini")
    single = spec.model_copy(update={"tasks": [spec.tasks[0]]})  # key = the bare case id
    for folder in ("Images-MR", "Masks"):
        shutil.copy(source / folder / "case_000.nii.gz", source / folder / ".hidden.nii.gz")
        shutil.copy(source / folder / "case_000.nii.gz", source / folder / "a\\b.nii.gz")
    manifest = _build(source, tmp_path, single)
    skips = _skips(manifest)
    assert set(skips) == {".hidden", "a\\b"}
    assert skips[".hidden"][0].endswith(".hidden.nii.gz")
    assert "cannot be used as a file name" in skips["a\\b"][1]
    built = {s.case_id for s in open_dataset(tmp_path / "store").samples()}
    assert built == {"case_000", "case_001"}


def test_2d_image_in_a_3d_task_is_skipped(source: Path, tmp_path: Path) -> None:
    for folder in ("Images-MR", "Masks"):
        path = source / folder / "case_000.nii.gz"
        img = nib.load(path)
        arr = np.asarray(img.dataobj)
        flat = np.ascontiguousarray(arr[:, :, arr.shape[2] // 2 : arr.shape[2] // 2 + 1])
        nib.save(nib.Nifti1Image(flat, img.affine), path)
    manifest = _build(source, tmp_path)
    skips = _skips(manifest)
    assert set(skips) == {"01-case_000"}
    assert "2D image" in skips["01-case_000"][1] and "MRI" in skips["01-case_000"][1]
    assert manifest.options["skipped_by_reason"] == {"image_not_3d": 1}


def test_mask_with_non_integer_float_labels_is_skipped(source: Path, tmp_path: Path) -> None:
    mask = source / "Masks" / "case_001.nii.gz"
    img = nib.load(mask)
    arr = np.asarray(img.dataobj).astype(np.float32)
    arr[arr == 1] = 1.5  # an interpolated mask: would round to label 2
    nib.save(nib.Nifti1Image(arr, img.affine), mask)
    manifest = _build(source, tmp_path)
    skips = _skips(manifest)
    assert set(skips) == {"01-case_001"}
    assert skips["01-case_001"][0] == str(mask)
    assert "non-integer" in skips["01-case_001"][1] and "1.5" in skips["01-case_001"][1]


def test_float_mask_holding_integers_still_builds(source: Path, tmp_path: Path) -> None:
    mask = source / "Masks" / "case_001.nii.gz"
    img = nib.load(mask)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj).astype(np.float32), img.affine), mask)
    assert _build(source, tmp_path).skipped == []
