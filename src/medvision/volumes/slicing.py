"""Cut 2D slices out of canonical RAS+ volumes, exactly as the official benchmark does.

Plane <-> axis (official ``slice_dim``), raw indexing of the RAS+ array with no transpose,
flip or rotation, because that is the image the official benchmark shows the model:

============  =========  ===============  =====================
plane         slice_dim  pixels           spacing_mm_rc
============  =========  ===============  =====================
sagittal      0          ``vol[i, :, :]``  (s1, s2)
coronal       1          ``vol[:, i, :]``  (s0, s2)
axial         2          ``vol[:, :, i]``  (s0, s1)
============  =========  ===============  =====================

Rows of the slice are therefore the lower remaining volume axis and columns the higher one;
``spacing_mm_rc`` is (row spacing, column spacing) in mm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from medvision.schema import Plane
from medvision.volumes.io import Kind, Volume


@dataclass(frozen=True, eq=False)
class Slice2D:
    """One 2D slice of a volume.

    ``eq`` is disabled because element-wise array comparison has no single truth value.

    Attributes:
        pixels: (H, W) values, rows top to bottom, columns left to right; its own C-contiguous
            copy (it does not keep the volume alive).
        spacing_mm_rc: Pixel spacing (row, col) in mm.
        plane: The plane that was cut.
        index: Slice index along ``plane`` (the sliced volume axis).
    """

    pixels: np.ndarray
    spacing_mm_rc: tuple[float, float]
    plane: Plane
    index: int

    @property
    def hw(self) -> tuple[int, int]:
        """Pixel size (H, W) = (rows, cols)."""
        h, w = self.pixels.shape
        return (int(h), int(w))


def slice_volume(vol: Volume, plane: Plane, index: int) -> Slice2D:
    """Cut slice ``index`` along ``plane`` with the official plane <-> axis mapping.

    Args:
        vol: Canonical RAS+ volume.
        plane: Plane to cut; its value is the sliced axis.
        index: Slice index along that axis, ``0 <= index < vol.array.shape[plane]``
            (negative indices are refused rather than counted from the end).

    Returns:
        The slice and its (row, col) spacing in mm.

    Raises:
        IndexError: ``index`` is out of range.
    """
    plane = Plane(plane)
    axis = int(plane.value)
    n = int(vol.array.shape[axis])
    if isinstance(index, bool) or not 0 <= int(index) < n or int(index) != index:
        raise IndexError(
            f"slice {index!r} is out of range for the {plane.name.lower()} plane of {vol.path}: "
            f"axis {axis} has {n} slices (valid 0..{n - 1})"
        )
    index = int(index)
    # Basic indexing is a view; ``np.take`` would first make the whole volume C-contiguous
    # (a full copy per slice for the Fortran-ordered arrays NIfTI files load as).
    where: list[slice | int] = [slice(None)] * 3
    where[axis] = index
    pixels = np.ascontiguousarray(vol.array[tuple(where)])
    spacing = vol.spacing_mm
    row_axis, col_axis = (a for a in range(3) if a != axis)
    return Slice2D(
        pixels=pixels,
        spacing_mm_rc=(spacing[row_axis], spacing[col_axis]),
        plane=plane,
        index=index,
    )


def resize_slice(
    s: Slice2D,
    out_hw: tuple[int, int],
    *,
    kind: Kind,
    order: Literal[0, 1] | None = None,
) -> Slice2D:
    """Resize a slice with ``scipy.ndimage.zoom`` and update its spacing.

    Mirrors the official ``reshape_image_hw`` path: zoom factors ``(H'/H, W'/W)``, default
    ``grid_mode=False`` (corner pixels stay aligned), applied to the raw values before any
    intensity normalisation, and spacing divided by the zoom factors (``sr / (H'/H)``,
    ``sc / (W'/W)``; the physical extent per pixel grows when the image shrinks).

    Args:
        s: The slice.
        out_hw: Output (H', W') in pixels, both >= 1.
        kind: ``"image"`` uses bilinear interpolation (order 1, official); ``"labels"`` uses
            nearest neighbour (order 0) so no new label values appear.
        order: Override the interpolation order (for example 0 for images with at most two
            distinct values, as medvision-bm 1.2.1 does).

    Returns:
        The resized slice, exactly ``out_hw``, same dtype, plane and index.

    Raises:
        ValueError: Bad ``out_hw``, ``kind`` or ``order``.
    """
    h_out, w_out = (int(v) for v in out_hw)
    if h_out < 1 or w_out < 1 or (h_out, w_out) != tuple(out_hw):
        raise ValueError(f"out_hw must be two positive integers, got {out_hw!r}")
    if kind not in ("image", "labels"):
        raise ValueError(f"kind must be 'image' or 'labels', got {kind!r}")
    if order is None:
        order = 1 if kind == "image" else 0
    if order not in (0, 1):
        raise ValueError(f"order must be 0 or 1, got {order!r}")
    h, w = s.hw
    if (h, w) == (h_out, w_out):
        return s
    factors = (h_out / h, w_out / w)
    # Pass the output array so scipy itself refuses if its rounding would give another shape.
    out = np.empty((h_out, w_out), dtype=s.pixels.dtype)
    ndimage.zoom(s.pixels, factors, output=out, order=order)
    sr, sc = s.spacing_mm_rc
    return Slice2D(
        pixels=out,
        spacing_mm_rc=(sr / factors[0], sc / factors[1]),
        plane=s.plane,
        index=s.index,
    )
