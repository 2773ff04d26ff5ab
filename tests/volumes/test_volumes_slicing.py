"""Slicing with the official plane <-> axis table and resizing with spacing updates."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medvision.schema import Plane
from medvision.volumes import Slice2D, from_array, resize_slice, slice_volume

AFFINE = np.diag([0.5, 0.75, 3.0, 1.0])


def volume_2x3x4() -> np.ndarray:
    return np.arange(24, dtype=np.float32).reshape(2, 3, 4)


def test_plane_table_by_hand() -> None:
    vol = from_array(volume_2x3x4(), AFFINE, "image", path="/d/v.nii.gz")
    sag = slice_volume(vol, Plane.SAGITTAL, 1)
    assert sag.pixels.tolist() == [[12, 13, 14, 15], [16, 17, 18, 19], [20, 21, 22, 23]]
    assert sag.spacing_mm_rc == (0.75, 3.0)
    cor = slice_volume(vol, Plane.CORONAL, 2)
    assert cor.pixels.tolist() == [[8, 9, 10, 11], [20, 21, 22, 23]]
    assert cor.spacing_mm_rc == (0.5, 3.0)
    axi = slice_volume(vol, Plane.AXIAL, 3)
    assert axi.pixels.tolist() == [[3, 7, 11], [15, 19, 23]]
    assert axi.spacing_mm_rc == (0.5, 0.75)
    assert axi.plane is Plane.AXIAL and axi.index == 3 and axi.hw == (2, 3)


def test_slice_is_an_independent_contiguous_copy() -> None:
    arr = volume_2x3x4()
    vol = from_array(arr, AFFINE, "image")
    s = slice_volume(vol, Plane.AXIAL, 0)
    assert s.pixels.flags.c_contiguous
    assert not np.shares_memory(s.pixels, vol.array)


@pytest.mark.parametrize(
    ("plane", "index"), [(Plane.SAGITTAL, 2), (Plane.AXIAL, 4), (Plane.CORONAL, -1)]
)
def test_out_of_range_index(plane: Plane, index: int) -> None:
    vol = from_array(volume_2x3x4(), AFFINE, "image", path="/d/v.nii.gz")
    n = vol.array.shape[plane.value]
    with pytest.raises(IndexError) as info:
        slice_volume(vol, plane, index)
    text = str(info.value)
    assert "/d/v.nii.gz" in text and f"valid 0..{n - 1}" in text and plane.name.lower() in text


def test_resize_linear_ramp_is_exact_with_aligned_corners() -> None:
    # Bilinear interpolation reproduces a linear function exactly; with corners aligned
    # (grid_mode=False, as the official zoom call) output row i sits at i*(H-1)/(H'-1).
    h, w, h2, w2 = 5, 9, 13, 4
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    s = Slice2D((2.0 * rows + 3.0 * cols).astype(np.float32), (1.2, 0.6), Plane.AXIAL, 7)
    out = resize_slice(s, (h2, w2), kind="image")
    r2, c2 = np.meshgrid(
        np.arange(h2) * (h - 1) / (h2 - 1), np.arange(w2) * (w - 1) / (w2 - 1), indexing="ij"
    )
    np.testing.assert_allclose(out.pixels, 2.0 * r2 + 3.0 * c2, atol=1e-4)
    assert out.pixels.shape == (h2, w2) and out.pixels.dtype == np.float32
    np.testing.assert_allclose(out.spacing_mm_rc, (1.2 * 5 / 13, 0.6 * 9 / 4), rtol=1e-12)
    assert out.plane is Plane.AXIAL and out.index == 7


def test_resize_matches_the_official_zoom_call() -> None:
    img = np.random.default_rng(5).normal(size=(37, 50)).astype(np.float32)
    s = Slice2D(img, (0.8, 0.8), Plane.CORONAL, 0)
    out = resize_slice(s, (336, 336), kind="image")
    official = ndimage.zoom(img, (336 / 37, 336 / 50), order=1)
    np.testing.assert_array_equal(out.pixels, official)
    assert out.spacing_mm_rc == (0.8 / (336 / 37), 0.8 / (336 / 50))


@pytest.mark.parametrize(
    ("hw", "out_hw"), [((7, 7), (3, 11)), ((13, 29), (28, 28)), ((1, 5), (4, 2))]
)
def test_resize_exact_shapes(hw: tuple[int, int], out_hw: tuple[int, int]) -> None:
    s = Slice2D(np.ones(hw, np.float32), (1.0, 1.0), Plane.SAGITTAL, 0)
    assert resize_slice(s, out_hw, kind="image").pixels.shape == out_hw


def test_resize_labels_nearest_keeps_label_set() -> None:
    labels = np.zeros((20, 20), np.uint16)
    labels[3:9, 4:15] = 2
    labels[12:18, 2:6] = 7
    s = Slice2D(labels, (1.0, 2.0), Plane.AXIAL, 0)
    out = resize_slice(s, (33, 9), kind="labels")
    assert out.pixels.dtype == np.uint16
    assert set(np.unique(out.pixels).tolist()) == {0, 2, 7}
    bilinear = resize_slice(s, (33, 9), kind="image")
    assert set(np.unique(bilinear.pixels).tolist()) - {0, 2, 7}  # order 1 would invent labels


def test_resize_rejects_bad_sizes() -> None:
    s = Slice2D(np.ones((4, 4), np.float32), (1.0, 1.0), Plane.AXIAL, 0)
    with pytest.raises(ValueError, match="out_hw"):
        resize_slice(s, (0, 4), kind="image")
    with pytest.raises(ValueError, match="out_hw"):
        resize_slice(s, (2.5, 4), kind="image")  # type: ignore[arg-type]
