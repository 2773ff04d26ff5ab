"""Paired comparison of two runs and the box-size analysis against random boxes."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest

from medvision.backends.baselines import random_boxes_rel
from medvision.metrics import get_protocol
from medvision.metrics.boxsize import (
    BOX_BIN_LABELS,
    box_bins,
    box_size_analysis,
    random_baseline,
)
from medvision.metrics.headline import prepare
from medvision.metrics.paired import compare_runs
from medvision.schema import Record
from record_factory import make_record

OFFICIAL = get_protocol("official")


def rec(
    family: str, parsed: tuple[float, ...] | None, target: tuple[float, ...], **kw: Any
) -> Record:
    return make_record(family, parsed, target, **{"prefix": "p", **kw})


def _det_run(n: int, seed: int, noise: float) -> list[Record]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x0, y0 = rng.uniform(0, 0.5, 2)
        t = (float(x0), float(y0), float(x0 + 0.3), float(y0 + 0.3))
        p = tuple(float(v) for v in np.asarray(t) + rng.normal(0, noise, 4))
        out.append(rec("detection", p, t, sample_id=f"det{i}", case_id=f"case{i // 4}"))
    return out


def _with_parsed(records: list[Record], noise: float, seed: int) -> list[Record]:
    rng = np.random.default_rng(seed)
    return [
        dataclasses.replace(
            r, parsed=tuple(float(v) for v in np.asarray(r.target) + rng.normal(0, noise, 4))
        )
        for r in records
    ]


def test_identical_runs_differ_by_exactly_zero() -> None:
    a = _det_run(200, 0, 0.05)
    res = compare_runs(a, list(reversed(a)), OFFICIAL, n_boot=100)
    d = res.diff["det_all_IoU"]
    assert (d.estimate, d.low, d.high) == (0.0, 0.0, 0.0)
    assert res.better("det_all_IoU") == "-"
    assert res.wins["detection"] == {"b_better": 0, "a_better": 0, "tie": 200}


def test_better_run_is_significant_and_pairing_narrows_the_interval() -> None:
    a = _det_run(300, 1, 0.08)
    # B errs on the same samples as A, by 70 % as much: strongly correlated per-sample scores.
    b = [
        dataclasses.replace(
            r,
            parsed=tuple(t + 0.7 * (p - t) for p, t in zip(r.parsed or (), r.target, strict=True)),
        )
        for r in a
    ]
    res = compare_runs(a, b, OFFICIAL, name_a="noisy", name_b="sharp", n_boot=400, seed=1)
    d = res.diff["det_all_IoU"]
    assert d.estimate == pytest.approx(res.b["det_all_IoU"] - res.a["det_all_IoU"])
    assert d.low > 0 and res.better("det_all_IoU") == "B"
    assert res.better("det_all_MAE") == "B"  # lower error is better: B - A < 0
    assert res.wins["detection"]["b_better"] > res.wins["detection"]["a_better"]
    # Paired: sample difficulty cancels, so the interval of B - A is narrower than the
    # one two independent runs' intervals would give.
    from medvision.metrics.bootstrap import bootstrap_headline

    ia = bootstrap_headline(prepare(a, OFFICIAL), n_boot=400, seed=1)["det_all_IoU"]
    ib = bootstrap_headline(prepare(b, OFFICIAL), n_boot=400, seed=1)["det_all_IoU"]
    unpaired = math.hypot(ia.high - ia.low, ib.high - ib.low)
    assert d.high - d.low < unpaired
    out = res.to_dict()
    assert out["metrics"]["det_all_IoU"]["better"] == "B"


def test_runs_are_matched_by_sample_id_and_unmatched_are_counted() -> None:
    a = _det_run(120, 3, 0.05)
    b = _with_parsed(a[20:], 0.05, 4)[::-1]  # fewer samples, another order
    b.append(rec("detection", (0.1, 0.1, 0.2, 0.2), (0.1, 0.1, 0.2, 0.2), sample_id="new"))
    res = compare_runs(a, b, OFFICIAL, n_boot=50)
    assert res.n_shared == {"detection": 100}
    assert res.n_only_a == {"detection": 20}
    assert res.n_only_b == {"detection": 1}
    restricted = prepare(a[20:], OFFICIAL)
    from medvision.metrics.headline import headline

    assert res.a["det_all_IoU"] == pytest.approx(headline(restricted)["det_all_IoU"])


def test_paired_refuses_different_targets_duplicates_and_no_overlap() -> None:
    a = _det_run(10, 5, 0.05)
    b = [dataclasses.replace(a[0], target=(0.0, 0.0, 0.9, 0.9)), *a[1:]]
    with pytest.raises(ValueError, match=r"sample det0 .* t0 = .* not made on the same samples"):
        compare_runs(a, b, OFFICIAL, n_boot=10)
    with pytest.raises(ValueError, match="appears 2 times"):
        compare_runs(a, [*a, a[3]], OFFICIAL, n_boot=10)
    other = [dataclasses.replace(r, sample_id="x" + r.sample_id) for r in a]
    with pytest.raises(ValueError, match="share no sample"):
        compare_runs(a, other, OFFICIAL, n_boot=10)


def _official_bin(ratio: float) -> str:
    # The official group_by_boxImgRatio loop, written out.
    edges = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7,
             0.75, 0.8, 0.85, 0.9]  # fmt: skip
    for i, e in enumerate(edges):
        if ratio < e:
            return BOX_BIN_LABELS[i]
    return "90% <= Box/Image"


def test_box_bins_follow_the_official_loop() -> None:
    ratios = [0.0, 0.0499, 0.05, 0.1, 0.15000001, 0.3, 0.45, 0.8999, 0.9, 1.0, 0.35, 0.7]
    rng = np.random.default_rng(0)
    ratios += rng.uniform(0, 1, 500).tolist()
    got = box_bins(np.array(ratios))
    assert [BOX_BIN_LABELS[i] for i in got] == [_official_bin(r) for r in ratios]
    assert box_bins(np.array([np.nan]))[0] == -1
    assert len(BOX_BIN_LABELS) == 19


def test_random_baseline_official_mean_vs_per_draw_analytic() -> None:
    # Full-image target on a 2x2 image with 1-px minimum sides (paper-v1): a random box has
    # w, h uniform on {1, 2}, so IoU = w*h/4 is 0.25, 0.5, 0.5 or 1 with equal odds:
    # mean IoU 0.5625, P(IoU >= 0.5) = 0.75. The official rule thresholds the mean (>= 0.5:
    # rate 1.0), the per-draw rule gives 0.75.
    n = 200
    targets = np.tile([0.0, 0.0, 1.0, 1.0], (n, 1))
    hw = np.tile([2, 2], (n, 1))
    means, rates = random_baseline(
        random_boxes_rel, targets, hw, get_protocol("paper-v1"), n_draws=200, seed=5
    )
    assert means["iou"].mean() == pytest.approx(0.5625, abs=0.01)
    assert rates["IoU>0.5"].mean() == pytest.approx(0.75, abs=0.02)
    assert rates["IoU>0.9"].mean() == pytest.approx(0.25, abs=0.02)
    assert (means["success"] == 1).all()
    again, _ = random_baseline(
        random_boxes_rel, targets, hw, get_protocol("paper-v1"), n_draws=200, seed=5
    )
    np.testing.assert_array_equal(means["iou"], again["iou"])
    with pytest.raises(ValueError, match="min_side=3"):
        random_baseline(random_boxes_rel, targets, hw, OFFICIAL, n_draws=2)


def test_box_size_analysis_against_random() -> None:
    records = [
        rec("detection", (0.0, 0.0, 1.0, 1.0), (0.0, 0.0, 1.0, 1.0), image_hw=(2, 2))
        for _ in range(60)
    ] + [rec("detection", None, (0.0, 0.0, 0.1, 0.1), image_hw=(32, 32)) for _ in range(10)]
    box = box_size_analysis(
        prepare(records, get_protocol("paper-v1")), random_boxes_rel, n_draws=300, seed=2
    )
    assert box is not None
    assert box.labels == ["Box/Image < 5%", "90% <= Box/Image"]
    big = "90% <= Box/Image"
    assert box.model[big]["IoU"] == pytest.approx(1.0)
    assert box.model["Box/Image < 5%"]["SuccessRate"] == 0.0
    assert box.random_official[big]["IoU>0.5"] == 1.0
    assert box.random_per_draw[big]["IoU>0.5"] == pytest.approx(0.75, abs=0.03)
    assert box.random_official[big]["IoU"] == pytest.approx(box.random_per_draw[big]["IoU"])
    assert box.macro["SuccessRate"] == pytest.approx(0.5)
    assert box.to_dict()["bins"] == box.labels
    assert box_size_analysis(prepare([], OFFICIAL), random_boxes_rel) is None
