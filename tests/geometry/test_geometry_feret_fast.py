"""The Feret (RECIST) diameters' lean implementation against the array form it replaced.

``_feret_crop`` handles the 2-vectors as Python floats and the hull steps with plain
ufuncs; its results must be the same floats, bit for bit, as the original array code, kept
below verbatim as the reference.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from scipy import ndimage
from scipy.spatial import ConvexHull

from medvision.geometry.ellipse import Diameters, _feret_crop, _ordered_pair
from medvision.geometry.frames import PointRC

FloatArray = npt.NDArray[np.float64]


def _old_corners(crop: npt.NDArray[np.bool_]) -> FloatArray:
    """Pixel corners that can be convex-hull vertices of the union of the crop's pixels.

    In each row only the leftmost and rightmost pixels can contribute hull vertices (the
    pixels between them lie inside the hull of those two), so their four corners each are
    returned: ``(M, 2)`` ``(row, col)`` in crop pixels.
    """
    rows = np.flatnonzero(crop.any(axis=1))
    sub = crop[rows]
    left = np.argmax(sub, axis=1)
    right = sub.shape[1] - 1 - np.argmax(sub[:, ::-1], axis=1)
    r = rows.astype(np.float64)
    pts = []
    for col in (left.astype(np.float64) - 0.5, right.astype(np.float64) + 0.5):
        pts.append(np.stack([r - 0.5, col], axis=1))
        pts.append(np.stack([r + 0.5, col], axis=1))
    return np.concatenate(pts, axis=0)


def _old_feret(
    crop: npt.NDArray[np.bool_], offset_rc: tuple[int, int], spacing: tuple[float, float]
) -> Diameters:
    """Feret/RECIST diameters of a tight crop (see :func:`feret_diameters`)."""
    scale_rc = np.array(spacing, dtype=np.float64)
    pts_mm = _old_corners(crop) * scale_rc
    hull_pts: FloatArray = pts_mm[ConvexHull(pts_mm).vertices]  # counter-clockwise polygon

    # Longest diameter: the farthest pair of hull vertices (hulls are small).
    diff = hull_pts[:, None, :] - hull_pts[None, :, :]
    dist2 = (diff**2).sum(axis=2)
    i, j = np.unravel_index(int(np.argmax(dist2)), dist2.shape)
    p, q = hull_pts[i], hull_pts[j]
    longest_mm = float(math.sqrt(float(dist2[i, j])))
    u = (q - p) / longest_mm
    n = np.array([-u[1], u[0]])

    # Longest perpendicular chord of the hull: the chord length along the long axis is concave
    # and piecewise linear with breaks at vertex positions, so its maximum is at a vertex.
    t = (hull_pts - p) @ u
    s = (hull_pts - p) @ n
    t_a, t_b = t, np.roll(t, -1)
    s_a, s_b = s, np.roll(s, -1)
    dt = t_b - t_a
    t0 = t[:, None]
    lo, hi = np.minimum(t_a, t_b), np.maximum(t_a, t_b)
    crosses = (lo[None, :] <= t0) & (t0 <= hi[None, :]) & (dt[None, :] != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.clip((t0 - t_a[None, :]) / dt[None, :], 0.0, 1.0)
    s_cross = s_a[None, :] + frac * (s_b - s_a)[None, :]
    s_max = np.where(crosses, s_cross, -np.inf).max(axis=1)
    s_min = np.where(crosses, s_cross, np.inf).min(axis=1)
    chord = s_max - s_min
    k = int(np.argmax(chord))
    base = p + t[k] * u
    e1, e2 = base + s_max[k] * n, base + s_min[k] * n

    offset = np.array(offset_rc, dtype=np.float64)

    def to_rc(p_mm: FloatArray) -> PointRC:
        v = p_mm / scale_rc + offset
        return (float(v[0]), float(v[1]))

    return Diameters(
        longest_mm=longest_mm,
        perpendicular_mm=float(chord[k]),
        longest_endpoints_rc=_ordered_pair(to_rc(p), to_rc(q)),
        perpendicular_endpoints_rc=_ordered_pair(to_rc(e1), to_rc(e2)),
    )


def _blobs(seed: int) -> list[npt.NDArray[np.bool_]]:
    """Tight crops of the 4-connected components of a random mask (lesion-like sizes)."""
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(12, 60)), int(rng.integers(12, 60)))
    grid = np.indices(shape).astype(float)
    mask = rng.random(shape) < 0.03
    for _ in range(6):
        centre, radii = rng.uniform(0, shape), rng.uniform(1, 15, size=2)
        theta = rng.uniform(0, math.pi)
        dr, dc = grid[0] - centre[0], grid[1] - centre[1]
        u = (dr * math.cos(theta) + dc * math.sin(theta)) / radii[0]
        v = (-dr * math.sin(theta) + dc * math.cos(theta)) / radii[1]
        mask |= u**2 + v**2 <= 1
    comp, _ = ndimage.label(mask)
    return [comp[sl] == i + 1 for i, sl in enumerate(ndimage.find_objects(comp))]


@pytest.mark.parametrize("seed", range(8))
def test_feret_equals_the_array_form_bit_for_bit(seed: int) -> None:
    spacings = [(1.0, 1.0), (0.7, 0.7), (0.8125, 2.5), (3.0, 0.4347)]
    n = 0
    for k, crop in enumerate(_blobs(seed)):
        spacing = spacings[k % len(spacings)]
        offset = (k, 2 * k)
        assert repr(_feret_crop(crop, offset, spacing)) == repr(_old_feret(crop, offset, spacing))
        n += 1
    assert n > 3
