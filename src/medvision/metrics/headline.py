"""Headline numbers of a run, computable on any resample of its samples.

The leaderboard's numbers (detection anatomy / tumour-lesion / all, T/L and A/D model lines,
and our macro averages over datasets) are recomputed here from per-sample score columns and
integer group codes, so the bootstrap (:mod:`medvision.metrics.bootstrap`) and the paired
comparison (:mod:`medvision.metrics.paired`) can evaluate them thousands of times without
rebuilding tables. :func:`headline` on the identity index equals the numbers of
:func:`medvision.metrics.summarize_run` exactly (a test keeps them equal): it calls the same
group counters (:func:`medvision.metrics.grouped_metrics`) and the same weighting rules.

Keys (``HEADLINE_KEYS``): ``det_{anatomy,tl,all}_{IoU,F1,SR,IoU>=0.5}``, ``det_all_MAE``,
``det_macro_IoU`` (unweighted mean over datasets of the pooled IoU), ``tl_{MAE,MRE,SR}``,
``tl_MRE<0.1/0.2/0.3``, ``tl_macro_MRE``, ``ad_{MAE,MRE,SR}``, ``ad_MRE<0.1``,
``ad_macro_MRE``. Units: detection MAE in image fractions, T/L MAE in mm, A/D MAE in degrees
or mm (mixed when a run has both; the official line mixes them too).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from medvision.metrics.clusters import cluster_codes
from medvision.metrics.columns import as_table, column_array, family_rows, string_codes
from medvision.metrics.counters import grouped_metrics, score_columns
from medvision.metrics.grouping import (
    ad_groups,
    classify_detection_group,
    detection_groups,
    group_codes,
    model_line,
    tl_groups,
    weighted_mean,
)
from medvision.metrics.protocols import Protocol
from medvision.schema import Record, TaskFamily

__all__ = [
    "HEADLINE_KEYS",
    "LOWER_IS_BETTER",
    "FamilyData",
    "Prepared",
    "headline",
    "prepare",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

HEADLINE_KEYS: Final[tuple[str, ...]] = (
    *(f"det_{part}_{m}" for part in ("anatomy", "tl", "all") for m in ("IoU", "F1", "SR")),
    *(f"det_{part}_IoU>=0.5" for part in ("anatomy", "tl", "all")),
    "det_all_MAE",
    "det_macro_IoU",
    "tl_MAE",
    "tl_MRE",
    "tl_SR",
    "tl_MRE<0.1",
    "tl_MRE<0.2",
    "tl_MRE<0.3",
    "tl_macro_MRE",
    "ad_MAE",
    "ad_MRE",
    "ad_SR",
    "ad_MRE<0.1",
    "ad_macro_MRE",
)
"""Every headline number, in display order."""

LOWER_IS_BETTER: Final[frozenset[str]] = frozenset(
    k for k in HEADLINE_KEYS if k.endswith(("MAE", "MRE"))
)
"""Headline keys where a smaller value is better (errors); the rest are better when larger."""


@dataclass(frozen=True)
class FamilyData:
    """Score columns and group codes of one task family of one run.

    Attributes:
        family: The task family.
        sample_ids: ``(N,)`` sample ids, in row order.
        scores: Per-sample score columns (see :func:`medvision.metrics.score_columns`).
        codes: ``(N,)`` official group code of each row (:mod:`medvision.metrics.grouping`:
            detection: parent class @ modality (plane); T/L: renamed label @ modality (plane);
            A/D: dataset_type_key).
        keys: Official group key of each code.
        dataset_codes: ``(N,)`` dataset code of each row.
        datasets: Dataset name of each dataset code.
        strata: ``(N,)`` code of (official group, dataset): the bootstrap resamples within it.
        clusters: ``(N,)`` code of (dataset, subject or case) of each row: the unit the cluster
            bootstrap draws (see :mod:`medvision.metrics.clusters`).
        group_sizes: ``(G,)`` rows of each official group on the full data; the N >= 50 rule
            is decided on these, so a resample never moves a group in or out of a split.
        group_is_tl: Per group, detection only: tumour/lesion by key word or label kind.
        planes: ``(N,)`` plane value of each row (0 sagittal, 1 coronal, 2 axial).
        box_img_ratio: ``(N,)`` ground-truth box area over image area (detection), else NaN.
        targets: ``(N, k)`` targets in the family's units.
        image_hw: ``(N, 2)`` stored image sizes (rows, cols) in pixels.
        n_failed: Rows whose answer failed to parse (``success == 0``).
    """

    family: TaskFamily
    sample_ids: NDArray[Any]
    scores: dict[str, FloatArray]
    codes: IntArray
    keys: list[str]
    dataset_codes: IntArray
    datasets: list[str]
    strata: IntArray
    clusters: IntArray
    group_sizes: IntArray
    group_is_tl: NDArray[np.bool_]
    planes: IntArray
    box_img_ratio: FloatArray
    targets: FloatArray
    image_hw: IntArray
    n_failed: int

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.codes.size)


@dataclass(frozen=True)
class Prepared:
    """A run's families ready for :func:`headline`.

    Attributes:
        protocol: Protocol the scores follow.
        families: The families present, each with its data.
        near_zero_excluded: A/D rows removed by the protocol's near-zero rule.
    """

    protocol: Protocol
    families: dict[TaskFamily, FamilyData]
    near_zero_excluded: int = 0


def _box_ratio(table: pa.Table) -> FloatArray:
    """``box_img_ratio`` of each row, else ``|x1-x0| * |y1-y0|`` of the target (official)."""
    n = table.num_rows
    stored = (
        column_array(table, "box_img_ratio").astype(np.float64)
        if "box_img_ratio" in table.column_names
        else np.full(n, np.nan)
    )
    t = [column_array(table, f"t{i}").astype(np.float64) for i in range(4)]
    fallback = np.abs(t[2] - t[0]) * np.abs(t[3] - t[1])
    return np.where(np.isfinite(stored), stored, fallback)


def _family_data(table: pa.Table, fam: TaskFamily, protocol: Protocol) -> FamilyData:
    """Score one family's rows once and compute its group codes."""
    scores = score_columns(table, fam, protocol)
    is_tl = np.zeros(0, dtype=bool)
    if fam is TaskFamily.ANGLE_DISTANCE:
        codes, keys, _ = ad_groups(table)
    elif fam is TaskFamily.DETECTION:
        codes, keys, is_tl = detection_groups(table, protocol)
    else:
        codes, keys = tl_groups(table)
    if not is_tl.size:
        is_tl = np.zeros(len(keys), dtype=bool)
    ds_codes, datasets = string_codes(table, "dataset")
    strata, _ = group_codes([codes, ds_codes])
    ds_names = np.asarray(datasets, dtype=object)[ds_codes].astype(str)
    ratio = _box_ratio(table) if fam is TaskFamily.DETECTION else np.full(table.num_rows, np.nan)
    return FamilyData(
        family=fam,
        sample_ids=column_array(table, "sample_id").astype(str),
        scores={k: np.asarray(v, dtype=np.float64) for k, v in scores.items()},
        codes=codes,
        keys=keys,
        dataset_codes=ds_codes,
        datasets=datasets,
        strata=strata,
        clusters=cluster_codes(ds_names, column_array(table, "case_id").astype(str)),
        group_sizes=np.bincount(codes, minlength=len(keys)).astype(np.int64),
        group_is_tl=is_tl,
        planes=column_array(table, "plane").astype(np.int64),
        box_img_ratio=ratio,
        targets=np.stack(
            [column_array(table, f"t{i}").astype(np.float64) for i in range(fam.n_values)], axis=1
        ),
        image_hw=np.stack(
            [
                column_array(table, "image_h").astype(np.int64),
                column_array(table, "image_w").astype(np.int64),
            ],
            axis=1,
        ),
        n_failed=int((scores["success"] == 0).sum()),
    )


def prepare(data: Iterable[Record] | pa.Table, protocol: Protocol) -> Prepared:
    """Score a run once for repeated headline evaluation.

    Args:
        data: The run's records (or a table from :func:`medvision.metrics.records_to_table`).
        protocol: Protocol to score under (its near-zero A/D rule is applied here, as
            :func:`medvision.metrics.summarize_ad` does).

    Returns:
        The :class:`Prepared` run (families without rows are absent).
    """
    table = as_table(data)
    families: dict[TaskFamily, FamilyData] = {}
    near = 0
    for fam in TaskFamily:
        rows = family_rows(table, fam)
        if fam is TaskFamily.ANGLE_DISTANCE and protocol.ad_near_zero_gt is not None:
            mask = pc.less(rows["t0"], protocol.ad_near_zero_gt)
            near = int(pc.sum(mask).as_py() or 0)
            rows = rows.filter(pc.invert(mask))
        if rows.num_rows:
            families[fam] = _family_data(rows, fam, protocol)
    return Prepared(protocol=protocol, families=families, near_zero_excluded=near)


def _take(fd: FamilyData, idx: IntArray | None) -> tuple[IntArray, IntArray, dict[str, FloatArray]]:
    """Group codes, dataset codes and score columns at ``idx`` (all rows when ``None``)."""
    if idx is None:
        return fd.codes, fd.dataset_codes, fd.scores
    return fd.codes[idx], fd.dataset_codes[idx], {k: v[idx] for k, v in fd.scores.items()}


def _macro(
    fam: TaskFamily, ds: IntArray, n_ds: int, cols: dict[str, FloatArray], key: str
) -> float:
    """Unweighted mean over datasets (with samples) of the pooled per-dataset ``key``."""
    rows = grouped_metrics(fam, ds, n_ds, cols)
    vals = [r[key] for r in rows if r["num_samples"] > 0 and math.isfinite(r[key])]
    return float(np.mean(vals)) if vals else math.nan


def _detection(fd: FamilyData, protocol: Protocol, idx: IntArray | None) -> dict[str, float]:
    """Detection headline numbers (anatomy / T-L split, all pooled, macro over datasets)."""
    fam = TaskFamily.DETECTION
    codes, ds, cols = _take(fd, idx)
    rows = grouped_metrics(fam, codes, len(fd.keys), cols)
    parts: dict[str, list[dict[str, float]]] = {"anatomy": [], "tumor_lesion": [], "excluded": []}
    for g, (key, m) in enumerate(zip(fd.keys, rows, strict=True)):
        # The size rule reads the full data (equal to the resample's size for the identity
        # and the slice bootstrap; the cluster bootstrap varies sizes, not the split).
        where, _ = classify_detection_group(
            key, int(fd.group_sizes[g]), bool(fd.group_is_tl[g]), protocol
        )
        parts[where].append(m)
    anatomy, tumour = parts["anatomy"], parts["tumor_lesion"]
    out: dict[str, float] = {}
    pooled = grouped_metrics(fam, np.zeros(codes.size, dtype=np.int64), 1, cols)[0]
    for part, members in (("anatomy", anatomy), ("tl", tumour), ("all", [pooled])):
        w = weighted_mean(members, skip_nan_in_denominator=True) if members else {}
        for name, src in (("IoU", "IoU"), ("F1", "F1"), ("SR", "SuccessRate")):
            out[f"det_{part}_{name}"] = w.get(src, math.nan)
        out[f"det_{part}_IoU>=0.5"] = w.get("IoU>0.5", math.nan)
    out["det_all_MAE"] = pooled["avgMAE"]
    out["det_macro_IoU"] = _macro(fam, ds, len(fd.datasets), cols, "IoU")
    return out


def _errors(
    fd: FamilyData, idx: IntArray | None, prefix: str, *, drop_all_failed: bool
) -> dict[str, float]:
    """T/L or A/D model line (official weighting quirks) plus the macro MRE over datasets."""
    codes, ds, cols = _take(fd, idx)
    rows = grouped_metrics(fd.family, codes, len(fd.keys), cols)
    groups = dict(zip(fd.keys, rows, strict=True))
    if drop_all_failed:  # summarize_TL_task drops labels whose MRE is NaN, SR included
        groups = {
            k: m for k, m in groups.items() if math.isfinite(m["avgMRE"]) and m["num_samples"]
        }
    line = model_line(groups, mre_name="MRE", extra=False)
    out = {f"{prefix}_{k}": float(line[k]) for k in ("MAE", "MRE", "SR", "MRE<0.1")}
    if prefix == "tl":
        out["tl_MRE<0.2"] = float(line["MRE<0.2"])
        out["tl_MRE<0.3"] = float(line["MRE<0.3"])
    out[f"{prefix}_macro_MRE"] = _macro(fd.family, ds, len(fd.datasets), cols, "avgMRE")
    return out


def headline(prep: Prepared, idx: Mapping[TaskFamily, IntArray] | None = None) -> dict[str, float]:
    """Headline numbers of a run, optionally on resampled rows.

    Args:
        prep: The prepared run.
        idx: Per family, row indices to use (with repeats, as a bootstrap draws them);
            ``None`` or a missing family uses every row once.

    Returns:
        ``{key: value}`` for every key in :data:`HEADLINE_KEYS` (NaN where the run has no such
        number).
    """
    out = dict.fromkeys(HEADLINE_KEYS, math.nan)
    sel = idx or {}
    for fam, fd in prep.families.items():
        i = sel.get(fam)
        if fam is TaskFamily.DETECTION:
            out.update(_detection(fd, prep.protocol, i))
        elif fam is TaskFamily.TUMOR_LESION_SIZE:
            out.update(_errors(fd, i, "tl", drop_all_failed=True))
        else:
            out.update(_errors(fd, i, "ad", drop_all_failed=False))
    return out
