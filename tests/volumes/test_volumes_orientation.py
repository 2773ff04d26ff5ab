"""All 48 axis orientations of one physical volume give identical canonical slices."""

from __future__ import annotations

import itertools
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medvision.schema import Plane
from medvision.volumes import Volume, from_array, load_volume, slice_volume

SHAPE = (5, 6, 7)
SPACING = (0.8, 1.1, 2.5)
ORIGIN = (-10.0, 20.0, 5.0)
# Expected (row, col) spacing per plane, written out by hand from the official table.
EXPECTED_RC = {
    Plane.SAGITTAL: (1.1, 2.5),
    Plane.CORONAL: (0.8, 2.5),
    Plane.AXIAL: (0.8, 1.1),
}

ORIENTATIONS = [
    (perm, flips)
    for perm in itertools.permutations(range(3))
    for flips in itertools.product((1, -1), repeat=3)
]


def reference() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An asymmetric RAS+ image (distinct values), integer labels, and its affine."""
    rng = np.random.default_rng(7)
    image = rng.permutation(np.prod(SHAPE)).reshape(SHAPE).astype(np.float32) * 0.5 - 40.0
    labels = np.zeros(SHAPE, dtype=np.uint16)
    labels[1:3, 0:2, 4:7] = 3  # an off-centre block: asymmetric along every axis
    labels[4, 5, 0] = 9
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = ORIGIN
    return image, labels, affine


def stored_variant(
    arr: np.ndarray, affine: np.ndarray, perm: tuple[int, ...], flips: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """The same physical volume stored with axis k = reference axis perm[k], reversed if -1.

    Built by hand (not with nibabel.orientations): reference index i[perm[k]] equals j[k] or
    n - 1 - j[k], so the new affine is ``affine @ M`` with M that index map.
    """
    stored = np.transpose(arr, perm)
    for k, flip in enumerate(flips):
        if flip < 0:
            stored = np.flip(stored, axis=k)
    index_map = np.zeros((4, 4))
    index_map[3, 3] = 1.0
    for k, (p, flip) in enumerate(zip(perm, flips, strict=True)):
        index_map[p, k] = flip
        if flip < 0:
            index_map[p, 3] = arr.shape[p] - 1
    return np.ascontiguousarray(stored), affine @ index_map


def test_variants_cover_48_distinct_orientations_and_map_voxels_to_the_same_world_point() -> None:
    image, _, affine = reference()
    codes = set()
    rng = np.random.default_rng(0)
    for perm, flips in ORIENTATIONS:
        stored, stored_affine = stored_variant(image, affine, perm, flips)
        codes.add(nib.aff2axcodes(stored_affine))
        # Self-check of the helper: each stored voxel sits where the reference voxel of the
        # same value sits in world space.
        for _ in range(5):
            j = np.array([rng.integers(n) for n in stored.shape])
            world = stored_affine @ np.append(j, 1.0)
            i = np.rint(np.linalg.solve(affine, world)[:3]).astype(int)
            assert stored[tuple(j)] == image[tuple(i)]
    assert len(codes) == 48


def assert_same_slices(vol: Volume, ref: np.ndarray) -> None:
    for plane in Plane:
        for index in range(SHAPE[plane.value]):
            s = slice_volume(vol, plane, index)
            np.testing.assert_array_equal(s.pixels, np.take(ref, index, axis=plane.value))
            np.testing.assert_allclose(s.spacing_mm_rc, EXPECTED_RC[plane], rtol=1e-6)
            assert s.plane is plane and s.index == index


@pytest.mark.parametrize(("perm", "flips"), ORIENTATIONS, ids=lambda v: str(v))
def test_from_array_canonicalises_every_orientation(
    perm: tuple[int, ...], flips: tuple[int, ...]
) -> None:
    image, labels, affine = reference()
    stored, stored_affine = stored_variant(image, affine, perm, flips)
    vol = from_array(stored, stored_affine, "image")
    np.testing.assert_array_equal(vol.array, image)
    np.testing.assert_allclose(vol.affine, affine, atol=1e-12)
    np.testing.assert_allclose(vol.spacing_mm, SPACING, rtol=1e-12)
    assert_same_slices(vol, image)

    stored_labels, _ = stored_variant(labels, affine, perm, flips)
    mask = from_array(stored_labels, stored_affine, "labels")
    assert mask.array.dtype == np.uint16
    assert_same_slices(mask, labels)


@pytest.mark.parametrize(("perm", "flips"), ORIENTATIONS, ids=lambda v: str(v))
def test_load_volume_canonicalises_every_orientation(
    tmp_path: Path, perm: tuple[int, ...], flips: tuple[int, ...]
) -> None:
    image, labels, affine = reference()
    stored, stored_affine = stored_variant(image, affine, perm, flips)
    stored_labels, _ = stored_variant(labels, affine, perm, flips)
    nib.save(nib.Nifti1Image(stored, stored_affine), tmp_path / "img.nii.gz")
    nib.save(nib.Nifti1Image(stored_labels, stored_affine), tmp_path / "seg.nii.gz")

    vol = load_volume(tmp_path / "img.nii.gz", "image")
    np.testing.assert_array_equal(vol.array, image)
    # NIfTI stores the affine as float32: compare at that precision.
    np.testing.assert_allclose(vol.affine, affine, atol=1e-5)
    assert_same_slices(vol, image)

    mask = load_volume(tmp_path / "seg.nii.gz", "labels")
    assert_same_slices(mask, labels)


def test_oblique_affine_keeps_closest_axes_and_column_norm_spacing() -> None:
    image, _, affine = reference()
    angle = np.deg2rad(12.0)
    rot = np.eye(4)
    rot[:3, :3] = [
        [np.cos(angle), -np.sin(angle), 0.0],
        [np.sin(angle), np.cos(angle), 0.0],
        [0.0, 0.0, 1.0],
    ]
    oblique = rot @ affine
    stored, stored_affine = stored_variant(image, oblique, (2, 0, 1), (-1, 1, -1))
    vol = from_array(stored, stored_affine, "image")
    np.testing.assert_array_equal(vol.array, image)
    np.testing.assert_allclose(vol.affine, oblique, atol=1e-12)
    np.testing.assert_allclose(vol.spacing_mm, SPACING, rtol=1e-12)
    s = slice_volume(vol, Plane.CORONAL, 2)
    np.testing.assert_allclose(s.spacing_mm_rc, (0.8, 2.5), rtol=1e-12)
