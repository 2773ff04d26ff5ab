"""Our breakdowns beside the official tables: per dataset, per plane, per box-size bin.

The official summaries are sample-weighted (micro) everywhere, so a dataset with many samples
dominates. Here each breakdown pools the samples of one dataset (or plane, or box-size bin)
with the official group counters, and the **macro** average is the unweighted mean of those
pooled values over the parts that have samples (NaN parts skipped).

Planes: the paper trains and evaluates detection and T/L on axial slices and holds out coronal
and sagittal as *plane out-of-distribution*; ``in_distribution_planes`` (default axial) names
the in-distribution planes and the rest are pooled as plane-OOD.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medvision.metrics.aggregate import grouped_metrics, to_jsonable
from medvision.metrics.boxsize import BOX_BIN_LABELS, box_bins
from medvision.metrics.headline import FamilyData, Prepared
from medvision.schema import Plane, TaskFamily

__all__ = ["breakdown", "macro_mean", "macro_report"]

_PLANE_NAMES = {int(p): p.name.lower() for p in Plane}


def breakdown(
    fd: FamilyData, codes: NDArray[Any], names: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Official group counters of ``fd``'s rows pooled by ``codes`` (``-1`` rows left out).

    Args:
        fd: One family of a prepared run.
        codes: ``(N,)`` part index of each row in ``[0, len(names))`` or -1.
        names: Name of each part.

    Returns:
        ``{name: metrics}`` for the parts with samples, in ``names`` order.
    """
    c = np.asarray(codes, dtype=np.int64)
    keep = c >= 0
    rows = grouped_metrics(
        fd.family, c[keep], len(names), {k: v[keep] for k, v in fd.scores.items()}
    )
    return {n: r for n, r in zip(names, rows, strict=True) if r["num_samples"] > 0}


def macro_mean(parts: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Unweighted mean over ``parts`` of every metric (NaN values skipped), plus ``num_parts``."""
    out: dict[str, float] = {}
    names = [k for k in next(iter(parts.values()), {}) if k != "num_samples"]
    for k in names:
        vals = [float(p[k]) for p in parts.values() if math.isfinite(float(p[k]))]
        out[k] = float(np.mean(vals)) if vals else math.nan
    out["num_parts"] = len(parts)
    out["num_samples"] = int(sum(p["num_samples"] for p in parts.values()))
    return out


def macro_report(
    prep: Prepared, *, in_distribution_planes: Sequence[Plane] = (Plane.AXIAL,)
) -> dict[str, Any]:
    """Per-dataset, per-plane and per-box-size breakdowns with their macro averages.

    Args:
        prep: The prepared run.
        in_distribution_planes: Planes counted as in-distribution; the others are plane-OOD.

    Returns:
        JSON-ready ``{family: {"by_dataset": {ds: metrics}, "macro_dataset": metrics,
        "by_plane": {plane: metrics}, "plane_split": {"in-distribution (axial)": metrics,
        "plane-OOD (coronal+sagittal)": metrics}, "macro_plane": metrics}}`` and, for
        detection, ``"by_box_size"`` and ``"macro_box_size"`` as well.
    """
    ind = sorted({int(p) for p in in_distribution_planes})
    ood = [p for p in sorted(_PLANE_NAMES) if p not in ind]
    ind_name = f"in-distribution ({'+'.join(_PLANE_NAMES[p] for p in ind) or 'none'})"
    ood_name = f"plane-OOD ({'+'.join(sorted(_PLANE_NAMES[p] for p in ood)) or 'none'})"
    out: dict[str, Any] = {}
    for fam, fd in prep.families.items():
        by_ds = breakdown(fd, fd.dataset_codes, fd.datasets)
        by_plane = breakdown(fd, fd.planes, [_PLANE_NAMES[i] for i in range(3)])
        split_codes = np.where(np.isin(fd.planes, ind), 0, 1)
        part: dict[str, Any] = {
            "by_dataset": by_ds,
            "macro_dataset": macro_mean(by_ds),
            "by_plane": by_plane,
            "plane_split": breakdown(fd, split_codes, [ind_name, ood_name]),
            "macro_plane": macro_mean(by_plane),
        }
        if fam is TaskFamily.DETECTION:
            by_box = breakdown(fd, box_bins(fd.box_img_ratio), BOX_BIN_LABELS)
            part["by_box_size"] = by_box
            part["macro_box_size"] = macro_mean(by_box)
        out[fam.value] = part
    return dict(to_jsonable(out))
