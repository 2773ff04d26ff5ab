import math

import pytest

from medvision.metrics import PROTOCOLS, get_protocol, sample_metrics

OFFICIAL = get_protocol("official")
PAPER = get_protocol("paper-v1")


def test_protocol_presets_match_reference_table() -> None:
    # official-versions.md section 12.
    assert (PAPER.det_sort_corners, PAPER.det_clamp, PAPER.ad_near_zero_gt) == (False, False, None)
    assert (OFFICIAL.det_sort_corners, OFFICIAL.det_clamp, OFFICIAL.ad_near_zero_gt) == (
        True,
        True,
        0.1,
    )
    strict = get_protocol("strict")
    assert (strict.det_sort_corners, strict.det_clamp, strict.ad_near_zero_gt) == (
        True,
        True,
        None,
    )
    for p in PROTOCOLS.values():
        assert p.min_group_size == 50
        assert p.excluded_keys == ("miscellaneous", "others")
        assert p.tumor_lesion_keys == ("tumor", "lesion", "metastatic")
    with pytest.raises(KeyError, match="paper-v1"):
        get_protocol("paper-v2")


def test_detection_success_and_failure() -> None:
    m = sample_metrics("detection", [0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75], OFFICIAL)
    assert m["success"] == 1.0
    assert m["iou"] == pytest.approx(1 / 7)
    assert m["f1"] == pytest.approx(0.25)
    assert m["mae"] == pytest.approx(0.25)
    fail = sample_metrics("detection", None, [0.25, 0.25, 0.75, 0.75], OFFICIAL)
    assert {k: v for k, v in fail.items() if k != "mae"} == {
        "success": 0.0,
        "iou": 0.0,
        "f1": 0.0,
        "precision": 0.0,
        "recall": 0.0,
    }
    assert math.isnan(fail["mae"])
    # The official `len != k` check: three numbers for a box is a failure.
    assert sample_metrics("detection", [0.1, 0.2, 0.3], [0, 0, 1, 1], OFFICIAL)["success"] == 0.0


def test_detection_protocol_switch_changes_inverted_box() -> None:
    pred, target = [0.5, 0.5, 0.2, 0.2], [0.2, 0.2, 0.5, 0.5]
    assert sample_metrics("detection", pred, target, PAPER)["iou"] == 0.0
    assert sample_metrics("detection", pred, target, OFFICIAL)["iou"] == pytest.approx(1.0)


def test_tl_errors_hand_computed() -> None:
    m = sample_metrics("tl", [12.0, 6.0], [10.0, 8.0], OFFICIAL)
    assert m == {"success": 1.0, "mae": 2.0, "mre": pytest.approx((0.2 + 0.25) / 2)}
    fail = sample_metrics("tl", None, [10.0, 8.0], OFFICIAL)
    assert fail["success"] == 0.0 and math.isnan(fail["mae"]) and math.isnan(fail["mre"])


def test_ad_errors_and_zero_target() -> None:
    m = sample_metrics("ad", [30.0], [20.0], PAPER)
    assert m == {"success": 1.0, "mae": 10.0, "mre": 0.5}
    # RE = AE / (t + 1e-15): a zero target gives a huge but finite relative error.
    z = sample_metrics("ad", [1.0], [0.0], PAPER)
    assert z["mre"] == pytest.approx(1e15)
    # t = -1e-15 makes the denominator exactly zero: IEEE inf, as numpy, not an exception.
    assert sample_metrics("ad", [1.0], [-1e-15], PAPER)["mre"] == math.inf


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="unknown task family"):
        sample_metrics("mask", [1.0], [1.0], OFFICIAL)
    with pytest.raises(ValueError, match="tl target must have 2 values"):
        sample_metrics("tl", [1.0, 2.0], [1.0], OFFICIAL)
