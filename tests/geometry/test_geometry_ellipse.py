import itertools
import math

import numpy as np
import pytest

from medvision.geometry import ellipse as ellipse_mod
from medvision.geometry.ellipse import (
    feret_diameters,
    fit_ellipse,
    lesion_measurements,
    major_axis_floor_mm,
)

ROTATIONS_DEG = [22.5 * k for k in range(8)]  # 0 .. 157.5


def draw_ellipse(
    major_mm: float,
    minor_mm: float,
    theta_deg: float,
    spacing_mm_rc: tuple[float, float],
    margin_px: int = 5,
    shift_px: tuple[float, float] = (0.37, -0.21),
) -> tuple[np.ndarray, tuple[float, float], np.ndarray]:
    """Rasterise a filled ellipse drawn in PHYSICAL space.

    A pixel is inside iff its centre (row * sr, col * sc) in mm lies inside the ellipse whose
    major axis makes ``theta_deg`` with the row axis. Returns the mask, the true centre in
    pixels (row, col) and the unit major direction in mm coordinates (row_mm, col_mm).
    """
    sr, sc = spacing_mm_rc
    half = 0.5 * major_mm
    h = math.ceil(2 * half / sr) + 2 * margin_px
    w = math.ceil(2 * half / sc) + 2 * margin_px
    center_rc = ((h - 1) / 2 + shift_px[0], (w - 1) / 2 + shift_px[1])
    rows, cols = np.mgrid[0:h, 0:w]
    d_r = rows * sr - center_rc[0] * sr
    d_c = cols * sc - center_rc[1] * sc
    t = math.radians(theta_deg)
    u = np.array([math.cos(t), math.sin(t)])
    along = d_r * u[0] + d_c * u[1]
    across = -d_r * u[1] + d_c * u[0]
    mask = (along / (major_mm / 2)) ** 2 + (across / (minor_mm / 2)) ** 2 <= 1.0
    return mask, center_rc, u


def _mm(p: tuple[float, float], spacing: tuple[float, float]) -> np.ndarray:
    return np.array([p[0] * spacing[0], p[1] * spacing[1]])


def _assert_pair_ordered(p: tuple[float, float], q: tuple[float, float]) -> None:
    assert p[0] > q[0] + 1e-6 or (abs(p[0] - q[0]) <= 1e-6 and p[1] >= q[1])


ANISO = [(0.5, 1.5), (1.5, 0.5)]
# Axes chosen so every axis spans >= 20 px even along the coarser (1.5 mm) direction.
ANISO_AXES = [(60.0, 30.0), (45.0, 30.0), (30.0, 30.0)]


@pytest.mark.parametrize(
    ("spacing", "axes", "theta"),
    [
        *itertools.product(ANISO, ANISO_AXES, ROTATIONS_DEG),
        *itertools.product([(1.0, 1.0), (0.8, 0.8)], [(40.0, 20.0), (64.0, 48.0)], ROTATIONS_DEG),
    ],
)
def test_fit_recovers_analytic_axes(
    spacing: tuple[float, float], axes: tuple[float, float], theta: float
) -> None:
    major, minor = axes
    mask, center_rc, u = draw_ellipse(major, minor, theta, spacing)
    fit = fit_ellipse(mask, spacing)
    assert fit is not None
    assert fit.major_mm == pytest.approx(major, rel=0.02)
    assert fit.minor_mm == pytest.approx(minor, rel=0.02)
    assert fit.minor_mm <= fit.major_mm
    assert fit.pixel_count == int(mask.sum())
    assert fit.center_rc == pytest.approx(center_rc, abs=0.3)

    p1, p2, p3, p4 = fit.endpoints_rc
    _assert_pair_ordered(p1, p2)
    _assert_pair_ordered(p3, p4)
    # Endpoints are the axis ends of the fitted ellipse, measured in mm.
    assert np.linalg.norm(_mm(p1, spacing) - _mm(p2, spacing)) == pytest.approx(fit.major_mm)
    assert np.linalg.norm(_mm(p3, spacing) - _mm(p4, spacing)) == pytest.approx(fit.minor_mm)
    v_major = _mm(p1, spacing) - _mm(p2, spacing)
    v_minor = _mm(p3, spacing) - _mm(p4, spacing)
    assert abs(v_major @ v_minor) < 1e-6 * fit.major_mm * fit.minor_mm  # perpendicular in mm
    if major / minor >= 1.3:
        # Orientation in physical space matches the drawn one (up to sign).
        cos = abs(v_major @ u) / np.linalg.norm(v_major)
        assert math.degrees(math.acos(min(1.0, cos))) < 2.0


@pytest.mark.parametrize("spacing", ANISO)
def test_spacing_pairing_is_not_transposed(spacing: tuple[float, float]) -> None:
    # Major axis along the rows (theta = 0), mirror-symmetric raster. The official v1.0.0 bug
    # scaled rows by the column spacing, which would report the axes scaled by sc/sr, sr/sc.
    mask, _, _ = draw_ellipse(60.0, 36.0, 0.0, spacing, shift_px=(0.0, 0.0))
    fit = fit_ellipse(mask, spacing)
    assert fit is not None
    assert fit.major_mm == pytest.approx(60.0, rel=0.02)
    assert fit.minor_mm == pytest.approx(36.0, rel=0.02)
    p1, p2, p3, p4 = fit.endpoints_rc
    # Major ends share a column and differ in rows by 60 mm / sr.
    assert p1[1] == pytest.approx(p2[1], abs=1e-6)
    assert p1[0] - p2[0] == pytest.approx(60.0 / spacing[0], rel=0.02)
    # Minor ends share a row (tie) -> the first has the larger column.
    assert p3[0] == pytest.approx(p4[0], abs=1e-6)
    assert p3[1] > p4[1]
    assert p3[1] - p4[1] == pytest.approx(36.0 / spacing[1], rel=0.02)


def test_endpoint_order_horizontal_major() -> None:
    # Unshifted: the raster is mirror-symmetric, so the fit is exactly axis-aligned.
    mask, _, _ = draw_ellipse(50.0, 25.0, 90.0, (1.0, 1.0), shift_px=(0.0, 0.0))
    fit = fit_ellipse(mask, (1.0, 1.0))
    assert fit is not None
    p1, p2, p3, p4 = fit.endpoints_rc
    assert p1[0] == pytest.approx(p2[0], abs=1e-6)  # tie on rows
    assert p1[1] > p2[1]  # -> larger column first
    assert p3[0] > p4[0]  # minor axis along rows: larger row first
    assert p1[1] - p2[1] == pytest.approx(50.0, rel=0.02)


def test_hole_does_not_change_fit() -> None:
    mask, _, _ = draw_ellipse(50.0, 30.0, 30.0, (1.0, 1.0))
    filled = fit_ellipse(mask, (1.0, 1.0))
    holed = mask.copy()
    rr, cc = np.nonzero(mask)
    r_mid, c_mid = int(rr.mean()), int(cc.mean())
    holed[r_mid - 3 : r_mid + 4, c_mid - 3 : c_mid + 4] = False
    ring = fit_ellipse(holed, (1.0, 1.0))
    assert filled is not None and ring is not None
    assert ring.major_mm == pytest.approx(filled.major_mm, rel=1e-9)
    assert ring.minor_mm == pytest.approx(filled.minor_mm, rel=1e-9)
    assert ring.pixel_count == filled.pixel_count - 49


def test_guard_minor_under_one_coarse_voxel() -> None:
    # Spacing 0.2 x 2.0 mm; ellipse long along columns. Minor 1.6 mm (8 px!) < 2.0 mm voxel.
    spacing = (0.2, 2.0)
    thin, _, _ = draw_ellipse(40.0, 1.6, 90.0, spacing)
    assert thin.sum() > 50
    assert fit_ellipse(thin, spacing) is None
    thick, _, _ = draw_ellipse(40.0, 3.0, 90.0, spacing)
    fit = fit_ellipse(thick, spacing)
    assert fit is not None
    assert fit.minor_mm == pytest.approx(3.0, rel=0.1)


def test_guard_major_over_bbox_diagonal() -> None:
    # The algebraic fit of a thin 3 x 100 px bar overshoots its length (~169 px > 1.5 x 100).
    bar = np.zeros((8, 106), dtype=bool)
    bar[2:5, 3:103] = True
    assert fit_ellipse(bar, (1.0, 1.0)) is None
    short = np.zeros((8, 46), dtype=bool)
    short[2:5, 3:43] = True  # ~58 px < 1.5 x 40 px: accepted
    fit = fit_ellipse(short, (1.0, 1.0))
    assert fit is not None
    assert fit.major_mm > 40.0


def test_guard_major_floor() -> None:
    assert major_axis_floor_mm((0.4, 0.4)) == 2.0
    assert major_axis_floor_mm((0.5, 1.5)) == 3.0
    disk = np.zeros((12, 12), dtype=bool)
    rr, cc = np.mgrid[0:12, 0:12]
    disk[(rr - 5) ** 2 + (cc - 5) ** 2 <= 4] = True  # ~4 px across
    assert fit_ellipse(disk, (0.4, 0.4)) is None  # ~1.6 mm < 2 mm
    fit = fit_ellipse(disk, (1.0, 1.0))  # ~4 mm >= 2 mm
    assert fit is not None
    assert fit.major_mm == pytest.approx(4.1, abs=0.3)


def test_guard_too_few_points_and_non_ellipse_conics() -> None:
    one = np.zeros((5, 5), dtype=bool)
    one[2, 2] = True
    assert fit_ellipse(one, (5.0, 5.0)) is None  # 4 contour points
    # Degenerate inputs to the internals: collinear points have no ellipse solution,
    # a hyperbola x^2 - y^2 = 1 is not an ellipse, nor is the imaginary x^2 + y^2 + 1 = 0.
    line = np.stack([np.linspace(-1, 1, 20), 0.5 * np.linspace(-1, 1, 20)], axis=1)
    assert ellipse_mod._ellipse_from_points(line) is None
    assert ellipse_mod._conic_to_axes((1.0, 0.0, -1.0, 0.0, 0.0, -1.0)) is None
    assert ellipse_mod._conic_to_axes((1.0, 0.0, 1.0, 0.0, 0.0, 1.0)) is None


@pytest.mark.parametrize("theta", ROTATIONS_DEG)
def test_fit_is_exact_on_points_of_an_ellipse(theta: float) -> None:
    t = np.linspace(0, 2 * np.pi, 37)[:-1]
    u = np.array([math.cos(math.radians(theta)), math.sin(math.radians(theta))])
    v = np.array([-u[1], u[0]])
    center = np.array([12.5, -3.0])
    pts = center + np.outer(7.0 * np.cos(t), u) + np.outer(2.5 * np.sin(t), v)
    fitted = ellipse_mod._ellipse_from_points(pts)
    assert fitted is not None
    c, major, minor, u_major = fitted
    assert major == pytest.approx(14.0, rel=1e-9)
    assert minor == pytest.approx(5.0, rel=1e-9)
    assert c == pytest.approx(center, abs=1e-9)
    assert abs(u_major @ u) == pytest.approx(1.0, abs=1e-12)


def test_fit_rejects_bad_masks() -> None:
    two = np.zeros((10, 10), dtype=bool)
    two[1:4, 1:4] = True
    two[6:9, 6:9] = True
    with pytest.raises(ValueError, match="one 4-connected component"):
        fit_ellipse(two, (1.0, 1.0))
    with pytest.raises(ValueError, match="empty"):
        fit_ellipse(np.zeros((4, 4), dtype=bool), (1.0, 1.0))
    with pytest.raises(ValueError, match="2D"):
        fit_ellipse(np.ones((2, 2, 2), dtype=bool), (1.0, 1.0))


# ---------------------------------------------------------------- Feret / RECIST diameters


def _brute_force_longest(mask: np.ndarray, spacing: tuple[float, float]) -> float:
    rr, cc = np.nonzero(mask)
    corners = np.concatenate(
        [np.stack([rr + dr, cc + dc], axis=1) for dr in (-0.5, 0.5) for dc in (-0.5, 0.5)]
    ) * np.array(spacing)
    diff = corners[:, None, :] - corners[None, :, :]
    return float(np.sqrt((diff**2).sum(axis=2).max()))


@pytest.mark.parametrize(
    ("h", "w", "spacing"), [(1, 1, (1.0, 1.0)), (4, 9, (0.5, 1.5)), (7, 7, (2.0, 0.3))]
)
def test_rectangle_diameters_analytic(h: int, w: int, spacing: tuple[float, float]) -> None:
    mask = np.zeros((h + 4, w + 4), dtype=bool)
    mask[2 : 2 + h, 2 : 2 + w] = True
    d = feret_diameters(mask, spacing)
    a, b = h * spacing[0], w * spacing[1]
    diag = math.hypot(a, b)
    assert d.longest_mm == pytest.approx(diag)
    # Longest chord perpendicular to a rectangle's diagonal passes through a corner:
    # length min(a, b) * diag / max(a, b).
    assert d.perpendicular_mm == pytest.approx(min(a, b) * diag / max(a, b))
    (p, q) = d.longest_endpoints_rc
    corners = {(1.5, 1.5), (1.5, w + 1.5), (h + 1.5, 1.5), (h + 1.5, w + 1.5)}
    assert (round(p[0], 9), round(p[1], 9)) in corners
    assert (round(q[0], 9), round(q[1], 9)) in corners


@pytest.mark.parametrize("seed", range(5))
def test_longest_matches_brute_force_on_random_blobs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    mask = rng.random((14, 17)) < 0.3
    spacing = (float(rng.uniform(0.3, 2.0)), float(rng.uniform(0.3, 2.0)))
    d = feret_diameters(mask, spacing)
    assert d.longest_mm == pytest.approx(_brute_force_longest(mask, spacing))
    p, q = (_mm(x, spacing) for x in d.longest_endpoints_rc)
    e1, e2 = (_mm(x, spacing) for x in d.perpendicular_endpoints_rc)
    assert np.linalg.norm(p - q) == pytest.approx(d.longest_mm)
    assert np.linalg.norm(e1 - e2) == pytest.approx(d.perpendicular_mm)
    u = (p - q) / d.longest_mm
    assert abs(u @ (e1 - e2)) < 1e-9 * d.longest_mm  # perpendicular chord
    # The chord cannot exceed the extent of the pixel corners across the long axis.
    rr, cc = np.nonzero(mask)
    corners = np.concatenate(
        [np.stack([rr + dr, cc + dc], axis=1) for dr in (-0.5, 0.5) for dc in (-0.5, 0.5)]
    ) * np.array(spacing)
    n = np.array([-u[1], u[0]])
    assert d.perpendicular_mm <= np.ptp(corners @ n) + 1e-9


@pytest.mark.parametrize(
    ("spacing", "axes", "theta"),
    [
        *itertools.product(ANISO, [(60.0, 30.0), (80.0, 40.0)], ROTATIONS_DEG),
        *itertools.product([(1.0, 1.0)], [(60.0, 30.0)], ROTATIONS_DEG),
    ],
)
def test_feret_on_analytic_ellipses(
    spacing: tuple[float, float], axes: tuple[float, float], theta: float
) -> None:
    major, minor = axes
    mask, _, u = draw_ellipse(major, minor, theta, spacing)
    d = feret_diameters(mask, spacing)
    # Pixel-corner convention: within about one pixel diagonal of the true axes.
    assert d.longest_mm == pytest.approx(major, rel=0.03)
    assert d.perpendicular_mm == pytest.approx(minor, rel=0.06)
    p, q = (_mm(x, spacing) for x in d.longest_endpoints_rc)
    cos = abs((p - q) @ u) / np.linalg.norm(p - q)
    # Roughly along the true major axis: a flat run of tip pixels lets the farthest corner
    # pair tilt by up to about atan(run / length), ~6 degrees here.
    assert math.degrees(math.acos(min(1.0, cos))) < 8.0
    _assert_pair_ordered(*d.longest_endpoints_rc)
    _assert_pair_ordered(*d.perpendicular_endpoints_rc)


# ---------------------------------------------------------------- per-component measurements


def test_lesion_measurements_per_component() -> None:
    spacing = (0.8, 1.2)
    big, _, _ = draw_ellipse(50.0, 30.0, 30.0, spacing, margin_px=2)
    small, _, _ = draw_ellipse(30.0, 24.0, 120.0, spacing, margin_px=2)
    mask = np.zeros((120, 120), dtype=bool)
    mask[5 : 5 + big.shape[0], 3 : 3 + big.shape[1]] |= big
    mask[70 : 70 + small.shape[0], 60 : 60 + small.shape[1]] |= small
    mask[110, 5] = True  # a single pixel: rejected by the guards
    out = lesion_measurements(mask, spacing)
    assert len(out) == 2
    assert out[0].pixel_count == int(big.sum()) > out[1].pixel_count == int(small.sum())
    assert out[0].ellipse.major_mm == pytest.approx(50.0, rel=0.02)
    assert out[1].ellipse.major_mm == pytest.approx(30.0, rel=0.02)
    rr, cc = np.nonzero(big)
    assert out[0].box_rc == (5 + rr.min(), 3 + cc.min(), 5 + rr.max(), 3 + cc.max())
    # Same numbers and same (global) pixel coordinates as measuring the component alone.
    alone = np.zeros_like(mask)
    alone[70 : 70 + small.shape[0], 60 : 60 + small.shape[1]] = small
    assert out[1].ellipse == fit_ellipse(alone, spacing)
    assert out[1].diameters == feret_diameters(alone, spacing)
    # Size floor on pixels (official v1.0.0 used 200).
    only_big = lesion_measurements(mask, spacing, min_pixel_count=int(small.sum()) + 1)
    assert [m.pixel_count for m in only_big] == [out[0].pixel_count]
    assert lesion_measurements(np.zeros((8, 8), dtype=bool), spacing) == []
