"""Headline numbers on resamples, stratified bootstrap intervals and macro breakdowns."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest

from medvision.metrics import get_protocol, records_to_table, summarize_run
from medvision.metrics.bootstrap import (
    bootstrap_headline,
    percentile_interval,
    stratified_indices,
)
from medvision.metrics.headline import HEADLINE_KEYS, headline, prepare
from medvision.metrics.macro import macro_report
from medvision.reports.tables import leaderboard
from medvision.schema import Record, TaskFamily
from record_factory import make_record


def rec(
    family: str, parsed: tuple[float, ...] | None, target: tuple[float, ...], **kw: Any
) -> Record:
    return make_record(family, parsed, target, **{"prefix": "s", **kw})


def random_records(seed: int, n: int) -> list[Record]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        fam = ("detection", "tl", "ad")[i % 3]
        fail = rng.random() < 0.2
        kw: dict[str, Any] = {
            "case_id": f"case{i}",  # independent samples: one case each
            "dataset": str(rng.choice(["D1", "D2", "D3"])),
            "modality": str(rng.choice(["CT", "CT", "CT", "MRI"])),
            "plane": int(rng.choice([2, 2, 2, 1, 0])),
            # Few groups so that some reach 50 samples (anatomy / T-L split in play).
            "label_group": str(rng.choice(["Kidney", "Liver Tumor/Lesion", "Others"])),
            "label_name": str(rng.choice(["a", "b"])),
        }
        if fam == "detection":
            x0, y0 = rng.uniform(0, 0.5, 2)
            w, h = rng.uniform(0.05, 0.5, 2)
            target = (float(x0), float(y0), float(x0 + w), float(y0 + h))
            jitter = rng.normal(0, 0.05, 4)
            parsed = (
                None if fail else tuple(float(a + b) for a, b in zip(target, jitter, strict=True))
            )
        elif fam == "tl":
            target = (float(rng.uniform(5, 40)), float(rng.uniform(2, 20)))
            parsed = None if fail else tuple(float(t * rng.uniform(0.5, 1.5)) for t in target)
        else:
            target = (float(rng.choice([0.05, 5.0, 20.0, 60.0])),)
            parsed = None if fail else (float(target[0] * rng.uniform(0.5, 1.5)),)
            kw["metric_type"] = str(rng.choice(["angle", "distance"]))
            kw["metric_key"] = str(rng.choice(["k1", "k2"]))
            kw["dataset"] = str(rng.choice(["Ceph-Biometrics-400", "FeTA24"]))
        out.append(rec(fam, parsed, target, **kw))
    return out


def _same(a: float, b: float | None) -> bool:
    if b is None:
        return math.isnan(a)
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("protocol", ["paper-v1", "official", "strict"])
def test_headline_equals_the_official_summaries(protocol: str) -> None:
    proto = get_protocol(protocol)
    records = random_records(5, 1500)
    row = leaderboard({"r": summarize_run(records, proto)})[0]
    got = headline(prepare(records, proto))
    shared = [k for k in row if k in got]
    assert len(shared) >= 15
    for k in shared:
        assert _same(got[k], row[k]), k
    # The anatomy and T/L splits are really in play (groups of >= 50 samples exist).
    assert math.isfinite(got["det_anatomy_IoU"]) and math.isfinite(got["det_tl_IoU"])


def test_headline_on_a_resample_equals_summaries_of_the_resampled_records() -> None:
    proto = get_protocol("official")
    records = random_records(6, 900)
    prep = prepare(records, proto)
    rng = np.random.default_rng(1)
    idx = {f: next(stratified_indices(fd.strata, 1, rng)) for f, fd in prep.families.items()}
    got = headline(prep, idx)
    by_family = {f: [r for r in records if r.family == f.value] for f in TaskFamily}
    near = proto.ad_near_zero_gt
    by_family[TaskFamily.ANGLE_DISTANCE] = [
        r for r in by_family[TaskFamily.ANGLE_DISTANCE] if near is None or r.target[0] >= near
    ]
    # Duplicates get fresh ids; summarize_run does not care about ids.
    resampled = [
        dataclasses.replace(by_family[f][i], sample_id=f"{f.value}-{j}")
        for f, ix in idx.items()
        for j, i in enumerate(ix.tolist())
    ]
    expected = leaderboard({"r": summarize_run(resampled, proto)})[0]
    for k in expected:
        if k in got:
            assert _same(got[k], expected[k]), k


def test_stratified_indices_keep_every_stratum_size() -> None:
    strata = np.array([0, 0, 0, 1, 1, 2, 0, 2, 2, 2])
    rng = np.random.default_rng(0)
    seen = set()
    for idx in stratified_indices(strata, 200, rng):
        assert idx.shape == strata.shape
        np.testing.assert_array_equal(np.bincount(strata[idx]), np.bincount(strata))
        seen.update(idx.tolist())
    assert seen == set(range(strata.size))  # every row is drawn at some point


def test_bootstrap_is_seeded_and_covers_the_estimate() -> None:
    prep = prepare(random_records(7, 900), get_protocol("strict"))
    a = bootstrap_headline(prep, n_boot=150, seed=3)
    b = bootstrap_headline(prep, n_boot=150, seed=3)
    c = bootstrap_headline(prep, n_boot=150, seed=4)
    assert a == b
    assert a["det_all_IoU"] != c["det_all_IoU"]
    assert set(a) == set(HEADLINE_KEYS)
    for k in ("det_all_IoU", "tl_MRE", "ad_MAE", "tl_SR"):
        iv = a[k]
        assert iv.low <= iv.estimate <= iv.high, k
        assert iv.n_valid == 150


def test_bootstrap_width_matches_the_normal_approximation() -> None:
    # Pooled detection IoU of n samples in one stratum: the 95 % interval of a mean is
    # about +-1.96 * sd / sqrt(n).
    rng = np.random.default_rng(2)
    records = []
    for _ in range(400):
        w = float(rng.uniform(0.1, 0.9))
        records.append(rec("detection", (0.0, 0.0, w, 1.0), (0.0, 0.0, 1.0, 1.0)))
    prep = prepare(records, get_protocol("official"))
    iou = prep.families[TaskFamily.DETECTION].scores["iou"]
    half = 1.96 * iou.std(ddof=1) / math.sqrt(iou.size)
    iv = bootstrap_headline(prep, n_boot=2000, seed=0, method="slice")["det_all_IoU"]
    assert (iv.high - iv.low) / 2 == pytest.approx(half, rel=0.12)
    assert iv.estimate == pytest.approx(iou.mean())
    # All 400 slices come from one case: the cluster bootstrap has one volume to draw and
    # cannot see any spread between volumes, so it gives no interval (not a zero-width one).
    one = bootstrap_headline(prep, n_boot=200, seed=0)["det_all_IoU"]
    assert one.method == "cluster" and one.estimate == pytest.approx(iou.mean())
    assert math.isnan(one.low) and math.isnan(one.high) and one.n_valid == 0
    assert one.to_dict()["low"] is None


def test_percentile_interval_and_bad_arguments() -> None:
    low, high, n = percentile_interval(np.array([np.nan, *range(101)], dtype=float), 0.9)
    assert (low, high, n) == (pytest.approx(5.0), pytest.approx(95.0), 101)
    assert math.isnan(percentile_interval(np.array([np.nan]), 0.9)[0])
    prep = prepare(random_records(1, 30), get_protocol("official"))
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_headline(prep, n_boot=0)
    with pytest.raises(ValueError, match="level"):
        bootstrap_headline(prep, level=1.5)


def test_macro_averages_by_dataset_and_plane() -> None:
    # Dataset D1: 3 perfect tl answers (MRE 0); D2: 1 answer with MRE 0.5. Micro = 0.125,
    # macro over datasets = 0.25.
    records = [rec("tl", (10.0, 5.0), (10.0, 5.0), dataset="D1", plane=p) for p in (0, 1, 2)]
    records.append(rec("tl", (15.0, 7.5), (10.0, 5.0), dataset="D2", plane=2))
    records.append(rec("tl", None, (10.0, 5.0), dataset="D2", plane=1))
    m = macro_report(prepare(records, get_protocol("official")))["tl"]
    assert m["by_dataset"]["D1"]["avgMRE"] == 0.0
    assert m["by_dataset"]["D2"]["avgMRE"] == pytest.approx(0.5)
    assert m["by_dataset"]["D2"]["SuccessRate"] == 0.5
    assert m["macro_dataset"]["avgMRE"] == pytest.approx(0.25)
    assert m["macro_dataset"]["SuccessRate"] == pytest.approx(0.75)
    split = m["plane_split"]
    assert split["in-distribution (axial)"]["num_samples"] == 2
    assert split["in-distribution (axial)"]["avgMRE"] == pytest.approx(0.25)
    assert split["plane-OOD (coronal+sagittal)"]["num_samples"] == 3
    assert split["plane-OOD (coronal+sagittal)"]["SuccessRate"] == pytest.approx(2 / 3)
    assert set(m["by_plane"]) == {"sagittal", "coronal", "axial"}


def test_box_size_breakdown_uses_stored_ratio_then_target_area() -> None:
    records = [
        rec("detection", (0.0, 0.0, 0.1, 0.1), (0.0, 0.0, 0.1, 0.1)),  # area 0.01 -> bin 0
        rec("detection", (0.0, 0.0, 0.5, 0.5), (0.0, 0.0, 0.5, 0.5)),  # area 0.25 -> bin 5
        rec("detection", None, (0.0, 0.0, 0.5, 0.5), box_img_ratio=0.95),  # stored -> last
    ]
    table = records_to_table(records)
    assert table.column("box_img_ratio").to_pylist()[2] == 0.95
    by_box = macro_report(prepare(table, get_protocol("official")))["detection"]["by_box_size"]
    assert list(by_box) == ["Box/Image < 5%", "25% <= Box/Image < 30%", "90% <= Box/Image"]
    assert by_box["90% <= Box/Image"]["IoU"] == 0.0
    assert by_box["Box/Image < 5%"]["IoU"] == pytest.approx(1.0)
