"""Which samples a run evaluates: task configurations, the per-configuration limit, priors."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Literal

from medvision.backends import fit_priors
from medvision.catalog.benchmarks import BenchmarkConfig, get_benchmark
from medvision.runs.spec import RunSpec
from medvision.schema import Sample, TaskFamily
from medvision.store import BuiltDataset


def config_key(sample: Sample) -> tuple[str, str, str, int, str, int]:
    """The task configuration a sample belongs to, as the official lmms-eval task names it.

    ``{dataset}_{type}_{TaskNN}_{plane}``: dataset, task, family and plane; distances and
    angles are separate tasks (Ceph), and each T/L target label is its own official task.
    Returns ``(dataset, task_id, family, plane, metric type, T/L label id or -1)``.
    """
    tl_label = sample.label_id if sample.family is TaskFamily.TUMOR_LESION_SIZE else None
    return (
        sample.dataset,
        sample.task_id,
        sample.family.value,
        int(sample.plane),
        sample.metric_type,
        -1 if tl_label is None else tl_label,
    )


def benchmark_coverage(
    samples: Sequence[Sample], spec: RunSpec
) -> tuple[list[BenchmarkConfig], list[BenchmarkConfig]]:
    """The run's benchmark configurations (within its families and planes), split by presence.

    Args:
        samples: The samples of the run's split.
        spec: The run spec; ``spec.benchmark`` must be set.

    Returns:
        ``(present, missing)``: configurations with at least one sample, and those without.
    """
    if spec.benchmark is None:
        raise ValueError("the run spec names no benchmark")
    fams = set(spec.families)
    planes = set(spec.planes)
    wanted = [
        c for c in get_benchmark(spec.benchmark).configs if c.family in fams and c.key[3] in planes
    ]
    have = {config_key(s) for s in samples}
    present = [c for c in wanted if c.key in have]
    missing = [c for c in wanted if c.key not in have]
    return present, missing


def select_samples(samples: Sequence[Sample], spec: RunSpec) -> list[Sample]:
    """Filter by benchmark, family and plane, then apply the per-configuration limit.

    ``paper-v1`` and ``official`` keep the first N of each configuration in dataset order
    (lmms-eval ``--limit``). ``strict`` draws a seeded subsample stratified by label (label
    name and measurement key): every label gets one sample first when N allows, the rest is
    shared in proportion to label sizes (largest remainders), and each label's samples are
    drawn at random with a seed made of ``spec.seed`` and the configuration. With
    ``spec.benchmark`` only the benchmark's configurations are kept (see
    :func:`benchmark_coverage` for the ones the build lacks).

    Args:
        samples: Samples in dataset order.
        spec: The run spec.

    Returns:
        The samples to evaluate, in dataset order.
    """
    fams = set(spec.families)
    planes = set(spec.planes)
    kept = [s for s in samples if s.family.value in fams and int(s.plane) in planes]
    if spec.benchmark is not None:
        keys = get_benchmark(spec.benchmark).keys()
        kept = [s for s in kept if config_key(s) in keys]
    limit = spec.limit_per_config
    if limit is None:
        return kept
    groups: dict[tuple[str, str, str, int, str, int], list[Sample]] = defaultdict(list)
    for s in kept:
        groups[config_key(s)].append(s)
    chosen: set[str] = set()
    for key, members in groups.items():
        if spec.protocol == "strict":
            rng = random.Random(f"{spec.seed}|{'|'.join(map(str, key))}")
            picked = _stratified(members, limit, rng)
        else:
            picked = members[:limit]
        chosen.update(s.sample_id for s in picked)
    return [s for s in kept if s.sample_id in chosen]


def _stratified(members: Sequence[Sample], n: int, rng: random.Random) -> list[Sample]:
    """``min(n, len(members))`` samples, stratified by (label name, metric key)."""
    if n >= len(members):
        return list(members)
    strata: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for s in members:
        strata[(s.label_name, s.metric_key)].append(s)
    keys = sorted(strata)
    if n < len(keys):
        return [rng.choice(strata[k]) for k in sorted(rng.sample(keys, n))]
    # One each, then the rest in proportion to what each stratum has left.
    spare = {k: len(strata[k]) - 1 for k in keys}
    rest = n - len(keys)
    total = sum(spare.values())
    ideal = {k: rest * spare[k] / total if total else 0.0 for k in keys}
    quota = {k: 1 + math.floor(ideal[k]) for k in keys}
    left = n - sum(quota.values())
    order = sorted(keys, key=lambda k: (-(ideal[k] - math.floor(ideal[k])), rng.random()))
    for k in order[:left]:
        quota[k] += 1
    return [s for k in keys for s in rng.sample(strata[k], quota[k])]


def prior_key(sample: Sample) -> str:
    """Key of the train-set prior a ``prior`` baseline answers for this sample."""
    return f"{sample.dataset}|{sample.family.value}|{sample.label_name}|{sample.metric_key}"


def train_statistics(
    ds: BuiltDataset, statistic: Literal["mean", "median"] = "mean"
) -> tuple[dict[str, list[float]], dict[str, tuple[float, float]]]:
    """Mean (or median) target and (min, max) range per prior key over the train split."""
    train = ds.samples(split="train")
    items = [(prior_key(s), list(s.target)) for s in train]
    priors = fit_priors(items, statistic)
    ranges: dict[str, tuple[float, float]] = {}
    for key, values in items:
        lo, hi = ranges.get(key, (math.inf, -math.inf))
        ranges[key] = (min(lo, *values), max(hi, *values))
    return priors, ranges
