"""Named benchmarks: the official task lists resolved against the catalog's official fields.

A benchmark (``paper-main``, ``paper-plane-ood``, ``paper-task-ood``, ``all``) is a set of task
configurations. ``benchmarks.yaml`` beside this module writes the official lists as official
task numbers (reference official-eval-protocol.md section 6.3); :func:`get_benchmark` maps each
number to our dataset task through the catalog (``detection.official_task``, ``tl.official``,
``official.ad``) and keeps the planes the catalog declares official. ``all`` is every
configuration the catalog's official fields name (every official task on every plane with an
official task YAML).

A configuration is what the official lmms-eval names one task
(``{dataset}_{type}_{TaskNN}_{plane}``) and what ``--limit`` counts in: its :attr:`key` equals
:func:`medvision.runs.selection.config_key` of each of its samples.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Literal

import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field

from medvision.catalog.registry import catalog
from medvision.catalog.spec import DatasetSpec, PlaneCode, SpecError, TaskSpec, plane_of

__all__ = [
    "ALL",
    "BENCHMARKS_FILE",
    "Benchmark",
    "BenchmarkConfig",
    "ConfigKey",
    "benchmark_names",
    "config_counts",
    "find_official_task",
    "get_benchmark",
]

BENCHMARKS_FILE = Path(__file__).with_name("benchmarks.yaml")
ALL = "all"
#: ``(dataset, task_id, family, plane value, metric type, T/L label id or -1)``.
ConfigKey = tuple[str, str, str, int, str, int]
Family = Literal["detection", "tl", "ad"]
_PLANE_ORDER = {"S": 0, "C": 1, "A": 2}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Entry(_Model):
    family: Family
    planes: list[PlaneCode] = Field(min_length=1)
    tasks: dict[str, list[str]] = Field(min_length=1)
    official_planes_only: bool = False
    unverified: list[str] = []


class _BenchmarkSpec(_Model):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str
    source: str
    entries: list[_Entry] = Field(min_length=1)


class _File(_Model):
    benchmarks: list[_BenchmarkSpec]


@dataclass(frozen=True)
class BenchmarkConfig:
    """One task configuration of a benchmark.

    Attributes:
        dataset: Catalog dataset name.
        task_id: Our task id in that dataset (``TaskSpec.id``; ``Sample.task_id``).
        family: ``"detection"``, ``"tl"`` or ``"ad"``.
        official_task: The official task number of the family (``"01"``...).
        plane: ``"S"``, ``"C"`` or ``"A"``.
        target: What is asked: the label names (detection), the target label (T/L) or the
            measurement type (A/D).
        label_id: T/L target label id; ``None`` otherwise.
        metric_type: ``"axes"`` (T/L), ``"distance"`` / ``"angle"`` (A/D), ``""`` (detection).
        labels: Detection label names, A/D measurement keys; the target label for T/L.
        unverified: Notes on facts of this configuration the reference does not settle (the
            benchmark entry's and the dataset spec's ``unverified`` lists).
    """

    dataset: str
    task_id: str
    family: str
    official_task: str
    plane: str
    target: str
    label_id: int | None = None
    metric_type: str = ""
    labels: tuple[str, ...] = ()
    unverified: tuple[str, ...] = ()

    @property
    def key(self) -> ConfigKey:
        """The key :func:`medvision.runs.selection.config_key` gives each of its samples."""
        return (
            self.dataset,
            self.task_id,
            self.family,
            int(plane_of(self.plane)),
            self.metric_type,
            -1 if self.label_id is None else self.label_id,
        )

    @property
    def official_name(self) -> str:
        """The official lmms-eval task name (``BraTS24_BoxCoordinate_Task01_Axial``)."""
        kind = {
            "detection": "BoxCoordinate",
            "tl": "TumorLesionSize",
            "ad": f"BiometricsFromLandmarks_{self.metric_type.capitalize()}",
        }[self.family]
        if self.dataset == "FeTA24" and self.family == "ad":
            kind = "BiometricsFromLandmarks"  # FeTA24 has distances only, one task name
        return f"{self.dataset}_{kind}_Task{self.official_task}_{plane_of(self.plane).name.title()}"


@dataclass(frozen=True)
class Benchmark:
    """A named set of task configurations.

    Attributes:
        name: ``paper-main``, ``paper-plane-ood``, ``paper-task-ood`` or ``all``.
        description: What the set is.
        source: Where the list comes from (reference sections).
        configs: The configurations, in list order (family, dataset, task, plane).
    """

    name: str
    description: str
    source: str
    configs: tuple[BenchmarkConfig, ...]

    def keys(self) -> frozenset[ConfigKey]:
        """The configuration keys (see :attr:`BenchmarkConfig.key`)."""
        return frozenset(c.key for c in self.configs)


@cache
def _specs() -> dict[str, _BenchmarkSpec]:
    try:
        data = yaml.safe_load(BENCHMARKS_FILE.read_text(encoding="utf-8"))
        parsed = _File.model_validate(data)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise SpecError(f"invalid benchmark list {BENCHMARKS_FILE}: {exc}") from exc
    return {b.name: b for b in parsed.benchmarks}


def benchmark_names() -> list[str]:
    """Every benchmark name: those of ``benchmarks.yaml`` and ``all``."""
    return [*_specs(), ALL]


def _official_planes(task: TaskSpec, family: str, number: str) -> list[PlaneCode]:
    if family == "detection":
        return list(task.detection.official_planes) if task.detection else []
    if family == "tl":
        tl = task.tl.official if task.tl else []
        return next((list(o.planes) for o in tl if o.task == number), [])
    return list(task.official.ad_planes)


def find_official_task(spec: DatasetSpec, family: str, number: str) -> tuple[TaskSpec, int | None]:
    """Our task (and T/L label id) holding official task ``number`` of ``family``.

    Raises:
        SpecError: If no task of ``spec`` names that official task.
    """
    for task in spec.tasks:
        if family == "detection" and task.detection and task.detection.official_task == number:
            return task, None
        if family == "tl" and task.tl:
            for o in task.tl.official:
                if o.task == number:
                    return task, o.label
        if family == "ad" and task.official.ad == number:
            return task, None
    raise SpecError(f"benchmark list: {spec.name} has no official {family} task {number}")


def _configs(
    spec: DatasetSpec,
    family: str,
    number: str,
    planes: Iterable[PlaneCode],
    notes: Sequence[str],
) -> list[BenchmarkConfig]:
    task, label_id = find_official_task(spec, family, number)
    unverified = (*notes, *spec.unverified)
    out: list[BenchmarkConfig] = []
    for plane in planes:
        base = BenchmarkConfig(
            dataset=spec.name,
            task_id=task.id,
            family=family,
            official_task=number,
            plane=plane,
            target="",
            unverified=unverified,
        )
        if family == "detection":
            labels = task.detection.labels if task.detection else []
            names = tuple(task.label(i).name for i in labels)
            out.append(replace(base, target=", ".join(names), labels=names))
        elif family == "tl":
            assert label_id is not None
            name = task.label(label_id).name
            out.append(
                replace(base, target=name, label_id=label_id, metric_type="axes", labels=(name,))
            )
        else:
            for mtype in ("distance", "angle"):
                keys = tuple(
                    m.key for m in task.measurements if m.type == mtype and m.plane == plane
                )
                if keys:
                    noun = "measurement" if len(keys) == 1 else "measurements"
                    target = f"{mtype} ({len(keys)} {noun})"
                    out.append(replace(base, target=target, metric_type=mtype, labels=keys))
    return out


def _resolve(b: _BenchmarkSpec, specs: dict[str, DatasetSpec]) -> Benchmark:
    configs: list[BenchmarkConfig] = []
    for entry in b.entries:
        for ds_name, numbers in entry.tasks.items():
            if ds_name not in specs:
                raise SpecError(f"benchmark {b.name}: unknown dataset {ds_name!r}")
            spec = specs[ds_name]
            for number in numbers:
                task, _ = find_official_task(spec, entry.family, number)
                official = _official_planes(task, entry.family, number)
                planes = [p for p in entry.planes if p in official]
                lacking = [p for p in entry.planes if p not in official]
                if lacking and not entry.official_planes_only:
                    raise SpecError(
                        f"benchmark {b.name}: {ds_name} official {entry.family} task {number} "
                        f"has no official task on planes {lacking} (catalog: {official})"
                    )
                configs += _configs(spec, entry.family, number, planes, entry.unverified)
    return Benchmark(b.name, b.description, b.source, tuple(configs))


def _all(specs: dict[str, DatasetSpec]) -> Benchmark:
    configs: list[BenchmarkConfig] = []
    for spec in specs.values():
        for task in spec.tasks:
            numbers: list[tuple[str, str]] = []
            if task.detection and task.detection.official_task:
                numbers.append(("detection", task.detection.official_task))
            if task.tl:
                numbers += [("tl", o.task) for o in task.tl.official]
            if task.official.ad:
                numbers.append(("ad", task.official.ad))
            for family, number in numbers:
                planes = sorted(
                    _official_planes(task, family, number), key=_PLANE_ORDER.__getitem__
                )
                configs += _configs(spec, family, number, planes, ())
    return Benchmark(
        ALL,
        "Every task configuration the catalog's official fields name: every official task on "
        "every plane that has an official task YAML.",
        "catalog official fields (official-eval-protocol.md section 9)",
        tuple(configs),
    )


def get_benchmark(name: str, specs: dict[str, DatasetSpec] | None = None) -> Benchmark:
    """Resolve a named benchmark against the catalog.

    Args:
        name: A name from :func:`benchmark_names`.
        specs: Dataset specs by name (default: the built-in catalog).

    Returns:
        The :class:`Benchmark` with its configurations.

    Raises:
        KeyError: If ``name`` is unknown (the message lists the known names).
        SpecError: If the list names an official task or plane the catalog lacks.
    """
    specs = catalog() if specs is None else specs
    if name == ALL:
        return _all(specs)
    lists = _specs()
    if name not in lists:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(benchmark_names())}")
    return _resolve(lists[name], specs)


def config_counts(table: pa.Table) -> dict[ConfigKey, int]:
    """Samples per configuration key in a samples table (e.g. a built dataset's test split).

    Args:
        table: Rows with ``dataset``, ``task_id``, ``family``, ``plane``, ``metric_type`` and
            ``label_id`` columns (the store's samples schema).

    Returns:
        ``{config key: number of rows}``; T/L rows are keyed by label, the rest with -1.
    """
    cols = ["dataset", "task_id", "family", "plane", "metric_type", "label_id"]
    if table.num_rows == 0:
        return {}
    grouped = table.select(cols).group_by(cols, use_threads=False).aggregate([([], "count_all")])
    out: dict[ConfigKey, int] = {}
    for row in grouped.to_pylist():
        label = row["label_id"] if row["family"] == "tl" and row["label_id"] is not None else -1
        key = (
            str(row["dataset"]),
            str(row["task_id"]),
            str(row["family"]),
            int(row["plane"]),
            str(row["metric_type"]),
            int(label),
        )
        out[key] = out.get(key, 0) + int(row["count_all"])
    return out
