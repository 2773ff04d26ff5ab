"""Every slice's 4-connected components of one label in one pass over the volume.

The official planners label each 2D slice separately (one ``scipy.ndimage.label`` call per
slice and label, in a Python loop). Here the slices of the mask along the sliced axis are
stacked into one 2D image with a background row between consecutive slices, and labelled
once by OpenCV (``connectedComponentsWithStats``, 4-connectivity), which also returns each
component's bounding box and pixel count. A component cannot cross a background row, so
each one lies in one slice and is that slice's 2D 4-connected component.

Order: "largest first, ties in raster order of first appearance in the slice" (what
numbering by scipy gives, slice by slice). Components are sorted by slice, then pixel count
descending; where a slice has components of equal size, the position of each one's first
pixel (its top row, leftmost pixel there) in the slice's raster order breaks the tie, so the
order does not depend on how OpenCV numbers them. Rows are the lower remaining axis and
columns the higher one, as :func:`medvision.volumes.slice_volume` cuts the slices.

Frames: ``box_rc`` is ``(r0, c0, r1, c1)`` inclusive in the 2D slice's array frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = [
    "LabelBoxes",
    "SliceComponents",
    "label_bounding_boxes",
    "share_components",
    "slice_components",
    "take_components",
]

IntArray = npt.NDArray[np.int64]

Box3D = tuple[slice, slice, slice]


@dataclass(frozen=True, eq=False)
class SliceComponents:
    """The 4-connected components of one label on every slice along one axis.

    Components are ordered by slice index ascending, then pixel count descending, then raster
    order of first appearance in the slice (the official planners' order).

    Attributes:
        axis: The sliced volume axis (the plane value).
        slice_index: ``(N,)`` slice index of each component.
        box_rc: ``(N, 4)`` inclusive ``(r0, c0, r1, c1)`` in the slice's array frame.
        pixel_count: ``(N,)`` pixels of each component.
        n_on_slice: ``(N,)`` number of components of this label on the component's slice.
        labelled: ``(S, H + 1, W)`` component ids (int32; uint16 for large masks with at
            most 65,535 components, :data:`UINT16_IDS_FROM_PIXELS`) of the mask's slices
            along ``axis``
            (``S`` slices of ``H`` rows, each followed by a background row; 0 = background).
        ids: ``(N,)`` id of each component in ``labelled``.
        offset: Volume index of the mask's ``[0, 0, 0]``.
    """

    axis: int
    slice_index: IntArray
    box_rc: IntArray
    pixel_count: IntArray
    n_on_slice: IntArray
    labelled: npt.NDArray[np.integer]
    ids: IntArray
    offset: tuple[int, int, int]

    def __len__(self) -> int:
        return int(self.slice_index.size)

    def crop2d(self, k: int) -> tuple[npt.NDArray[np.bool_], tuple[int, int]]:
        """Tight 2D boolean crop of component ``k`` and its ``(row, col)`` offset in the slice."""
        row_axis, col_axis = (a for a in range(3) if a != self.axis)
        r0, c0, r1, c1 = (int(v) for v in self.box_rc[k])
        s = int(self.slice_index[k]) - self.offset[self.axis]
        rows = slice(r0 - self.offset[row_axis], r1 + 1 - self.offset[row_axis])
        cols = slice(c0 - self.offset[col_axis], c1 + 1 - self.offset[col_axis])
        return self.labelled[s, rows, cols] == self.ids[k], (r0, c0)


class LabelBoxes(dict[int, Box3D]):
    """``{label value: 3D box}`` of one label volume, able to carry components between planners.

    The detection and T/L planners of a case both label the lesion labels slice by slice;
    given the same ``LabelBoxes``, detection leaves the components T/L will need
    (:func:`share_components`) and T/L takes them (:func:`take_components`) instead of
    labelling the same crop again. Each entry is held only until it is taken.
    """

    __slots__ = ("_shared",)

    def __init__(self) -> None:
        super().__init__()
        # (label, axis) -> (the label volume's array, its components along axis)
        self._shared: dict[tuple[int, int], tuple[npt.NDArray[np.integer], SliceComponents]] = {}


def share_components(
    boxes: Mapping[int, Box3D],
    labels: npt.NDArray[np.integer],
    label_id: int,
    comps: SliceComponents,
) -> None:
    """Leave ``comps`` (label ``label_id`` of ``labels``) for :func:`take_components`.

    Does nothing unless ``boxes`` is a :class:`LabelBoxes` (what
    :func:`label_bounding_boxes` returns).
    """
    if isinstance(boxes, LabelBoxes):
        boxes._shared[(int(label_id), comps.axis)] = (labels, comps)


def take_components(
    boxes: Mapping[int, Box3D], labels: npt.NDArray[np.integer], label_id: int, axis: int
) -> SliceComponents | None:
    """The components :func:`share_components` left for this label and axis, or ``None``.

    An entry is handed out once, and only for the very array it was computed from.
    """
    if not isinstance(boxes, LabelBoxes):
        return None
    entry = boxes._shared.pop((int(label_id), int(axis)), None)
    return entry[1] if entry is not None and entry[0] is labels else None


def label_bounding_boxes(labels: npt.NDArray[np.integer]) -> LabelBoxes:
    """3D bounding box of every positive label value, in one pass (``find_objects``).

    Args:
        labels: Non-negative integer label volume.

    Returns:
        ``{label value: (slice, slice, slice)}`` for every value present (0 excluded), as a
        :class:`LabelBoxes` (a ``dict``).
    """
    # find_objects reads every integer dtype in place and ignores values below 1, so no
    # converted copy of the volume is made. It walks the array in C order: a Fortran-ordered
    # volume (as NIfTI files load) is read through its transpose, a C-ordered view of the same
    # memory (3x faster than striding across it), and the boxes are transposed back.
    arr = labels if labels.dtype.kind in "iu" else labels.astype(np.int64)
    flipped = arr.ndim > 1 and arr.flags.f_contiguous and not arr.flags.c_contiguous
    view: npt.NDArray[np.integer] = arr.T if flipped else arr
    corner: tuple[int, ...] = (0,) * view.ndim
    if view.ndim == 3 and view.size:
        # Labels usually fill a part of the volume: two cheap reductions find the box of
        # every nonzero voxel, and find_objects reads only that box.
        plane = np.any(view, axis=0)
        rows, cols = np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
        if rows.size == 0:
            return LabelBoxes()
        view = view[:, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        depth = np.flatnonzero(view.any(axis=(1, 2)))
        view = view[depth[0] : depth[-1] + 1]
        corner = (int(depth[0]), int(rows[0]), int(cols[0]))
    boxes = LabelBoxes()
    for i, found in enumerate(ndimage.find_objects(view)):
        if found is None:
            continue
        box = tuple(slice(sl.start + c, sl.stop + c) for sl, c in zip(found, corner, strict=True))
        boxes[i + 1] = cast(Box3D, box[::-1] if flipped else box)
    return boxes


def _cv2() -> Any:
    """Import OpenCV lazily (``opencv-python-headless``, a core dependency)."""
    import cv2

    return cv2


#: Stacked images of at least this many pixels are labelled into uint16 ids when they fit:
#: half the memory of int32 ids (128 MiB instead of 256 MiB here, more for a label whose box
#: spans a whole volume), for labelling about 15 % slower; smaller ones use int32 ids.
UINT16_IDS_FROM_PIXELS = 1 << 25


def _label_with_stats(image: npt.NDArray[np.uint8]) -> tuple[int, npt.NDArray[np.integer], Any]:
    """OpenCV's 4-connected labelling with stats (ids: see :data:`UINT16_IDS_FROM_PIXELS`).

    OpenCV refuses 16-bit ids past 65,535 labels; the call is then made again with int32 ids.

    Returns:
        The number of labels (background included), the id image and the stats rows.
    """
    cv2 = _cv2()
    if image.size >= UINT16_IDS_FROM_PIXELS:
        try:
            n, labelled, stats, _ = cv2.connectedComponentsWithStats(
                image, connectivity=4, ltype=cv2.CV_16U
            )
            return int(n), labelled, stats
        except cv2.error:
            pass
    n, labelled, stats, _ = cv2.connectedComponentsWithStats(
        image, connectivity=4, ltype=cv2.CV_32S
    )
    return int(n), labelled, stats


def slice_components(
    mask: npt.NDArray[np.bool_], axis: int, offset: tuple[int, int, int] = (0, 0, 0)
) -> SliceComponents:
    """Label the 2D 4-connected components of every slice of ``mask`` along ``axis`` at once.

    Args:
        mask: ``(X, Y, Z)`` boolean mask of one label (possibly a crop of the volume).
        axis: Sliced axis, 0 (sagittal), 1 (coronal) or 2 (axial).
        offset: Volume index of ``mask[0, 0, 0]`` when ``mask`` is a crop; slice indices and
            boxes are returned in volume/slice coordinates.

    Returns:
        The components of every slice (see :class:`SliceComponents` for the order).
    """
    if mask.ndim != 3:
        raise ValueError(f"mask must be 3D (X, Y, Z); found shape {mask.shape}")
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2; found {axis}")
    slices = np.moveaxis(mask, axis, 0)  # (S, H, W): rows = lower remaining axis
    n_s, h, w = slices.shape
    stacked = np.zeros((n_s, h + 1, w), dtype=np.uint8)  # a background row after each slice
    stacked[:, :h] = slices
    if stacked.size:
        n, labelled, stats = _label_with_stats(stacked.reshape(n_s * (h + 1), w))
        del stacked
        left, top, width, height, counts = stats[1:].astype(np.int64).T
    else:
        n, labelled = 1, np.zeros(stacked.reshape(n_s * (h + 1), w).shape, dtype=np.int32)
        left = top = width = height = counts = np.zeros(0, dtype=np.int64)
    labelled = labelled.reshape(n_s, h + 1, w)
    ids = np.arange(1, n, dtype=np.int64)
    slice_local = top // (h + 1)
    row0 = top - slice_local * (h + 1)
    row_axis, col_axis = (a for a in range(3) if a != axis)
    slice_index = slice_local + offset[axis]
    box_rc = np.stack(
        [
            row0 + offset[row_axis],
            left + offset[col_axis],
            row0 + height - 1 + offset[row_axis],
            left + width - 1 + offset[col_axis],
        ],
        axis=1,
    )
    order = _official_order(slice_index, counts, ids, top, left, labelled.reshape(-1, w))
    slice_index = slice_index[order]
    # Components of each slice are consecutive (sorted by slice): one run per slice.
    run_starts = np.flatnonzero(np.r_[True, np.diff(slice_index) != 0]) if order.size else order
    per_slice = np.diff(np.r_[run_starts, order.size])
    return SliceComponents(
        axis=axis,
        slice_index=slice_index,
        box_rc=box_rc[order],
        pixel_count=counts[order],
        n_on_slice=np.repeat(per_slice, per_slice).astype(np.int64),
        labelled=labelled,
        ids=ids[order],
        offset=offset,
    )


def _official_order(
    slice_index: IntArray,
    counts: IntArray,
    ids: IntArray,
    top: IntArray,
    left: IntArray,
    labelled_2d: npt.NDArray[np.integer],
) -> IntArray:
    """Order of the components: slice ascending, count descending, first pixel in raster order.

    Args:
        slice_index: ``(N,)`` slice of each component.
        counts: ``(N,)`` pixel counts.
        ids: ``(N,)`` component ids in ``labelled_2d``.
        top: ``(N,)`` first row of each component in ``labelled_2d`` (the stacked image).
        left: ``(N,)`` first column of each component's box.
        labelled_2d: The stacked label image.
    """
    # lexsort: last key is primary. OpenCV's id is a stand-in for the raster key, which is
    # only needed (and then computed) where a slice has components of equal size.
    order = np.lexsort((ids, -counts, slice_index))
    s, c = slice_index[order], counts[order]
    tied = np.flatnonzero((s[1:] == s[:-1]) & (c[1:] == c[:-1]))
    if tied.size == 0:
        return order
    key = ids.copy()
    width = labelled_2d.shape[1]
    for k in np.union1d(tied, tied + 1).tolist():
        i = int(order[k])
        row, c0 = int(top[i]), int(left[i])
        # The first pixel of a component is in the top row of its box, leftmost there.
        first = int(np.argmax(labelled_2d[row, c0:] == ids[i]))
        key[i] = row * width + c0 + first
    return np.lexsort((key, -counts, slice_index))
