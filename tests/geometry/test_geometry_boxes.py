from collections import Counter

import numpy as np
import pytest
from skimage import measure

from medvision.geometry import boxes as boxes_mod
from medvision.geometry.boxes import ComponentBox, boxes_from_label_slice, single_instance


def _hand_built() -> np.ndarray:
    lab = np.zeros((20, 30), dtype=np.uint16)
    lab[2:6, 3:9] = 1  # 4 x 6 = 24 px
    lab[10:12, 20:22] = 1  # 2 x 2 = 4 px
    lab[15, 0] = 1  # touches the previous? no: isolated single pixel
    # Label 2: an L shape, one component.
    lab[8:14, 2] = 2
    lab[13, 2:7] = 2
    # Label 3: two pixels touching only diagonally -> two 4-connected components.
    lab[0, 25] = 3
    lab[1, 26] = 3
    # Label 4 touches label 1 directly: still its own component.
    lab[2:6, 9] = 4
    return lab


def test_hand_built_components_and_boxes() -> None:
    out = boxes_from_label_slice(_hand_built(), (0.5, 2.0))
    assert sorted(out) == [1, 2, 3, 4]

    b1 = out[1]
    assert [b.pixel_count for b in b1] == [24, 4, 1]  # largest first
    assert b1[0].box_rc == (2, 3, 5, 8)
    assert b1[0].size_px == (4, 6)
    assert b1[0].size_mm == pytest.approx((2.0, 12.0))
    assert b1[0].mask_image_ratio == pytest.approx(24 / 600)
    assert b1[1].box_rc == (10, 20, 11, 21)
    assert b1[2].box_rc == (15, 0, 15, 0)
    assert b1[2].size_px == (1, 1)

    (b2,) = out[2]
    assert b2.box_rc == (8, 2, 13, 6)
    assert b2.pixel_count == 6 + 4

    b3 = out[3]
    assert [b.box_rc for b in b3] == [(0, 25, 0, 25), (1, 26, 1, 26)]  # tie: raster order

    (b4,) = out[4]
    assert b4.box_rc == (2, 9, 5, 9) and b4.label == 4


def test_requested_labels() -> None:
    lab = _hand_built()
    out = boxes_from_label_slice(lab, (1.0, 1.0), labels=[2, 7])
    assert sorted(out) == [2, 7]
    assert out[7] == []
    assert len(out[2]) == 1
    with pytest.raises(ValueError, match="positive"):
        boxes_from_label_slice(lab, (1.0, 1.0), labels=[0])


def test_bool_mask_is_label_one() -> None:
    mask = np.zeros((5, 5), dtype=bool)
    mask[1:3, 1:4] = True
    out = boxes_from_label_slice(mask, (1.0, 1.0))
    assert list(out) == [1]
    assert out[1][0].box_rc == (1, 1, 2, 3)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 4), dtype=np.float32),
        np.zeros((2, 4, 4), dtype=np.uint8),
        -np.ones((3, 3), int),
    ],
)
def test_bad_inputs_raise(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        boxes_from_label_slice(bad, (1.0, 1.0))


def _random_labels(rng: np.random.Generator, shape: tuple[int, int], n_labels: int) -> np.ndarray:
    # Blobby random labels: threshold smoothed noise per label so components vary in size.
    lab = np.zeros(shape, dtype=np.int32)
    for value in range(1, n_labels + 1):
        noise = rng.random(shape)
        lab[noise < 0.08] = value
    return lab


@pytest.mark.parametrize("seed", range(6))
def test_matches_skimage_regionprops(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(5, 60)), int(rng.integers(5, 60)))
    lab = _random_labels(rng, shape, int(rng.integers(1, 6)))
    spacing = (0.7, 1.3)
    out = boxes_from_label_slice(lab, spacing)
    present = sorted(int(v) for v in np.unique(lab) if v != 0)
    assert sorted(out) == present
    for value in present:
        comp = measure.label(lab == value, connectivity=1)
        expected = Counter(
            ((p.bbox[0], p.bbox[1], p.bbox[2] - 1, p.bbox[3] - 1), int(p.area))
            for p in measure.regionprops(comp)
        )
        got = Counter((b.box_rc, b.pixel_count) for b in out[value])
        assert got == expected
        counts = [b.pixel_count for b in out[value]]
        assert counts == sorted(counts, reverse=True)
        for b in out[value]:
            h, w = b.box_rc[2] - b.box_rc[0] + 1, b.box_rc[3] - b.box_rc[1] + 1
            assert b.size_px == (h, w)
            assert b.size_mm == pytest.approx((h * 0.7, w * 1.3))


@pytest.mark.parametrize("seed", range(4))
def test_cropped_and_global_paths_agree(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(100 + seed)
    lab = _random_labels(rng, (80, 70), 5)
    monkeypatch.setattr(boxes_mod, "_GLOBAL_PATH_AREA_RATIO", float("inf"))
    cropped = boxes_from_label_slice(lab, (1.0, 0.5))
    monkeypatch.setattr(boxes_mod, "_GLOBAL_PATH_AREA_RATIO", -1.0)
    global_ = boxes_from_label_slice(lab, (1.0, 0.5))
    assert cropped == global_
    # Requested labels too (including an absent one).
    assert boxes_from_label_slice(lab, (1.0, 0.5), labels=[3, 9]) == {3: cropped[3], 9: []}


def _box(side_h: int, side_w: int) -> ComponentBox:
    return ComponentBox(
        1, (0, 0, side_h - 1, side_w - 1), side_h * side_w, (side_h, side_w), (1.0, 1.0), 0.1
    )


def test_single_instance_filter() -> None:
    assert single_instance([]) is None
    assert single_instance([_box(20, 20), _box(12, 12)]) is None
    assert single_instance([_box(9, 30)]) is None
    assert single_instance([_box(30, 9)]) is None
    ok = _box(10, 10)
    assert single_instance([ok]) is ok
    assert single_instance([_box(5, 5)], min_side_px=5) is not None
