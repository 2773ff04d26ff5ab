"""Tumour/lesion size on a 2D mask: fitted ellipse axes and Feret (RECIST) diameters, in mm.

Two independent measurements of one 4-connected component:

* :func:`fit_ellipse` — the MedVision T/L ground truth (planner ``_fromSeg``, v1.4.0 guards,
  with the v1.1.1 spacing fix). A least-squares ellipse is fitted to the component's outer
  contour in **physical** coordinates ``(row * sr, col * sc)``; ``major_mm``/``minor_mm`` are
  the **full** axis lengths of that continuous ellipse (not rounded landmarks).
* :func:`feret_diameters` — the RECIST longest diameter and its longest perpendicular chord,
  measured on the union of the component's pixel squares in mm.

Frames: masks are ``(H, W)`` arrays, array frame ``(row, col)`` with origin at the top-left
pixel centre; every ``*_rc`` point is a float ``(row, col)`` in pixels of the given mask;
``spacing_mm_rc = (sr, sc)`` is the pixel spacing in mm along rows and columns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.spatial import ConvexHull
from skimage import measure

from medvision.geometry.frames import PointRC, _check_spacing

__all__ = [
    "Diameters",
    "EllipseAxes",
    "LesionMeasurement",
    "feret_diameters",
    "fit_ellipse",
    "lesion_measurements",
    "major_axis_floor_mm",
]

FloatArray = npt.NDArray[np.float64]

# Endpoints whose rows differ by less than this (pixels) are treated as a tie when ordering a
# pair, so that float noise on an axis-aligned axis does not decide which point comes first.
_ORDER_TIE_PX = 1e-6
# 8-connected structuring element: holes are background regions not 8-connected to the outside
# (the dual of 4-connected foreground), so filling them leaves a single outer contour.
_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class EllipseAxes:
    """A least-squares ellipse fitted to one component, in mm and pixel coordinates.

    Attributes:
        center_rc: Ellipse centre ``(row, col)`` in pixels (floats).
        major_mm: Full major-axis length of the fitted ellipse, mm.
        minor_mm: Full minor-axis length of the fitted ellipse, mm (``<= major_mm``).
        endpoints_rc: ``(P1, P2, P3, P4)`` float ``(row, col)`` pixels; P1-P2 is the major axis,
            P3-P4 the minor axis; in each pair the first point has the larger row index (tie:
            the larger column), the official ordering.
        pixel_count: Number of pixels in the component.
    """

    center_rc: PointRC
    major_mm: float
    minor_mm: float
    endpoints_rc: tuple[PointRC, PointRC, PointRC, PointRC]
    pixel_count: int


@dataclass(frozen=True)
class Diameters:
    """RECIST-style calliper diameters of one component, in mm.

    Both are measured on the region ``R`` = union of the component's pixel squares, pixel
    ``(r, c)`` covering ``[(r - 0.5) sr, (r + 0.5) sr] x [(c - 0.5) sc, (c + 0.5) sc]`` mm.

    Attributes:
        longest_mm: Longest diameter: the largest distance between two points of ``R``
            (= maximum Feret diameter; attained between two pixel corners).
        perpendicular_mm: Longest chord of the convex hull of ``R`` perpendicular to the
            longest diameter (the bidimensional "perpendicular diameter"; concavities are
            bridged, as a calliper would).
        longest_endpoints_rc: The two ends of the longest diameter, float ``(row, col)`` pixels.
        perpendicular_endpoints_rc: The two ends of the perpendicular chord, float ``(row, col)``.

    In each endpoint pair the first point has the larger row (tie: the larger column).
    """

    longest_mm: float
    perpendicular_mm: float
    longest_endpoints_rc: tuple[PointRC, PointRC]
    perpendicular_endpoints_rc: tuple[PointRC, PointRC]


@dataclass(frozen=True)
class LesionMeasurement:
    """Both measurements of one 4-connected component of a lesion mask.

    Attributes:
        box_rc: Component bounding box ``(r0, c0, r1, c1)``, inclusive pixels.
        pixel_count: Number of pixels in the component.
        ellipse: Fitted ellipse (guards of official v1.4.0 passed).
        diameters: Feret/RECIST diameters.
    """

    box_rc: tuple[int, int, int, int]
    pixel_count: int
    ellipse: EllipseAxes
    diameters: Diameters


def major_axis_floor_mm(spacing_mm_rc: Sequence[float]) -> float:
    """Smallest accepted fitted major axis (official v1.4.0): ``max(2 mm, 2 x coarser spacing)``.

    Args:
        spacing_mm_rc: Pixel spacing ``(row_mm, col_mm)``.

    Returns:
        The floor in mm.
    """
    sr, sc = _check_spacing(spacing_mm_rc)
    return max(2.0, 2.0 * max(sr, sc))


def _ordered_pair(p: PointRC, q: PointRC) -> tuple[PointRC, PointRC]:
    """Order two points so the first has the larger row (tie within 1e-6 px: larger col)."""
    if abs(p[0] - q[0]) > _ORDER_TIE_PX:
        return (p, q) if p[0] > q[0] else (q, p)
    return (p, q) if p[1] >= q[1] else (q, p)


def _as_mask(mask: npt.ArrayLike, name: str) -> npt.NDArray[np.bool_]:
    """Validate a 2D boolean (or 0/1) mask with at least one pixel set."""
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2D (H, W) mask; found shape {arr.shape}")
    if arr.dtype != np.bool_:
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise ValueError(f"{name} must be boolean or 0/1 numbers; found dtype {arr.dtype}")
        if not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must hold only 0 and 1; found other values")
        arr = arr.astype(bool)
    if not arr.any():
        raise ValueError(f"{name} is empty (no pixel set)")
    return arr


def _crop_box(mask: npt.NDArray[np.bool_]) -> tuple[int, int, int, int]:
    """Inclusive bounding box ``(r0, c0, r1, c1)`` of a non-empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return (int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1]))


def _fit_conic(xy: FloatArray) -> tuple[float, float, float, float, float, float] | None:
    """Direct least-squares ellipse fit (Fitzgibbon 1999, Halir & Flusser 1998 stable form).

    Args:
        xy: ``(N, 2)`` points, already centred and scaled to unit RMS radius.

    Returns:
        Conic ``(a, b, c, d, e, f)`` of ``a x^2 + b xy + c y^2 + d x + e y + f = 0`` constrained to
        be an ellipse, or ``None`` when the system is singular or no ellipse solution exists.
    """
    x, y = xy[:, 0], xy[:, 1]
    d1 = np.stack([x * x, x * y, y * y], axis=1)
    d2 = np.stack([x, y, np.ones_like(x)], axis=1)
    s1 = d1.T @ d1
    s2 = d1.T @ d2
    s3 = d2.T @ d2
    try:
        t = -np.linalg.solve(s3, s2.T)
    except np.linalg.LinAlgError:
        return None
    m = s1 + s2 @ t
    # Premultiply by the inverse of the ellipse constraint matrix
    # C1 = [[0, 0, 2], [0, -1, 0], [2, 0, 0]].
    m = np.stack([m[2] / 2.0, -m[1], m[0] / 2.0])
    if not np.all(np.isfinite(m)):
        return None
    _, vecs = np.linalg.eig(m)
    vecs = np.real(vecs)
    cond = 4.0 * vecs[0] * vecs[2] - vecs[1] ** 2
    ok = np.flatnonzero(cond > 0)
    if ok.size == 0:
        return None
    # Exactly one eigenvector satisfies the constraint in exact arithmetic; take the most
    # ellipse-like one if rounding lets more through.
    a1 = vecs[:, ok[np.argmax(cond[ok])]]
    a2 = t @ a1
    coeffs = (
        float(a1[0]),
        float(a1[1]),
        float(a1[2]),
        float(a2[0]),
        float(a2[1]),
        float(a2[2]),
    )
    if not all(math.isfinite(v) for v in coeffs):
        return None
    return coeffs


def _conic_to_axes(
    conic: tuple[float, float, float, float, float, float],
) -> tuple[FloatArray, float, float, FloatArray] | None:
    """Centre, semi-axes and major direction of an ellipse conic.

    Returns:
        ``(center, semi_major, semi_minor, u_major)`` in the conic's coordinates, or ``None``
        when the conic is not a real, finite ellipse.
    """
    a, b, c, d, e, f = conic
    quad = np.array([[a, b / 2.0], [b / 2.0, c]])
    try:
        center = np.linalg.solve(2.0 * quad, -np.array([d, e]))
    except np.linalg.LinAlgError:
        return None
    f0 = f + 0.5 * (d * center[0] + e * center[1])
    lam, vec = np.linalg.eigh(quad)
    with np.errstate(divide="ignore", invalid="ignore"):
        semi_sq = -f0 / lam
    if not (np.all(np.isfinite(semi_sq)) and np.all(semi_sq > 0) and np.all(np.isfinite(center))):
        return None
    semi = np.sqrt(semi_sq)
    i_major = int(np.argmax(semi))
    return center, float(semi[i_major]), float(semi[1 - i_major]), vec[:, i_major]


def _ellipse_from_points(
    pts_mm: FloatArray,
) -> tuple[FloatArray, float, float, FloatArray] | None:
    """Least-squares ellipse through 2D points: centre, full major/minor lengths, major direction.

    The points are centred and scaled to unit RMS radius before the fit for conditioning; the
    result is mapped back, in the points' own units.

    Returns:
        ``(center, major, minor, u_major)`` or ``None`` if no finite ellipse fits.
    """
    mean = pts_mm.mean(axis=0)
    rms = float(np.sqrt(((pts_mm - mean) ** 2).sum(axis=1).mean()))
    if not (math.isfinite(rms) and rms > 0):
        return None
    conic = _fit_conic((pts_mm - mean) / rms)
    if conic is None:
        return None
    axes = _conic_to_axes(conic)
    if axes is None:
        return None
    center_n, semi_major_n, semi_minor_n, u_major = axes
    center = center_n * rms + mean
    major, minor = 2.0 * semi_major_n * rms, 2.0 * semi_minor_n * rms
    if not all(math.isfinite(float(v)) for v in (major, minor, *center, *u_major)):
        return None
    return center, major, minor, u_major


def _outer_contour_rc(crop: npt.NDArray[np.bool_]) -> FloatArray:
    """Outer sub-pixel contour of a single-component crop, ``(N, 2)`` ``(row, col)`` pixels.

    The crop is hole-filled and zero-padded, then traced with marching squares at level 0.5
    (foreground face-connected, matching 4-connected components). The closing duplicate point
    is dropped.
    """
    filled = ndimage.binary_fill_holes(crop, structure=_EIGHT)
    padded = np.pad(filled, 1).astype(np.float64)
    contours = measure.find_contours(padded, 0.5)  # type: ignore[no-untyped-call]
    longest: FloatArray = max(contours, key=len)
    if len(longest) > 1 and np.array_equal(longest[0], longest[-1]):
        longest = longest[:-1]
    return np.asarray(longest, dtype=np.float64) - 1.0


def _fit_ellipse_crop(
    crop: npt.NDArray[np.bool_],
    offset_rc: tuple[int, int],
    spacing: tuple[float, float],
    pixel_count: int,
) -> EllipseAxes | None:
    """Ellipse fit of one component given as a tight crop (see :func:`fit_ellipse`)."""
    sr, sc = spacing
    contour_rc = _outer_contour_rc(crop)
    if len(np.unique(contour_rc, axis=0)) < 5:
        return None
    scale_rc = np.array([sr, sc])
    pts_mm = contour_rc * scale_rc  # row with row spacing, col with col spacing (v1.1.1 fix)
    fitted = _ellipse_from_points(pts_mm)
    if fitted is None:
        return None
    center_mm, major_mm, minor_mm, u_major = fitted

    # Guards of the official planner v1.4.0.
    coarse = max(sr, sc)
    if minor_mm < coarse:  # minor axis under one (coarser) voxel
        return None
    h_px, w_px = crop.shape
    bbox_diag_mm = math.hypot(h_px * sr, w_px * sc)  # inclusive extents (pixel edges)
    if major_mm > 1.5 * bbox_diag_mm:
        return None
    if major_mm < major_axis_floor_mm(spacing):
        return None

    u_minor = np.array([-u_major[1], u_major[0]])
    offset = np.array(offset_rc, dtype=np.float64)

    def to_rc(p_mm: FloatArray) -> PointRC:
        p = p_mm / scale_rc + offset
        return (float(p[0]), float(p[1]))

    half_major = 0.5 * major_mm * u_major
    half_minor = 0.5 * minor_mm * u_minor
    p1, p2 = _ordered_pair(to_rc(center_mm + half_major), to_rc(center_mm - half_major))
    p3, p4 = _ordered_pair(to_rc(center_mm + half_minor), to_rc(center_mm - half_minor))
    return EllipseAxes(
        center_rc=to_rc(center_mm),
        major_mm=major_mm,
        minor_mm=minor_mm,
        endpoints_rc=(p1, p2, p3, p4),
        pixel_count=pixel_count,
    )


def fit_ellipse(
    component_mask: npt.ArrayLike, spacing_mm_rc: Sequence[float]
) -> EllipseAxes | None:
    """Fit an ellipse to one 4-connected component in physical coordinates.

    Algorithm: hole-fill the component, take its outer contour with
    ``skimage.measure.find_contours`` at level 0.5 on the zero-padded mask (the sub-pixel
    boundary halfway between inside and outside pixel centres), map it to mm as
    ``(row * sr, col * sc)``, and fit a direct least-squares ellipse (Fitzgibbon/Halir-Flusser
    algebraic fit, the same family as the official ``cv2.fitEllipse``). Axis lengths come
    from the continuous ellipse; endpoints are the ellipse's axis ends mapped back to pixels.

    Returns ``None`` (official v1.4.0 guards) when: the contour has fewer than 5 distinct
    points; the fit is singular or not a finite ellipse; ``minor_mm`` is under one voxel of
    the coarser spacing; ``major_mm`` exceeds 1.5 x the component bounding-box diagonal in mm
    (inclusive extents ``hypot(h * sr, w * sc)``); or ``major_mm`` is below
    :func:`major_axis_floor_mm`.

    Args:
        component_mask: ``(H, W)`` boolean mask holding exactly one 4-connected component.
        spacing_mm_rc: Pixel spacing ``(row_mm, col_mm)``.

    Returns:
        The fitted :class:`EllipseAxes` (points in pixels of ``component_mask``), or ``None``.

    Raises:
        ValueError: If the mask is not 2D, is empty, or holds more than one 4-connected
            component, or the spacing is invalid.
    """
    spacing = _check_spacing(spacing_mm_rc)
    mask = _as_mask(component_mask, "component_mask")
    r0, c0, r1, c1 = _crop_box(mask)
    crop = mask[r0 : r1 + 1, c0 : c1 + 1]
    _, n = ndimage.label(crop)
    if n != 1:
        raise ValueError(f"component_mask must hold one 4-connected component; found {n}")
    return _fit_ellipse_crop(crop, (r0, c0), spacing, int(crop.sum()))


def _row_extreme_corners_rc(crop: npt.NDArray[np.bool_]) -> FloatArray:
    """Pixel corners that can be convex-hull vertices of the union of the crop's pixels.

    In each row only the leftmost and rightmost pixels can contribute hull vertices (the
    pixels between them lie inside the hull of those two), so their four corners each are
    returned: ``(M, 2)`` ``(row, col)`` in crop pixels, in four blocks of one point per row
    (top-left, bottom-left, top-right, bottom-right corners).
    """
    rows = np.flatnonzero(crop.any(axis=1))
    sub = crop[rows]
    left = np.argmax(sub, axis=1) - 0.5
    right = (sub.shape[1] - 0.5) - np.argmax(sub[:, ::-1], axis=1)
    out = np.empty((4, rows.size, 2), dtype=np.float64)
    out[0::2, :, 0] = rows - 0.5
    out[1::2, :, 0] = rows + 0.5
    out[:2, :, 1] = left
    out[2:, :, 1] = right
    return out.reshape(-1, 2)


def _feret_crop(
    crop: npt.NDArray[np.bool_], offset_rc: tuple[int, int], spacing: tuple[float, float]
) -> Diameters:
    """Feret/RECIST diameters of a tight crop (see :func:`feret_diameters`).

    Hulls are small: 2-vectors are Python floats (the array form's IEEE steps, in order).
    """
    sr, sc = float(spacing[0]), float(spacing[1])
    pts_mm = _row_extreme_corners_rc(crop) * np.array((sr, sc), dtype=np.float64)
    hull_pts: FloatArray = pts_mm[ConvexHull(pts_mm).vertices]  # counter-clockwise polygon

    # Longest diameter: the farthest pair of hull vertices (hulls are small); the first pair
    # in raster order of the (V, V) distance table when several tie.
    diff = hull_pts[:, None, :] - hull_pts[None, :, :]
    dist2 = (diff**2).sum(axis=2)
    i, j = divmod(int(np.argmax(dist2)), dist2.shape[1])
    (pr, pc), (qr, qc) = hull_pts[i].tolist(), hull_pts[j].tolist()
    longest_mm = math.sqrt(float(dist2[i, j]))
    u = (hull_pts[j] - hull_pts[i]) / longest_mm
    ur, uc = u.tolist()
    n = np.array([-uc, ur])

    # Longest perpendicular chord of the hull: the chord length along the long axis is concave
    # and piecewise linear with breaks at vertex positions, so its maximum is at a vertex.
    # Edge e runs from vertex e to vertex e + 1 (cyclic); only edges with dt != 0 can cross.
    rel = hull_pts - hull_pts[i]
    t = rel @ u
    s = rel @ n
    t_b = np.concatenate((t[1:], t[:1]))
    s_b = np.concatenate((s[1:], s[:1]))
    dt = t_b - t
    t0 = t[:, None]
    moving = dt != 0
    crosses = (np.minimum(t, t_b) <= t0) & (t0 <= np.maximum(t, t_b)) & moving
    frac = (t0 - t) / np.where(moving, dt, 1.0)  # the dt == 0 columns are never read
    np.maximum(frac, 0.0, out=frac)
    np.minimum(frac, 1.0, out=frac)
    s_cross = s + frac * (s_b - s)
    s_max = np.where(crosses, s_cross, -np.inf).max(axis=1)
    s_min = np.where(crosses, s_cross, np.inf).min(axis=1)
    chord = s_max - s_min
    k = int(np.argmax(chord))
    tk, hi_k, lo_k = float(t[k]), float(s_max[k]), float(s_min[k])
    br, bc = pr + tk * ur, pc + tk * uc
    n_r, n_c = -uc, ur
    r0, c0 = float(offset_rc[0]), float(offset_rc[1])
    return Diameters(
        longest_mm=longest_mm,
        perpendicular_mm=float(chord[k]),
        longest_endpoints_rc=_ordered_pair(
            (pr / sr + r0, pc / sc + c0), (qr / sr + r0, qc / sc + c0)
        ),
        perpendicular_endpoints_rc=_ordered_pair(
            ((br + hi_k * n_r) / sr + r0, (bc + hi_k * n_c) / sc + c0),
            ((br + lo_k * n_r) / sr + r0, (bc + lo_k * n_c) / sc + c0),
        ),
    )


def feret_diameters(component_mask: npt.ArrayLike, spacing_mm_rc: Sequence[float]) -> Diameters:
    """RECIST longest diameter and its longest perpendicular, in mm.

    Measured on ``R``, the union of the mask's pixel squares in physical space (pixel
    ``(r, c)`` is the rectangle of side ``sr x sc`` mm centred on ``(r * sr, c * sc)``):

    * ``longest_mm`` = max distance between two points of ``R``, computed exactly as the
      farthest pair of vertices of the convex hull of the pixel corners;
    * ``perpendicular_mm`` = the longest chord of that convex hull perpendicular to the
      longest diameter.

    Pixel corners make the measure exact for the region as drawn; for a rasterised smooth
    shape it tends to exceed the true diameter by up to about one pixel diagonal.

    Args:
        component_mask: ``(H, W)`` boolean mask (normally one component; with several, the
            union is measured).
        spacing_mm_rc: Pixel spacing ``(row_mm, col_mm)``.

    Returns:
        :class:`Diameters` with endpoints in float ``(row, col)`` pixels of the mask.

    Raises:
        ValueError: If the mask is not 2D or is empty, or the spacing is invalid.
    """
    spacing = _check_spacing(spacing_mm_rc)
    mask = _as_mask(component_mask, "component_mask")
    r0, c0, r1, c1 = _crop_box(mask)
    return _feret_crop(mask[r0 : r1 + 1, c0 : c1 + 1], (r0, c0), spacing)


def lesion_measurements(
    mask_2d: npt.ArrayLike, spacing_mm_rc: Sequence[float], min_pixel_count: int = 1
) -> list[LesionMeasurement]:
    """Ellipse axes and Feret diameters of every 4-connected component, largest first.

    Components with fewer than ``min_pixel_count`` pixels are skipped (1 = none; the official
    v1.0.0 used 200, v1.1.0 used 20, v1.4.0 relies on the ellipse guards only), as are those
    whose ellipse fit is rejected by the guards of :func:`fit_ellipse`.

    Args:
        mask_2d: ``(H, W)`` boolean lesion mask (one label, binarised).
        spacing_mm_rc: Pixel spacing ``(row_mm, col_mm)``.
        min_pixel_count: Minimum component size in pixels.

    Returns:
        One :class:`LesionMeasurement` per accepted component, by ``pixel_count`` descending
        (ties in raster order of first appearance). Empty if the mask is empty.

    Raises:
        ValueError: If the mask is not 2D boolean/0-1 or the spacing is invalid.
    """
    spacing = _check_spacing(spacing_mm_rc)
    arr = np.asarray(mask_2d)
    if arr.ndim == 2 and arr.size and not arr.any():
        return []
    mask = _as_mask(arr, "mask_2d")
    comp, n = ndimage.label(mask)
    counts = np.bincount(comp.ravel(), minlength=n + 1)
    slices = ndimage.find_objects(comp)
    order = sorted(range(1, n + 1), key=lambda i: -int(counts[i]))
    out: list[LesionMeasurement] = []
    for idx in order:
        count = int(counts[idx])
        if count < min_pixel_count:
            continue
        sl = slices[idx - 1]
        if sl is None:  # pragma: no cover - ndimage.label numbers components densely
            continue
        crop = comp[sl] == idx
        offset = (int(sl[0].start), int(sl[1].start))
        ellipse = _fit_ellipse_crop(crop, offset, spacing, count)
        if ellipse is None:
            continue
        box = (offset[0], offset[1], int(sl[0].stop) - 1, int(sl[1].stop) - 1)
        out.append(
            LesionMeasurement(
                box_rc=box,
                pixel_count=count,
                ellipse=ellipse,
                diameters=_feret_crop(crop, offset, spacing),
            )
        )
    return out
