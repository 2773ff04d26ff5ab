"""label_bounding_boxes equals scipy's find_objects on a C-ordered copy, whatever the layout."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medvision.annotate.components import label_bounding_boxes
from medvision.annotate.planners import CaseContext, PlanStats, plan_detection
from medvision.catalog.spec import DetectionSpec, LabelSpec, TaskSpec
from medvision.volumes import from_array


def _reference(arr: np.ndarray) -> dict[int, tuple[slice, ...]]:
    found = ndimage.find_objects(np.ascontiguousarray(arr).astype(np.int64))
    return {i + 1: sl for i, sl in enumerate(found) if sl is not None}


def _sparse_labels(seed: int, shape: tuple[int, int, int]) -> np.ndarray:
    """A few small blobs of labels 1-5 somewhere in the volume (often far from its centre)."""
    rng = np.random.default_rng(seed)
    arr = np.zeros(shape, dtype=np.uint16)
    for _ in range(int(rng.integers(0, 6))):
        lo = [int(rng.integers(0, n)) for n in shape]
        hi = [min(n, a + int(rng.integers(1, 4))) for a, n in zip(lo, shape, strict=True)]
        arr[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = int(rng.integers(1, 6))
    return arr


@pytest.mark.parametrize("seed", range(40))
def test_boxes_equal_find_objects_in_every_memory_layout(seed: int) -> None:
    shape = (5 + seed % 7, 9, 4 + seed % 5)
    arr = _sparse_labels(seed, shape)
    want = _reference(arr)
    # NIfTI volumes load Fortran-ordered: they are read through a C-ordered transpose and
    # cropped to their nonzero box before find_objects; the boxes must come back the same.
    layouts = [arr, np.asfortranarray(arr), arr.astype(np.int32), arr.astype(np.uint8)]
    for view in layouts:
        assert label_bounding_boxes(view) == want
    strided = np.asfortranarray(arr)[:, ::2]  # neither C- nor Fortran-contiguous
    assert label_bounding_boxes(strided) == _reference(strided)


def test_boxes_of_empty_and_full_volumes() -> None:
    assert label_bounding_boxes(np.zeros((3, 4, 5), np.uint16)) == {}
    assert label_bounding_boxes(np.asfortranarray(np.zeros((3, 4, 5), np.uint8))) == {}
    full = np.full((3, 4, 5), 2, np.uint16)
    whole = (slice(0, 3), slice(0, 4), slice(0, 5))
    assert label_bounding_boxes(np.asfortranarray(full)) == {2: whole}
    corner = np.zeros((6, 6, 6), np.uint16, order="F")
    corner[5, 5, 5] = 7
    assert label_bounding_boxes(corner) == {7: (slice(5, 6), slice(5, 6), slice(5, 6))}


def test_detection_samples_carry_the_annotation_given() -> None:
    arr = np.zeros((6, 7, 5), np.uint16)
    arr[1:4, 2:5, 1:3] = 1
    labels = from_array(arr, np.eye(4), "labels")
    task = TaskSpec(
        id="01",
        modality="CT",
        image_description="synthetic",
        image_folder="img",
        mask_folder="msk",
        labels=[LabelSpec(id=1, name="organ", kind="organ", group="A")],
        detection=DetectionSpec(labels=[1], single_instance=False),
    )

    class _Sink:
        def image(self, plane: object, index: int) -> tuple[str, tuple[int, int]]:
            return "k", (6, 7)

    ctx = CaseContext("syn", task, "c0", "test")
    plain = plan_detection(labels, ctx, _Sink(), PlanStats())
    tagged = plan_detection(labels, ctx, _Sink(), PlanStats(), annotation="precise")
    assert len(plain) == len(tagged) > 0
    assert {s.annotation for s in plain} == {""}  # left to the caller, as before
    assert {s.annotation for s in tagged} == {"precise"}
    assert [s.sample_id for s in plain] == [s.sample_id for s in tagged]
