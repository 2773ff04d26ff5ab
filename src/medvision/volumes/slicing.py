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

import numpy as np

from medvision.schema import Plane
from medvision.volumes.io import Volume


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
