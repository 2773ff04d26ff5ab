import json
import math
from collections import defaultdict
from typing import Any

import numpy as np
import pytest

from medvision.metrics import (
    get_protocol,
    group_metrics,
    records_to_table,
    sample_metrics,
    score_columns,
    summarize_ad,
    summarize_detection,
    summarize_run,
    summarize_tl,
)
from medvision.schema import Record
from record_factory import make_record

OFFICIAL = get_protocol("official")
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
    modality: str = "CT",
    plane: int = 2,
    dataset: str = "D",
    metric_type: str = "",
    metric_key: str = "",
    seen_hw: tuple[int, int] = (8, 8),
    seen_spacing_mm_rc: tuple[float, float] = (1.0, 1.0),
) -> Record:
    return make_record(
        family,
        parsed,
        target,
        dataset=dataset,
        case_id="case",
        plane=plane,
        label_name=label_name,
        label_kind=label_kind,
        label_group=label_group,
        modality=modality,
        metric_type=metric_type,
        metric_key=metric_key,
        image_key="img",
        image_hw=(8, 8),
        seen_hw=seen_hw,
        seen_spacing_mm_rc=seen_spacing_mm_rc,
    )


# --- group counters, hand-computed -------------------------------------------------------------


def test_detection_counters_hand_computed() -> None:
    cols: dict[str, list[float]] = {
        "success": [1, 1, 0, 1, 1],
        "iou": [0.5, 0.49999, 0.0, 0.9, 0.2],
        "f1": [0.6, 0.5, 0.0, 0.95, NAN],
        "precision": [0.7, 0.5, 0.0, 1.0, 0.2],
        "recall": [0.9, 0.5, 0.0, 0.9, 0.2],
        "mae": [0.05, 0.15, NAN, 1.7, math.inf],
    }
    m = group_metrics("detection", cols)
    assert m["num_samples"] == 5
    assert m["SuccessRate"] == pytest.approx(4 / 5)
    # Failures count as 0 in the overlap means; NaN F1 is skipped.
    assert m["IoU"] == pytest.approx((0.5 + 0.49999 + 0 + 0.9 + 0.2) / 5)
    assert m["F1"] == pytest.approx((0.6 + 0.5 + 0 + 0.95) / 4)
    # ">" in the name, ">=" in the test, all samples in the denominator.
    assert m["IoU>0.5"] == pytest.approx(2 / 5)
    assert m["IoU>0.9"] == pytest.approx(1 / 5)
    assert m["Precision>0.9"] == pytest.approx(1 / 5)
    # MAE: NaN and inf dropped from the mean and the bins, but counted in N.
    assert m["avgMAE"] == pytest.approx((0.05 + 0.15 + 1.7) / 3)
    assert m["MAE<0.1"] == pytest.approx(1 / 5)
    assert m["MAE<0.2"] == pytest.approx(2 / 5)
    assert m["MAE<0.9"] == pytest.approx(2 / 5)
    # Bin 9 absorbs 1.7: "<1.0" holds every finite value.
    assert m["MAE<1.0"] == pytest.approx(3 / 5)


def test_error_bins_edges_and_negative_quirk() -> None:
    mre = [0.1, 0.3, 0.29999, 0.0, 2.5, -0.05, -0.15, NAN]
    m = group_metrics("ad", {"success": [1] * 7 + [0], "mae": [1.0] * 7 + [NAN], "mre": mre})
    n = 8
    # int(0.1*10) = 1: exactly 0.1 is not "<0.1"; -0.05 truncates to bin 0.
    assert m["MRE<0.1"] == pytest.approx(2 / n)
    assert m["MRE<0.2"] == pytest.approx(3 / n)
    assert m["MRE<0.3"] == pytest.approx(4 / n)  # + 0.29999; 0.3 itself is bin 3
    assert m["MRE<0.4"] == pytest.approx(5 / n)
    # -0.15 -> int(-1.5) = -1 -> Python's list[-1] is bin 9; 2.5 -> bin 9 as well.
    assert m["MRE<0.9"] == pytest.approx(5 / n)
    assert m["MRE<1.0"] == pytest.approx(7 / n)
    with pytest.raises(ValueError, match=r"below -1\.0"):
        group_metrics("ad", {"success": [1], "mae": [1.0], "mre": [-2.0]})


def test_empty_group() -> None:
    m = group_metrics("tl", {"success": [], "mae": [], "mre": []})
    assert m["num_samples"] == 0 and m["SuccessRate"] == 0.0 and math.isnan(m["avgMRE"])


# --- detection summary --------------------------------------------------------------------------

T = (0.2, 0.2, 0.6, 0.6)
EXACT = T
DISJOINT = (0.7, 0.7, 0.9, 0.9)


def _det(n: int, parsed: tuple[float, ...] | None, **kw: Any) -> list[Record]:
    return [rec("detection", parsed, T, **kw) for _ in range(n)]


def test_detection_grouping_exclusions_and_weighting() -> None:
    records = (
        _det(30, EXACT, label_group="Kidney")
        + _det(30, DISJOINT, label_group="Kidney")
        + _det(50, None, label_group="Liver")
        + _det(49, EXACT, label_group="Spleen")  # N < 50: excluded
        + _det(100, EXACT, label_group="Others")  # excluded key word
        + _det(50, DISJOINT, label_group="Kidney Tumor/Lesion")
        + _det(40, EXACT, label_group="Mass", label_kind="tumour")
        + _det(10, DISJOINT, label_group="Mass", label_kind="organ")
        + _det(60, EXACT, label_group="Kidney", modality="MRI", plane=0)
    )
    s = summarize_detection(records, OFFICIAL)
    assert set(s["groups"]) == {
        "Kidney @ CT (A)",
        "Liver @ CT (A)",
        "Spleen @ CT (A)",
        "Others @ CT (A)",
        "Kidney Tumor/Lesion @ CT (A)",
        "Mass @ CT (A)",
        "Kidney @ MR (S)",
    }
    assert set(s["excluded"]) == {"Spleen @ CT (A)", "Others @ CT (A)"}
    assert s["anatomy"]["regions"] == ["Kidney @ CT (A)", "Kidney @ MR (S)", "Liver @ CT (A)"]
    # "Mass" is T/L through label_kind although its key has no tumour word.
    assert s["tumor_lesion"]["regions"] == ["Kidney Tumor/Lesion @ CT (A)", "Mass @ CT (A)"]
    g = s["groups"]["Kidney @ CT (A)"]
    assert (g["IoU"], g["SuccessRate"], g["IoU>0.5"], g["num_samples"]) == (0.5, 1.0, 0.5, 60)
    an = s["anatomy"]["mean_metrics"]
    # Sample-weighted: (60*0.5 + 60*1 + 50*0) / 170; Liver's NaN avgMAE is skipped.
    assert an["IoU"] == pytest.approx((60 * 0.5 + 60 * 1.0) / 170)
    assert an["SuccessRate"] == pytest.approx(120 / 170)
    # DISJOINT vs T: |0.7-0.2|, |0.7-0.2|, |0.9-0.6|, |0.9-0.6| -> MAE 0.4.
    kidney_ct_mae = (30 * 0.0 + 30 * 0.4) / 60
    assert an["avgMAE"] == pytest.approx((60 * kidney_ct_mae + 60 * 0.0) / 120)
    assert (an["total_samples"], an["num_regions"]) == (170, 3)
    tl = s["tumor_lesion"]["mean_metrics"]
    assert tl["IoU"] == pytest.approx(40 / 100)
    assert s["all"]["num_samples"] == len(records)
    assert s["labels"]["kidney @ CT (A)"]["num_samples"] == 60 + 50 + 49 + 100 + 50 + 50


def test_detection_modality_codes_and_bad_plane() -> None:
    recs = [
        rec("detection", EXACT, T, modality="ultrasound", plane=1),
        rec("detection", EXACT, T, modality="X-ray", plane=2),
        rec("detection", EXACT, T, modality="PET", plane=0),
    ]
    assert set(summarize_detection(recs, OFFICIAL)["groups"]) == {
        "Kidney @ US (C)",
        "Kidney @ XR (A)",
        "Kidney @ PET (S)",
    }
    with pytest.raises(ValueError, match="plane must be 0, 1 or 2"):
        summarize_detection([rec("detection", EXACT, T, plane=3)], OFFICIAL)


def test_detection_protocol_sorting_reaches_aggregate() -> None:
    recs = [rec("detection", (0.6, 0.6, 0.2, 0.2), T)]
    assert summarize_detection(recs, PAPER)["all"]["IoU"] == 0.0
    assert summarize_detection(recs, OFFICIAL)["all"]["IoU"] == pytest.approx(1.0)


# --- T/L summary ----------------------------------------------------------------------------------


def test_tl_all_failed_label_dropped_and_reported() -> None:
    recs = [
        rec("tl", (12.0, 6.0), (10.0, 8.0), label_name="liver tumor"),
        rec("tl", (10.0, 9.0), (10.0, 10.0), label_name="liver tumor"),
        *[rec("tl", None, (5.0, 4.0), label_name="kidney tumor") for _ in range(3)],
    ]
    s = summarize_tl(recs, OFFICIAL)
    assert s["dropped_all_failed"] == ["kidney tumor @ CT (A)"]
    liver = s["groups"]["liver tumor @ CT (A)"]
    assert liver["avgMAE"] == pytest.approx((2.0 + 0.5) / 2)
    assert liver["avgMRE"] == pytest.approx(((0.2 + 0.25) / 2 + (0.0 + 0.1) / 2) / 2)
    # Official quirk: SR over kept labels only is 1.0; with the failed label it is 2/5.
    assert s["model"]["SR"] == 1.0
    assert s["model"]["num_samples"] == 2
    assert s["SR_all_groups"] == pytest.approx(2 / 5)
    assert s["model"]["MRE<0.1"] == pytest.approx(0.5)  # 0.05 < 0.1, 0.225 not
    assert s["model"]["MRE<0.3"] == pytest.approx(1.0)


def test_tl_model_line_weights_by_samples() -> None:
    recs = [rec("tl", (11.0, 10.0), (10.0, 10.0), label_name="a") for _ in range(3)] + [
        rec("tl", (14.0, 10.0), (10.0, 10.0), label_name="b")
    ]
    s = summarize_tl(recs, OFFICIAL)
    assert s["model"]["MAE"] == pytest.approx((3 * 0.5 + 1 * 2.0) / 4)
    assert s["model"]["MRE"] == pytest.approx((3 * 0.05 + 1 * 0.2) / 4)


# --- A/D summary ----------------------------------------------------------------------------------


def _ad(parsed: float | None, target: float, key: str, **kw: Any) -> Record:
    kw.setdefault("dataset", "Ceph-Biometrics-400")
    kw.setdefault("metric_type", "angle")
    return rec(
        "ad",
        None if parsed is None else (parsed,),
        (target,),
        metric_key=key,
        label_kind="landmark",
        **kw,
    )


def test_ad_denominator_quirk_and_group_averages() -> None:
    recs = [
        _ad(22.0, 20.0, "SNA"),
        _ad(16.0, 20.0, "SNA"),
        _ad(None, 20.0, "SNA"),
        _ad(None, 20.0, "SNA"),
        *[_ad(None, 30.0, "SNB") for _ in range(6)],
        _ad(12.0, 10.0, "BPD", dataset="FeTA24", metric_type="distance", plane=0),
        _ad(9.0, 10.0, "BPD", dataset="FeTA24", metric_type="distance", plane=1),
    ]
    s = summarize_ad(recs, PAPER)
    sna = s["labels"]["Ceph-Biometrics-400_angle_SNA"]
    assert (sna["avgMAE"], sna["SuccessRate"], sna["num_samples"]) == (3.0, 0.5, 4)
    # Planes are pooled per metric key.
    assert s["labels"]["FeTA24_distance_BPD"]["num_samples"] == 2
    assert s["labels_all_failed"] == ["Ceph-Biometrics-400_angle_SNB"]
    # Numerator skips the NaN label, denominator counts its 6 samples.
    assert s["model"]["MAE"] == pytest.approx((4 * 3.0 + 2 * 1.5) / 12)
    assert s["model"]["SR"] == pytest.approx((4 * 0.5 + 2 * 1.0) / 12)
    # Group averages skip NaN in both sums.
    assert s["groups"]["Ceph-Angle"]["MAE"] == pytest.approx(3.0)
    assert s["groups"]["Ceph-Angle"]["SR"] == pytest.approx((4 * 0.5) / 10)
    assert s["groups"]["Ceph-Angle"]["samples"] == 10
    assert s["groups"]["FeTA-Distance"]["MAE"] == pytest.approx(1.5)
    assert s["groups"]["Distance"]["samples"] == 2


def test_ad_near_zero_exclusion_only_when_protocol_sets_it() -> None:
    recs = [_ad(1.0, 0.05, "L-1-2", metric_type="distance"), _ad(11.0, 10.0, "L-1-2")]
    official = summarize_ad(recs, OFFICIAL)
    paper = summarize_ad(recs, PAPER)
    strict = summarize_ad(recs, get_protocol("strict"))
    assert official["near_zero_excluded"] == 1
    assert sum(m["num_samples"] for m in official["labels"].values()) == 1
    assert sum(m["num_samples"] for m in paper["labels"].values()) == 2
    assert strict["near_zero_excluded"] == 0


# --- run summary ----------------------------------------------------------------------------------


def test_summarize_run_is_strict_json_and_counts_statuses() -> None:
    recs = [
        rec("detection", EXACT, T),
        rec("detection", None, T),
        rec("tl", None, (3.0, 2.0)),
        _ad(None, 20.0, "SNA"),
    ]
    s = summarize_run(recs, OFFICIAL)
    text = json.dumps(s, allow_nan=False)  # NaN became None
    assert json.loads(text)["status_counts"] == {"no_answer": 3, "ok": 1}
    assert s["status_counts_by_family"]["detection"] == {"no_answer": 1, "ok": 1}
    assert s["tl"]["model"]["MAE"] is None
    assert s["protocol"]["name"] == "official"
    assert s["num_records"] == 4
    assert set(s) >= {"detection", "tl", "ad"}
    only_det = summarize_run(recs[:2], OFFICIAL)
    assert "tl" not in only_det and "ad" not in only_det


# --- vectorised path equals a naive per-record loop ----------------------------------------------


ACC_T = [0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95]


def _naive_counters(
    family: str, metrics: list[dict[str, float]], extra: bool = False
) -> dict[str, float]:
    """The official counter loop, written per record as the official summarizers do."""
    n = len(metrics)
    out: dict[str, float] = {"num_samples": n}
    sums: dict[str, float] = defaultdict(float)
    cnts: dict[str, int] = defaultdict(int)
    bins = [0] * 10
    thr = {name: [0] * 5 for name in ("IoU", "F1", "Precision", "Recall")}
    success = 0
    binned = "mae" if family == "detection" else "mre"
    names = {"iou": "IoU", "f1": "F1", "precision": "Precision", "recall": "Recall"}
    for m in metrics:
        success += int(m["success"])
        for key, value in m.items():
            if key == "success" or not np.isfinite(value):
                continue
            sums[key] += value
            cnts[key] += 1
            if key == binned:
                bins[min(int(value * 10), 9)] += 1
            if key in names:
                for i, t in enumerate([0.5, 0.6, 0.7, 0.8, 0.9]):
                    if value >= t:
                        thr[names[key]][i] += 1
    out["SuccessRate"] = success / n
    out["avgMAE"] = sums["mae"] / cnts["mae"] if cnts["mae"] else NAN
    if family == "detection":
        for key, name in names.items():
            out[name] = sums[key] / cnts[key] if cnts[key] else NAN
            for i, t in enumerate([0.5, 0.6, 0.7, 0.8, 0.9]):
                out[f"{name}>{t:.1f}"] = thr[name][i] / n
        prefix = "MAE"
    else:
        out["avgMRE"] = sums["mre"] / cnts["mre"] if cnts["mre"] else NAN
        prefix = "MRE"
    for k in range(1, 11):
        out[f"{prefix}<{k / 10:.1f}"] = sum(bins[:k]) / n
    if extra and family == "detection":
        accs = [sum(1 for m in metrics if m["iou"] >= t) / n for t in ACC_T]
        for t, a in zip(ACC_T, accs, strict=True):
            out[f"Acc@IoU>={t:.2f}"] = a
        out["Acc@IoU[0.50:0.95]"] = sum(accs) / len(accs)
    elif extra:
        out["avgNMAE"] = sums["nmae"] / cnts["nmae"] if cnts["nmae"] else NAN
    return out


def _random_records(seed: int, n: int) -> list[Record]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        fam = ("detection", "tl", "ad")[i % 3]
        fail = rng.random() < 0.25
        kw: dict[str, Any] = {
            "modality": str(rng.choice(["CT", "MRI", "ultrasound"])),
            "plane": int(rng.integers(0, 3)),
            "label_group": str(rng.choice(["Kidney", "Liver Tumor/Lesion", "Others"])),
            "label_name": str(rng.choice(["a", "b", "c"])),
        }
        if fam == "detection":
            target = tuple(float(x) for x in np.round(rng.random(4), 1))
            parsed = None if fail else tuple(float(x) for x in np.round(rng.random(4), 1))
        elif fam == "tl":
            target = (float(rng.uniform(1, 40)), float(rng.uniform(1, 20)))
            parsed = None if fail else (float(rng.uniform(0, 50)), float(rng.uniform(0, 25)))
        else:
            target = (float(rng.choice([0.05, 5.0, 20.0, 60.0])),)
            parsed = None if fail else (float(rng.uniform(0, 80)),)
            kw["metric_type"] = str(rng.choice(["angle", "distance"]))
            kw["metric_key"] = str(rng.choice(["k1", "k2"]))
            kw["dataset"] = str(rng.choice(["Ceph-Biometrics-400", "FeTA24"]))
        kw["seen_hw"] = (int(rng.integers(64, 600)), int(rng.integers(64, 600)))
        kw["seen_spacing_mm_rc"] = (float(rng.uniform(0.1, 2)), float(rng.uniform(0.1, 2)))
        out.append(rec(fam, parsed, target, **kw))
    return out


def _assert_same(a: dict[str, float], b: dict[str, float]) -> None:
    assert set(a) == set(b)
    for key in a:
        x, y = float(a[key]), float(b[key])
        assert (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, rel=1e-12), key


@pytest.mark.parametrize("protocol", ["paper-v1", "official", "strict"])
def test_vectorised_groups_equal_naive_loop(protocol: str) -> None:
    proto = get_protocol(protocol)
    records = _random_records(11, 900)
    mod = {"CT": "CT", "MRI": "MR", "ultrasound": "US"}
    per_key: dict[str, dict[str, list[dict[str, float]]]] = {
        "detection": defaultdict(list),
        "tl": defaultdict(list),
        "ad": defaultdict(list),
    }
    for r in records:
        near_zero = proto.ad_near_zero_gt is not None and r.target[0] < proto.ad_near_zero_gt
        if r.family == "ad" and near_zero:
            continue
        m = sample_metrics(r.family, r.parsed, r.target, proto)
        if r.family != "detection":
            # nMAE by hand: MAE over the physical diagonal of the slice, distances only.
            h, w = r.seen_hw[0] * r.seen_spacing_mm_rc[0], r.seen_hw[1] * r.seen_spacing_mm_rc[1]
            scaled = m["success"] and r.metric_type != "angle"
            m["nmae"] = m["mae"] / math.sqrt(h * h + w * w) if scaled else NAN
        plane = "SCA"[r.plane]
        if r.family == "detection":
            key = f"{r.label_group} @ {mod[r.modality]} ({plane})"
        elif r.family == "tl":
            key = f"{r.label_name} @ {mod[r.modality]} ({plane})"
        else:
            key = f"{r.dataset}_{r.metric_type}_{r.metric_key}"
        per_key[r.family][key].append(m)

    table = records_to_table(records)
    det = summarize_detection(table, proto)["groups"]
    tl = summarize_tl(table, proto)["groups"]
    ad = summarize_ad(table, proto)["labels"]
    for fam, got in (("detection", det), ("tl", tl), ("ad", ad)):
        assert set(got) == set(per_key[fam])
        for key, ms in per_key[fam].items():
            _assert_same(got[key], _naive_counters(fam, ms, proto.metrics_extra))


def test_score_columns_equal_sample_metrics() -> None:
    records = _random_records(5, 600)
    table = records_to_table(records)
    for proto in (PAPER, OFFICIAL):
        for fam in ("detection", "tl", "ad"):
            rows = [r for r in records if r.family == fam]
            sub = table.filter(np.array([r.family == fam for r in records]))
            cols = score_columns(sub, fam, proto)
            for i, r in enumerate(rows):
                expected = sample_metrics(fam, r.parsed, r.target, proto)
                for key, value in expected.items():
                    got = float(cols[key][i])
                    assert (math.isnan(value) and math.isnan(got)) or got == value, (fam, key)


def test_records_to_table_columns() -> None:
    table = records_to_table(
        [rec("tl", (1.0, 2.0), (3.0, 4.0)), rec("detection", None, T), rec("ad", (7.0,), (8.0,))]
    )
    assert table.column("n_parsed").to_pylist() == [2, -1, 1]
    assert table.column("p1").to_pylist()[0] == 2.0
    assert math.isnan(table.column("p0").to_pylist()[1])
    assert table.column("t3").to_pylist()[1] == 0.6
    with pytest.raises(ValueError, match="target has 5 values"):
        records_to_table([rec("ad", (1.0,), (1.0, 2.0, 3.0, 4.0, 5.0))])


def test_empty_inputs_give_empty_summaries() -> None:
    assert summarize_detection([], OFFICIAL)["groups"] == {}
    assert summarize_tl([], OFFICIAL)["model"]["num_samples"] == 0
    assert summarize_ad([], OFFICIAL)["labels"] == {}
    assert summarize_run([], OFFICIAL)["num_records"] == 0


def test_record_order_does_not_change_the_summary() -> None:
    # Family-contiguous records take the zero-copy slice path, shuffled ones the filter path.
    records = _random_records(7, 600)
    by_family = sorted(records, key=lambda r: r.family)
    for name in ("paper-v1", "official"):
        protocol = get_protocol(name)
        a = json.dumps(summarize_run(by_family, protocol), sort_keys=True)
        b = json.dumps(summarize_run(records, protocol), sort_keys=True)
        assert a == b
