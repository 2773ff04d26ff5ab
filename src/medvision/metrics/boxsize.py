"""Detection quality against box size, and the random-box baseline (official section 5).

Bins are the official ``group_by_boxImgRatio`` ones: the ground-truth box area over the image
area in 5 % steps, ``ratio < 0.05``, ``0.05 <= ratio < 0.10``, ... ``0.85 <= ratio < 0.90``,
``ratio >= 0.90`` (19 bins; the comparison uses the same float literals as the official code).
The ratio is the record's ``box_img_ratio`` or, without one, ``|x1-x0| * |y1-y0|`` of the
relative target, as ``parse_outputs`` does.

The random baseline draws ``n_draws`` (official 100) boxes per ground-truth box with a
:class:`BoxDrawer` (minimum side 1 px under ``paper-v1``, 3 px otherwise, as medvision-bm 1.2.1);
callers pass :func:`medvision.backends.baselines.random_boxes_rel`, the one implementation of
the official draw (``metrics`` may not import ``backends``, so it is handed in). It is
reported two ways:

* ``official``: MAE, IoU, F1, precision and recall are **averaged over the draws of a sample
  first**, then binned like a model; so ``IoU>0.5`` asks whether the *mean* IoU of 100 random
  boxes reaches 0.5, which is almost never true even when many single draws do.
* ``per_draw`` (ours): every draw is scored and thresholded on its own, so ``IoU>0.5`` is the
  probability that one random box reaches IoU 0.5 (what a guessing model would score). The mean
  metrics (IoU, F1, MAE, ...) equal the official ones; only the threshold rates differ.

The official code seeds Python's ``random`` with 1024 (1.2.1) or not at all (paper code); this
module uses ``numpy.random.default_rng(seed)``, so draws are reproducible here but not
draw-for-draw equal to the official ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np
from numpy.typing import NDArray

from medvision.geometry.detection import score_boxes
from medvision.metrics.counters import (
    BIN_THRESHOLDS,
    OVERLAP_THRESHOLDS,
    bin_index,
    grouped_metrics,
)
from medvision.metrics.headline import FamilyData, Prepared
from medvision.metrics.protocols import Protocol as ScoringProtocol
from medvision.schema import TaskFamily

__all__ = [
    "BOX_BIN_EDGES",
    "BOX_BIN_LABELS",
    "BoxDrawer",
    "BoxSizeAnalysis",
    "box_bins",
    "box_size_analysis",
    "random_baseline",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

BOX_BIN_EDGES: Final[tuple[float, ...]] = (
    0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45,
    0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9,
)  # fmt: skip
"""Upper edges (exclusive) of the first 18 bins: the official float literals."""

BOX_BIN_LABELS: Final[tuple[str, ...]] = (
    "Box/Image < 5%",
    *(f"{5 * i}% <= Box/Image < {5 * (i + 1)}%" for i in range(1, 18)),
    "90% <= Box/Image",
)
"""Official bin labels (paper code; medvision-bm 1.2.1 writes the last as ``Box/Image >= 90%``)."""


class BoxDrawer(Protocol):
    """Draws ``n`` random relative boxes on an image of ``image_hw`` (rows, cols) pixels.

    Returns an ``(n, 4)`` array ``[x0, y0, x1, y1]`` (origin lower-left); see
    :func:`medvision.backends.baselines.random_boxes_rel`.
    """

    def __call__(
        self, image_hw: tuple[int, int], n: int, rng: np.random.Generator, *, min_side: int = 1
    ) -> NDArray[np.float64]:
        """Return ``(n, 4)`` relative boxes drawn with ``rng``."""
        ...


_OVERLAPS: Final = (("iou", "IoU"), ("f1", "F1"), ("precision", "Precision"), ("recall", "Recall"))


def box_bins(ratio: NDArray[Any]) -> IntArray:
    """Official bin index (0..18) of each box/image area ratio; -1 where it is not finite."""
    r = np.asarray(ratio, dtype=np.float64)
    idx = np.searchsorted(np.asarray(BOX_BIN_EDGES), r, side="right").astype(np.int64)
    return np.where(np.isfinite(r), idx, -1)


def _draw_scores(
    draw: BoxDrawer,
    target: FloatArray,
    hw: tuple[int, int],
    n_draws: int,
    rng: np.random.Generator,
    protocol: ScoringProtocol,
    min_side: int,
) -> dict[str, FloatArray]:
    """Scores of ``n_draws`` random boxes for each of ``M`` targets: arrays ``(M, n_draws)``."""
    m = target.shape[0]
    boxes = draw(hw, m * n_draws, rng, min_side=min_side)
    s = score_boxes(
        boxes,
        np.repeat(target, n_draws, axis=0),
        sort_corners=protocol.det_sort_corners,
        clamp=protocol.det_clamp,
    )
    return {
        k: np.asarray(s[k], dtype=np.float64).reshape(m, n_draws) for k in ("mae", *dict(_OVERLAPS))
    }


def random_baseline(
    draw: BoxDrawer,
    targets: FloatArray,
    image_hw: NDArray[Any],
    protocol: ScoringProtocol,
    *,
    n_draws: int = 100,
    seed: int = 1024,
    chunk: int = 4096,
) -> tuple[dict[str, FloatArray], dict[str, FloatArray]]:
    """Per-sample random-box scores: draw means (official) and per-draw threshold rates.

    Args:
        draw: The random-box drawer (:func:`medvision.backends.baselines.random_boxes_rel`).
        targets: ``(N, 4)`` relative ground-truth boxes ``[x0, y0, x1, y1]`` (lower-left origin).
        image_hw: ``(N, 2)`` image sizes (rows H, cols W) in pixels.
        protocol: Scoring switches; ``paper-v1`` draws boxes of at least 1 px, others 3 px.
        n_draws: Draws per sample (official 100).
        seed: Seed of the generator (official 1.2.1 seeds Python's ``random`` with 1024).
        chunk: Samples scored at once (bounds memory to about ``chunk * n_draws`` boxes).

    Returns:
        ``(means, rates)``: ``means`` holds ``(N,)`` columns ``success`` (1), ``mae``, ``iou``,
        ``f1``, ``precision``, ``recall`` averaged over draws; ``rates`` holds ``(N,)`` per-sample
        fractions of draws with ``{IoU,F1,Precision,Recall}>{k}`` (``>=`` k) and ``MAE<{k}``
        (official cumulative bins).
    """
    t = np.asarray(targets, dtype=np.float64).reshape(-1, 4)
    hw = np.asarray(image_hw, dtype=np.int64).reshape(-1, 2)
    n = t.shape[0]
    if hw.shape[0] != n:
        raise ValueError(f"targets hold {n} boxes but image_hw holds {hw.shape[0]} sizes")
    min_side = 1 if protocol.name == "paper-v1" else 3
    rng = np.random.default_rng(seed)
    means = {k: np.zeros(n) for k in ("mae", *dict(_OVERLAPS))}
    rates: dict[str, FloatArray] = {}
    for _, name in _OVERLAPS:
        for thr in OVERLAP_THRESHOLDS:
            rates[f"{name}>{thr:.1f}"] = np.zeros(n)
    for k in BIN_THRESHOLDS:
        rates[f"MAE<{k:.1f}"] = np.zeros(n)
    # Deterministic order: image sizes sorted, rows in order within each size.
    sizes, inverse = np.unique(hw, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    for s_i, size in enumerate(sizes):
        rows_all = np.flatnonzero(inverse == s_i)
        for start in range(0, rows_all.size, chunk):
            rows = rows_all[start : start + chunk]
            sc = _draw_scores(
                draw, t[rows], (int(size[0]), int(size[1])), n_draws, rng, protocol, min_side
            )
            for col, v in sc.items():
                means[col][rows] = v.mean(axis=1)
            for key, name in _OVERLAPS:
                for thr in OVERLAP_THRESHOLDS:
                    rates[f"{name}>{thr:.1f}"][rows] = (sc[key] >= thr).mean(axis=1)
            b = bin_index(sc["mae"].reshape(-1)).reshape(sc["mae"].shape)
            for j, edge in enumerate(BIN_THRESHOLDS):
                rates[f"MAE<{edge:.1f}"][rows] = (b <= j).mean(axis=1)
    means["success"] = np.ones(n)
    return means, rates


@dataclass(frozen=True)
class BoxSizeAnalysis:
    """Per-bin detection metrics of a run beside the random baseline.

    Attributes:
        labels: Bin labels (official), one per bin with samples.
        model: Per bin, the run's official group counters (``IoU``, ``IoU>0.5``, ...).
        random_official: Per bin, the random baseline with draws averaged first (official).
        random_per_draw: Per bin, the random baseline with every draw thresholded (ours).
        macro: Unweighted mean over the bins with samples of the run's per-bin metrics.
        n_draws: Random draws per sample.
        seed: Seed of the draws.
        no_ratio: Detection rows without a finite box/image ratio (left out).
    """

    labels: list[str]
    model: dict[str, dict[str, float]]
    random_official: dict[str, dict[str, float]]
    random_per_draw: dict[str, dict[str, float]]
    macro: dict[str, float]
    n_draws: int
    seed: int
    no_ratio: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (non-finite numbers become ``None``)."""
        from medvision.metrics.aggregate import to_jsonable

        return dict(
            to_jsonable(
                {
                    "bins": self.labels,
                    "model": self.model,
                    "random_official": self.random_official,
                    "random_per_draw": self.random_per_draw,
                    "macro": self.macro,
                    "n_draws": self.n_draws,
                    "seed": self.seed,
                    "no_ratio": self.no_ratio,
                }
            )
        )


def _per_bin(codes: IntArray, cols: dict[str, FloatArray]) -> list[dict[str, float]]:
    return grouped_metrics(TaskFamily.DETECTION, codes, len(BOX_BIN_LABELS), cols)


def box_size_analysis(
    prep: Prepared,
    draw: BoxDrawer,
    *,
    n_draws: int = 100,
    seed: int = 1024,
) -> BoxSizeAnalysis | None:
    """Bin a run's detection samples by box size and score the random baseline on the same.

    Args:
        prep: The prepared run (its detection rows, targets and image sizes are used).
        draw: The random-box drawer (:func:`medvision.backends.baselines.random_boxes_rel`).
        n_draws: Random boxes per sample.
        seed: Seed of the random boxes.

    Returns:
        The analysis, or ``None`` when the run has no detection rows.
    """
    fd: FamilyData | None = prep.families.get(TaskFamily.DETECTION)
    if fd is None:
        return None
    codes = box_bins(fd.box_img_ratio)
    keep = codes >= 0
    c = codes[keep]
    model_rows = _per_bin(c, {k: v[keep] for k, v in fd.scores.items()})
    means, rates = random_baseline(
        draw,
        fd.targets[keep],
        fd.image_hw[keep],
        prep.protocol,
        n_draws=n_draws,
        seed=seed,
    )
    official_rows = _per_bin(c, means)
    counts = np.bincount(c, minlength=len(BOX_BIN_LABELS))
    per_draw_rows: list[dict[str, float]] = []
    for g, row in enumerate(official_rows):
        d = {
            k: v
            for k, v in row.items()
            if not k.startswith(("IoU>", "F1>", "Precision>", "Recall>", "MAE<"))
        }
        sel = c == g
        for k, v in rates.items():
            d[k] = float(v[sel].mean()) if counts[g] else 0.0
        per_draw_rows.append(d)
    used = [g for g in range(len(BOX_BIN_LABELS)) if counts[g]]
    labels = [BOX_BIN_LABELS[g] for g in used]
    macro: dict[str, float] = {}
    for k in model_rows[0] if model_rows else {}:
        if k == "num_samples":
            continue
        vals = [model_rows[g][k] for g in used if math.isfinite(model_rows[g][k])]
        macro[k] = float(np.mean(vals)) if vals else math.nan
    return BoxSizeAnalysis(
        labels=labels,
        model={BOX_BIN_LABELS[g]: model_rows[g] for g in used},
        random_official={BOX_BIN_LABELS[g]: official_rows[g] for g in used},
        random_per_draw={BOX_BIN_LABELS[g]: per_draw_rows[g] for g in used},
        macro=macro,
        n_draws=n_draws,
        seed=seed,
        no_ratio=int((~keep).sum()),
    )
