"""The medvision-bm 1.2.1 extras, hand-computed: detection Acc@IoU and T/L / A/D nMAE."""

from __future__ import annotations

import math
from typing import Any

import pytest

from medvision.metrics import (
    get_protocol,
    group_metrics,
    records_to_table,
    summarize_ad,
    summarize_detection,
    summarize_run,
    summarize_tl,
)
from medvision.schema import Record
from record_factory import make_record

OFFICIAL = get_protocol("official")
STRICT = get_protocol("strict")
PAPER = get_protocol("paper-v1")
NAN = math.nan


def rec(
    family: str,
    parsed: tuple[float, ...] | None,
    target: tuple[float, ...],
    *,
    label_group: str = "Kidney",
    label_name: str = "kidney",
    label_kind: str = "organ",
    dataset: str = "D",
    metric_type: str = "",
    metric_key: str = "",
    seen_hw: tuple[int, int] = (8, 8),
    seen_spacing_mm_rc: tuple[float, float] = (1.0, 1.0),
) -> Record:
    """A CT axial record; ``image_hw`` is arbitrary (only the seen field of view is read)."""
    return make_record(
        family,
        parsed,
        target,
        dataset=dataset,
        case_id="case",
        plane=2,
        label_name=label_name,
        label_kind=label_kind,
        label_group=label_group,
        modality="CT",
        metric_type=metric_type,
        metric_key=metric_key,
        image_key="img",
        image_hw=(512, 512),
        seen_hw=seen_hw,
        seen_spacing_mm_rc=seen_spacing_mm_rc,
    )


ACC_KEYS = [f"Acc@IoU>={t}" for t in ("0.50", "0.55", "0.60", "0.65", "0.70")] + [
    f"Acc@IoU>={t}" for t in ("0.75", "0.80", "0.85", "0.90", "0.95")
]


def test_protocol_switch() -> None:
    assert OFFICIAL.metrics_extra and STRICT.metrics_extra
    assert not PAPER.metrics_extra
    assert OFFICIAL.switches()["metrics_extra"] is True
    assert PAPER.switches()["metrics_extra"] is False


# --- Acc@IoU ------------------------------------------------------------------------------------


def test_acc_iou_counters_hand_computed() -> None:
    # 7 samples: edges on the 0.05 grid, a failure (IoU 0) and a NaN IoU (degenerate box).
    iou = [0.5, 0.55, 0.5499999, 0.95, 1.0, 0.0, NAN]
    cols: dict[str, list[float]] = {
        "success": [1, 1, 1, 1, 1, 0, 1],
        "mae": [0.1] * 5 + [NAN, 0.1],
        "iou": iou,
        "f1": iou,
        "precision": iou,
        "recall": iou,
    }
    m = group_metrics("detection", cols, extra=True)
    n = 7
    assert m["Acc@IoU>=0.50"] == pytest.approx(5 / n)
    assert m["Acc@IoU>=0.55"] == pytest.approx(3 / n)  # 0.5499999 misses, 0.55 hits
    for key in ACC_KEYS[2:]:
        assert m[key] == pytest.approx(2 / n), key  # 0.95 and 1.0
    assert m["Acc@IoU[0.50:0.95]"] == pytest.approx((5 + 3 + 8 * 2) / n / 10)
    # Acc@IoU>=0.50 is the existing IoU>0.5 point.
    assert m["Acc@IoU>=0.50"] == m["IoU>0.5"]
    assert not any(k.startswith("Acc@") for k in group_metrics("detection", cols))


T = (0.2, 0.2, 0.6, 0.6)


def test_acc_iou_in_detection_summary_and_split() -> None:
    # IoUs: 1.0, 0.75 ((0.4*0.3)/0.16), 0.0 (disjoint), 0.0 (failure).
    recs = [
        rec("detection", T, T, label_group="Kidney"),
        rec("detection", (0.2, 0.2, 0.6, 0.5), T, label_group="Kidney"),
        rec("detection", (0.7, 0.7, 0.9, 0.9), T, label_group="Kidney"),
        rec("detection", None, T, label_group="Kidney"),
    ]
    g = summarize_detection(recs, OFFICIAL)["groups"]["Kidney @ CT (A)"]
    for key in ACC_KEYS[:6]:  # 0.50 ... 0.75
        assert g[key] == pytest.approx(2 / 4), key
    for key in ACC_KEYS[6:]:  # 0.80 ... 0.95
        assert g[key] == pytest.approx(1 / 4), key
    assert g["Acc@IoU[0.50:0.95]"] == pytest.approx((6 * 2 + 4 * 1) / 4 / 10)
    paper = summarize_detection(recs, PAPER)["groups"]["Kidney @ CT (A)"]
    assert not any(k.startswith("Acc@") for k in paper)

    # Anatomy mean: sample-weighted over groups (50 exact; 100 half exact, half disjoint).
    many = [rec("detection", T, T, label_group="Kidney") for _ in range(50)]
    many += [
        rec("detection", T if i % 2 else (0.7, 0.7, 0.9, 0.9), T, label_group="Liver")
        for i in range(100)
    ]
    mean = summarize_detection(many, OFFICIAL)["anatomy"]["mean_metrics"]
    assert mean["Acc@IoU>=0.95"] == pytest.approx((50 * 1.0 + 100 * 0.5) / 150)
    assert mean["Acc@IoU[0.50:0.95]"] == pytest.approx(2 / 3)


# --- nMAE ----------------------------------------------------------------------------------------


def _tl(parsed: tuple[float, float] | None, target: tuple[float, float], **kw: Any) -> Record:
    return rec("tl", parsed, target, metric_type="axes", label_kind="tumour", **kw)


def test_records_to_table_diagonal_from_the_seen_field_of_view() -> None:
    table = records_to_table(
        [
            _tl((1.0, 1.0), (1.0, 1.0), seen_hw=(300, 400), seen_spacing_mm_rc=(0.5, 0.5)),
            # The same field of view resized: 150 x 200 px at 1 mm.
            _tl((1.0, 1.0), (1.0, 1.0), seen_hw=(150, 200), seen_spacing_mm_rc=(1.0, 1.0)),
            _tl((1.0, 1.0), (1.0, 1.0), seen_hw=(3, 4), seen_spacing_mm_rc=(2.0, 0.5)),
        ]
    )
    diag = table.column("diag_mm").to_pylist()
    assert diag[0] == pytest.approx(250.0) and diag[1] == pytest.approx(250.0)
    assert diag[2] == pytest.approx(math.sqrt(6.0**2 + 2.0**2))


def test_tl_nmae_groups_and_model_line_hand_computed() -> None:
    recs = [
        # Label a: diagonals 250 and 100 mm, MAEs 5 and 5 -> 0.02 and 0.05; a failure.
        _tl((35.0, 15.0), (30.0, 20.0), label_name="a", seen_hw=(300, 400),
            seen_spacing_mm_rc=(0.5, 0.5)),
        _tl((30.0, 30.0), (30.0, 20.0), label_name="a", seen_hw=(60, 80)),
        _tl(None, (30.0, 20.0), label_name="a", seen_hw=(60, 80)),
        # Label b: diagonal 50 mm, MAE 1 -> 0.02.
        _tl((10.0, 10.0), (10.0, 12.0), label_name="b", seen_hw=(3, 4),
            seen_spacing_mm_rc=(10.0, 10.0)),
        # Label c: every sample failed -> NaN, dropped from the model line.
        _tl(None, (10.0, 12.0), label_name="c"),
    ]  # fmt: skip
    s = summarize_tl(recs, OFFICIAL)
    assert s["groups"]["a @ CT (A)"]["avgNMAE"] == pytest.approx((0.02 + 0.05) / 2)
    assert s["groups"]["b @ CT (A)"]["avgNMAE"] == pytest.approx(0.02)
    assert math.isnan(s["groups"]["c @ CT (A)"]["avgNMAE"])
    # Model line: weighted by each label's num_samples (failures included), NaN skipped.
    assert s["model"]["nMAE"] == pytest.approx((3 * 0.035 + 1 * 0.02) / 4)
    assert s["all"]["avgNMAE"] == pytest.approx((0.02 + 0.05 + 0.02) / 3)
    paper = summarize_tl(recs, PAPER)
    assert "nMAE" not in paper["model"]
    assert "avgNMAE" not in paper["groups"]["a @ CT (A)"]


def _ad(parsed: float | None, target: float, key: str, **kw: Any) -> Record:
    return rec(
        "ad",
        None if parsed is None else (parsed,),
        (target,),
        metric_key=key,
        label_kind="landmark",
        seen_hw=(60, 80),  # 100 mm diagonal at 1 mm
        **kw,
    )


def test_ad_nmae_distance_only_hand_computed() -> None:
    recs = [
        _ad(12.0, 10.0, "BPD", dataset="FeTA24", metric_type="distance"),  # 2/100
        _ad(9.0, 10.0, "BPD", dataset="FeTA24", metric_type="distance"),  # 1/100
        _ad(None, 10.0, "BPD", dataset="FeTA24", metric_type="distance"),
        _ad(22.0, 20.0, "SNA", dataset="Ceph-Biometrics-400", metric_type="angle"),
    ]
    s = summarize_ad(recs, STRICT)
    assert s["labels"]["FeTA24_distance_BPD"]["avgNMAE"] == pytest.approx(0.015)
    # An angle has no physical scale: no nMAE.
    assert math.isnan(s["labels"]["Ceph-Biometrics-400_angle_SNA"]["avgNMAE"])
    # Model line and group averages skip NaN labels in both sums.
    assert s["model"]["nMAE"] == pytest.approx(0.015)
    assert s["groups"]["FeTA-Distance"]["nMAE"] == pytest.approx(0.015)
    assert s["groups"]["Distance"]["nMAE"] == pytest.approx(0.015)
    assert math.isnan(s["groups"]["Ceph-Angle"]["nMAE"])
    paper = summarize_ad(recs, PAPER)
    assert "nMAE" not in paper["model"] and "nMAE" not in paper["groups"]["Distance"]


def test_summarize_run_writes_nan_extras_as_none() -> None:
    s = summarize_run([_tl(None, (3.0, 2.0))], OFFICIAL)
    assert s["tl"]["model"]["nMAE"] is None
    assert s["tl"]["groups"]["kidney @ CT (A)"]["avgNMAE"] is None
