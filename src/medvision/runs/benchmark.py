"""A run's named benchmark: which of its configurations the build has, said once, recorded."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from medvision.runs.selection import benchmark_coverage
from medvision.runs.spec import RunError, RunSpec
from medvision.schema import Plane, Sample

__all__ = ["benchmark_manifest", "log"]

log = logging.getLogger("medvision.runs")
_SHOWN = 8


def benchmark_manifest(samples: Sequence[Sample], spec: RunSpec) -> dict[str, Any] | None:
    """Check the build against ``spec.benchmark``; warn once about what it lacks.

    Logs one warning (logger ``medvision.runs``) naming the number of configurations the
    build lacks and the first few by their official task name.

    Args:
        samples: Samples of the run's split, in dataset order.
        spec: The run spec.

    Returns:
        ``None`` without a benchmark; otherwise the ``run.json`` block ``{"name",
        "configs", "present", "missing": [official task names]}`` (counts within the run's
        families and planes).

    Raises:
        RunError: If the build has none of the benchmark's configurations (the run would
            score nothing).
    """
    if spec.benchmark is None:
        return None
    try:
        present, missing = benchmark_coverage(samples, spec)
    except KeyError as exc:
        raise RunError(str(exc).strip("'\"")) from None
    if not present and not missing:
        raise RunError(
            f"benchmark {spec.benchmark} has no configuration among families "
            f"{list(spec.families)} and planes {[Plane(p).letter for p in spec.planes]}"
        )
    names = [c.official_name for c in missing]
    if missing:
        shown = ", ".join(names[:_SHOWN]) + (
            f", ... ({len(names) - _SHOWN} more)" if len(names) > _SHOWN else ""
        )
        log.warning(
            "warning: benchmark %s: the build lacks %d of its %d configurations: %s",
            spec.benchmark,
            len(missing),
            len(missing) + len(present),
            shown,
        )
    if not present:
        raise RunError(
            f"benchmark {spec.benchmark}: the build at {spec.dataset_dir} has none of its "
            f"{len(missing)} configurations; build the benchmark's datasets first "
            "(medvision benchmarks show NAME --dataset-dir DS lists them)"
        )
    return {
        "name": spec.benchmark,
        "configs": len(present) + len(missing),
        "present": len(present),
        "missing": names,
    }
