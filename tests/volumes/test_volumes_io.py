"""Loading: dtypes, header scaling, spacing from the affine, 2D files."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from medvision.volumes import Volume, from_array, load_volume


def test_image_is_float32_and_matches_official_get_fdata(tmp_path: Path) -> None:
    # int16 data with scl_slope/inter: the official loader uses get_fdata().astype(float32).
    raw = np.random.default_rng(3).integers(-1000, 3000, size=(12, 10, 8)).astype(np.int16)
    img = nib.Nifti1Image(raw, np.diag([-0.7, 0.9, 1.3, 1.0]))
    img.set_data_dtype(np.int16)
    img.header.set_slope_inter(0.37, -1024.3)
    path = tmp_path / "scaled.nii.gz"
    nib.save(img, path)
    vol = load_volume(path, "image")
    expected = nib.as_closest_canonical(nib.load(path)).get_fdata().astype(np.float32)
    assert vol.array.dtype == np.float32
    np.testing.assert_array_equal(vol.array, expected)
    # Axis 0 was stored toward Left (negative x): canonical RAS+ reverses it.
    # The header stores slope and intercept as float32; scaling itself is done in float64.
    slope, inter = float(np.float32(0.37)), float(np.float32(-1024.3))
    np.testing.assert_array_equal(vol.array[0], (raw[-1] * slope + inter).astype(np.float32))


def test_labels_rint_and_dtype(tmp_path: Path) -> None:
    floats = np.zeros((3, 3, 3), dtype=np.float32)
    floats[0, 0, 0] = 1.9999
    floats[1, 1, 1] = 3.0001
    nib.save(nib.Nifti1Image(floats, np.eye(4)), tmp_path / "f.nii.gz")
    vol = load_volume(tmp_path / "f.nii.gz", "labels")
    assert vol.array.dtype == np.uint16
    assert vol.array[0, 0, 0] == 2 and vol.array[1, 1, 1] == 3 and vol.array.sum() == 5

    negative = from_array(np.array([[[-1, 0], [5, 70000]]], dtype=np.int64), np.eye(4), "labels")
    assert negative.array.dtype == np.int32
    assert negative.array.tolist() == [[[-1, 0], [5, 70000]]]

    small = from_array(np.array([[[0, 255]]], dtype=np.uint8), np.eye(4), "labels")
    assert small.array.dtype == np.uint16 and small.array.tolist() == [[[0, 255]]]


def test_scaled_integer_labels(tmp_path: Path) -> None:
    raw = np.array([[[0, 1], [2, 3]]], dtype=np.int16)
    img = nib.Nifti1Image(raw, np.eye(4))
    img.set_data_dtype(np.int16)
    img.header.set_slope_inter(2.0, 1.0)
    nib.save(img, tmp_path / "scaled_seg.nii.gz")
    vol = load_volume(tmp_path / "scaled_seg.nii.gz", "labels")
    assert vol.array.tolist() == [[[1, 3], [5, 7]]]


def test_spacing_from_affine_columns_not_header_zooms(tmp_path: Path) -> None:
    img = nib.Nifti1Image(np.zeros((3, 4, 5), np.float32), None)
    img.set_qform(np.eye(4), code=1)  # pixdim (1, 1, 1)
    img.set_sform(np.diag([2.0, 3.0, 4.0, 1.0]), code=2)  # the affine nibabel uses
    path = tmp_path / "zooms.nii.gz"
    nib.save(img, path)
    assert tuple(float(z) for z in nib.load(path).header.get_zooms()) == (1.0, 1.0, 1.0)
    assert load_volume(path, "image").spacing_mm == (2.0, 3.0, 4.0)


def test_spacing_of_rotated_affine() -> None:
    c, s = np.cos(np.deg2rad(30)), np.sin(np.deg2rad(30))
    affine = np.array(
        [[0.5 * c, -0.7 * s, 0, 0], [0.5 * s, 0.7 * c, 0, 0], [0, 0, 3.0, 0], [0, 0, 0, 1]]
    )
    vol = Volume(np.zeros((2, 2, 2), np.float32), affine, "image", "<memory>")
    np.testing.assert_allclose(vol.spacing_mm, (0.5, 0.7, 3.0), rtol=1e-12)


def test_two_d_nifti_gets_trailing_singleton_axis(tmp_path: Path) -> None:
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    nib.save(nib.Nifti1Image(arr, np.diag([0.1, 0.2, 1.0, 1.0])), tmp_path / "xray.nii")
    vol = load_volume(tmp_path / "xray.nii", "image")
    assert vol.array.shape == (3, 4, 1)
    np.testing.assert_array_equal(vol.array[:, :, 0], arr)
    np.testing.assert_allclose(vol.spacing_mm, (0.1, 0.2, 1.0), rtol=1e-6)


def test_from_array_does_not_copy_canonical_float32() -> None:
    arr = np.ones((4, 5, 6), np.float32)
    vol = from_array(arr, np.eye(4), "image")
    assert np.shares_memory(vol.array, arr)
    flipped = from_array(arr, np.diag([-1.0, 1.0, 1.0, 1.0]), "image")
    assert np.shares_memory(flipped.array, arr)  # reorientation is a view
