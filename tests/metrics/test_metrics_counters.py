"""Group counters: the one-pass threshold counts equal a comparison per threshold."""

from __future__ import annotations

import numpy as np

from medvision.metrics.counters import (
    ACC_IOU_THRESHOLDS,
    OVERLAP_THRESHOLDS,
    grouped_metrics,
)


def test_threshold_fractions_equal_one_comparison_per_threshold() -> None:
    rng = np.random.default_rng(11)
    n, groups = 5000, 7
    codes = rng.integers(0, groups, n)
    # Values exactly on every threshold, just below and above it, and non-finite ones.
    edges = np.array(OVERLAP_THRESHOLDS + ACC_IOU_THRESHOLDS)
    picks = rng.integers(0, edges.size, n)
    iou = np.where(rng.random(n) < 0.5, edges[picks], rng.random(n))
    iou[::7] = np.nextafter(iou[::7], -1.0)
    iou[::11] = np.nan
    iou[::13] = np.inf
    cols = {
        "success": (rng.random(n) < 0.9).astype(float),
        "mae": rng.random(n),
        "iou": iou,
        "f1": iou[::-1].copy(),
        "precision": iou,
        "recall": iou,
    }
    rows = grouped_metrics("detection", codes, groups, cols, extra=True)
    for g, row in enumerate(rows):
        mine = codes == g
        total = int(mine.sum())
        assert row["num_samples"] == total
        for key, name in (("iou", "IoU"), ("f1", "F1")):
            v = cols[key][mine]
            for thr in OVERLAP_THRESHOLDS:
                want = sum(bool(x >= thr) for x in v if np.isfinite(x)) / total
                assert row[f"{name}>{thr:.1f}"] == want, (g, name, thr)
        for thr in ACC_IOU_THRESHOLDS:
            want = sum(bool(x >= thr) for x in iou[mine] if np.isfinite(x)) / total
            assert row[f"Acc@IoU>={thr:.2f}"] == want, (g, thr)
