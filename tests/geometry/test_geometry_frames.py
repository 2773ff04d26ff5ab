import doctest
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medvision.geometry import frames
from medvision.geometry.frames import (
    box_rc_to_rel,
    box_size_mm,
    box_size_px,
    component_boxes_to_rel,
    points_rc_to_mm,
    points_rc_to_rel,
    rel_to_box_rc,
    rel_to_points_rc,
    rescale_spacing,
)


def test_doctests_pass() -> None:
    result = doctest.testmod(frames)
    assert result.attempted >= 3
    assert result.failed == 0


def test_official_detection_target_hand_computed() -> None:
    # H=100, W=200; box rows 10..29, cols 20..59 (inclusive).
    assert box_rc_to_rel((10, 20, 29, 59), (100, 200)) == pytest.approx((0.1, 0.71, 0.295, 0.9))


def test_full_image_box_has_no_plus_one() -> None:
    # The official target does not add 1 to the inclusive max: the bottom row maps to 1/H.
    h, w = 64, 32
    x0, y0, x1, y1 = box_rc_to_rel((0, 0, h - 1, w - 1), (h, w))
    assert (x0, y0) == (0.0, 1.0 / h)
    assert x1 == pytest.approx((w - 1) / w)
    assert y1 == 1.0


def test_lower_left_origin_and_orientation() -> None:
    # A box touching the top of the image has y1 == 1; one touching the left has x0 == 0.
    x0, y0, _, y1 = box_rc_to_rel((0, 0, 9, 9), (100, 100))
    assert x0 == 0.0 and y1 == 1.0
    assert y0 == pytest.approx(0.91)
    # A box lower in the array is lower in the relative frame.
    assert box_rc_to_rel((80, 0, 89, 9), (100, 100))[1] < y0


def test_box_corners_match_point_conversion() -> None:
    box = (12, 7, 40, 33)
    hw = (50, 60)
    x0, y0, x1, y1 = box_rc_to_rel(box, hw)
    lower_left, upper_right = points_rc_to_rel([(box[2], box[1]), (box[0], box[3])], hw)
    assert lower_left == pytest.approx((x0, y0))
    assert upper_right == pytest.approx((x1, y1))


def test_box_sizes() -> None:
    assert box_size_px((3, 4, 3, 4)) == (1, 1)
    assert box_size_px((10, 20, 29, 59)) == (20, 40)
    assert box_size_mm((10, 20, 29, 59), (0.5, 2.0)) == pytest.approx((10.0, 80.0))


def test_points_to_mm_pairs_row_with_row_spacing() -> None:
    assert points_rc_to_mm([(2, 3), (0.5, 10)], (0.5, 2.0)) == ((1.0, 6.0), (0.25, 20.0))


def test_rescale_spacing_preserves_field_of_view() -> None:
    sr, sc = rescale_spacing((0.8, 1.2), (300, 200), (448, 448))
    assert sr * 448 == pytest.approx(0.8 * 300)
    assert sc * 448 == pytest.approx(1.2 * 200)
    assert rescale_spacing((1.0, 1.0), (10, 10), (10, 10)) == (1.0, 1.0)


@pytest.mark.parametrize(
    ("box", "hw"),
    [
        ((5, 5, 4, 6), (10, 10)),
        ((0, 0, 1), (10, 10)),
        ((0, 0, 1, 1), (0, 10)),
        ((0, 0, 1, 1), (5,)),
    ],
)
def test_malformed_inputs_raise(box: tuple[int, ...], hw: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        box_rc_to_rel(box, hw)


def test_bad_spacing_raises() -> None:
    with pytest.raises(ValueError, match="spacing"):
        box_size_mm((0, 0, 1, 1), (0.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        points_rc_to_mm([(0, 0)], (1.0, math.nan))


hw_st = st.tuples(st.integers(1, 4096), st.integers(1, 4096))


@given(hw=hw_st, data=st.data())
def test_box_roundtrip_rc_rel_rc(hw: tuple[int, int], data: st.DataObject) -> None:
    h, w = hw
    r0 = data.draw(st.integers(0, h - 1))
    r1 = data.draw(st.integers(r0, h - 1))
    c0 = data.draw(st.integers(0, w - 1))
    c1 = data.draw(st.integers(c0, w - 1))
    rel = box_rc_to_rel((r0, c0, r1, c1), hw)
    assert rel[0] <= rel[2] and rel[1] <= rel[3]
    assert all(0.0 <= v <= 1.0 for v in rel)
    back = rel_to_box_rc(rel, hw)
    assert back == pytest.approx((r0, c0, r1, c1), abs=1e-9 * max(h, w))
    # And the other way round: rel -> rc -> rel.
    assert box_rc_to_rel(back, hw) == pytest.approx(rel, abs=1e-12)


@given(
    hw=hw_st,
    pts=st.lists(
        st.tuples(st.floats(-10, 5000, allow_nan=False), st.floats(-10, 5000, allow_nan=False)),
        max_size=8,
    ),
)
def test_points_roundtrip(hw: tuple[int, int], pts: list[tuple[float, float]]) -> None:
    rel = points_rc_to_rel(pts, hw)
    assert len(rel) == len(pts)
    back = rel_to_points_rc(rel, hw)
    for (r, c), (rb, cb) in zip(pts, back, strict=True):
        assert rb == pytest.approx(r, abs=1e-9 * 5000)
        assert cb == pytest.approx(c, abs=1e-9 * 5000)


@given(
    st.lists(
        st.tuples(st.integers(0, 400), st.integers(0, 400), st.integers(0, 50), st.integers(0, 50)),
        max_size=20,
    ),
    st.integers(1, 512),
    st.integers(1, 512),
)
def test_component_boxes_to_rel_equals_box_rc_to_rel(
    corners: list[tuple[int, int, int, int]], h: int, w: int
) -> None:
    boxes = [(r0, c0, r0 + dh, c0 + dw) for r0, c0, dh, dw in corners]
    assert component_boxes_to_rel(boxes, (h, w)) == [box_rc_to_rel(b, (h, w)) for b in boxes]


def test_component_boxes_to_rel_checks_the_size() -> None:
    with pytest.raises(ValueError):
        component_boxes_to_rel([(0, 0, 1, 1)], (0, 5))
