"""Build the exact samples of an official ``benchmark_plan_*.json.gz`` into a store.

Targets (boxes, axes, distances, angles) and splits come from the plan as published; only the
slice images are stored (losslessly), from the NIfTI files the plan names, by the same
:class:`~medvision.builder.engine.SliceImages` as every other build. Cases run through the same
runner as :func:`~medvision.builder.engine.build_dataset` (process pool or Ray Data), resume,
and every case that cannot be built is listed in the manifest with its reason.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medvision.annotate.tl_versions import plan_file_annotation
from medvision.builder.engine import (
    IMAGE_STORAGE,
    BuildOptions,
    CaseResult,
    SliceImages,
    run_build,
    skip_kind,
)
from medvision.builder.sources import stats_path
from medvision.catalog.spec import DatasetSpec
from medvision.store import BuildManifest, DatasetWriter, SkippedCase
from medvision.store.official_plan import (
    OfficialPlanStats,
    PlanFormatError,
    case_key,
    plan_case_samples,
    plan_dataset_name,
)
from medvision.store.plan_stream import CaseRef, index_plan, load_case
from medvision.store.writer import sha256_file
from medvision.volumes import VolumeError, load_volume

__all__ = ["PlanCaseJob", "build_official_plan", "build_plan_case"]

#: Plans store voxel sizes rounded to 3 decimals; allow that rounding plus float noise (mm).
VOXEL_SIZE_ATOL_MM = 6e-4


#: File in the store folder that holds the plan's case records during a build (one JSON line
#: each, :func:`~medvision.store.plan_stream.index_plan`); removed when the build ends.
PLAN_SPOOL = ".official-plan-cases.jsonl"


@dataclass(frozen=True)
class PlanCaseJob:
    """One case of an official plan (picklable and small: the case record stays in the spool).

    Attributes:
        plan: The plan without its case lists.
        case: Where the case's record lies in ``spool``.
        spool: The spool file written by :func:`~medvision.store.plan_stream.index_plan`.
    """

    plan: Mapping[str, Any]
    case: CaseRef
    spool: str
    data_dir: str
    out_dir: str
    apply_filters: bool
    spec: DatasetSpec | None

    @property
    def key(self) -> str:
        """Case id in the store."""
        return case_key(self.plan, self.case)

    def source_paths(self) -> list[tuple[str, Path]]:
        """``(role, path)`` of the case's image (the plan holds the targets)."""
        return [("image", Path(self.data_dir) / self.case.image_file)]


def _check_geometry(
    job: PlanCaseJob, info: Mapping[str, Any], shape: tuple[int, ...], spacing: tuple[float, ...]
) -> str:
    """Reason the loaded image disagrees with the plan's ``image_file_info``, or ``""``."""
    size = info.get("array_size")
    if size is not None and tuple(int(v) for v in size) != tuple(shape):
        return (
            f"image {job.case.image_file} has RAS+ shape {list(shape)} but the plan says "
            f"array_size {list(size)}"
        )
    voxel = info.get("voxel_size")
    if voxel is not None and not all(
        math.isclose(float(a), float(b), rel_tol=1e-4, abs_tol=VOXEL_SIZE_ATOL_MM)
        for a, b in zip(voxel, spacing, strict=True)
    ):
        return (
            f"image {job.case.image_file} has RAS+ voxel size "
            f"{[round(v, 4) for v in spacing]} mm but the plan says voxel_size {list(voxel)}"
        )
    return ""


def build_plan_case(job: PlanCaseJob) -> CaseResult:
    """Render and write the samples of one official case; domain errors skip the case."""
    dataset = plan_dataset_name(job.plan)
    path = Path(job.data_dir) / job.case.image_file

    def skipped(reason: str, kind: str) -> CaseResult:
        skip = SkippedCase(dataset=dataset, case_id=job.key, file=str(path), reason=reason)
        return CaseResult(job.key, 0, skip, skip_kind=kind)

    stats = OfficialPlanStats()
    try:
        case = load_case(job.spool, job.case)
        image = load_volume(path, "image")
        info = case.record.get("image_file_info") or {}
        mismatch = _check_geometry(job, info, image.shape, image.spacing_mm)
        if mismatch:
            return skipped(mismatch, "geometry_differs_from_plan")
        sink = SliceImages(image)
        samples = plan_case_samples(
            job.plan,
            case,
            image.shape,
            image.spacing_mm,
            sink,
            spec=job.spec,
            apply_filters=job.apply_filters,
            stats=stats,
        )
    except (VolumeError, PlanFormatError) as exc:
        return skipped(str(exc), skip_kind(exc))
    counters = {
        "dropped_multi_instance": stats.dropped_multi_instance,
        "dropped_small": stats.dropped_small,
    }
    writer = DatasetWriter(job.out_dir)
    samples_path, _ = writer.case_paths(dataset, job.key)
    samples_path.parent.mkdir(parents=True, exist_ok=True)
    stats_path(samples_path).write_text(json.dumps(counters))
    writer.write_case(dataset, job.key, samples, sink.images)
    return CaseResult(job.key, len(samples), stats=counters)


def build_official_plan(
    plan_path: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    options: BuildOptions | None = None,
    *,
    apply_filters: bool = True,
    spec: DatasetSpec | None = None,
    on_progress: Callable[[int, int, CaseResult | None], None] | None = None,
) -> BuildManifest:
    """Build every case of an official plan into the store at ``out_dir`` (resumable).

    Args:
        plan_path: A ``benchmark_plan_*.json.gz`` file.
        data_dir: The dataset folder the plan's relative paths start from
            (``Datasets/<dataset>/`` of the official layout).
        out_dir: Store folder (created).
        options: ``workers``, ``engine`` and ``max_cases`` are used.
        apply_filters: Apply the official loader filters (single instance, 10 px side).
        spec: Catalog spec of the dataset, for label kinds and report groups.
        on_progress: Called as ``(done, total, result)`` after each case.

    Returns:
        The manifest written to ``out_dir/manifest.json``.

    Raises:
        PlanFormatError: If the plan cannot be read or has no valid task list.
    """
    options = options or BuildOptions()
    spool = Path(out_dir) / PLAN_SPOOL
    spool.parent.mkdir(parents=True, exist_ok=True)
    # Streamed: the case records go to the spool, each job reads its own back (bounded memory).
    index = index_plan(plan_path, spool)
    light = index.light_plan()
    dataset = plan_dataset_name(light)
    cases = index.cases
    if options.max_cases is not None:
        per_task: dict[str, int] = {}
        kept: list[CaseRef] = []
        for c in cases:
            per_task[c.task_id] = per_task.get(c.task_id, 0) + 1
            if per_task[c.task_id] <= options.max_cases:
                kept.append(c)
        cases = kept
    jobs = [
        PlanCaseJob(light, c, str(spool), str(data_dir), str(out_dir), apply_filters, spec)
        for c in cases
    ]
    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})[:5]
        raise PlanFormatError(f"official plan {plan_path}: case ids listed twice: {dup}")
    plan_sha = sha256_file(Path(plan_path))
    opts: dict[str, Any] = {
        "source": "official-plan",
        "official_plan": Path(plan_path).name,
        "official_plan_sha256": plan_sha,
        "image_storage": IMAGE_STORAGE,
        "max_cases": options.max_cases,
        "apply_official_filters": apply_filters,
        # The plan's own targets: their version when the file name states a known one.
        "annotation": plan_file_annotation(Path(plan_path).name),
        "split": {"official_plan": Path(plan_path).name},
        "spec_sha256": (
            hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:16] if spec else None
        ),
    }
    try:
        return run_build(
            build_plan_case,
            jobs,
            dataset=dataset,
            data_dir=data_dir,
            out_dir=out_dir,
            options=options,
            manifest_options=opts,
            on_progress=on_progress,
        )
    finally:
        spool.unlink(missing_ok=True)
