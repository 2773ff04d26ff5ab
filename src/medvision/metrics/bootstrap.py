"""Seeded stratified bootstrap confidence intervals for every headline number.

Resampling is **within strata**: each (official group, dataset) keeps its sample count in
every replicate, so the official N >= 50 group rule and the sample weights of the group means
do not move; only which samples fill each group does. The interval is the percentile interval
of the replicates (``level`` = 0.95 gives the 2.5 and 97.5 percentiles). Replicates where a
number is undefined (NaN, e.g. a T/L label whose every resampled answer failed) are left out
of that number's interval, and the count kept is reported.

Everything is determined by ``seed``: the same run and seed give the same intervals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medvision.metrics.headline import HEADLINE_KEYS, Prepared, headline
from medvision.schema import TaskFamily

__all__ = [
    "Interval",
    "bootstrap_headline",
    "percentile_interval",
    "stratified_indices",
]

IntArray = NDArray[np.int64]


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
    """

    estimate: float
    low: float
    high: float
    level: float
    n_boot: int
    n_valid: int

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


def bootstrap_runs(
    statistic: Callable[[Mapping[TaskFamily, IntArray] | None], Mapping[str, float]],
    strata: Mapping[TaskFamily, NDArray[Any]],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Interval]:
    """Percentile intervals of every number ``statistic`` returns.

    Args:
        statistic: Maps per-family row indices (``None`` = all rows) to named numbers.
        strata: Per family, the stratum code of each row.
        n_boot: Replicates.
        seed: Seed of the generator; families are resampled in :class:`TaskFamily` order.
        level: Coverage of the interval.

    Returns:
        ``{name: Interval}`` for every name of ``statistic(None)``.
    """
    _check(n_boot, level)
    point = dict(statistic(None))
    rng = np.random.default_rng(seed)
    fams = [f for f in TaskFamily if f in strata]
    iters = {f: stratified_indices(strata[f], n_boot, rng) for f in fams}
    reps = {k: np.empty(n_boot) for k in point}
    for b in range(n_boot):
        idx = {f: next(iters[f]) for f in fams}
        for k, v in statistic(idx).items():
            if k in reps:
                reps[k][b] = v
    out: dict[str, Interval] = {}
    for k, est in point.items():
        low, high, valid = percentile_interval(reps[k], level)
        out[k] = Interval(float(est), low, high, level, n_boot, valid)
    return out


def bootstrap_headline(
    prep: Prepared, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, Interval]:
    """Bootstrap intervals of every headline number of one run.

    Args:
        prep: The run, from :func:`medvision.metrics.headline.prepare`.
        n_boot: Replicates (1000 is plenty for 95 % percentile intervals).
        seed: Seed; the same run and seed give the same intervals.
        level: Coverage.

    Returns:
        ``{key: Interval}`` for every key of :data:`HEADLINE_KEYS` (estimate NaN and no
        interval where the run has no such number).

    Example:
        >>> from medvision.metrics.headline import prepare
        >>> from medvision.metrics.protocols import get_protocol
        >>> bootstrap_headline(prepare([], get_protocol("strict")), n_boot=10)["tl_MAE"].n_valid
        0
    """
    strata = {f: fd.strata for f, fd in prep.families.items()}
    res = bootstrap_runs(
        lambda idx: headline(prep, idx), strata, n_boot=n_boot, seed=seed, level=level
    )
    return {k: res[k] for k in HEADLINE_KEYS}
