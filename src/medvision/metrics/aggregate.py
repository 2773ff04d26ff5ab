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
the official per-family quirks documented on each summarizer. The grouping rules themselves
(keys, label maps, anatomy vs T/L, weights) live in :mod:`medvision.metrics.grouping`; the
record table in :mod:`medvision.metrics.columns`; the counters in
:mod:`medvision.metrics.counters`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from medvision.metrics.columns import (
    as_table,
    column_array,
    family_rows,
    records_to_table,
)
from medvision.metrics.counters import (
    ACC_IOU_MEAN_KEY,
    ACC_IOU_THRESHOLDS,
    BIN_THRESHOLDS,
    OVERLAP_THRESHOLDS,
    empty_scores,
    group_metrics,
    grouped_metrics,
    score_columns,
)
from medvision.metrics.grouping import (
    MODALITY_CODES,
    TL_LABEL_KINDS,
    ad_group_names,
    ad_groups,
    classify_detection_group,
    detection_groups,
    keyed_groups,
    modality_code,
    model_line,
    tl_groups,
    weighted_mean,
)
from medvision.metrics.outcomes import answered_rows, outcome_counts
from medvision.metrics.protocols import Protocol
from medvision.schema import Record, TaskFamily

# Re-exported: these lived here before the split into columns / counters / grouping.
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


def summarize_detection(data: Iterable[Record] | pa.Table, protocol: Protocol) -> dict[str, Any]:
    """Detection summary as ``summarize_detection_task.py``.

    Groups and the anatomy-vs-T/L split follow :mod:`medvision.metrics.grouping`
    (:func:`~medvision.metrics.grouping.detection_groups`,
    :func:`~medvision.metrics.grouping.classify_detection_group`): ``f"{parent class} @ {MOD}
    ({S|C|A})"`` under the protocol's label maps, excluded words and the N >= 50 floor dropped;
    each metric is the sample-weighted mean over groups, skipping NaN.

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
    table = family_rows(as_table(data), fam)
    scores = score_columns(table, fam, protocol) if table.num_rows else empty_scores(fam)
    extra = protocol.metrics_extra
    codes, keys, is_tl_kind = detection_groups(table, protocol)
    rows = grouped_metrics(fam, codes, len(keys), scores, extra=extra)
    groups = dict(sorted(zip(keys, rows, strict=True)))
    lcodes, lkeys = keyed_groups(table, "label_name")
    lrows = grouped_metrics(fam, lcodes, len(lkeys), scores, extra=extra)
    labels = dict(sorted(zip(lkeys, lrows, strict=True)))
    tl_kind_of = dict(zip(keys, is_tl_kind.tolist(), strict=True))

    excluded: dict[str, str] = {}
    parts: dict[str, dict[str, dict[str, float]]] = {"anatomy": {}, "tumor_lesion": {}}
    for key, m in groups.items():
        where, reason = classify_detection_group(
            key, int(m["num_samples"]), tl_kind_of[key], protocol
        )
        if where == "excluded":
            excluded[key] = reason
        else:
            parts[where][key] = m

    def split(part: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
        mean: dict[str, float] = {}
        if part:
            mean = weighted_mean(list(part.values()), skip_nan_in_denominator=True)
            mean["total_samples"] = int(sum(m["num_samples"] for m in part.values()))
            mean["num_regions"] = len(part)
        return {"mean_metrics": mean, "regions": list(part)}

    pooled = group_metrics(fam, scores, extra=extra)
    return {
        "groups": groups,
        "labels": labels,
        "all": pooled,
        "anatomy": split(parts["anatomy"]),
        "tumor_lesion": split(parts["tumor_lesion"]),
        "excluded": excluded,
    }


def summarize_tl(data: Iterable[Record] | pa.Table, protocol: Protocol) -> dict[str, Any]:
    """Tumour/lesion size summary as ``summarize_TL_task.py``.

    Groups are ``f"{label_map_rename value} @ {MOD} ({S|C|A})"``
    (:func:`~medvision.metrics.grouping.tl_groups`); no minimum size, no exclusions. The model
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
    table = family_rows(as_table(data), fam)
    scores = score_columns(table, fam, protocol) if table.num_rows else empty_scores(fam)
    extra = protocol.metrics_extra
    codes, keys = tl_groups(table)
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
        "model": model_line(kept, mre_name="MRE", extra=extra),
        "dropped_all_failed": dropped,
        "SR_all_groups": sr_all,
        "all": group_metrics(fam, scores, extra=extra),
    }


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
    table = family_rows(as_table(data), fam)
    n_near_zero = 0
    if protocol.ad_near_zero_gt is not None and table.num_rows:
        near = column_array(table, "t0") < protocol.ad_near_zero_gt
        n_near_zero = int(near.sum())
        table = table.filter(pa.array(~near))
    scores = score_columns(table, fam, protocol) if table.num_rows else empty_scores(fam)
    codes, keys, first = ad_groups(table)
    datasets = column_array(table, "dataset")
    mtypes = column_array(table, "metric_type")
    extra = protocol.metrics_extra
    rows = grouped_metrics(fam, codes, len(keys), scores, extra=extra)
    labels = dict(sorted(zip(keys, rows, strict=True)))

    members: dict[str, list[dict[str, float]]] = {}
    for r, m in zip(first, rows, strict=True):
        for name in ad_group_names(str(datasets[r]), str(mtypes[r])):
            members.setdefault(name, []).append(m)
    groups: dict[str, dict[str, float]] = {}
    for name in sorted(members):
        w = weighted_mean(members[name], skip_nan_in_denominator=True)
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
        "model": model_line(labels, mre_name="MRE", extra=extra),
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
    every = as_table(data)
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
        rows = family_rows(table, fam)
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
