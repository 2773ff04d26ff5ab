"""Paired comparison of two runs on the same samples, with Holm's correction.

Both runs are restricted to the samples they share (matched by ``(family, sample_id)``), and
every headline number is computed for each on **the same** bootstrap resample, so the interval
of the difference ``B - A`` accounts for the pairing (sample difficulty cancels). The resample
is a cluster bootstrap by default (whole cases or subjects within each official stratum, see
:mod:`medvision.metrics.bootstrap`); ``method="slice"`` resamples single samples.

Multiplicity: each task family has **one primary number** (:data:`PRIMARY`: detection
``det_all_IoU``, T/L ``tl_MRE``, A/D ``ad_MRE``), tested on its own at ``1 - level``: it is
significant when its interval excludes 0. Every other number reported is **secondary**: its
two-sided p-value ``p = 2 (1 - Phi(|d| / se))`` (``se``: standard deviation of the paired
bootstrap replicates) is adjusted with Holm's step-down procedure over all secondary numbers,
and it is significant only when the adjusted p-value is below ``1 - level`` (so the chance of
any false secondary flag stays at most ``1 - level``). Secondary intervals are shown
unadjusted. Per-sample wins, ties and losses on each family's main score (detection IoU,
higher better; T/L and A/D MRE, lower better; a failed answer loses to any answer) are counted
beside it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from medvision.metrics.bootstrap import (
    METHODS,
    Interval,
    Method,
    bootstrap_replicates,
    percentile_interval,
)
from medvision.metrics.columns import as_table
from medvision.metrics.headline import HEADLINE_KEYS, LOWER_IS_BETTER, headline, prepare
from medvision.metrics.protocols import Protocol
from medvision.schema import Record, TaskFamily

__all__ = ["PRIMARY", "PairedResult", "bootstrap_p_value", "compare_runs", "holm"]

PRIMARY: Final[dict[str, str]] = {
    "detection": "det_all_IoU",
    "tl": "tl_MRE",
    "ad": "ad_MRE",
}
"""Task family -> its primary number (tested uncorrected; everything else is Holm-corrected)."""


def bootstrap_p_value(estimate: float, replicates: NDArray[np.float64]) -> float:
    """Two-sided p-value of ``H0: d = 0`` from the bootstrap standard error (NaN ignored).

    ``p = 2 (1 - Phi(|d| / se))`` with ``se`` the standard deviation of the finite replicates
    (a normal approximation: unlike counting replicates beyond 0 it has no ``1 / B`` floor,
    which would keep Holm's correction from ever rejecting among many numbers). ``p = 1``
    when the estimate and every replicate are 0 (identical runs); NaN when there are fewer
    than 2 finite replicates or ``se`` is 0 while the estimate is not (nothing to scale by).

    Example:
        >>> round(bootstrap_p_value(1.96, np.array([-1.0, 1.0])), 3)  # se = sqrt(2)
        0.166
        >>> bootstrap_p_value(0.0, np.zeros(9))
        1.0
    """
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size < 2 or not math.isfinite(estimate):
        return math.nan
    se = float(r.std(ddof=1))
    if se <= 0.0:
        return 1.0 if estimate == 0.0 and not r.any() else math.nan
    return float(math.erfc(abs(estimate) / se / math.sqrt(2.0)))


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm-adjusted p-values (step-down, family-wise error control; NaN entries kept NaN).

    The ``i``-th smallest of ``m`` p-values becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``;
    rejecting where the adjusted value is below ``alpha`` is Holm's procedure at ``alpha``.

    Example:
        >>> holm({"a": 0.01, "b": 0.04, "c": 0.03})
        {'a': 0.03, 'b': 0.06, 'c': 0.06}
    """
    finite = sorted((v, k) for k, v in p_values.items() if math.isfinite(v))
    m = len(finite)
    out = {k: math.nan for k in p_values}
    running = 0.0
    for i, (v, k) in enumerate(finite):
        running = max(running, min(1.0, (m - i) * v))
        out[k] = round(running, 15)
    return out


@dataclass(frozen=True)
class PairedResult:
    """The outcome of :func:`compare_runs`.

    Attributes:
        name_a: Name of run A.
        name_b: Name of run B.
        protocol: Protocol both were scored under.
        n_shared: Samples present in both runs, per family.
        n_only_a: Samples only in A, per family (left out).
        n_only_b: Samples only in B, per family (left out).
        a: Headline numbers of A on the shared samples.
        b: Headline numbers of B on the shared samples.
        diff: ``B - A`` for every headline key, with its paired bootstrap interval.
        wins: Per family ``{"b_better", "a_better", "tie"}`` sample counts on the main score.
        failures: Per family ``{"a": n, "b": n}`` parse failures among the shared samples.
        p_values: Two-sided bootstrap p-value of every reported number (unadjusted).
        p_holm: Holm-adjusted p-value of every secondary number.
        primary: The primary numbers present (one per family, :data:`PRIMARY`).
        method: Resampling unit of the bootstrap (``cluster`` or ``slice``).
        n_clusters: Per family, clusters (cases/subjects per stratum) the bootstrap draws.
    """

    name_a: str
    name_b: str
    protocol: str
    n_shared: dict[str, int]
    n_only_a: dict[str, int]
    n_only_b: dict[str, int]
    a: dict[str, float]
    b: dict[str, float]
    diff: dict[str, Interval]
    wins: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: dict[str, dict[str, int]] = field(default_factory=dict)
    p_values: dict[str, float] = field(default_factory=dict)
    p_holm: dict[str, float] = field(default_factory=dict)
    primary: tuple[str, ...] = ()
    method: str = "cluster"
    n_clusters: dict[str, int] = field(default_factory=dict)

    @property
    def alpha(self) -> float:
        """``1 - level`` of the intervals: the error rate of every test."""
        return 1.0 - next(iter(self.diff.values())).level if self.diff else 0.05

    @property
    def corrected(self) -> tuple[str, ...]:
        """The secondary numbers, Holm-corrected together, in display order."""
        return tuple(k for k in HEADLINE_KEYS if k in self.p_holm)

    def significant(self, key: str) -> bool:
        """Primary: the interval of ``B - A`` excludes 0. Secondary: Holm-adjusted p < alpha."""
        if key in self.p_holm:
            p = self.p_holm[key]
            return math.isfinite(p) and p < self.alpha
        d = self.diff[key]
        return math.isfinite(d.low) and math.isfinite(d.high) and (d.low > 0 or d.high < 0)

    def better(self, key: str) -> str:
        """``"B"``, ``"A"`` or ``"-"`` (not significant or undefined) for ``key``."""
        if not self.significant(key):
            return "-"
        up = self.diff[key].estimate > 0
        return "B" if up != (key in LOWER_IS_BETTER) else "A"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (non-finite numbers become ``None``)."""

        def f(v: float) -> float | None:
            return v if math.isfinite(v) else None

        return {
            "run_a": self.name_a,
            "run_b": self.name_b,
            "protocol": self.protocol,
            "n_shared": self.n_shared,
            "n_only_a": self.n_only_a,
            "n_only_b": self.n_only_b,
            "wins": self.wins,
            "failures": self.failures,
            "bootstrap": self.method,
            "n_clusters": self.n_clusters,
            "primary": list(self.primary),
            "correction": {
                "method": "holm",
                "alpha": self.alpha,
                "corrected": list(self.corrected),
                "note": (
                    "primary numbers (one per family) are tested alone at alpha; the others "
                    "are Holm-corrected together; intervals are unadjusted"
                ),
            },
            "metrics": {
                k: {
                    "a": f(self.a[k]),
                    "b": f(self.b[k]),
                    "diff": self.diff[k].to_dict(),
                    "lower_is_better": k in LOWER_IS_BETTER,
                    "better": self.better(k),
                    "role": "primary" if k in self.primary else "secondary",
                    "p": f(self.p_values.get(k, math.nan)),
                    "p_holm": f(self.p_holm[k]) if k in self.p_holm else None,
                }
                for k in HEADLINE_KEYS
            },
        }


def _align(a: pa.Table, b: pa.Table) -> tuple[pa.Table, pa.Table, dict[str, tuple[int, int, int]]]:
    """Rows of both tables on their shared ``(family, sample_id)``, in the same order."""
    counts: dict[str, tuple[int, int, int]] = {}
    parts_a: list[pa.Table] = []
    parts_b: list[pa.Table] = []
    for fam in TaskFamily:
        ta = a.filter(pc.equal(a["family"], fam.value))
        tb = b.filter(pc.equal(b["family"], fam.value))
        if not ta.num_rows and not tb.num_rows:
            continue
        ids_a = np.asarray(ta["sample_id"].to_numpy(zero_copy_only=False)).astype(str)
        ids_b = np.asarray(tb["sample_id"].to_numpy(zero_copy_only=False)).astype(str)
        for ids, name in ((ids_a, "A"), (ids_b, "B")):
            uniq, cnt = np.unique(ids, return_counts=True)
            if (cnt > 1).any():
                raise ValueError(
                    f"run {name}: sample {uniq[cnt > 1][0]} ({fam.value}) appears "
                    f"{int(cnt.max())} times; a paired comparison needs one record per sample"
                )
        shared, ia, ib = np.intersect1d(ids_a, ids_b, assume_unique=True, return_indices=True)
        counts[fam.value] = (
            int(shared.size),
            int(ids_a.size - shared.size),
            int(ids_b.size - shared.size),
        )
        sa, sb = ta.take(pa.array(ia)), tb.take(pa.array(ib))
        for i in range(4):
            x = np.asarray(sa[f"t{i}"].to_numpy(zero_copy_only=False), dtype=np.float64)
            y = np.asarray(sb[f"t{i}"].to_numpy(zero_copy_only=False), dtype=np.float64)
            bad = np.flatnonzero(~((x == y) | (np.isnan(x) & np.isnan(y))))
            if bad.size:
                j = int(bad[0])
                raise ValueError(
                    f"sample {shared[j]} ({fam.value}) has target value t{i} = {float(x[j])!r} in "
                    f"run A but {float(y[j])!r} in run B; the runs were not made on the same "
                    "samples"
                )
        parts_a.append(sa)
        parts_b.append(sb)
    if not parts_a:
        return a.slice(0, 0), b.slice(0, 0), counts
    return pa.concat_tables(parts_a), pa.concat_tables(parts_b), counts


def _wins(fam: TaskFamily, sa: dict[str, Any], sb: dict[str, Any]) -> dict[str, int]:
    """Per-sample wins on the family's main score (failures lose)."""
    if fam is TaskFamily.DETECTION:
        va, vb = np.asarray(sa["iou"]), np.asarray(sb["iou"])
        va = np.where(np.asarray(sa["success"]) > 0, va, -1.0)
        vb = np.where(np.asarray(sb["success"]) > 0, vb, -1.0)
    else:  # lower MRE is better: negate, failures rank below every answer
        va = np.where(np.isfinite(sa["mre"]), -np.asarray(sa["mre"]), -np.inf)
        vb = np.where(np.isfinite(sb["mre"]), -np.asarray(sb["mre"]), -np.inf)
    both_fail = ~np.isfinite(va) & ~np.isfinite(vb) | ((va == -1.0) & (vb == -1.0))
    return {
        "b_better": int(((vb > va) & ~both_fail).sum()),
        "a_better": int(((va > vb) & ~both_fail).sum()),
        "tie": int(((va == vb) | both_fail).sum()),
    }


def compare_runs(
    records_a: Iterable[Record] | pa.Table,
    records_b: Iterable[Record] | pa.Table,
    protocol: Protocol,
    *,
    name_a: str = "A",
    name_b: str = "B",
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    method: Method = "cluster",
) -> PairedResult:
    """Compare run B against run A on their shared samples.

    Args:
        records_a: Records of run A (or its table).
        records_b: Records of run B (or its table).
        protocol: Protocol both are scored under (scores are recomputed from the parsed
            values, so both runs follow the same switches).
        name_a: Display name of A.
        name_b: Display name of B.
        n_boot: Bootstrap replicates.
        seed: Seed of the resampling.
        level: Coverage of the intervals; ``1 - level`` is the error rate of every test.
        method: ``cluster`` (cases/subjects within strata, default) or ``slice``.

    Returns:
        The :class:`PairedResult`.

    Raises:
        ValueError: If the runs share no sample, a sample appears twice in one run, or a
            shared sample has different targets in the two runs.
    """
    if method not in METHODS:
        raise ValueError(f"unknown bootstrap method {method!r}; expected one of {list(METHODS)}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1); found {level}")
    ta, tb, counts = _align(as_table(records_a), as_table(records_b))
    if ta.num_rows == 0:
        raise ValueError(f"runs {name_a} and {name_b} share no sample; nothing to compare")
    pa_, pb = prepare(ta, protocol), prepare(tb, protocol)
    strata = {f: fd.strata for f, fd in pa_.families.items()}
    clusters = {f: fd.clusters for f, fd in pa_.families.items()} if method == "cluster" else None

    def diff(idx: Any) -> dict[str, float]:
        ha, hb = headline(pa_, idx), headline(pb, idx)
        return {k: hb[k] - ha[k] for k in HEADLINE_KEYS}

    point, reps = bootstrap_replicates(diff, strata, clusters=clusters, n_boot=n_boot, seed=seed)
    intervals: dict[str, Interval] = {}
    for k, est in point.items():
        low, high, valid = percentile_interval(reps[k], level)
        intervals[k] = Interval(float(est), low, high, level, n_boot, valid, method)
    reported = [k for k in HEADLINE_KEYS if intervals[k].n_valid and math.isfinite(point[k])]
    p_values = {k: bootstrap_p_value(point[k], reps[k]) for k in reported}
    primary = tuple(k for k in PRIMARY.values() if k in reported)
    p_holm = holm({k: p_values[k] for k in reported if k not in primary})
    n_clusters = {
        f.value: int(np.unique(np.stack([fd.strata, fd.clusters]), axis=1).shape[1])
        if method == "cluster"
        else fd.n
        for f, fd in pa_.families.items()
    }
    wins = {f.value: _wins(f, pa_.families[f].scores, pb.families[f].scores) for f in pa_.families}
    fails = {
        f.value: {"a": pa_.families[f].n_failed, "b": pb.families[f].n_failed} for f in pa_.families
    }
    return PairedResult(
        name_a=name_a,
        name_b=name_b,
        protocol=protocol.name,
        n_shared={k: v[0] for k, v in counts.items()},
        n_only_a={k: v[1] for k, v in counts.items()},
        n_only_b={k: v[2] for k, v in counts.items()},
        a=headline(pa_),
        b=headline(pb),
        diff=intervals,
        wins=wins,
        failures=fails,
        p_values=p_values,
        p_holm=p_holm,
        primary=primary,
        method=method,
        n_clusters=n_clusters,
    )
