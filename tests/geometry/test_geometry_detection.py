import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medvision.geometry.detection import BoxScores, score_box, score_boxes

SWITCHES = [(False, False), (True, False), (False, True), (True, True)]


def test_partial_overlap_hand_computed() -> None:
    # I = 0.25 * 0.25, Ap = At = 0.25, union = 0.4375.
    s = score_box([0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75])
    assert s.iou == pytest.approx(0.0625 / 0.4375)
    assert s.f1 == pytest.approx(0.25)
    assert s.precision == pytest.approx(0.25)
    assert s.recall == pytest.approx(0.25)
    assert s.mae == pytest.approx(0.25)


def test_prediction_containing_target() -> None:
    s = score_box([0.0, 0.0, 1.0, 1.0], [0.25, 0.25, 0.75, 0.75])
    assert s.iou == pytest.approx(0.25)
    assert s.precision == pytest.approx(0.25)
    assert s.recall == pytest.approx(1.0)
    assert s.f1 == pytest.approx(2 * 0.25 / 1.25)


def test_identical_boxes_score_one() -> None:
    b = [0.1, 0.2, 0.7, 0.9]
    assert score_box(b, b) == BoxScores(1.0, 1.0, 1.0, 1.0, 0.0)


@pytest.mark.parametrize("pred", [[0.5, 0.5, 0.2, 0.2], [0.2, 0.5, 0.5, 0.2]])
def test_inverted_corners_official_example(pred: list[float]) -> None:
    # official-versions.md section 2: OLD scores these 0, 1.2.1 (sorted corners) scores 1.
    target = [0.2, 0.2, 0.5, 0.5]
    old = score_box(pred, target)
    new = score_box(pred, target, sort_corners=True, clamp=True)
    assert (old.iou, old.f1, old.precision, old.recall) == (0.0, 0.0, 0.0, 0.0)
    assert new.iou == pytest.approx(1.0)
    assert new.f1 == pytest.approx(1.0)
    # MAE always on the raw order.
    expected_mae = sum(abs(p - t) for p, t in zip(pred, target, strict=True)) / 4
    assert old.mae == pytest.approx(expected_mae)
    assert new.mae == pytest.approx(expected_mae)


def test_degenerate_and_touching_boxes_score_zero() -> None:
    target = [0.2, 0.2, 0.6, 0.6]
    for pred in ([0.3, 0.3, 0.3, 0.5], [0.3, 0.4, 0.5, 0.4], [0.6, 0.2, 0.9, 0.6]):
        for sort_corners, clamp in SWITCHES:
            s = score_box(pred, target, sort_corners=sort_corners, clamp=clamp)
            assert (s.iou, s.f1, s.precision, s.recall) == (0.0, 0.0, 0.0, 0.0)


def test_infinite_prediction_as_numpy() -> None:
    s = score_box([-math.inf, -math.inf, math.inf, math.inf], [0.2, 0.2, 0.5, 0.5])
    assert (s.iou, s.f1, s.precision, s.recall) == (0.0, 0.0, 0.0, 1.0)
    assert s.mae == math.inf


def test_wrong_length_raises() -> None:
    with pytest.raises(ValueError, match="pred_rel"):
        score_box([0.1, 0.2, 0.3], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        score_boxes(np.zeros((3, 3)), np.zeros((3, 3)))


def _grid_oracle(p: list[float], t: list[float]) -> tuple[float, float, float, float]:
    """IoU/F1/P/R of sorted boxes with coordinates on a 1/20 grid, by counting cells."""
    n = 20
    yy, xx = np.mgrid[0:n, 0:n]
    cx, cy = (xx + 0.5) / n, (yy + 0.5) / n

    def mask(b: list[float]) -> np.ndarray:
        x0, x1 = sorted((b[0], b[2]))
        y0, y1 = sorted((b[1], b[3]))
        return np.asarray((cx > x0) & (cx < x1) & (cy > y0) & (cy < y1))

    mp, mt = mask(p), mask(t)
    inter = float((mp & mt).sum())
    ap, at = float(mp.sum()), float(mt.sum())
    if inter == 0:
        return (0.0, 0.0, 0.0, 0.0)
    return (inter / (ap + at - inter), 2 * inter / (ap + at), inter / ap, inter / at)


grid = st.integers(0, 20).map(lambda i: i / 20)


@settings(max_examples=300, deadline=None)
@given(st.lists(grid, min_size=4, max_size=4), st.lists(grid, min_size=4, max_size=4))
def test_sorted_scores_match_cell_counting(p: list[float], t: list[float]) -> None:
    s = score_box(p, t, sort_corners=True)
    assert (s.iou, s.f1, s.precision, s.recall) == pytest.approx(_grid_oracle(p, t), abs=1e-12)


def _random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Boxes with inverted, degenerate, shared and out-of-range coordinates mixed in."""
    b = rng.choice(np.linspace(-0.2, 1.2, 15), size=(n, 4))
    cont = rng.random((n, 4))
    use_cont = rng.random(n) < 0.5
    b[use_cont] = cont[use_cont]
    degenerate = rng.random(n) < 0.1
    b[degenerate, 2] = b[degenerate, 0]
    return b


@pytest.mark.parametrize(("sort_corners", "clamp"), SWITCHES)
def test_vectorised_equals_scalar(sort_corners: bool, clamp: bool) -> None:
    rng = np.random.default_rng(7)
    pred = _random_boxes(rng, 3000)
    target = _random_boxes(rng, 3000)
    # Identical pairs and a few non-finite predictions too.
    target[:200] = pred[:200]
    pred[200:210, 2] = np.inf
    pred[210:215, 0] = -np.inf
    vec = score_boxes(pred, target, sort_corners=sort_corners, clamp=clamp)
    for i in range(len(pred)):
        s = score_box(pred[i], target[i], sort_corners=sort_corners, clamp=clamp)
        for key in ("iou", "f1", "precision", "recall", "mae"):
            a, b = getattr(s, key), float(vec[key][i])
            assert (math.isnan(a) and math.isnan(b)) or a == b, (i, key, a, b)
    assert {k: v.shape for k, v in vec.items()} == {
        k: (3000,) for k in ("iou", "f1", "precision", "recall", "mae")
    }


def test_clamp_caps_and_keeps_results_in_unit_range() -> None:
    rng = np.random.default_rng(3)
    pred, target = _random_boxes(rng, 2000), _random_boxes(rng, 2000)
    raw = score_boxes(pred, target, sort_corners=True)
    capped = score_boxes(pred, target, sort_corners=True, clamp=True)
    for key in ("iou", "f1", "precision", "recall"):
        assert np.all(capped[key] <= 1.0)
        np.testing.assert_array_equal(capped[key], np.minimum(raw[key], 1.0))
