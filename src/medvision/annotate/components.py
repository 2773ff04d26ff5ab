"""Every slice's 4-connected components of one label in one pass over the volume.

The official planners label each 2D slice separately (one ``scipy.ndimage.label`` call per
slice and label, in a Python loop). Labelling the 3D mask once with a structure that only
joins neighbours *inside* a slice gives exactly the same components: two voxels of different
slices are never neighbours, so every 3D component lies in one slice and is that slice's 2D
4-connected component. ``find_objects`` then yields every component's box in one pass.

Order: scipy numbers components in raster (C) order of their first voxel. Restricted to one
slice, the 3D raster order is the 2D raster order of that slice (rows = the lower remaining
axis, columns = the higher one, as :func:`medvision.volumes.slice_volume` cuts them), so
"largest first, ties in raster order of first appearance" is reproduced exactly.

Frames: ``box_rc`` is ``(r0, c0, r1, c1)`` inclusive in the 2D slice's array frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

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

#: Voxels of component ids counted per ``bincount`` call (2 MiB of int64 per call).
_COUNT_SLAB_VOXELS = 1 << 18
Box3D = tuple[slice, slice, slice]


def _in_slice_structure(axis: int) -> npt.NDArray[np.bool_]:
    """3x3x3 structure joining face neighbours within planes normal to ``axis`` only."""
    structure = np.zeros((3, 3, 3), dtype=bool)
    for ax in range(3):
        if ax == axis:
            continue
        idx = [1, 1, 1]
        for v in (0, 1, 2):
            idx[ax] = v
            structure[tuple(idx)] = True
    return structure


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
        labelled: Component ids of the cropped mask (int32 or uint16 volume).
        ids: ``(N,)`` id of each component in ``labelled``.
        boxes3d: 3D ``find_objects`` slices of each component in ``labelled``.
        offset: Volume index of ``labelled[0, 0, 0]``.
    """

    axis: int
    slice_index: IntArray
    box_rc: IntArray
    pixel_count: IntArray
    n_on_slice: IntArray
    labelled: npt.NDArray[np.integer]
    ids: IntArray
    boxes3d: list[Box3D]
    offset: tuple[int, int, int]

    def __len__(self) -> int:
        return int(self.slice_index.size)

    def crop2d(self, k: int) -> tuple[npt.NDArray[np.bool_], tuple[int, int]]:
        """Tight 2D boolean crop of component ``k`` and its ``(row, col)`` offset in the slice."""
        sl = self.boxes3d[k]
        crop3 = self.labelled[sl] == self.ids[k]
        crop = np.take(crop3, 0, axis=self.axis)
        return crop, (int(self.box_rc[k, 0]), int(self.box_rc[k, 1]))


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


def _label(
    mask: npt.NDArray[np.bool_], structure: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.integer], int]:
    """``ndimage.label`` into uint16 when it fits (half the memory of int32), else int32."""
    try:
        out = np.empty(mask.shape, dtype=np.uint16)
        n = int(ndimage.label(mask, structure=structure, output=out))
        return out, n
    except RuntimeError:  # more than 65535 components: scipy refuses the bit depth
        comp, n_comp = ndimage.label(mask, structure=structure)
        return comp, int(n_comp)


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
    comp, n = _label(mask, _in_slice_structure(axis))
    # ndimage.label numbers components densely, so no find_objects entry is None.
    boxes3d: list[Box3D] = ndimage.find_objects(comp)
    bounds = np.array(
        [(a.start, a.stop, b.start, b.stop, c.start, c.stop) for a, b, c in boxes3d],
        dtype=np.int64,
    ).reshape(n, 6)
    starts, stops = bounds[:, 0::2], bounds[:, 1::2]
    # bincount casts its input to int64: count slab by slab (contiguous, C-ordered ``comp``)
    # so the cast copy is a few MiB, not four times the crop's uint16 ids.
    counts = np.zeros(n + 1, dtype=np.int64)
    step = max(1, _COUNT_SLAB_VOXELS // max(1, comp[:1].size))
    for start in range(0, comp.shape[0], step):
        counts += np.bincount(comp[start : start + step].ravel(), minlength=n + 1)
    counts = counts[1:]
    starts = starts + np.asarray(offset, dtype=np.int64)
    stops = stops + np.asarray(offset, dtype=np.int64)
    rc_axes = [a for a in range(3) if a != axis]
    slice_index = starts[:, axis]
    box_rc = np.stack(
        [
            starts[:, rc_axes[0]],
            starts[:, rc_axes[1]],
            stops[:, rc_axes[0]] - 1,
            stops[:, rc_axes[1]] - 1,
        ],
        axis=1,
    )
    ids = np.arange(1, n + 1, dtype=np.int64)
    # lexsort: last key is primary. Slice ascending, count descending, raster order (= id).
    order = np.lexsort((ids, -counts, slice_index))
    slice_index = slice_index[order]
    # Components of each slice are consecutive (sorted by slice): one run per slice.
    run_starts = np.flatnonzero(np.r_[True, np.diff(slice_index) != 0]) if n else slice_index
    per_slice = np.diff(np.r_[run_starts, n])
    return SliceComponents(
        axis=axis,
        slice_index=slice_index,
        box_rc=box_rc[order],
        pixel_count=counts[order],
        n_on_slice=np.repeat(per_slice, per_slice).astype(np.int64),
        labelled=comp,
        ids=ids[order],
        boxes3d=[boxes3d[i] for i in order.tolist()],
        offset=offset,
    )
