"""Temperature task mixing: draw a training mixture with task weights proportional to N^(1/T).

MedVision-V0 (paper-results §6.2) mixes its 110K detection, 5.5K T/L and 5.5K A/D samples with
weights ``w_t = N_t^(1/T) / sum_s N_s^(1/T)`` at ``T = 5``, which gives about 47.7 % detection
and 26.2 % each for T/L and A/D instead of the natural 90.9 / 4.5 / 4.5. ``T = 1`` keeps the
natural proportions; ``T -> inf`` gives equal weights.

V0 samples with replacement. :func:`temperature_mix` fixes each task's count first (largest
remainder on ``total * w_t``) and then walks seeded permutations of the task's pool, starting a
fresh permutation when one is used up: the same expected mixture, but no item repeats before
every item of its task has been drawn once (less variance than i.i.d. draws). Seeded and
deterministic.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

__all__ = ["mixing_counts", "mixing_weights", "temperature_mix"]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


def mixing_weights(counts: Mapping[K, int], temperature: float) -> dict[K, float]:
    """Task weights ``N_t^(1/T)`` normalised to sum to 1.

    Args:
        counts: Pool size per task (tasks with 0 samples get weight 0).
        temperature: ``T > 0``; 1 keeps the natural proportions.

    Returns:
        Weight per task, same keys, summing to 1.

    Raises:
        ValueError: If ``T <= 0`` or not finite, a count is negative, or every count is 0.

    Example:
        >>> w = mixing_weights({"detection": 110_000, "tl": 5_500, "ad": 5_500}, 5.0)
        >>> round(w["detection"], 3), round(w["tl"], 3)
        (0.477, 0.262)
    """
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be finite and > 0; found {temperature}")
    bad = {k: n for k, n in counts.items() if n < 0}
    if bad:
        raise ValueError(f"task counts must be >= 0; found {bad}")
    raw = {k: (float(n) ** (1.0 / temperature) if n > 0 else 0.0) for k, n in counts.items()}
    total = sum(raw.values())
    if total == 0:
        raise ValueError(f"every task pool is empty: {dict(counts)}")
    return {k: v / total for k, v in raw.items()}


def mixing_counts(counts: Mapping[K, int], total: int, temperature: float) -> dict[K, int]:
    """How many items to draw per task: ``total * w_t`` rounded by largest remainder.

    Args:
        counts: Pool size per task.
        total: Items to draw in all (>= 0).
        temperature: Mixing temperature (see :func:`mixing_weights`).

    Returns:
        Count per task summing exactly to ``total`` (0 for empty pools).
    """
    if total < 0:
        raise ValueError(f"total must be >= 0; found {total}")
    weights = mixing_weights(counts, temperature)
    exact = {k: total * w for k, w in weights.items()}
    out = {k: math.floor(v) for k, v in exact.items()}
    left = total - sum(out.values())
    # Ties broken by key order so the result is deterministic.
    order = sorted(
        (k for k in exact if counts[k] > 0), key=lambda k: (-(exact[k] - out[k]), str(k))
    )
    for k in order[:left]:
        out[k] += 1
    return out


def temperature_mix(
    pools: Mapping[K, Sequence[T]],
    *,
    temperature: float,
    total: int | None = None,
    seed: int = 0,
) -> list[T]:
    """Draw a shuffled training mixture from per-task pools.

    Args:
        pools: Items per task (e.g. samples by task family).
        temperature: Mixing temperature ``T`` (weights ``N_t^(1/T)``).
        total: Items to draw; ``None`` draws as many as the pools hold in all.
        seed: Seed of the permutations and of the final shuffle.

    Returns:
        ``total`` items, tasks interleaved at random. An item repeats only once its task's
        pool has been used up.
    """
    sizes = {k: len(v) for k, v in pools.items()}
    n = sum(sizes.values()) if total is None else total
    plan = mixing_counts(sizes, n, temperature)
    rng = random.Random(seed)
    drawn: list[T] = []
    for key in sorted(pools, key=str):
        pool, need = list(pools[key]), plan[key]
        while need > 0:
            order = list(range(len(pool)))
            rng.shuffle(order)
            take = order[:need]
            drawn.extend(pool[i] for i in take)
            need -= len(take)
    rng.shuffle(drawn)
    return drawn
