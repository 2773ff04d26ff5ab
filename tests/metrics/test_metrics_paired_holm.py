"""Paired comparison: primary numbers, Holm's correction, and false alarms on pure noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from medvision.metrics import get_protocol
from medvision.metrics.paired import PRIMARY, bootstrap_p_value, compare_runs, holm
from medvision.schema import Record
from record_factory import make_record

OFFICIAL = get_protocol("official")


def test_holm_matches_the_step_down_rule_by_hand() -> None:
    p = {"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005, "e": math.nan}
    # Sorted: d .005, a .01, c .03, b .04 (m = 4): 4*.005=.02, 3*.01=.03, 2*.03=.06, 1*.04=.04
    # -> running maximum .02, .03, .06, .06.
    got = holm(p)
    assert got["d"] == pytest.approx(0.02)
    assert got["a"] == pytest.approx(0.03)
    assert got["c"] == pytest.approx(0.06)
    assert got["b"] == pytest.approx(0.06)
    assert math.isnan(got["e"])
    # At alpha 0.05 Holm rejects d and a only (c: .03 > .05/2 stops the procedure).
    assert sorted(k for k, v in got.items() if v < 0.05) == ["a", "d"]
    assert holm({"x": 0.9, "y": 0.8}) == {"x": 1.0, "y": 1.0}


def test_bootstrap_p_value() -> None:
    assert bootstrap_p_value(0.0, np.zeros(99)) == 1.0  # identical runs
    r = np.random.default_rng(0).normal(0.0, 1.0, 20000)
    se = float(r.std(ddof=1))
    # |d| = 1.96 se is the two-sided 5 % point, 2.576 se the 1 % point.
    assert bootstrap_p_value(1.96 * se, r) == pytest.approx(0.05, abs=1e-3)
    assert bootstrap_p_value(-2.576 * se, r) == pytest.approx(0.01, abs=1e-3)
    # No 1/B floor: a difference of 10 se is far below alpha / 25 with only 100 replicates.
    assert bootstrap_p_value(10 * se, r[:100]) < 1e-10
    assert math.isnan(bootstrap_p_value(0.3, np.full(5, 0.3)))  # no spread to scale by
    assert math.isnan(bootstrap_p_value(0.3, np.array([np.nan, 1.0])))


def _noise_runs(seed: int, n_cases: int = 24, per_case: int = 4) -> tuple[list[Record], ...]:
    """Two runs of the same model quality: each errs by a case bias plus slice noise.

    The case bias (shared by every slice of a case, drawn anew for each run) is what makes
    slices of one case move together; the two runs differ by noise only.
    """
    rng = np.random.default_rng(seed)
    runs: tuple[list[Record], list[Record]] = ([], [])
    i = 0
    for c in range(n_cases):
        ds = ("D1", "D2")[c % 2]
        bias = rng.normal(0.0, 0.1, (2, 2))
        for _ in range(per_case):
            x0, y0 = rng.uniform(0.0, 0.5, 2)
            box = (float(x0), float(y0), float(x0 + 0.3), float(y0 + 0.3))
            size = (float(rng.uniform(5, 40)), float(rng.uniform(2, 20)))
            for r, out in enumerate(runs):
                shift = 0.3 * bias[r, 0] + rng.normal(0.0, 0.02, 4)
                det = tuple(float(v) for v in np.asarray(box) + shift)
                tl = tuple(float(v) for v in np.asarray(size) * (1 + bias[r, 1]))
                tl = tuple(float(v * (1 + rng.normal(0.0, 0.05))) for v in tl)
                kw = {"case_id": f"case{c}", "dataset": ds}
                out.append(make_record("detection", det, box, sample_id=f"d{i}", **kw))
                out.append(make_record("tl", tl, size, sample_id=f"t{i}", label_name="mass", **kw))
            i += 1
    return runs


def _false_alarms(method: str, seeds: int, level: float) -> tuple[int, int, int]:
    """``(primary flags, primary tests, comparisons with any secondary flag)``."""
    primary = tests = secondary = 0
    for seed in range(seeds):
        a, b = _noise_runs(seed)
        res = compare_runs(a, b, OFFICIAL, n_boot=100, seed=seed, level=level, method=method)  # type: ignore[arg-type]
        assert res.primary == (PRIMARY["detection"], PRIMARY["tl"])
        primary += sum(res.significant(k) for k in res.primary)
        tests += len(res.primary)
        secondary += any(res.significant(k) for k in res.corrected)
    return primary, tests, secondary


def test_runs_differing_only_by_noise_are_not_flagged_beyond_the_nominal_rate() -> None:
    seeds, level = 20, 0.8  # alpha 0.2: enough expected alarms to see a rate in 20 seeds
    alpha = 1 - level
    bound = int(binom.ppf(0.99, 2 * seeds, alpha))  # 99 % upper bound of Bin(tests, alpha)
    flags, tests, any_secondary = _false_alarms("cluster", seeds, level)
    slice_flags, _, _ = _false_alarms("slice", seeds, level)
    print(
        f"\nnoise-only comparisons, {seeds} seeds, alpha {alpha:.1f}: primary flags "
        f"cluster {flags}/{tests}, slice {slice_flags}/{tests}; Holm secondary any-flag "
        f"{any_secondary}/{seeds}"
    )
    assert flags <= bound
    # Holm keeps the chance of any false secondary flag at most alpha per comparison.
    assert any_secondary <= int(binom.ppf(0.99, seeds, alpha))
    # The slice bootstrap ignores the case bias and flags noise far too often (the old bug).
    assert slice_flags > bound


def test_comparison_output_names_the_primary_and_corrected_numbers() -> None:
    a, b = _noise_runs(99)
    res = compare_runs(a, b, OFFICIAL, n_boot=60, seed=0)
    out = res.to_dict()
    assert out["bootstrap"] == "cluster" and out["n_clusters"] == {"detection": 24, "tl": 24}
    assert out["primary"] == ["det_all_IoU", "tl_MRE"]
    corr = out["correction"]
    assert corr["method"] == "holm" and corr["alpha"] == pytest.approx(0.05)
    assert "det_all_IoU" not in corr["corrected"] and "det_all_MAE" in corr["corrected"]
    assert out["metrics"]["det_all_IoU"]["role"] == "primary"
    assert out["metrics"]["det_all_IoU"]["p_holm"] is None
    m = out["metrics"]["tl_MAE"]
    assert m["role"] == "secondary" and m["p_holm"] >= m["p"]
