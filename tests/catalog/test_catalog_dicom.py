"""DICOM series folders (``folders`` layout, ``dicom_series: true``) through SimpleITK.

The fixture writes real single-frame CT DICOM files, one folder per case, as scanners and
PACS exports lay them out: one ``.dcm`` per slice with study/series UIDs, ImagePositionPatient,
ImageOrientationPatient, PixelSpacing, SliceThickness, InstanceNumber and RescaleSlope /
RescaleIntercept, file names not in slice order. Expected volumes, spacings and affines are
derived by hand from the written geometry (LPS -> RAS+), not from the reader.
"""

from __future__ import annotations

import locale
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medvision.builder.engine import BuildOptions, build_dataset
from medvision.catalog.layouts import discover_cases, read_case
from medvision.catalog.spec import DatasetSpec, TaskSpec
from medvision.store import open_dataset
from medvision.volumes import CorruptFileError

sitk = pytest.importorskip("SimpleITK")  # the [itk] extra; installed in the test env

SHAPE = (10, 8, 6)  # (columns along the row direction, rows, slices)
SPACING = (0.7, 0.9, 2.5)  # column spacing, row spacing, slice gap (mm)
ORIGIN_LPS = (-20.0, 10.0, 5.0)
SLOPE, INTER = 2, -1024
AXIAL = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))  # rows toward Left, columns toward Posterior
SAGITTAL = ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0))  # rows toward Posterior, columns Inferior
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def hu_volume(seed: int) -> np.ndarray:
    """Source HU values ``hu[i, j, k]`` (i along the row direction, j down the columns)."""
    raw = np.random.default_rng(seed).integers(0, 2000, SHAPE)
    return (raw * SLOPE + INTER).astype(np.int16)  # exactly representable after rescale


def write_series(
    folder: Path,
    hu: np.ndarray,
    orientation: tuple[tuple[float, ...], tuple[float, ...]] = AXIAL,
    series_uid: str = "1.2.826.0.1.3680043.8.498.2",
) -> list[Path]:
    """Write ``hu`` as one CT series, one file per slice; returns the files by slice index."""
    folder.mkdir(parents=True, exist_ok=True)
    d_row, d_col = (np.asarray(v) for v in orientation)
    files: list[Path] = [folder / "unused"] * hu.shape[2]
    # File names in shuffled order, as exports often are: the reader must sort by position.
    order = np.random.default_rng(7).permutation(hu.shape[2])
    # GDCM's writer leaves the process's C locale at "C" (ASCII text I/O for the rest of the
    # test session); the reader does not touch it. Restore it after writing.
    saved = locale.setlocale(locale.LC_ALL)
    try:
        _write_slices(folder, hu, order, d_row, d_col, series_uid, files)
    finally:
        locale.setlocale(locale.LC_ALL, saved)
    return files


def _write_slices(
    folder: Path,
    hu: np.ndarray,
    order: np.ndarray,
    d_row: np.ndarray,
    d_col: np.ndarray,
    series_uid: str,
    files: list[Path],
) -> None:
    """Write slice ``k`` of ``hu`` to ``IM<n>.dcm`` for ``n, k`` in ``enumerate(order)``."""
    normal = np.cross(d_row, d_col)
    sx, sy, sz = SPACING
    for n, k in enumerate(order.tolist()):
        sl = sitk.GetImageFromArray(np.ascontiguousarray(hu[:, :, k].T))  # (rows, columns)
        sl.SetSpacing((sx, sy))
        ipp = np.asarray(ORIGIN_LPS) + k * sz * normal
        tags = {
            "0008|0016": CT_IMAGE_STORAGE,
            "0008|0060": "CT",
            "0020|000d": "1.2.826.0.1.3680043.8.498.1",
            "0020|000e": series_uid,
            "0020|0032": "\\".join(f"{v:.6f}" for v in ipp),
            "0020|0037": "\\".join(f"{v:.6f}" for v in (*d_row, *d_col)),
            "0028|0030": f"{sy:.6f}\\{sx:.6f}",  # row spacing \ column spacing
            "0018|0050": f"{sz:.6f}",
            "0020|0013": str(k + 1),
            "0028|1053": str(SLOPE),
            "0028|1052": str(INTER),
        }
        for tag, value in tags.items():
            sl.SetMetaData(tag, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        files[k] = folder / f"IM{n:04d}.dcm"
        writer.SetFileName(str(files[k]))
        writer.Execute(sl)  # GDCM stores (hu - INTER) / SLOPE and writes the rescale tags


def ras_affine(orientation: tuple[tuple[float, ...], tuple[float, ...]]) -> np.ndarray:
    """Affine of the canonical RAS+ array of a series written by :func:`write_series`.

    Only the two orientations of this file: axial (canonical axes = reversed i, reversed j,
    k) and sagittal (canonical axes = k, reversed i, reversed j).
    """
    d_row, d_col = (np.asarray(v) for v in orientation)
    sx, sy, sz = SPACING
    n_i, n_j, _ = SHAPE
    corner_lps = np.asarray(ORIGIN_LPS) + (n_i - 1) * sx * d_row + (n_j - 1) * sy * d_col
    corner = corner_lps * np.array([-1.0, -1.0, 1.0])
    diag = (sx, sy, sz) if orientation == AXIAL else (sz, sx, sy)
    affine = np.diag([*diag, 1.0])
    affine[:3, 3] = corner
    return affine


def _task(**kw: object) -> TaskSpec:
    base: dict[str, object] = {
        "id": "01",
        "modality": "CT",
        "image_description": "abdomen CT",
        "image_folder": "Series",
        "layout": {"kind": "folders", "dicom_series": True},
        "labels": [{"id": 1, "name": "liver", "kind": "organ", "group": "Liver"}],
    }
    return TaskSpec.model_validate(base | kw)


def test_axial_series_is_the_source_array_in_ras(tmp_path: Path) -> None:
    hu = hu_volume(1)
    files = write_series(tmp_path / "Series" / "CT_001", hu)
    header = sitk.ImageFileReader()
    header.SetFileName(str(files[2]))
    header.ReadImageInformation()
    assert header.GetMetaData("0028|1053").strip() == str(SLOPE)  # the rescale is exercised
    assert (tmp_path / "Series" / "CT_001" / "IM0000.dcm") != files[0]  # names not in order

    task = _task()
    [case] = discover_cases(task, tmp_path)
    assert case.case_id == "CT_001" and case.image == tmp_path / "Series" / "CT_001"
    vol = read_case(task, case).image
    # Rows toward Left and columns toward Posterior: RAS+ reverses both in-plane axes.
    np.testing.assert_array_equal(vol.array, hu[::-1, ::-1, :].astype(np.float32))
    assert vol.array.dtype == np.float32
    np.testing.assert_allclose(vol.spacing_mm, SPACING, atol=1e-6)
    np.testing.assert_allclose(vol.affine, ras_affine(AXIAL), atol=1e-5)


def test_sagittal_series_is_reoriented_to_ras(tmp_path: Path) -> None:
    hu = hu_volume(2)
    write_series(tmp_path / "Series" / "MR_7", hu, SAGITTAL)
    task = _task()
    vol = read_case(task, discover_cases(task, tmp_path)[0]).image
    # Slices march toward Right (axis 0), rows toward Posterior (reversed, axis 1), columns
    # toward Inferior (reversed, axis 2).
    expected = np.transpose(hu, (2, 0, 1))[:, ::-1, ::-1].astype(np.float32)
    np.testing.assert_array_equal(vol.array, expected)
    np.testing.assert_allclose(vol.spacing_mm, (SPACING[2], SPACING[0], SPACING[1]), atol=1e-6)
    np.testing.assert_allclose(vol.affine, ras_affine(SAGITTAL), atol=1e-5)


def test_missing_and_corrupt_slices_are_refused(tmp_path: Path) -> None:
    task = _task()
    files = write_series(tmp_path / "Series" / "gap", hu_volume(3))
    files[3].unlink()
    bad = write_series(tmp_path / "Series" / "trunc", hu_volume(4))
    bad[2].write_bytes(bad[2].read_bytes()[:300])
    cases = {c.case_id: c for c in discover_cases(task, tmp_path)}
    with pytest.raises(CorruptFileError, match="not evenly spaced") as gap:
        read_case(task, cases["gap"])
    assert gap.value.path == str(tmp_path / "Series" / "gap")
    assert files[2].name in str(gap.value) and files[4].name in str(gap.value)
    with pytest.raises(CorruptFileError, match=bad[2].name) as trunc:
        read_case(task, cases["trunc"])
    assert trunc.value.path == str(tmp_path / "Series" / "trunc")


def test_build_from_dicom_series_and_skip_broken_ones(tmp_path: Path) -> None:
    src = tmp_path / "src"
    labels = np.zeros(SHAPE, dtype=np.uint8)  # in the canonical RAS+ frame of the image
    labels[2:6, 1:5, 1:4] = 1
    bad_file = Path()
    for case, seed in (("CT_001", 1), ("CT_002", 2), ("CT_gap", 3), ("CT_bad", 4)):
        files = write_series(src / "Series" / case, hu_volume(seed), series_uid=f"1.2.3.{seed}")
        mask = src / "Masks" / f"{case}.nii.gz"
        mask.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(labels, ras_affine(AXIAL)), mask)
        if case == "CT_gap":
            files[2].unlink()
        if case == "CT_bad":
            bad_file = files[4]
            bad_file.write_bytes(b"not a DICOM file" * 8)
    spec = DatasetSpec.model_validate(
        {
            "name": "dicomct",
            "title": "DICOM CT",
            "description": "generated DICOM series",
            "licence": "generated",
            "citation": "-",
            "source": {"kind": "generator"},
            "tasks": [
                _task(mask_folder="Masks", detection={"labels": [1], "min_side_px": 2}).model_dump(
                    mode="json"
                )
            ],
        }
    )
    manifest = build_dataset(spec, src, tmp_path / "store", BuildOptions(workers=1))

    skipped = {s.case_id: s for s in manifest.skipped}
    assert sorted(skipped) == ["CT_bad", "CT_gap"]
    assert skipped["CT_gap"].file == str(src / "Series" / "CT_gap")
    assert skipped["CT_bad"].file == str(src / "Series" / "CT_bad")
    assert "not evenly spaced" in skipped["CT_gap"].reason
    assert bad_file.name in skipped["CT_bad"].reason
    assert manifest.options["skipped_by_reason"] == {"unreadable_or_truncated_file": 2}

    samples = list(open_dataset(tmp_path / "store").samples())
    assert {s.case_id for s in samples} == {"CT_001", "CT_002"}
    # One box per slice of every plane the label crosses: 4 sagittal + 4 coronal + 3 axial.
    for case in ("CT_001", "CT_002"):
        mine = [s for s in samples if s.case_id == case]
        assert len(mine) == 4 + 4 + 3
        axial = [s for s in mine if int(s.plane) == 2]
        assert sorted(s.slice_index for s in axial) == [1, 2, 3]
        assert all(s.box_rc == (2, 1, 5, 4) for s in axial)
        assert all(s.spacing_mm_rc == pytest.approx((SPACING[0], SPACING[1])) for s in axial)
