"""Aggregation of per-sample scores into the official group tables (official section 4.3-4.4).

Everything here works on columns: records become one :class:`pyarrow.Table`
(:func:`records_to_table`), per-sample scores are recomputed from the parsed values and the
targets with numpy (:func:`score_columns`, equal to :func:`medvision.metrics.sample_metrics`),
and group counters are ``np.bincount`` over integer group codes. ``np.bincount`` with weights
adds in input order, like the official running sums, so the group means equal a per-record
Python loop exactly.

Official counters of one group of ``N`` samples (shared by the three official summarizers):

* ``avgMAE`` / ``avgMRE``: mean over the finite values (failures are NaN, so excluded).
* ``IoU``, ``F1``, ``Precision``, ``Recall``: mean over finite values; failures score 0 and
  are included.
* ``SuccessRate``: successes / ``N``.
* ``IoU>k`` (and F1/Precision/Recall) for k in 0.5 ... 0.9: #(value ``>=`` k) / ``N``; the
  label says ">" but the test is ``>=``.
* ``MAE<k`` (detection) and ``MRE<k`` (T/L, A/D) for k = 0.1 ... 1.0: cumulative bins with
  ``bin = min(int(v * 10), 9)`` over ``N``; so ``<1.0`` counts every finite value, even > 1.
  Non-finite values are dropped (medvision-bm 1.2.1 ``np.isfinite``).
* ``num_samples``: ``N``.

Extras of medvision-bm 1.2.1, only with ``Protocol.metrics_extra`` (``official``, ``strict``):

* ``Acc@IoU>=t`` (detection) for t = 0.50, 0.55, ..., 0.95: #(finite IoU ``>=`` t) / ``N``;
  ``Acc@IoU[0.50:0.95]`` is the mean of those ten fractions.
* ``avgNMAE`` (T/L, A/D distance): mean over successful samples with a finite value of
  ``nMAE = MAE / D``, where ``D = sqrt((H * px_h)**2 + (W * px_w)**2)`` mm is the physical
  diagonal of the slice (``H, W`` the native slice size, ``px`` its in-plane spacing). A/D
  angles have no nMAE (NaN). Model lines and A/D group averages add ``nMAE``: the
  sample-weighted mean over the groups whose ``avgNMAE`` is not NaN.

Model-level lines are sample-weighted (micro) means over groups, ``sum(v * N) / sum(N)``, with
the official per-family quirks documented on each summarizer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from operator import attrgetter
from typing import Any, Final, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import ArrayLike, NDArray

from medvision.geometry.detection import score_boxes
from medvision.metrics.outcomes import answered_rows, outcome_counts
from medvision.metrics.per_sample import RE_EPS
from medvision.metrics.protocols import Protocol
from medvision.schema import Plane, Record, TaskFamily

__all__ = [
    "ACC_IOU_MEAN_KEY",
    "ACC_IOU_THRESHOLDS",
    "BIN_THRESHOLDS",
    "MODALITY_CODES",
    "OVERLAP_THRESHOLDS",
    "TL_LABEL_KINDS",
    "group_metrics",
    "grouped_metrics",
    "modality_code",
    "records_to_table",
    "score_columns",
    "summarize_ad",
    "summarize_detection",
    "summarize_run",
    "summarize_tl",
    "to_jsonable",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

MODALITY_CODES: Final[dict[str, str]] = {
    "MRI": "MR",
    "CT": "CT",
    "ultrasound": "US",
    "X-ray": "XR",
    "PET": "PET",
}
"""Official modality abbreviations in group keys; other names pass through unchanged."""

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
_MAX_VALUES = 4
_SCHEMA: Final[pa.Schema] = pa.schema(
    [
        ("sample_id", pa.string()),
        ("dataset", pa.string()),
        ("family", pa.string()),
        ("plane", pa.int8()),
        ("label_name", pa.string()),
        ("label_kind", pa.string()),
        ("label_group", pa.string()),
        ("modality", pa.string()),
        ("metric_type", pa.string()),
        ("metric_key", pa.string()),
        ("model", pa.string()),
        ("protocol", pa.string()),
        ("status", pa.string()),
        ("finish_reason", pa.string()),
        ("n_parsed", pa.int16()),
        *((f"p{i}", pa.float64()) for i in range(_MAX_VALUES)),
        ("n_target", pa.int16()),
        *((f"t{i}", pa.float64()) for i in range(_MAX_VALUES)),
        ("box_img_ratio", pa.float64()),
        ("image_h", pa.int32()),
        ("image_w", pa.int32()),
        ("diag_mm", pa.float64()),
    ]
)


# ----------------------------------------------------------------------------------------------
# records -> columns


def _value_columns(
    seqs: Sequence[Sequence[float] | None], name: str, ids: Sequence[str], *, strict: bool
) -> tuple[NDArray[np.int16], FloatArray]:
    """Lengths (-1 for ``None``) and a NaN-padded ``(N, 4)`` float64 matrix of value tuples.

    With ``strict`` a sequence longer than four raises; otherwise it is stored as its length
    with NaN values (more values than any family takes can only be a failed parse).
    """
    n = len(seqs)
    # Arrow converts the Python tuples in C++ (None -> null list), far faster than a loop.
    arr = pa.array(seqs, type=pa.list_(pa.float64())) if n else pa.array([], pa.list_(pa.float64()))
    lengths = np.asarray(
        pc.fill_null(pc.list_value_length(arr), -1).to_numpy(zero_copy_only=False),
        dtype=np.int64,
    )
    too_long = np.flatnonzero(lengths > _MAX_VALUES)
    if strict and too_long.size:
        i = int(too_long[0])
        raise ValueError(
            f"record {ids[i]}: {name} has {int(lengths[i])} values; at most {_MAX_VALUES} expected"
        )
    mat = np.full((n, _MAX_VALUES), np.nan)
    if n:
        offsets = np.asarray(arr.offsets.to_numpy(), dtype=np.int64)[:-1]
        values = np.asarray(arr.values.to_numpy(zero_copy_only=False), dtype=np.float64)
        for j in range(_MAX_VALUES):
            rows = np.flatnonzero((lengths > j) & (lengths <= _MAX_VALUES))
            mat[rows, j] = values[offsets[rows] + j]
    return lengths.astype(np.int16), mat


_STR_FIELDS: Final[tuple[str, ...]] = (
    "sample_id",
    "dataset",
    "family",
    "label_name",
    "label_kind",
    "label_group",
    "modality",
    "metric_type",
    "metric_key",
    "model",
    "protocol",
    "status",
    "finish_reason",
)
_ALL_FIELDS: Final[tuple[str, ...]] = (
    *_STR_FIELDS,
    "plane",
    "parsed",
    "target",
    "box_img_ratio",
    "image_hw",
    "seen_hw",
    "seen_spacing_mm_rc",
)


def records_to_table(records: Iterable[Record]) -> pa.Table:
    """Build the column table the aggregators read from evaluated records.

    Args:
        records: Evaluated records (any iterable; read once).

    Returns:
        A table with one row per record: identifying strings (``sample_id``, ``dataset``,
        ``family``, ``label_name``, ``label_kind``, ``label_group``, ``modality``,
        ``metric_type``, ``metric_key``, ``model``, ``protocol``, ``status``), ``plane``
        (int8), ``n_parsed`` (number of parsed values, -1 when ``parsed is None``),
        ``p0..p3`` (parsed values, NaN-padded), ``n_target`` and ``t0..t3`` (target,
        NaN-padded) and ``box_img_ratio`` (ground-truth box area over image area; NaN when
        the record has none), ``image_h`` and ``image_w`` (stored image size in pixels) and
        ``diag_mm``, the physical diagonal of the slice,
        ``sqrt((seen_h * seen_sr)**2 + (seen_w * seen_sc)**2)`` mm (the image the model saw
        covers the same field of view as the stored one, so this equals the diagonal from the
        native size and spacing). Units are those of each family (see :mod:`medvision.schema`).

    Raises:
        ValueError: If a record has more than four target values.
    """
    recs = records if isinstance(records, list) else list(records)
    n = len(recs)
    # One C-level attrgetter pass per column: the cheapest way to pull attributes of many
    # objects (cheaper than building one tuple per record and transposing).
    by_name = {f: list(map(attrgetter(f), recs)) for f in _ALL_FIELDS}
    cols: dict[str, Any] = {f: pa.array(by_name[f], type=pa.string()) for f in _STR_FIELDS}
    ids = by_name["sample_id"]
    cols["plane"] = pa.array(np.array(by_name["plane"], dtype=np.int8))
    n_parsed, p = _value_columns(by_name["parsed"], "parsed", ids, strict=False)
    n_target, t = _value_columns(by_name["target"], "target", ids, strict=True)
    cols["n_parsed"] = pa.array(n_parsed)
    cols["n_target"] = pa.array(n_target)
    for i in range(_MAX_VALUES):
        cols[f"p{i}"] = pa.array(p[:, i])
        cols[f"t{i}"] = pa.array(t[:, i])
    ratio = pa.array(by_name["box_img_ratio"], type=pa.float64())
    cols["box_img_ratio"] = pc.fill_null(ratio, math.nan) if n else ratio
    hw = np.fromiter(chain.from_iterable(by_name["image_hw"]), dtype=np.int32, count=2 * n).reshape(
        -1, 2
    )
    cols["image_h"] = pa.array(hw[:, 0])
    cols["image_w"] = pa.array(hw[:, 1])
    seen = np.fromiter(
        chain.from_iterable(by_name["seen_hw"]), dtype=np.float64, count=2 * n
    ).reshape(-1, 2)
    spacing = np.fromiter(
        chain.from_iterable(by_name["seen_spacing_mm_rc"]), dtype=np.float64, count=2 * n
    ).reshape(-1, 2)
    extent = seen * spacing  # (rows mm, cols mm) of the field of view
    cols["diag_mm"] = pa.array(np.sqrt(extent[:, 0] ** 2 + extent[:, 1] ** 2))
    return pa.table({name: cols[name] for name in _SCHEMA.names}, schema=_SCHEMA)


def _as_table(data: Iterable[Record] | pa.Table) -> pa.Table:
    """Return ``data`` as the aggregation table (records are converted)."""
    if isinstance(data, pa.Table):
        missing = [n for n in _SCHEMA.names if n not in data.column_names]
        if missing:
            raise ValueError(f"table lacks the columns {missing}; build it with records_to_table")
        return data
    return records_to_table(data)


def _family_rows(table: pa.Table, family: TaskFamily) -> pa.Table:
    """Rows of ``table`` of one task family (the table itself when every row is of it)."""
    mask = pc.equal(table["family"], family.value)
    if table.num_rows and pc.all(mask).as_py():
        return table  # already one family: skip copying every column
    rows = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool))
    if rows.size and int(rows[-1]) - int(rows[0]) + 1 == rows.size:
        # Runs write records family by family: a contiguous block is a zero-copy slice.
        return table.slice(int(rows[0]), int(rows.size))
    return table.filter(mask)


def _np(table: pa.Table, name: str) -> NDArray[Any]:
    """Column ``name`` as a numpy array."""
    return np.asarray(table[name].to_numpy())


def _strings(table: pa.Table, name: str) -> tuple[IntArray, list[str]]:
    """Dictionary-encode a string column: ``(codes, uniques)``."""
    col = table[name].combine_chunks() if table.num_rows else pa.array([], pa.string())
    enc = pc.dictionary_encode(col)
    codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return codes, [str(s) for s in enc.dictionary.to_pylist()]


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
    n_target = _np(table, "n_target")
    bad = np.flatnonzero(n_target != k)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"record {table['sample_id'][i].as_py()}: {fam.value} target must have {k} values; "
            f"found {int(n_target[i])}"
        )
    ok = _np(table, "n_parsed") == k
    pred = np.stack([_np(table, f"p{i}") for i in range(k)], axis=1).astype(np.float64)
    target = np.stack([_np(table, f"t{i}") for i in range(k)], axis=1).astype(np.float64)
    out: dict[str, Any] = {"success": ok.astype(np.float64)}
    if fam is TaskFamily.DETECTION:
        s = score_boxes(
            np.where(ok[:, None], pred, 0.0),
            target,
            sort_corners=protocol.det_sort_corners,
            clamp=protocol.det_clamp,
        )
        for key in ("iou", "f1", "precision", "recall"):
            out[key] = np.where(ok, s[key], 0.0)
        out["mae"] = np.where(ok, s["mae"], np.nan)
        return out
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
        has_scale = ok & (_np(table, "metric_type") == "distance")
    diag = _np(table, "diag_mm")
    # A record without a known pixel spacing (an imported log) has no diagonal: missing, not inf.
    has_scale = has_scale & (diag > 0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        out["nmae"] = np.where(has_scale, mae / diag, np.nan)
    return out


# ----------------------------------------------------------------------------------------------
# group counters


def _bin_index(v: FloatArray) -> IntArray:
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


def _sums(codes: IntArray, n: int, v: FloatArray) -> tuple[FloatArray, FloatArray, NDArray[Any]]:
    """Finite-value sums and counts per group, plus the finite mask."""
    fin = np.isfinite(v)
    c = codes[fin]
    s = np.bincount(c, weights=v[fin], minlength=n).astype(np.float64)
    cnt = np.bincount(c, minlength=n).astype(np.float64)
    return s, cnt, fin


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
    b = _bin_index(v[fin])
    counts = np.bincount(codes[fin] * 10 + b, minlength=n * 10).reshape(n, 10)
    cum = np.cumsum(counts, axis=1).astype(np.float64)
    return _frac(cum, total[:, None])


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
    mae_sum, mae_cnt, _ = _sums(c, n_groups, mae)
    out: dict[str, FloatArray] = {"avgMAE": _mean(mae_sum, mae_cnt)}
    if fam is TaskFamily.DETECTION:
        for key, name in _OVERLAP_NAMES:
            v = _column(columns, key, size)
            s, cnt, fin = _sums(c, n_groups, v)
            out[name] = _mean(s, cnt)
            for thr in OVERLAP_THRESHOLDS:
                hit = fin & (v >= thr)
                out[f"{name}>{thr:.1f}"] = _frac(
                    np.bincount(c[hit], minlength=n_groups).astype(np.float64), total
                )
        binned, prefix = mae, "MAE"
    else:
        mre = _column(columns, "mre", size)
        s, cnt, _ = _sums(c, n_groups, mre)
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
        iou = _column(columns, "iou", size)
        fin = np.isfinite(iou)
        accs = []
        for thr in ACC_IOU_THRESHOLDS:
            hit = fin & (iou >= thr)
            acc = _frac(np.bincount(c[hit], minlength=n_groups).astype(np.float64), total)
            out[f"Acc@IoU>={thr:.2f}"] = acc
            accs.append(acc)
        out[ACC_IOU_MEAN_KEY] = np.mean(np.stack(accs), axis=0)
    else:
        s, cnt, _ = _sums(c, n_groups, _column(columns, "nmae", size))
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


# ----------------------------------------------------------------------------------------------
# grouping helpers


def modality_code(modality: str) -> str:
    """Official short modality code (``MRI`` -> ``MR``, ``ultrasound`` -> ``US``, ...)."""
    return MODALITY_CODES.get(modality, modality)


def _plane_letters(planes: NDArray[Any], table: pa.Table) -> NDArray[Any]:
    """Plane letters S/C/A for plane values 0/1/2, or raise naming the first bad record."""
    bad = np.flatnonzero((planes < 0) | (planes > 2))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"record {table['sample_id'][i].as_py()}: plane must be 0, 1 or 2; "
            f"found {int(planes[i])}"
        )
    letters = np.array([Plane(i).letter for i in range(3)], dtype=object)
    return letters[planes.astype(np.int64)]


def _group_by(parts: Sequence[IntArray]) -> tuple[IntArray, IntArray]:
    """Joint group codes of several integer code columns: ``(codes, first_row_of_group)``."""
    n = parts[0].size if parts else 0
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    combined = np.zeros(n, dtype=np.int64)
    for p in parts:
        radix = int(p.max()) + 1
        combined = combined * radix + p
    span = int(combined.max()) + 1
    if span > 4 * n + 1_000_000:  # sparse codes: sort
        _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
        return inverse.astype(np.int64).reshape(-1), first.astype(np.int64)
    # Dense codes: a counting pass instead of a sort; the same (ascending) group order.
    present = np.zeros(span, dtype=bool)
    present[combined] = True
    remap = np.cumsum(present) - 1
    inverse = remap[combined]
    first_at = np.full(span, n, dtype=np.int64)
    np.minimum.at(first_at, combined, np.arange(n, dtype=np.int64))
    return inverse.astype(np.int64), first_at[present]


def _keyed_groups(
    table: pa.Table, label_column: str, *, with_plane: bool = True
) -> tuple[IntArray, list[str]]:
    """Group rows by ``f"{label} @ {MOD} ({plane letter})"``; return ``(codes, keys)``."""
    label_codes, labels = _strings(table, label_column)
    mod_raw_codes, mod_raw = _strings(table, "modality")
    mods = sorted({modality_code(m) for m in mod_raw})
    mod_index = np.array([mods.index(modality_code(m)) for m in mod_raw], dtype=np.int64)
    mod_codes = mod_index[mod_raw_codes] if mod_raw_codes.size else mod_raw_codes
    parts = [label_codes, mod_codes]
    planes = _np(table, "plane").astype(np.int64)
    if with_plane:
        _plane_letters(planes, table)
        parts.append(planes)
    codes, first = _group_by(parts)
    keys = []
    for row in first:
        key = f"{labels[label_codes[row]]} @ {mods[mod_codes[row]]}"
        if with_plane:
            key += f" ({Plane(int(planes[row])).letter})"
        keys.append(key)
    return codes, keys


def _weighted(
    rows: Sequence[Mapping[str, float]], *, skip_nan_in_denominator: bool
) -> dict[str, float]:
    """Sample-weighted mean ``sum(v * N) / sum(N)`` of every metric over ``rows``.

    Args:
        rows: Group metric dicts with ``num_samples``.
        skip_nan_in_denominator: True: NaN values leave both sums (detection anatomy/T-L,
            A/D group averages); False: the official A/D/T-L model-line quirk, where a NaN value
            leaves the numerator but its ``N`` stays in the denominator.
    """
    names = [k for k in rows[0] if k != "num_samples"] if rows else []
    out: dict[str, float] = {}
    total_all = float(sum(r["num_samples"] for r in rows))
    for name in names:
        num = 0.0
        den = 0.0
        for r in rows:
            v, n = float(r[name]), float(r["num_samples"])
            if math.isfinite(v):
                num += v * n
                den += n
        # A mean of no value is undefined, never 0 (the official quirk's 0 / N when every
        # label is NaN would read as a perfect MAE).
        if not skip_nan_in_denominator and den > 0:
            den = total_all
        out[name] = num / den if den > 0 else math.nan
    return out


# ----------------------------------------------------------------------------------------------
# family summaries


def _empty_scores(family: TaskFamily) -> dict[str, Any]:
    """Zero-length score columns of ``family`` (for a run without that family's rows)."""
    keys: tuple[str, ...] = ("success", "mae", "iou", "f1", "precision", "recall")
    if family is not TaskFamily.DETECTION:
        keys = ("success", "mae", "mre", "nmae")
    return {k: np.zeros(0) for k in keys}


def summarize_detection(data: Iterable[Record] | pa.Table, protocol: Protocol) -> dict[str, Any]:
    """Detection summary as ``summarize_detection_task.py``.

    Groups are ``f"{label_group} @ {MOD} ({S|C|A})"`` (samples of different datasets that share
    group, modality and plane are pooled). The anatomy-vs-T/L split drops groups whose
    lower-cased key contains an excluded word or with ``num_samples < min_group_size``; a group
    is T/L when its key contains a tumour/lesion word **or** any of its records has
    ``label_kind`` in {"tumour", "lesion"} (our group names need not spell "tumor"); each
    metric is the sample-weighted mean over groups, skipping NaN.

    Args:
        data: Records (or a table from :func:`records_to_table`); non-detection rows are ignored.
        protocol: Protocol whose switches apply.

    Returns:
        ``{"groups": {key: metrics}, "labels": {f"{label_name} @ MOD (P)": metrics},
        "all": metrics of every detection sample pooled, "anatomy": {...}, "tumor_lesion":
        {...}, "excluded": {key: reason}}``; ``anatomy`` and ``tumor_lesion`` hold
        ``mean_metrics`` (with ``total_samples`` and ``num_regions``) and ``regions``.
    """
    fam = TaskFamily.DETECTION
    table = _family_rows(_as_table(data), fam)
    scores = score_columns(table, fam, protocol) if table.num_rows else _empty_scores(fam)
    extra = protocol.metrics_extra
    codes, keys = _keyed_groups(table, "label_group")
    rows = grouped_metrics(fam, codes, len(keys), scores, extra=extra)
    groups = dict(sorted(zip(keys, rows, strict=True)))
    lcodes, lkeys = _keyed_groups(table, "label_name")
    lrows = grouped_metrics(fam, lcodes, len(lkeys), scores, extra=extra)
    labels = dict(sorted(zip(lkeys, lrows, strict=True)))
    kind_codes, kinds = _strings(table, "label_kind")
    is_tl_kind = np.array([k in TL_LABEL_KINDS for k in kinds], dtype=np.float64)
    tl_by_kind = (
        np.bincount(codes, weights=is_tl_kind[kind_codes], minlength=len(keys)) > 0
        if table.num_rows
        else np.zeros(0, dtype=bool)
    )
    tl_kind_of = dict(zip(keys, tl_by_kind.tolist(), strict=True))

    excluded: dict[str, str] = {}
    anatomy: dict[str, dict[str, float]] = {}
    tumor: dict[str, dict[str, float]] = {}
    for key, m in groups.items():
        low = key.lower()
        if any(w in low for w in protocol.excluded_keys):
            excluded[key] = "excluded key word"
        elif m["num_samples"] < protocol.min_group_size:
            excluded[key] = f"num_samples {m['num_samples']} < {protocol.min_group_size}"
        elif any(w in low for w in protocol.tumor_lesion_keys) or tl_kind_of[key]:
            tumor[key] = m
        else:
            anatomy[key] = m

    def split(part: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
        mean: dict[str, float] = {}
        if part:
            mean = _weighted(list(part.values()), skip_nan_in_denominator=True)
            mean["total_samples"] = int(sum(m["num_samples"] for m in part.values()))
            mean["num_regions"] = len(part)
        return {"mean_metrics": mean, "regions": list(part)}

    pooled = group_metrics(fam, scores, extra=extra)
    return {
        "groups": groups,
        "labels": labels,
        "all": pooled,
        "anatomy": split(anatomy),
        "tumor_lesion": split(tumor),
        "excluded": excluded,
    }


def _model_line(
    rows: Mapping[str, Mapping[str, float]], *, mre_name: str, extra: bool
) -> dict[str, Any]:
    """The official T/L / A/D model line: weighted MAE/MRE/SR (NaN kept in the denominator).

    With ``extra``, ``nMAE`` is the sample-weighted mean of the groups' ``avgNMAE`` over the
    groups where it is not NaN (1.2.1 ``weighted_avg_nmae``: NaN leaves both sums).
    """
    lst = list(rows.values())
    if not lst:
        line: dict[str, Any] = {
            "MAE": math.nan,
            "MRE": math.nan,
            "SR": math.nan,
            **{f"{mre_name}<{k}": math.nan for k in ("0.1", "0.2", "0.3")},
        }
        if extra:
            line["nMAE"] = math.nan
        return {**line, "num_samples": 0, "num_groups": 0}
    quirk = _weighted(lst, skip_nan_in_denominator=False)
    clean = _weighted(lst, skip_nan_in_denominator=True)
    line = {
        "MAE": quirk["avgMAE"],
        "MRE": quirk["avgMRE"],
        "SR": quirk["SuccessRate"],
        # The MRE<k lines skip NaN in both sums (they are never NaN in practice).
        **{f"{mre_name}<{k}": clean[f"{mre_name}<{k}"] for k in ("0.1", "0.2", "0.3")},
    }
    if extra:
        line["nMAE"] = clean["avgNMAE"]
    return {
        **line,
        "num_samples": int(sum(r["num_samples"] for r in lst)),
        "num_groups": len(lst),
    }


def summarize_tl(data: Iterable[Record] | pa.Table, protocol: Protocol) -> dict[str, Any]:
    """Tumour/lesion size summary as ``summarize_TL_task.py``.

    Groups are ``f"{label_name} @ {MOD} ({S|C|A})"``; no minimum size, no exclusions. The model
    line is sample-weighted over groups whose ``avgMRE`` is not NaN: a label where every
    sample failed is **dropped entirely** (official quirk, which inflates SR); the dropped keys
    are listed and ``SR_all_groups`` gives the success rate with them kept.

    Args:
        data: Records (or a table); non-T/L rows are ignored.
        protocol: Protocol (T/L scores depend only on ``metrics_extra``, which adds
            ``avgNMAE`` to the groups and ``nMAE`` to the model line).

    Returns:
        ``{"groups": {key: metrics}, "model": {"MAE", "MRE", "SR", "MRE<0.1", "MRE<0.2",
        "MRE<0.3", ["nMAE",] "num_samples", "num_groups"}, "dropped_all_failed": [keys],
        "SR_all_groups": float, "all": pooled metrics}``.
    """
    fam = TaskFamily.TUMOR_LESION_SIZE
    table = _family_rows(_as_table(data), fam)
    scores = score_columns(table, fam, protocol) if table.num_rows else _empty_scores(fam)
    extra = protocol.metrics_extra
    codes, keys = _keyed_groups(table, "label_name")
    rows = grouped_metrics(fam, codes, len(keys), scores, extra=extra)
    groups = dict(sorted(zip(keys, rows, strict=True)))
    kept = {k: m for k, m in groups.items() if math.isfinite(m["avgMRE"]) and m["num_samples"]}
    dropped = [k for k in groups if k not in kept]
    n_all = sum(m["num_samples"] for m in groups.values())
    sr_all = (
        sum(m["SuccessRate"] * m["num_samples"] for m in groups.values()) / n_all
        if n_all
        else math.nan
    )
    return {
        "groups": groups,
        "model": _model_line(kept, mre_name="MRE", extra=extra),
        "dropped_all_failed": dropped,
        "SR_all_groups": sr_all,
        "all": group_metrics(fam, scores, extra=extra),
    }


_AD_DATASET_SHORT: Final[dict[str, str]] = {"FeTA24": "FeTA", "Ceph-Biometrics-400": "Ceph"}
"""Official A/D group-average names use these short dataset names."""


def summarize_ad(data: Iterable[Record] | pa.Table, protocol: Protocol) -> dict[str, Any]:
    """Angle/distance summary as ``summarize_AD_task.py``.

    Labels are ``f"{dataset}_{metric_type}_{metric_key}"`` (planes pooled). With
    ``protocol.ad_near_zero_gt`` set, samples whose target is below it are removed before
    counting. The model line is the official quirk: MAE and MRE numerators skip NaN label
    values while the denominator counts every sample. Group averages
    ``f"{short dataset}-{Metric type}"`` (``"Ceph-Angle"``, ``"FeTA-Distance"``, ...) and the
    cross-dataset ``"Distance"`` / ``"Angle"`` (1.2.1) skip NaN in both sums.

    Args:
        data: Records (or a table); non-A/D rows are ignored.
        protocol: Protocol whose ``ad_near_zero_gt`` and ``metrics_extra`` (``avgNMAE`` per
            label, ``nMAE`` in the model line and group averages) apply.

    Returns:
        ``{"labels": {label: metrics}, "model": {...}, "groups": {name: {"MAE", "MRE", "SR",
        "MRE<0.1", "MRE<0.2", "MRE<0.3", ["nMAE",] "samples"}}, "labels_all_failed": [labels whose
        MAE is NaN, kept in the model line's denominator], "near_zero_excluded": int,
        "all": pooled metrics}``.
    """
    fam = TaskFamily.ANGLE_DISTANCE
    table = _family_rows(_as_table(data), fam)
    n_near_zero = 0
    if protocol.ad_near_zero_gt is not None and table.num_rows:
        near = _np(table, "t0") < protocol.ad_near_zero_gt
        n_near_zero = int(near.sum())
        table = table.filter(pa.array(~near))
    scores = score_columns(table, fam, protocol) if table.num_rows else _empty_scores(fam)
    ds_codes, datasets = _strings(table, "dataset")
    mt_codes, mtypes = _strings(table, "metric_type")
    mk_codes, mkeys = _strings(table, "metric_key")
    codes, first = _group_by([ds_codes, mt_codes, mk_codes])
    keys = [f"{datasets[ds_codes[r]]}_{mtypes[mt_codes[r]]}_{mkeys[mk_codes[r]]}" for r in first]
    extra = protocol.metrics_extra
    rows = grouped_metrics(fam, codes, len(keys), scores, extra=extra)
    labels = dict(sorted(zip(keys, rows, strict=True)))

    members: dict[str, list[dict[str, float]]] = {}
    for r, m in zip(first, rows, strict=True):
        ds, mt = datasets[ds_codes[r]], mtypes[mt_codes[r]]
        name = f"{_AD_DATASET_SHORT.get(ds, ds)}-{mt.capitalize()}"
        members.setdefault(name, []).append(m)
        members.setdefault(mt.capitalize(), []).append(m)
    groups: dict[str, dict[str, float]] = {}
    for name in sorted(members):
        w = _weighted(members[name], skip_nan_in_denominator=True)
        groups[name] = {
            "MAE": w["avgMAE"],
            "MRE": w["avgMRE"],
            "SR": w["SuccessRate"],
            "MRE<0.1": w["MRE<0.1"],
            "MRE<0.2": w["MRE<0.2"],
            "MRE<0.3": w["MRE<0.3"],
            **({"nMAE": w["avgNMAE"]} if extra else {}),
            "samples": int(sum(m["num_samples"] for m in members[name])),
        }
    return {
        "labels": labels,
        "model": _model_line(labels, mre_name="MRE", extra=extra),
        "labels_all_failed": [k for k, m in labels.items() if not math.isfinite(m["avgMAE"])],
        "groups": groups,
        "near_zero_excluded": n_near_zero,
        "all": group_metrics(fam, scores, extra=extra),
    }


def _counts(column: pa.ChunkedArray) -> dict[str, int]:
    """Counts of each distinct string value, sorted by value (computed in Arrow)."""
    vc = pc.value_counts(column)
    pairs = zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True)
    return {str(u): int(c) for u, c in sorted(pairs)}


def summarize_run(data: Iterable[Record] | pa.Table, protocol: Protocol) -> dict[str, Any]:
    """Summaries of every task family present in one run, JSON-serialisable.

    Args:
        data: The run's records (or a table from :func:`records_to_table`).
        protocol: Protocol the numbers are computed under (stated in the output).

    Returns:
        ``{"protocol": switches, "record_protocols": {name: count}, "models": [...],
        "num_records": int, "outcomes": {...}, "status_counts": {status: count},
        "status_counts_by_family": {family: {status: count}}, "detection" | "tl" | "ad":
        summaries}`` with every NaN written as ``None`` (infinities stay floats; see
        :func:`to_jsonable`). Records whose status is ``backend_error`` hold no answer: they
        are counted in ``num_records``, ``status_counts`` and ``outcomes``
        (:func:`medvision.metrics.outcomes.outcome_counts`) and left out of everything else
        (``status_counts_by_family`` and the family summaries describe answered records
        only), so a metric no answered sample supports is ``None``, never 0.
    """
    every = _as_table(data)
    table = answered_rows(every)
    families = {str(f) for f in pc.unique(every["family"]).to_pylist()}
    unknown = families - {f.value for f in TaskFamily}
    if unknown:
        raise ValueError(
            f"records with unknown task families {sorted(unknown)}; "
            f"expected {[f.value for f in TaskFamily]}"
        )
    out: dict[str, Any] = {
        "protocol": protocol.switches(),
        "record_protocols": _counts(table["protocol"]) if table.num_rows else {},
        "models": sorted(str(m) for m in pc.unique(table["model"]).to_pylist())
        if table.num_rows
        else [],
        "num_records": every.num_rows,
        "outcomes": outcome_counts(every),
        "status_counts": _counts(every["status"]) if every.num_rows else {},
        "status_counts_by_family": {},
    }
    summarizers = {
        TaskFamily.DETECTION: summarize_detection,
        TaskFamily.TUMOR_LESION_SIZE: summarize_tl,
        TaskFamily.ANGLE_DISTANCE: summarize_ad,
    }
    for fam, fn in summarizers.items():
        if fam.value not in families:
            continue
        rows = _family_rows(table, fam)
        out["status_counts_by_family"][fam.value] = _counts(rows["status"])
        out[fam.value] = fn(rows, protocol)
    return cast(dict[str, Any], to_jsonable(out))


def to_jsonable(obj: Any) -> Any:
    """Return ``obj`` with NaN as ``None`` and numpy scalars/arrays as Python values.

    Infinities stay floats (an infinite MAE is a result, not a missing value): write the
    result with :func:`medvision.metrics.jsonvalues.dumps`, which keeps them as ``"inf"``.
    """
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        f = float(obj)
        return None if math.isnan(f) else f
    return obj
