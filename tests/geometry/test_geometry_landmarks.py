import doctest
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from medvision.geometry import landmarks
from medvision.geometry.landmarks import angle_deg, distance_mm


def test_doctests_pass() -> None:
    result = doctest.testmod(landmarks)
    assert result.attempted >= 3
    assert result.failed == 0


def test_distance_known_values() -> None:
    assert distance_mm((0, 0), (3, 4), (1.0, 1.0)) == pytest.approx(5.0)
    # Anisotropic 2D: 3 rows x 2 mm and 4 cols x 0.75 mm -> 6 and 3 mm.
    assert distance_mm((1, 1), (4, 5), (2.0, 0.75)) == pytest.approx(math.hypot(6.0, 3.0))
    # 3D with per-axis zooms.
    assert distance_mm((0, 0, 0), (1, 2, 3), (2.0, 1.0, 0.5)) == pytest.approx(math.sqrt(10.25))
    assert distance_mm((2, 2, 2), (2, 2, 2), (1.0, 1.0, 1.0)) == 0.0


def test_distance_symmetric() -> None:
    p, q, s = (1.5, -2.0, 7.0), (4.0, 3.25, 1.0), (0.8, 0.8, 3.0)
    assert distance_mm(p, q, s) == distance_mm(q, p, s)


def test_angle_known_triangles() -> None:
    assert angle_deg(((0, 0), (0, 1)), ((0, 0), (1, 1)), (1.0, 1.0)) == pytest.approx(45.0)
    assert angle_deg(((0, 0), (1, 0)), ((3, 3), (3, 9)), (1.0, 1.0)) == pytest.approx(90.0)
    # 30-60-90 triangle: (1, sqrt(3)) vs (1, 0).
    assert angle_deg(((0, 0), (1, math.sqrt(3))), ((0, 0), (1, 0)), (1.0, 1.0)) == pytest.approx(
        60.0
    )


def test_angle_uses_spacing() -> None:
    # In index space the diagonal is at 45 deg; with col spacing sqrt(3) it is at 60 deg to rows.
    line_diag = ((0, 0), (1, 1))
    line_rows = ((0, 0), (1, 0))
    assert angle_deg(line_diag, line_rows, (1.0, 1.0)) == pytest.approx(45.0)
    assert angle_deg(line_diag, line_rows, (1.0, math.sqrt(3))) == pytest.approx(60.0)


def test_angle_3d() -> None:
    # v1 = (1, 0, 0), v2 = (1, 1, sqrt(2)) -> cos = 1/2.
    assert angle_deg(
        ((0, 0, 0), (1, 0, 0)), ((0, 0, 0), (1, 1, math.sqrt(2))), (1.0, 1.0, 1.0)
    ) == pytest.approx(60.0)
    # Same geometry with anisotropic zooms folded into the indices.
    assert angle_deg(
        ((0, 0, 0), (2, 0, 0)), ((0, 0, 0), (2, 4, 1)), (0.5, 0.25, math.sqrt(2))
    ) == pytest.approx(60.0)


def test_angle_is_acute_and_unsigned() -> None:
    # 135 deg between directions -> reported 45 (acute, unsigned).
    assert angle_deg(((0, 0), (0, 1)), ((0, 0), (-1, -1)), (1.0, 1.0)) == pytest.approx(45.0)
    # Parallel and anti-parallel -> exactly 0 (cosine clipped to 1).
    assert angle_deg(((0, 0), (3, 7)), ((1, 1), (4, 8)), (0.3, 0.7)) == 0.0
    assert angle_deg(((0, 0), (3, 7)), ((4, 8), (1, 1)), (0.3, 0.7)) == 0.0


def test_zero_length_line_raises() -> None:
    with pytest.raises(ValueError, match="non-degenerate"):
        angle_deg(((1, 1), (1, 1)), ((0, 0), (1, 0)), (1.0, 1.0))


def test_mismatched_dimensions_raise() -> None:
    with pytest.raises(ValueError, match="same length"):
        distance_mm((0, 0), (1, 1, 1), (1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        distance_mm((0, 0), (1, 1), (1.0, 0.0))


coord = st.floats(-100, 100, allow_nan=False)
pt2 = st.tuples(coord, coord)
sp2 = st.tuples(st.floats(0.1, 5.0), st.floats(0.1, 5.0))


@given(a=pt2, b=pt2, c=pt2, d=pt2, s=sp2)
def test_angle_properties(
    a: tuple[float, float],
    b: tuple[float, float],
    c: tuple[float, float],
    d: tuple[float, float],
    s: tuple[float, float],
) -> None:
    v1 = (np.subtract(b, a)) * s
    v2 = (np.subtract(d, c)) * s
    assume(np.linalg.norm(v1) > 1e-3 and np.linalg.norm(v2) > 1e-3)
    ang = angle_deg((a, b), (c, d), s)
    assert 0.0 <= ang <= 90.0
    # Independent oracle: signed angle via atan2, folded to the acute unsigned one.
    theta = abs(math.degrees(math.atan2(v1[0] * v2[1] - v1[1] * v2[0], float(v1 @ v2))))
    assert ang == pytest.approx(min(theta, 180.0 - theta), abs=1e-5)
    # Symmetric in the two lines and in the direction of each line.
    assert angle_deg((c, d), (a, b), s) == pytest.approx(ang, abs=1e-9)
    assert angle_deg((b, a), (c, d), s) == pytest.approx(ang, abs=1e-9)
