"""Per-sample score columns and the official group counters (official section 4.3).

:func:`score_columns` recomputes every per-sample score of a family with numpy (equal to
:func:`medvision.metrics.sample_metrics`, element by element); :func:`grouped_metrics` turns
score columns and integer group codes into the official counters of many groups at once,
with ``np.bincount`` (which adds in input order, like the official running sums). The counter
definitions are in :mod:`medvision.metrics.aggregate`'s module docstring.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import pyarrow as pa
from numpy.typing import ArrayLike

from medvision.geometry.detection import score_box_rows
from medvision.metrics.columns import FloatArray, IntArray, column_array
from medvision.metrics.per_sample import RE_EPS
from medvision.metrics.protocols import Protocol
from medvision.schema import TaskFamily

__all__ = [
    "ACC_IOU_MEAN_KEY",
    "ACC_IOU_THRESHOLDS",
    "BIN_THRESHOLDS",
    "OVERLAP_THRESHOLDS",
    "bin_index",
    "empty_scores",
    "group_metrics",
    "grouped_metrics",
    "score_columns",
]

OVERLAP_THRESHOLDS: Final[tuple[float, ...]] = (0.5, 0.6, 0.7, 0.8, 0.9)
"""Thresholds of ``IoU>k`` etc. (the same float literals as the official code)."""

BIN_THRESHOLDS: Final[tuple[float, ...]] = tuple(k / 10 for k in range(1, 11))
"""Upper edges of the cumulative ``MAE<k`` / ``MRE<k`` bins."""

ACC_IOU_THRESHOLDS: Final[tuple[float, ...]] = tuple(round(0.50 + 0.05 * k, 2) for k in range(10))
"""IoU thresholds of ``Acc@IoU>=t`` (the COCO grid 0.50:0.05:0.95, built as 1.2.1 builds it)."""

ACC_IOU_MEAN_KEY: Final[str] = "Acc@IoU[0.50:0.95]"
"""Key of the mean of the ten ``Acc@IoU>=t`` fractions."""

TL_LABEL_KINDS: Final[frozenset[str]] = frozenset({"tumour", "lesion"})
"""``Record.label_kind`` values that make a detection group tumour/lesion."""

_OVERLAP_NAMES: Final[tuple[tuple[str, str], ...]] = (
    ("iou", "IoU"),
    ("f1", "F1"),
    ("precision", "Precision"),
    ("recall", "Recall"),
)

# ----------------------------------------------------------------------------------------------
# per-sample scores, vectorised


def score_columns(table: pa.Table, family: str | TaskFamily, protocol: Protocol) -> dict[str, Any]:
    """Per-sample scores of every row of ``table`` (all rows must be of ``family``).

    Equal, element by element, to :func:`medvision.metrics.sample_metrics` on each record
    (``nmae`` needs the image metadata of the table, so only this function gives it).

    Args:
        table: Rows of one family, as built by :func:`records_to_table`.
        family: ``"detection"``, ``"tl"`` or ``"ad"``.
        protocol: Protocol whose detection switches apply.

    Returns:
        Float64 arrays of shape ``(N,)``: ``success`` (1.0/0.0) and ``mae`` always; ``iou``,
        ``f1``, ``precision``, ``recall`` for detection; ``mre`` and ``nmae`` (``mae`` over
        the slice's physical diagonal ``diag_mm``; NaN for failures and A/D angles) for T/L
        and A/D.

    Raises:
        ValueError: If a target has the wrong number of values for ``family``.
    """
    fam = TaskFamily(family)
    k = fam.n_values
    n_target = column_array(table, "n_target")
    bad = np.flatnonzero(n_target != k)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"record {table['sample_id'][i].as_py()}: {fam.value} target must have {k} values; "
            f"found {int(n_target[i])}"
        )
    ok = column_array(table, "n_parsed") == k
    out: dict[str, Any] = {"success": ok.astype(np.float64)}
    if fam is TaskFamily.DETECTION:
        # Coordinates as rows (4, N), as score_box_rows reads them.
        pr = np.stack([np.where(ok, column_array(table, f"p{i}"), 0.0) for i in range(k)])
        tr = np.stack([column_array(table, f"t{i}") for i in range(k)]).astype(np.float64)
        s = score_box_rows(
            pr.astype(np.float64, copy=False),
            tr,
            sort_corners=protocol.det_sort_corners,
            clamp=protocol.det_clamp,
        )
        for key in ("iou", "f1", "precision", "recall"):
            out[key] = np.where(ok, s[key], 0.0)
        out["mae"] = np.where(ok, s["mae"], np.nan)
        return out
    pred = np.stack([column_array(table, f"p{i}") for i in range(k)], axis=1).astype(np.float64)
    target = np.stack([column_array(table, f"t{i}") for i in range(k)], axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        ae = np.abs(pred - target)
        re = ae / (target + RE_EPS)
        # Sequential sum / k, as the scalar path (numpy's pairwise sum is the same for k <= 2).
        mae = ae.sum(axis=1) / k
        mre = re.sum(axis=1) / k
    out["mae"] = np.where(ok, mae, np.nan)
    out["mre"] = np.where(ok, mre, np.nan)
    # nMAE (1.2.1): T/L and A/D distances only; an angle has no physical scale to divide by.
    has_scale = ok
    if fam is TaskFamily.ANGLE_DISTANCE:
        has_scale = ok & (column_array(table, "metric_type") == "distance")
    diag = column_array(table, "diag_mm")
    # A record without a known pixel spacing (an imported log) has no diagonal: missing, not inf.
    has_scale = has_scale & (diag > 0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        out["nmae"] = np.where(has_scale, mae / diag, np.nan)
    return out


# ----------------------------------------------------------------------------------------------
# group counters


def bin_index(v: FloatArray) -> IntArray:
    """Official ``min(int(v * 10), 9)`` with Python's negative list indexing reproduced.

    Raises:
        ValueError: For values below -1.0, where the official code raises ``IndexError``.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        idx = np.trunc(np.clip(v * 10.0, -1e6, 9.0)).astype(np.int64)
    if idx.size and int(idx.min()) < -10:
        raise ValueError(
            f"error value {float(v[np.argmin(idx)])!r} is below -1.0; the official bins "
            "(min(int(v*10), 9) as a list index) are undefined there"
        )
    # Python lists index -1..-10 from the end: a negative error lands in an upper bin.
    return np.where(idx < 0, idx + 10, idx)


def _sums(codes: IntArray, n: int, v: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Finite-value sums and counts per group."""
    fin = np.isfinite(v)
    c = codes[fin]
    s = np.bincount(c, weights=v[fin], minlength=n).astype(np.float64)
    cnt = np.bincount(c, minlength=n).astype(np.float64)
    return s, cnt


def _mean(s: FloatArray, cnt: FloatArray) -> FloatArray:
    """``s / cnt`` with NaN where ``cnt == 0``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, s / np.where(cnt > 0, cnt, 1.0), np.nan)


def _frac(count: FloatArray, total: FloatArray) -> FloatArray:
    """``count / total`` with 0.0 where ``total == 0`` (official ``else 0.0``)."""
    return np.where(total > 0, count / np.where(total > 0, total, 1.0), 0.0)


def _cum_bins(codes: IntArray, n: int, v: FloatArray, total: FloatArray) -> FloatArray:
    """Cumulative bin fractions, shape ``(n, 10)``: column j is ``<(j+1)/10``."""
    fin = np.isfinite(v)
    b = bin_index(v[fin])
    counts = np.bincount(codes[fin] * 10 + b, minlength=n * 10).reshape(n, 10)
    cum = np.cumsum(counts, axis=1).astype(np.float64)
    return _frac(cum, total[:, None])


def _at_least(codes: IntArray, n: int, v: FloatArray, thresholds: tuple[float, ...]) -> FloatArray:
    """Finite values ``v >= t`` per group and threshold, shape ``(n, len(thresholds))``.

    One ``bincount`` for all thresholds (ascending): a value's level is the number of
    thresholds ``<= v`` (``searchsorted`` on the right, the same comparisons as ``v >= t``),
    and the count at threshold ``j`` is that of the levels above ``j``.
    """
    fin = np.isfinite(v)
    k = len(thresholds)
    level = np.searchsorted(np.asarray(thresholds, dtype=np.float64), v[fin], side="right")
    counts = np.bincount(codes[fin] * (k + 1) + level, minlength=n * (k + 1)).reshape(n, k + 1)
    above = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1]  # above[:, l]: levels >= l
    return above[:, 1:].astype(np.float64)


def _column(columns: Mapping[str, ArrayLike], key: str, size: int) -> FloatArray:
    """Column ``key`` as float64 of length ``size`` or raise naming it."""
    if key not in columns:
        raise ValueError(f"missing per-sample column {key!r}; have {sorted(columns)}")
    arr = np.asarray(columns[key], dtype=np.float64)
    if arr.shape != (size,):
        raise ValueError(f"per-sample column {key!r} has shape {arr.shape}; expected ({size},)")
    return arr


def grouped_metrics(
    family: str | TaskFamily,
    codes: ArrayLike,
    n_groups: int,
    columns: Mapping[str, ArrayLike],
    *,
    extra: bool = False,
) -> list[dict[str, float]]:
    """Official group counters for many groups at once.

    Args:
        family: ``"detection"``, ``"tl"`` or ``"ad"``.
        codes: Group index ``0 <= code < n_groups`` of each sample, shape ``(N,)``.
        n_groups: Number of groups.
        columns: Per-sample arrays of shape ``(N,)`` keyed as
            :func:`medvision.metrics.sample_metrics` returns them (``success``, ``mae`` and,
            by family, ``iou``/``f1``/``precision``/``recall`` or ``mre``); with ``extra``,
            T/L and A/D also need ``nmae`` (see :func:`score_columns`).
        extra: Add the 1.2.1 extras (``Protocol.metrics_extra``): ``Acc@IoU>=0.50`` ...
            ``Acc@IoU>=0.95`` and ``Acc@IoU[0.50:0.95]`` for detection, ``avgNMAE`` for T/L
            and A/D.

    Returns:
        One metrics dict per group (see the module docstring for the keys); an empty group has
        ``num_samples = 0``, NaN means and 0.0 fractions.
    """
    fam = TaskFamily(family)
    c = np.asarray(codes, dtype=np.int64)
    if c.ndim != 1:
        raise ValueError(f"codes must be 1-D; found shape {c.shape}")
    if c.size and (int(c.min()) < 0 or int(c.max()) >= n_groups):
        raise ValueError(f"group codes must lie in [0, {n_groups}); found {c.min()}..{c.max()}")
    size = c.size
    total = np.bincount(c, minlength=n_groups).astype(np.float64)
    success = _column(columns, "success", size)
    sr = _frac(np.bincount(c, weights=success, minlength=n_groups).astype(np.float64), total)
    mae = _column(columns, "mae", size)
    mae_sum, mae_cnt = _sums(c, n_groups, mae)
    out: dict[str, FloatArray] = {"avgMAE": _mean(mae_sum, mae_cnt)}
    if fam is TaskFamily.DETECTION:
        for key, name in _OVERLAP_NAMES:
            v = _column(columns, key, size)
            s, cnt = _sums(c, n_groups, v)
            out[name] = _mean(s, cnt)
            hits = _at_least(c, n_groups, v, OVERLAP_THRESHOLDS)
            for j, thr in enumerate(OVERLAP_THRESHOLDS):
                out[f"{name}>{thr:.1f}"] = _frac(hits[:, j], total)
        binned, prefix = mae, "MAE"
    else:
        mre = _column(columns, "mre", size)
        s, cnt = _sums(c, n_groups, mre)
        out["avgMRE"] = _mean(s, cnt)
        binned, prefix = mre, "MRE"
    out["SuccessRate"] = sr
    cum = _cum_bins(c, n_groups, binned, total)
    for j, k in enumerate(BIN_THRESHOLDS):
        out[f"{prefix}<{k:.1f}"] = cum[:, j]
    if extra:
        out.update(_extra_metrics(fam, c, n_groups, columns, total))
    rows: list[dict[str, float]] = []
    for g in range(n_groups):
        row = {name: float(arr[g]) for name, arr in out.items()}
        row["num_samples"] = int(total[g])
        rows.append(row)
    return rows


def _extra_metrics(
    fam: TaskFamily,
    c: IntArray,
    n_groups: int,
    columns: Mapping[str, ArrayLike],
    total: FloatArray,
) -> dict[str, FloatArray]:
    """The 1.2.1 extras per group: Acc@IoU (detection) or ``avgNMAE`` (T/L, A/D)."""
    size = c.size
    out: dict[str, FloatArray] = {}
    if fam is TaskFamily.DETECTION:
        hits = _at_least(c, n_groups, _column(columns, "iou", size), ACC_IOU_THRESHOLDS)
        accs = []
        for j, thr in enumerate(ACC_IOU_THRESHOLDS):
            acc = _frac(hits[:, j], total)
            out[f"Acc@IoU>={thr:.2f}"] = acc
            accs.append(acc)
        out[ACC_IOU_MEAN_KEY] = np.mean(np.stack(accs), axis=0)
    else:
        s, cnt = _sums(c, n_groups, _column(columns, "nmae", size))
        out["avgNMAE"] = _mean(s, cnt)
    return out


def group_metrics(
    family: str | TaskFamily, columns: Mapping[str, ArrayLike], *, extra: bool = False
) -> dict[str, float]:
    """Official counters of one group of samples (official section 4.3).

    Args:
        family: ``"detection"``, ``"tl"`` or ``"ad"``.
        columns: Per-sample arrays keyed as :func:`medvision.metrics.sample_metrics` returns
            them (``success``, ``mae``, and ``iou``/``f1``/``precision``/``recall`` or ``mre``;
            with ``extra``, ``nmae`` for T/L and A/D).
        extra: Add the 1.2.1 extras (see :func:`grouped_metrics`).

    Returns:
        Detection: ``avgMAE``, ``IoU``, ``F1``, ``Precision``, ``Recall``, ``SuccessRate``,
        ``IoU>0.5`` ... ``Recall>0.9``, ``MAE<0.1`` ... ``MAE<1.0``, ``num_samples``.
        T/L and A/D: ``avgMAE``, ``avgMRE``, ``SuccessRate``, ``MRE<0.1`` ... ``MRE<1.0``,
        ``num_samples``. With ``extra``: ``Acc@IoU>=0.50`` ... ``Acc@IoU>=0.95`` and
        ``Acc@IoU[0.50:0.95]`` (detection) or ``avgNMAE`` (T/L, A/D).

    Example:
        >>> m = group_metrics("ad", {"success": [1, 1, 0], "mae": [1.0, 3.0, float("nan")],
        ...                          "mre": [0.05, 1.5, float("nan")]})
        >>> m["avgMAE"], m["SuccessRate"], m["MRE<0.1"], m["MRE<1.0"]
        (2.0, 0.6666666666666666, 0.3333333333333333, 0.6666666666666666)
    """
    n = len(np.asarray(columns["success"])) if "success" in columns else 0
    return grouped_metrics(family, np.zeros(n, dtype=np.int64), 1, columns, extra=extra)[0]


def empty_scores(family: TaskFamily) -> dict[str, Any]:
    """Zero-length score columns of ``family`` (for a run without that family's rows)."""
    keys: tuple[str, ...] = ("success", "mae", "iou", "f1", "precision", "recall")
    if family is not TaskFamily.DETECTION:
        keys = ("success", "mae", "mre", "nmae")
    return {k: np.zeros(0) for k in keys}
