"""Distances and angles between landmarks given as voxel/pixel indices, in mm and degrees.

Points are index coordinates of any dimension (2D ``(row, col)`` or 3D voxel ``(i, j, k)``),
ints or floats; ``spacing_mm`` has one entry per axis in the same order. Physical vectors are
``(q - p) * spacing_mm``, as the official planner computes them (voxel indices x zooms).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["angle_deg", "distance_mm"]

Point = Sequence[float]
Line = tuple[Point, Point]


def _vector_mm(p: Point, q: Point, spacing_mm: Sequence[float]) -> npt.NDArray[np.float64]:
    """Physical vector ``(q - p) * spacing_mm`` in mm, validated."""
    pa = np.asarray(p, dtype=np.float64)
    qa = np.asarray(q, dtype=np.float64)
    sa = np.asarray(spacing_mm, dtype=np.float64)
    if pa.ndim != 1 or pa.shape != qa.shape or pa.shape != sa.shape or pa.size == 0:
        raise ValueError(
            "points and spacing must be 1D with the same length; "
            f"found p {pa.shape}, q {qa.shape}, spacing_mm {sa.shape}"
        )
    if not (np.all(np.isfinite(pa)) and np.all(np.isfinite(qa))):
        raise ValueError(f"points must be finite; found p={pa.tolist()}, q={qa.tolist()}")
    if not (np.all(np.isfinite(sa)) and np.all(sa > 0)):
        raise ValueError(f"spacing_mm must be finite and positive; found {sa.tolist()}")
    return (qa - pa) * sa


def distance_mm(p: Point, q: Point, spacing_mm: Sequence[float]) -> float:
    """Euclidean distance in mm between two index-space points: ``||(p - q) * spacing_mm||``.

    Args:
        p: First point, index coordinates (any dimension).
        q: Second point, same dimension.
        spacing_mm: Spacing per axis in mm, same order and length.

    Returns:
        Distance in mm.

    Raises:
        ValueError: On mismatched lengths, non-finite points or non-positive spacing.

    Example:
        >>> distance_mm((0, 0), (3, 4), (1.0, 1.0))
        5.0
    """
    return float(np.linalg.norm(_vector_mm(p, q, spacing_mm)))


def angle_deg(line1: Line, line2: Line, spacing_mm: Sequence[float]) -> float:
    """Official acute, unsigned angle between two lines, in degrees within ``[0, 90]``.

    ``degrees(arccos(|v1 . v2| / (|v1| |v2|)))`` with ``v = (p2 - p1) * spacing_mm`` for each
    line; the cosine is clipped to ``[0, 1]`` against rounding. The direction of each line does
    not matter.

    Args:
        line1: ``(p1, p2)`` index-space points of the first line.
        line2: ``(p1, p2)`` index-space points of the second line.
        spacing_mm: Spacing per axis in mm.

    Returns:
        Angle in degrees.

    Raises:
        ValueError: If a line has zero length or the inputs are malformed.

    Example:
        >>> angle_deg(((0, 0), (0, 2)), ((5, 5), (1, 5)), (1.0, 1.0))
        90.0
        >>> round(angle_deg(((0, 0), (0, 1)), ((0, 0), (1, 1)), (1.0, 1.0)), 9)
        45.0
    """
    v1 = _vector_mm(line1[0], line1[1], spacing_mm)
    v2 = _vector_mm(line2[0], line2[1], spacing_mm)
    n1, n2 = float(np.linalg.norm(v1)), float(np.linalg.norm(v2))
    if n1 == 0.0 or n2 == 0.0:
        raise ValueError(
            f"angle needs two non-degenerate lines; found lengths {n1} mm and {n2} mm "
            f"(line1={line1!r}, line2={line2!r})"
        )
    cos = min(1.0, max(0.0, abs(float(v1 @ v2)) / (n1 * n2)))
    return math.degrees(math.acos(cos))
