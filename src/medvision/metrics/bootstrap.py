"""Seeded stratified bootstrap confidence intervals for every headline number.

Two resampling units, both **within strata** (official group x dataset):

* ``cluster`` (the default): whole cases (volumes), or subjects where the catalog knows them
  (:mod:`medvision.metrics.clusters`). A stratum with ``K`` clusters draws ``K`` clusters with
  replacement and keeps every slice of each, so slices of one volume, which are nearly copies,
  move together and the interval reflects how many independent volumes were evaluated.
* ``slice``: every sample on its own; each stratum keeps its sample count. This treats
  neighbouring slices as independent and gives intervals that are too narrow when samples
  come from few volumes (docs/metrics.md has the coverage of both on simulated data).

The official N >= 50 group rule is decided on the full data (see
:func:`medvision.metrics.headline.headline`), so a resample never moves a group between the
anatomy and tumour/lesion splits. The interval is the percentile interval of the replicates
(``level`` = 0.95 gives the 2.5 and 97.5 percentiles). Replicates where a number is undefined
(NaN, e.g. a T/L label whose every resampled answer failed) are left out of that number's
interval, and the count kept is reported.

Everything is determined by ``seed``: the same run and seed give the same intervals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray

from medvision.metrics.clusters import draw_clusters, make_clusters, rows_of
from medvision.metrics.headline import HEADLINE_KEYS, Prepared, headline
from medvision.schema import TaskFamily

__all__ = [
    "METHODS",
    "Interval",
    "Method",
    "bootstrap_headline",
    "bootstrap_replicates",
    "bootstrap_runs",
    "cluster_indices",
    "percentile_interval",
    "single_case_strata",
    "stratified_indices",
]

IntArray = NDArray[np.int64]
Method = Literal["cluster", "slice"]
METHODS: Final[tuple[Method, ...]] = ("cluster", "slice")
"""Resampling units: whole cases/subjects (default) or single slices."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval.

    Attributes:
        estimate: The number on the full data.
        low: Lower bound of the interval (NaN when undefined).
        high: Upper bound of the interval (NaN when undefined).
        level: Coverage, e.g. 0.95.
        n_boot: Replicates drawn.
        n_valid: Replicates where the number was defined (finite).
        method: Resampling unit, ``cluster`` (cases/subjects) or ``slice``.
    """

    estimate: float
    low: float
    high: float
    level: float
    n_boot: int
    n_valid: int
    method: str = "cluster"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (non-finite values become ``None``)."""

        def f(v: float) -> float | None:
            return v if math.isfinite(v) else None

        return {
            "estimate": f(self.estimate),
            "low": f(self.low),
            "high": f(self.high),
            "level": self.level,
            "n_boot": self.n_boot,
            "n_valid": self.n_valid,
            "method": self.method,
        }


def stratified_indices(
    strata: NDArray[Any], n_boot: int, rng: np.random.Generator
) -> Iterator[IntArray]:
    """Yield ``n_boot`` resamples of ``range(N)``, each drawn with replacement within strata.

    Args:
        strata: ``(N,)`` integer stratum code of each row.
        n_boot: Number of resamples.
        rng: Random generator (the only source of randomness).

    Yields:
        ``(N,)`` int64 row indices; stratum ``s`` contributes exactly ``#(strata == s)`` rows,
        all from stratum ``s``.
    """
    codes = np.asarray(strata, dtype=np.int64)
    n = codes.size
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    # Start and size of each row's stratum within ``order``.
    first = np.searchsorted(sorted_codes, sorted_codes, side="left")
    size = np.searchsorted(sorted_codes, sorted_codes, side="right") - first
    for _ in range(n_boot):
        offset = np.floor(rng.random(n) * size).astype(np.int64)
        yield order[first + np.minimum(offset, size - 1)]


def cluster_indices(
    strata: NDArray[Any], clusters: NDArray[Any], n_boot: int, rng: np.random.Generator
) -> Iterator[IntArray]:
    """Yield ``n_boot`` cluster resamples of ``range(N)`` (clusters drawn within strata).

    Args:
        strata: ``(N,)`` integer stratum code of each row.
        clusters: ``(N,)`` integer cluster code of each row (a cluster present in two strata
            is resampled separately in each).
        n_boot: Number of resamples.
        rng: Random generator (the only source of randomness).

    Yields:
        Row indices: each stratum with ``K`` clusters contributes every row of ``K`` of its
        clusters drawn with replacement (so the length varies between replicates).
    """
    index = make_clusters(strata, clusters)
    picks = draw_clusters(index, n_boot, rng)
    for b in range(n_boot):
        yield rows_of(index, picks[b])


def percentile_interval(values: NDArray[np.float64], level: float) -> tuple[float, float, int]:
    """``(low, high, n_finite)`` percentile interval of the finite ``values``."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan, 0
    a = (1.0 - level) / 2.0
    low, high = np.quantile(v, [a, 1.0 - a])
    return float(low), float(high), int(v.size)


def _check(n_boot: int, level: float) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1; found {n_boot}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1); found {level}")


def bootstrap_replicates(
    statistic: Callable[[Mapping[TaskFamily, IntArray] | None], Mapping[str, float]],
    strata: Mapping[TaskFamily, NDArray[Any]],
    *,
    clusters: Mapping[TaskFamily, NDArray[Any]] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[dict[str, float], dict[str, NDArray[np.float64]]]:
    """Point values and bootstrap replicates of every number ``statistic`` returns.

    Args:
        statistic: Maps per-family row indices (``None`` = all rows) to named numbers.
        strata: Per family, the stratum code of each row.
        clusters: Per family, the cluster code of each row: the cluster bootstrap. ``None``
            resamples single rows (the slice bootstrap).
        n_boot: Replicates.
        seed: Seed of the generator; families are resampled in :class:`TaskFamily` order.

    Returns:
        ``(point, replicates)``: ``{name: value}`` on all rows and ``{name: (n_boot,) array}``.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1; found {n_boot}")
    point = dict(statistic(None))
    rng = np.random.default_rng(seed)
    fams = [f for f in TaskFamily if f in strata]
    iters = {
        f: (
            stratified_indices(strata[f], n_boot, rng)
            if clusters is None
            else cluster_indices(strata[f], clusters[f], n_boot, rng)
        )
        for f in fams
    }
    reps = {k: np.full(n_boot, math.nan) for k in point}
    for b in range(n_boot):
        idx = {f: next(iters[f]) for f in fams}
        for k, v in statistic(idx).items():
            if k in reps:
                reps[k][b] = v
    return point, reps


def bootstrap_runs(
    statistic: Callable[[Mapping[TaskFamily, IntArray] | None], Mapping[str, float]],
    strata: Mapping[TaskFamily, NDArray[Any]],
    *,
    clusters: Mapping[TaskFamily, NDArray[Any]] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Interval]:
    """Percentile intervals of every number ``statistic`` returns.

    Args:
        statistic: Maps per-family row indices (``None`` = all rows) to named numbers.
        strata: Per family, the stratum code of each row.
        clusters: Per family, the cluster code of each row (cluster bootstrap); ``None``
            for the slice bootstrap.
        n_boot: Replicates.
        seed: Seed of the generator; families are resampled in :class:`TaskFamily` order.
        level: Coverage of the interval.

    Returns:
        ``{name: Interval}`` for every name of ``statistic(None)``.
    """
    _check(n_boot, level)
    point, reps = bootstrap_replicates(
        statistic, strata, clusters=clusters, n_boot=n_boot, seed=seed
    )
    method = "slice" if clusters is None else "cluster"
    out: dict[str, Interval] = {}
    for k, est in point.items():
        low, high, valid = percentile_interval(reps[k], level)
        out[k] = Interval(float(est), low, high, level, n_boot, valid, method)
    return out


def bootstrap_headline(
    prep: Prepared,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    method: Method = "cluster",
) -> dict[str, Interval]:
    """Bootstrap intervals of every headline number of one run.

    Args:
        prep: The run, from :func:`medvision.metrics.headline.prepare`.
        n_boot: Replicates (1000 is plenty for 95 % percentile intervals).
        seed: Seed; the same run and seed give the same intervals.
        level: Coverage.
        method: ``cluster`` (cases/subjects, default) or ``slice``.

    Returns:
        ``{key: Interval}`` for every key of :data:`HEADLINE_KEYS` (estimate NaN and no
        interval where the run has no such number). Under ``cluster``, a family whose every
        stratum holds a single case gets no interval (bounds NaN, ``n_valid`` 0): one volume
        per group cannot show how results vary between volumes.

    Example:
        >>> from medvision.metrics.headline import prepare
        >>> from medvision.metrics.protocols import get_protocol
        >>> bootstrap_headline(prepare([], get_protocol("strict")), n_boot=10)["tl_MAE"].n_valid
        0
    """
    if method not in METHODS:
        raise ValueError(f"unknown bootstrap method {method!r}; expected one of {list(METHODS)}")
    strata = {f: fd.strata for f, fd in prep.families.items()}
    clusters = {f: fd.clusters for f, fd in prep.families.items()} if method == "cluster" else None
    res = bootstrap_runs(
        lambda idx: headline(prep, idx),
        strata,
        clusters=clusters,
        n_boot=n_boot,
        seed=seed,
        level=level,
    )
    if clusters is not None:
        # A family whose every stratum holds one case has no between-case spread to resample:
        # its replicates all equal the estimate. That is not certainty, so no interval.
        prefix = {
            TaskFamily.DETECTION: "det_",
            TaskFamily.TUMOR_LESION_SIZE: "tl_",
            TaskFamily.ANGLE_DISTANCE: "ad_",
        }
        for fam, fd in prep.families.items():
            if single_case_strata(fd.strata, fd.clusters):
                for k in HEADLINE_KEYS:
                    if k.startswith(prefix[fam]):
                        iv = res[k]
                        res[k] = Interval(
                            iv.estimate, math.nan, math.nan, level, n_boot, 0, "cluster"
                        )
    return {k: res[k] for k in HEADLINE_KEYS}


def single_case_strata(strata: NDArray[Any], clusters: NDArray[Any]) -> bool:
    """True when no stratum holds two clusters (the cluster bootstrap cannot vary anything).

    Example:
        >>> single_case_strata(np.array([0, 0, 1]), np.array([5, 5, 6]))
        True
        >>> single_case_strata(np.array([0, 0, 1]), np.array([5, 7, 6]))
        False
    """
    index = make_clusters(strata, clusters)
    return bool(index.n_clusters == 0 or int(index.count.max()) < 2)
