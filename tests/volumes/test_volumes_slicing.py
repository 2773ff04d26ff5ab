"""Slicing with the official plane <-> axis table."""

from __future__ import annotations

import numpy as np
import pytest

from medvision.schema import Plane
from medvision.volumes import from_array, slice_volume

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
