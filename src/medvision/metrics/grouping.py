"""The official grouping rules, in one place: group keys, label maps, anatomy vs T/L, weights.

Every summary of this package groups samples the way the official summarizers do (reference
official-eval-protocol.md section 4.4, official-versions.md section 4 and 6), and every caller
(the aggregation, the headline numbers, the box-size analysis, the paired comparison) takes the
rules from here:

* **Detection** groups are ``f"{parent class} @ {MOD} ({S|C|A})"``, where the parent class is
  the official ``label_map_regroup`` value of the label: the catalog's ``group`` (the c221615
  map, used by ``paper-v1``) or, under the 1.2.1 maps (``official``, ``strict``), its
  ``group_1_2_1`` where the catalog declares one (the Knee split into ``Knee Bone`` and
  ``Knee Soft Tissue``). Samples of different datasets sharing a key are pooled.
  :func:`classify_detection_group` drops groups whose key holds an excluded word
  (``miscellaneous``, ``others``) or with fewer than ``min_group_size`` (50) samples, and calls
  a group tumour/lesion when its key holds ``tumor``, ``lesion`` or ``metastatic`` (or, our
  addition for group names that do not spell it, a record's ``label_kind`` is tumour/lesion).
* **T/L** groups are ``f"{label_map_rename value} @ {MOD} ({S|C|A})"``: the catalog's
  ``tl_group`` of the label (official synonyms merged, e.g. ``liver cancer`` -> ``liver tumor``),
  else the label name. No size floor, no exclusions (both official versions).
* **A/D** labels are ``f"{dataset}_{metric_type}_{metric_key}"`` (planes pooled), with the
  group averages ``{Ceph|FeTA}-{Distance|Angle}`` and, 1.2.1, ``Distance`` / ``Angle``.
* **Weights**: model lines and anatomy / T/L means are sample-weighted means over groups
  (:func:`weighted_mean`, :func:`model_line`), with the official NaN quirks.

Label maps are read from the catalog (:func:`catalog_label_maps`); records of datasets the
catalog does not know keep their stored ``label_group`` / ``label_name``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Final, Literal

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from medvision.metrics.columns import IntArray, column_array, string_codes
from medvision.metrics.protocols import Protocol
from medvision.schema import Plane

__all__ = [
    "AD_DATASET_SHORT",
    "MODALITY_CODES",
    "TL_LABEL_KINDS",
    "LabelMaps",
    "ad_group_names",
    "ad_groups",
    "catalog_label_maps",
    "classify_detection_group",
    "detection_groups",
    "group_codes",
    "keyed_groups",
    "modality_code",
    "model_line",
    "tl_groups",
    "weighted_mean",
]

MODALITY_CODES: Final[dict[str, str]] = {
    "MRI": "MR",
    "CT": "CT",
    "ultrasound": "US",
    "X-ray": "XR",
    "PET": "PET",
}
"""Official modality abbreviations in group keys; other names pass through unchanged."""

TL_LABEL_KINDS: Final[frozenset[str]] = frozenset({"tumour", "lesion"})
"""``Record.label_kind`` values that make a detection group tumour/lesion."""

AD_DATASET_SHORT: Final[dict[str, str]] = {"FeTA24": "FeTA", "Ceph-Biometrics-400": "Ceph"}
"""Official A/D group-average names use these short dataset names."""


@dataclass(frozen=True)
class LabelMaps:
    """The official label maps as the catalog declares them, keyed by (dataset, label name).

    Attributes:
        regroup_1_2_1: medvision-bm 1.2.1 ``label_map_regroup`` parent class, where it differs
            from the catalog's ``group`` (the c221615 class).
        tl_rename: Official ``label_map_rename`` value of T/L labels, where it differs from
            the label name.
    """

    regroup_1_2_1: Mapping[tuple[str, str], str]
    tl_rename: Mapping[tuple[str, str], str]


@cache
def catalog_label_maps() -> LabelMaps:
    """The label maps of every built-in catalog dataset (loaded once).

    Raises:
        ValueError: If one dataset gives one label name two different classes.
    """
    from medvision.catalog.registry import catalog  # lazy: metrics work without the catalog

    regroup: dict[tuple[str, str], str] = {}
    rename: dict[tuple[str, str], str] = {}
    for spec in catalog().values():
        for task in spec.tasks:
            for lab in task.labels:
                key = (spec.name, lab.name)
                for target, value in ((regroup, lab.group_1_2_1), (rename, lab.tl_group)):
                    if value is None:
                        continue
                    if target.get(key, value) != value:
                        raise ValueError(
                            f"catalog {spec.name}: label {lab.name!r} has two official classes "
                            f"{target[key]!r} and {value!r}"
                        )
                    target[key] = value
    return LabelMaps(regroup_1_2_1=regroup, tl_rename=rename)


def _mapped_labels(
    table: pa.Table, column: str, mapping: Mapping[tuple[str, str], str]
) -> tuple[IntArray, list[str]]:
    """Per-row label codes of ``column``, replaced by ``mapping[(dataset, label_name)]``."""
    if not mapping or table.num_rows == 0:
        return string_codes(table, column)
    ds_codes, datasets = string_codes(table, "dataset")
    name_codes, names = string_codes(table, "label_name")
    col_codes, col_values = string_codes(table, column)
    combo, first = group_codes([ds_codes, name_codes, col_codes])
    values = [
        mapping.get((datasets[ds_codes[r]], names[name_codes[r]]), col_values[col_codes[r]])
        for r in first
    ]
    uniques = sorted(set(values))
    index = np.array([uniques.index(v) for v in values], dtype=np.int64)
    return index[combo], uniques


def detection_groups(
    table: pa.Table, protocol: Protocol, *, with_plane: bool = True
) -> tuple[IntArray, list[str], NDArray[np.bool_]]:
    """Official detection groups of the rows of ``table`` (all detection).

    Returns:
        ``(codes, keys, is_tl_kind)``: the group code of each row, the key
        ``f"{parent class} @ {MOD} ({S|C|A})"`` of each code, and per group whether any of
        its records has a tumour/lesion ``label_kind``.
    """
    maps = catalog_label_maps().regroup_1_2_1 if protocol.label_maps == "1.2.1" else {}
    labels = _mapped_labels(table, "label_group", maps)
    codes, keys = keyed_groups(table, labels, with_plane=with_plane)
    is_tl = np.zeros(len(keys), dtype=bool)
    if table.num_rows:
        kind_codes, kinds = string_codes(table, "label_kind")
        tl_kind = np.array([k in TL_LABEL_KINDS for k in kinds], dtype=np.float64)
        is_tl = np.bincount(codes, weights=tl_kind[kind_codes], minlength=len(keys)) > 0
    return codes, keys, is_tl


def tl_groups(table: pa.Table) -> tuple[IntArray, list[str]]:
    """Official T/L groups ``f"{label_map_rename value} @ {MOD} ({S|C|A})"`` of ``table``."""
    return keyed_groups(table, _mapped_labels(table, "label_name", catalog_label_maps().tl_rename))


def ad_groups(table: pa.Table) -> tuple[IntArray, list[str], IntArray]:
    """Official A/D labels ``f"{dataset}_{metric_type}_{metric_key}"`` (planes pooled).

    Returns:
        ``(codes, keys, first)``: the code of each row, the key of each code and the first
        row of each code.
    """
    ds_codes, datasets = string_codes(table, "dataset")
    mt_codes, mtypes = string_codes(table, "metric_type")
    mk_codes, mkeys = string_codes(table, "metric_key")
    codes, first = group_codes([ds_codes, mt_codes, mk_codes])
    keys = [f"{datasets[ds_codes[r]]}_{mtypes[mt_codes[r]]}_{mkeys[mk_codes[r]]}" for r in first]
    return codes, keys, first


def ad_group_names(dataset: str, metric_type: str) -> tuple[str, str]:
    """The two A/D group averages a label belongs to: ``("Ceph-Angle", "Angle")``..."""
    short = AD_DATASET_SHORT.get(dataset, dataset)
    return f"{short}-{metric_type.capitalize()}", metric_type.capitalize()


def classify_detection_group(
    key: str, num_samples: int, is_tl_kind: bool, protocol: Protocol
) -> tuple[Literal["anatomy", "tumor_lesion", "excluded"], str]:
    """Where a detection group goes in the anatomy vs tumour/lesion summary.

    Returns:
        ``("excluded", reason)`` for an excluded key word or ``num_samples <
        protocol.min_group_size``; else ``("tumor_lesion", "")`` or ``("anatomy", "")``.
    """
    low = key.lower()
    if any(w in low for w in protocol.excluded_keys):
        return "excluded", "excluded key word"
    if num_samples < protocol.min_group_size:
        return "excluded", f"num_samples {num_samples} < {protocol.min_group_size}"
    if any(w in low for w in protocol.tumor_lesion_keys) or is_tl_kind:
        return "tumor_lesion", ""
    return "anatomy", ""


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


def group_codes(parts: Sequence[IntArray]) -> tuple[IntArray, IntArray]:
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


def keyed_groups(
    table: pa.Table,
    label_column: str | tuple[IntArray, list[str]],
    *,
    with_plane: bool = True,
) -> tuple[IntArray, list[str]]:
    """Group rows by ``f"{label} @ {MOD} ({plane letter})"``; return ``(codes, keys)``.

    Args:
        table: The aggregation table.
        label_column: A string column name, or per-row label codes with their labels.
        with_plane: Add `` (S|C|A)`` (the box-size analysis groups without the plane).
    """
    if isinstance(label_column, str):
        label_codes, labels = string_codes(table, label_column)
    else:
        label_codes, labels = label_column
    mod_raw_codes, mod_raw = string_codes(table, "modality")
    mods = sorted({modality_code(m) for m in mod_raw})
    mod_index = np.array([mods.index(modality_code(m)) for m in mod_raw], dtype=np.int64)
    mod_codes = mod_index[mod_raw_codes] if mod_raw_codes.size else mod_raw_codes
    parts = [label_codes, mod_codes]
    planes = column_array(table, "plane").astype(np.int64)
    if with_plane:
        _plane_letters(planes, table)
        parts.append(planes)
    codes, first = group_codes(parts)
    keys = []
    for row in first:
        key = f"{labels[label_codes[row]]} @ {mods[mod_codes[row]]}"
        if with_plane:
            key += f" ({Plane(int(planes[row])).letter})"
        keys.append(key)
    return codes, keys


def weighted_mean(
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


def model_line(
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
    quirk = weighted_mean(lst, skip_nan_in_denominator=False)
    clean = weighted_mean(lst, skip_nan_in_denominator=True)
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
