"""Every volume error names the file and says what was expected and found."""

from __future__ import annotations

import gzip
import pickle
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medvision.volumes import (
    AffineError,
    CorruptFileError,
    EmptyMaskError,
    NonFiniteError,
    ShapeMismatchError,
    VolumeError,
    check_nonempty,
    check_same_grid,
    from_array,
    load_volume,
)

AFFINE = np.diag([0.9, 0.9, 2.0, 1.0])


def save(path: Path, array: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    nib.save(nib.Nifti1Image(array, affine), path)
    return path


def smooth_image(shape: tuple[int, int, int] = (16, 16, 12)) -> np.ndarray:
    return np.indices(shape).sum(axis=0).astype(np.float32)


# ------------------------------------------------------------------ corrupt files


def test_truncated_gzip_is_corrupt_and_named(tmp_path: Path) -> None:
    good = save(tmp_path / "good.nii.gz", smooth_image())
    data = good.read_bytes()
    bad = tmp_path / "case_007_truncated.nii.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError) as info:
        load_volume(bad, "image")
    assert str(bad) in str(info.value)
    assert info.value.path == str(bad)


@pytest.mark.parametrize("offset", [-8, -3, "middle"])
def test_damage_caught_only_by_gzip_trailer(tmp_path: Path, offset: int | str) -> None:
    # -8: a CRC32 byte, -3: an ISIZE byte; the voxel data itself decompresses intact, so only
    # reading the gzip trailer reveals the damage. "middle": random float32 does not
    # compress, so deflate stores it raw and a flipped byte there gives a valid stream with
    # one wrong voxel (nibabel alone returns it silently).
    noise = np.random.default_rng(1).random((32, 32, 32)).astype(np.float32)
    good = save(tmp_path / "noise.nii.gz", noise, np.eye(4))
    data = bytearray(good.read_bytes())
    data[len(data) // 2 if offset == "middle" else int(offset)] ^= 0xFF
    bad = tmp_path / "flipped.nii.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=re.escape(str(bad))) as info:
        load_volume(bad, "image")
    assert "BadGzipFile" in str(info.value)
    # The untouched file still loads to the same voxels.
    np.testing.assert_array_equal(load_volume(good, "image").array, noise)


@pytest.mark.parametrize(
    ("name", "content"),
    [("garbage.nii.gz", b"not a nifti file at all" * 4), ("empty.nii.gz", b"")],
)
def test_unreadable_bytes_are_corrupt(tmp_path: Path, name: str, content: bytes) -> None:
    bad = tmp_path / name
    bad.write_bytes(content)
    with pytest.raises(CorruptFileError, match=name):
        load_volume(bad, "image")


def test_truncated_uncompressed_nifti_is_corrupt(tmp_path: Path) -> None:
    good = save(tmp_path / "plain.nii", smooth_image())
    bad = tmp_path / "short.nii"
    bad.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CorruptFileError, match=re.escape("short.nii")):
        load_volume(bad, "labels")


def test_missing_file_is_corrupt(tmp_path: Path) -> None:
    with pytest.raises(CorruptFileError, match=re.escape("nowhere.nii.gz")):
        load_volume(tmp_path / "nowhere.nii.gz", "image")


# ------------------------------------------------------------------ non-finite voxels


def test_nan_image_refused_with_count(tmp_path: Path) -> None:
    arr = smooth_image()
    arr[3, 4, 5] = np.nan
    arr[0, 0, 0] = np.inf
    path = save(tmp_path / "nan_img.nii.gz", arr)
    with pytest.raises(NonFiniteError) as info:
        load_volume(path, "image")
    assert str(path) in str(info.value)
    assert "2 non-finite voxels" in str(info.value)


def test_allow_nonfinite_replaces_with_finite_extremes() -> None:
    arr = np.arange(24, dtype=np.float32).reshape(2, 3, 4) + 10.0  # finite range 11..33
    arr[0, 0, 0] = np.nan
    arr[0, 0, 1] = -np.inf
    arr[1, 2, 3] = np.inf
    vol = from_array(arr, np.eye(4), "image", allow_nonfinite=True)
    assert vol.array[0, 0, 0] == 12.0  # finite min (10 and 11 are replaced voxels)
    assert vol.array[0, 0, 1] == 12.0
    assert vol.array[1, 2, 3] == 32.0  # finite max (33 was replaced)
    assert vol.array[0, 1, 0] == 14.0  # untouched
    assert np.isnan(arr[0, 0, 0])  # the caller's array is not modified


def test_all_nan_image_refused_even_when_allowed() -> None:
    arr = np.full((2, 2, 2), np.nan, dtype=np.float32)
    with pytest.raises(NonFiniteError, match="no finite voxel"):
        from_array(arr, np.eye(4), "image", path="/data/allnan.nii.gz", allow_nonfinite=True)


def test_nan_labels_always_refused(tmp_path: Path) -> None:
    arr = np.zeros((4, 4, 4), dtype=np.float32)
    arr[1, 1, 1] = np.nan
    path = save(tmp_path / "nan_seg.nii.gz", arr)
    with pytest.raises(NonFiniteError, match=re.escape("nan_seg.nii.gz")):
        load_volume(path, "labels", allow_nonfinite=True)


# ------------------------------------------------------------------ grids and affines


def test_shape_mismatch_message_names_both_files(tmp_path: Path) -> None:
    img_path = save(tmp_path / "x.nii.gz", np.zeros((10, 20, 30), dtype=np.float32))
    seg_path = save(tmp_path / "y.nii.gz", np.zeros((10, 20, 31), dtype=np.uint8))
    image, mask = load_volume(img_path, "image"), load_volume(seg_path, "labels")
    with pytest.raises(ShapeMismatchError) as info:
        check_same_grid(image, mask)
    assert str(info.value) == (
        f"image {img_path} has shape (10, 20, 30) but mask {seg_path} has shape (10, 20, 31)"
    )


def test_affine_mismatch_beyond_tolerance(tmp_path: Path) -> None:
    shifted = AFFINE.copy()
    shifted[0, 3] += 0.5
    image = load_volume(save(tmp_path / "img.nii.gz", smooth_image()), "image")
    mask = load_volume(
        save(tmp_path / "seg.nii.gz", np.zeros((16, 16, 12), np.uint8), shifted), "labels"
    )
    with pytest.raises(AffineError) as info:
        check_same_grid(image, mask)
    text = str(info.value)
    assert "img.nii.gz" in text and "seg.nii.gz" in text and "0.5 mm" in text


def test_same_grid_within_tolerance_and_across_storage_orientations(tmp_path: Path) -> None:
    nudged = AFFINE.copy()
    nudged[1, 3] += 5e-4
    image = load_volume(save(tmp_path / "img.nii.gz", smooth_image()), "image")
    close = from_array(np.zeros((16, 16, 12), np.uint8), nudged, "labels")
    check_same_grid(image, close)  # 0.5 um apart: accepted
    # The same grid stored left-right flipped: after canonicalisation it matches.
    flipped_affine = AFFINE @ np.array([[-1.0, 0, 0, 15], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    flipped = from_array(np.zeros((16, 16, 12), np.uint8), flipped_affine, "labels")
    check_same_grid(image, flipped)
    with pytest.raises(AffineError):
        check_same_grid(image, close, atol_mm=1e-4)


def test_sheared_affine_refused(tmp_path: Path) -> None:
    sheared = AFFINE.copy()
    sheared[0, 1] = 0.3  # axis 1 leans toward x: not orthogonal to axis 0
    path = save(tmp_path / "sheared.nii.gz", smooth_image(), sheared)
    with pytest.raises(AffineError) as info:
        load_volume(path, "image")
    assert str(path) in str(info.value)
    assert "sheared" in str(info.value)


def test_singular_affine_refused(tmp_path: Path) -> None:
    # Zero the sform's third row in the raw header bytes (nibabel refuses to write it).
    good = save(tmp_path / "tmp.nii", smooth_image())
    raw = bytearray(good.read_bytes())
    srow_z = 312  # byte offset of srow_z in the NIfTI-1 header
    raw[srow_z : srow_z + 16] = np.zeros(4, dtype="<f4").tobytes()
    path = tmp_path / "singular.nii.gz"
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(AffineError, match="singular") as info:
        load_volume(path, "image")
    assert str(path) in str(info.value)


def test_non_finite_affine_refused() -> None:
    bad = np.eye(4)
    bad[2, 3] = np.nan
    with pytest.raises(AffineError, match="non-finite"):
        from_array(np.zeros((2, 2, 2)), bad, "image", path="/data/nanaff.nii.gz")


def test_four_d_volume_refused_but_trailing_singletons_dropped() -> None:
    with pytest.raises(ShapeMismatchError, match=r"expected a 3D volume.*\(4, 4, 4, 3\)"):
        from_array(np.zeros((4, 4, 4, 3)), np.eye(4), "image", path="/data/dwi.nii.gz")
    vol = from_array(np.ones((4, 5, 6, 1, 1)), np.eye(4), "image")
    assert vol.array.shape == (4, 5, 6)


# ------------------------------------------------------------------ masks


def test_empty_mask_refused() -> None:
    labels = from_array(np.zeros((3, 3, 3), np.uint8), np.eye(4), "labels", path="/m/empty.nii")
    with pytest.raises(EmptyMaskError, match=re.escape("/m/empty.nii")):
        check_nonempty(labels)
    labels2 = from_array(np.full((3, 3, 3), 2, np.uint8), np.eye(4), "labels", path="/m/l2.nii")
    check_nonempty(labels2)
    check_nonempty(labels2, 2)
    with pytest.raises(EmptyMaskError, match=r"no voxel with label 5 \(labels present: \[2\]\)"):
        check_nonempty(labels2, 5)


def test_errors_pickle_and_share_a_base() -> None:
    err = ShapeMismatchError("/a/y.nii.gz", "image /a/x.nii.gz has shape (1, 2, 3) but ...")
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is ShapeMismatchError
    assert str(clone) == str(err)
    assert clone.path == "/a/y.nii.gz"
    plain = NonFiniteError("/a/z.nii.gz", "3 NaN voxels")
    assert str(plain) == "/a/z.nii.gz: 3 NaN voxels"
    for cls in (CorruptFileError, ShapeMismatchError, AffineError, EmptyMaskError, NonFiniteError):
        assert issubclass(cls, VolumeError)
