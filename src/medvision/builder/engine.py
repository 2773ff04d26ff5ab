"""Build a dataset spec's source files into a MedVision sample store.

One function, :func:`build_case`, turns one case into samples and images and writes them
atomically; :func:`build_dataset` maps it over every case with a local process pool (or in
process with ``workers=1``, or on Ray Data with ``engine="ray"``), skips cases already written
(resume), records every skipped case with its reason, and finalises the store with a manifest.
:func:`build_official_plan` does the same for the cases of an official
``benchmark_plan_*.json.gz`` file, with the plan's own targets and splits.

Memory: a worker holds one case at a time (its float32 image, its label volume, one label's
crop and that crop's component ids, one slice being encoded, the stored slices of the case); the
volumes are freed before the case is written; jobs carry file paths, never arrays, and
results are small counters. Peak memory is therefore bounded per worker by about twice the
largest case's float32 image, not by the dataset (``benchmarks/build.py`` measures it).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from medvision.annotate.components import label_bounding_boxes
from medvision.annotate.planners import (
    CaseContext,
    PlanError,
    PlanStats,
    plan_angle_distance,
    plan_detection,
    plan_tumour_lesion,
)
from medvision.annotate.tl_versions import DEFAULT_ANNOTATION, Annotation, check_annotation
from medvision.builder.executors import Engine, run_jobs
from medvision.builder.guards import (
    check_volumetric,
    invalid_case_ids,
    out_of_memory_reason,
    unknown_label_ids,
)
from medvision.builder.sources import (
    Fingerprinting,
    case_digests,
    data_digest,
    plan_resume,
    stats_path,
)
from medvision.builder.splits import assign_splits, split_cases
from medvision.catalog.layouts import (
    CaseFiles,
    LandmarkError,
    ReaderError,
    discover_cases,
    read_case,
)
from medvision.catalog.readers.base import link_problem
from medvision.catalog.spec import DatasetSpec, TaskSpec
from medvision.schema import Plane, Sample, Split
from medvision.store import BuildManifest, DatasetWriter, SkippedCase
from medvision.store.official_plan import PlanFormatError
from medvision.store.writer import sha256_file
from medvision.volumes import (
    AffineError,
    CorruptFileError,
    DeclaredSizeError,
    EmptyMaskError,
    LabelValueError,
    NonFiniteError,
    NotVolumetricError,
    ShapeMismatchError,
    StoredSlice,
    VolumeError,
    check_nonempty,
    check_same_grid,
    encode_slice,
    slice_volume,
)
from medvision.volumes.io import Volume

UnknownLabelPolicy = Literal["skip", "ignore"]

_J = TypeVar("_J")


class _Keyed(Protocol):
    """A build job: the case's store key and its source files."""

    @property
    def key(self) -> str:
        """Case id in the store."""
        ...

    def source_paths(self) -> list[tuple[str, Path]]:
        """``(role, path)`` of each source file or folder (fingerprinted, see sources)."""
        ...


_K = TypeVar("_K", bound=_Keyed)


@dataclass(frozen=True)
class BuildOptions:
    """Options of a build (recorded in the manifest).

    Attributes:
        workers: Processes; 1 runs in this process.
        seed: Seed recorded in the manifest (the split seed comes from the spec).
        max_cases: Build only the first N cases of each task (for quick looks).
        engine: ``"local"`` (process pool, default) or ``"ray"`` (Ray Data; connects to
            ``RAY_ADDRESS`` when set, else starts a local Ray with ``workers`` CPUs).
        split_from: An official ``benchmark_plan_*.json.gz``; its ``train_cases`` /
            ``test_cases`` replace the spec's seeded split. Cases it does not list are
            skipped with that reason.
        on_unknown_label: What a mask holding label ids the spec does not know does to its
            case: ``"skip"`` (default; the case is skipped and the ids named) or ``"ignore"``.
        annotation: Ground-truth version of the T/L targets (``official-1.0.0``,
            ``official-1.4.0``, ``precise``; see :mod:`medvision.annotate.tl_versions`).
        keep_cases: Keep the per-case working files (``cases/``) after the build is
            finalized; by default they are removed (they double the disk use). A later build
            into the same folder then rebuilds every case; with ``cases/`` kept it rebuilds
            only the cases whose source files changed.
    """

    workers: int = 1
    seed: int = 0
    max_cases: int | None = None
    engine: Engine = "local"
    split_from: str | None = None
    on_unknown_label: UnknownLabelPolicy = "skip"
    annotation: Annotation = DEFAULT_ANNOTATION
    keep_cases: bool = False

    def __post_init__(self) -> None:
        check_annotation(self.annotation)


#: How a build stores images (recorded in the manifest options, so it is part of the build
#: id): every slice once, losslessly; rendering to 8-bit happens per protocol when read.
IMAGE_STORAGE = "lossless-v1"


class SliceImages:
    """Stores each requested slice of an image volume once, losslessly, by content key."""

    def __init__(self, image: Volume) -> None:
        self._image = image
        self._cache: dict[tuple[Plane, int], tuple[str, tuple[int, int]]] = {}
        self.images: dict[str, StoredSlice] = {}

    def image(self, plane: Plane, index: int) -> tuple[str, tuple[int, int]]:
        """Return ``(content key, (H, W))`` of the slice, encoding it on first use."""
        hit = self._cache.get((plane, index))
        if hit is not None:
            return hit
        sl = slice_volume(self._image, plane, index)
        stored = encode_slice(sl.pixels)
        key = stored.key
        self.images[key] = stored
        h, w = sl.pixels.shape
        self._cache[(plane, index)] = (key, (int(h), int(w)))
        return key, (int(h), int(w))


@dataclass(frozen=True)
class CaseJob:
    """Everything a worker needs to build one case (picklable)."""

    spec: DatasetSpec
    task_id: str
    files: CaseFiles
    split: Split
    out_dir: str
    on_unknown_label: UnknownLabelPolicy = "skip"
    annotation: Annotation = DEFAULT_ANNOTATION

    @property
    def key(self) -> str:
        """Case id in the store.

        The file's case id, prefixed by the task id when the dataset has several tasks (the
        same case id may then appear in more than one task).
        """
        if len(self.spec.tasks) == 1:
            return self.files.case_id
        return f"{self.task_id}-{self.files.case_id}"

    def source_paths(self) -> list[tuple[str, Path]]:
        """``(role, path)`` of the case's image, mask, landmarks and extra files."""
        f = self.files
        named = [("image", f.image), ("mask", f.mask), ("landmarks", f.landmarks)]
        out = [(role, p) for role, p in named if p is not None]
        return out + [(f"extra{i}", p) for i, p in enumerate(f.extra)]


@dataclass(frozen=True)
class CaseResult:
    """What happened to one case."""

    key: str
    n_samples: int
    skipped: SkippedCase | None = None
    stats: dict[str, int] = field(default_factory=dict)
    skip_kind: str = ""


#: Short names of the reasons a case is skipped (counted in ``manifest.options``).
SKIP_KINDS: dict[type[Exception], str] = {
    # Subclasses first: the first matching entry names the reason.
    DeclaredSizeError: "declared_size_exceeds_file_or_memory",
    NotVolumetricError: "image_not_3d",
    LabelValueError: "non_integer_labels",
    CorruptFileError: "unreadable_or_truncated_file",
    ShapeMismatchError: "shape_mismatch",
    AffineError: "affine_mismatch_or_invalid",
    NonFiniteError: "non_finite_voxels",
    EmptyMaskError: "empty_mask",
    PlanError: "bad_landmarks",
    LandmarkError: "bad_landmarks",
    ReaderError: "layout_mismatch",
    PlanFormatError: "official_plan_format",
}


def skip_kind(exc: Exception) -> str:
    """Short reason name of a domain error (see :data:`SKIP_KINDS`), else its class name."""
    for cls, name in SKIP_KINDS.items():
        if isinstance(exc, cls):
            return name
    return type(exc).__name__


def build_case(job: CaseJob) -> CaseResult:
    """Plan one case and write its samples and images to the store.

    Domain errors (unreadable or corrupt file, NaN voxels, shape or affine mismatch, empty
    mask, bad landmarks) become a skipped result naming the file and the reason; anything
    else is a bug and propagates.
    """
    task = next(t for t in job.spec.tasks if t.id == job.task_id)
    files = job.files
    ctx = CaseContext(job.spec.name, task, job.key, job.split)

    def skipped(reason: str, file: str, kind: str) -> CaseResult:
        return CaseResult(
            job.key,
            0,
            SkippedCase(dataset=job.spec.name, case_id=job.key, file=file, reason=reason),
            skip_kind=kind,
        )

    for _, path in job.source_paths():
        problem = link_problem(path)
        if problem:
            return skipped(problem, str(path), "broken_symlink")
    if files.missing:
        kind = "not_in_official_plan" if "official plan" in files.missing[-1] else "missing_file"
        absent = [
            p
            for p in (files.image, files.mask, files.landmarks)
            if p is not None and not p.exists()
        ]
        return skipped("; ".join(files.missing), str(absent[0]) if absent else "", kind)
    stats = PlanStats()
    try:
        planned = _plan_case(job, task, ctx, stats)
    except (VolumeError, ReaderError) as exc:
        # Both name the offending file (``path``) and what was expected vs found.
        return skipped(str(exc), exc.path, skip_kind(exc))
    except PlanError as exc:
        return skipped(str(exc), str(files.landmarks or files.image), skip_kind(exc))
    except MemoryError:
        # Per case: one oversized volume must not end the whole build.
        return skipped(out_of_memory_reason(files.image), str(files.image), "out_of_memory")
    if isinstance(planned, SkippedCase):
        return skipped(planned.reason, planned.file, "unknown_label_ids")
    # The volumes went out of scope with _plan_case: only the samples and the stored slices are
    # held while the case is written.
    samples, images = planned
    counters = {
        "dropped_multi_instance": stats.dropped_multi_instance,
        "dropped_small": stats.dropped_small,
        "rejected_fits": stats.rejected_fits,
    }
    writer = DatasetWriter(job.out_dir)
    # The planner's drop counters sit beside the case files so a resumed build still
    # reports the totals of every case, not only of the cases it rebuilt.
    samples_path, _ = writer.case_paths(job.spec.name, job.key)
    samples_path.parent.mkdir(parents=True, exist_ok=True)
    stats_path(samples_path).write_text(json.dumps(counters))
    writer.write_case(job.spec.name, job.key, samples, images)
    return CaseResult(job.key, len(samples), stats=counters)


def _plan_case(
    job: CaseJob, task: TaskSpec, ctx: CaseContext, stats: PlanStats
) -> tuple[list[Sample], dict[str, StoredSlice]] | SkippedCase:
    """Load and plan one case: its samples and the slices they reference, or why not.

    The volumes live only inside this call, so they are freed before the case is written.

    Raises:
        VolumeError, ReaderError, PlanError: Bad input (see :func:`build_case`).
    """
    # The task's layout reader loads (and, where needed, converts) the inputs.
    inputs = read_case(task, job.files)
    image = inputs.image
    check_volumetric(task, image)
    sink = SliceImages(image)
    samples: list[Sample] = []
    if inputs.labels is not None:
        labels = inputs.labels
        check_same_grid(image, labels)
        # One find_objects pass over the volume serves the label checks and both planners.
        bboxes = label_bounding_boxes(labels.array)
        if not bboxes:  # no positive label: name the empty mask (or any negative ids)
            check_nonempty(labels)
        unknown = unknown_label_ids(labels, task, bboxes)
        if unknown and job.on_unknown_label == "skip":
            return SkippedCase(
                dataset=job.spec.name,
                case_id=job.key,
                file=labels.path,
                reason=(
                    f"mask {labels.path} holds label ids {unknown} that task {task.id} of the "
                    f"{job.spec.name} catalog does not define (known: "
                    f"{sorted(lab.id for lab in task.labels)})"
                ),
            )
        if task.detection is not None:
            samples += plan_detection(
                labels, ctx, sink, stats, bboxes=bboxes, annotation=job.annotation
            )
        if task.tl is not None:
            samples += plan_tumour_lesion(labels, ctx, sink, stats, job.annotation, bboxes=bboxes)
    if inputs.landmarks is not None and task.measurements:
        samples += plan_angle_distance(
            image, inputs.landmarks, ctx, sink, landmark_file=inputs.landmark_file
        )
    # Every sample carries the build's ground-truth version (T/L samples already do).
    samples = [s if s.annotation else replace(s, annotation=job.annotation) for s in samples]
    return samples, sink.images


def plan_jobs(
    spec: DatasetSpec, data_dir: str | Path, out_dir: str | Path, options: BuildOptions
) -> list[CaseJob]:
    """List the case jobs of every task of ``spec``, with subject-level splits assigned.

    The seeded split is drawn once over the cases of every task (before ``max_cases``), so a
    subject is on the same side in every task of the dataset and a quick partial build
    agrees with the full one.
    """
    found = [(task, discover_cases(task, data_dir)) for task in spec.tasks]
    shared: dict[str, Split] | None = None
    if options.split_from is None:
        shared = split_cases([c.case_id for _, cases in found for c in cases], spec.split)
    jobs: list[CaseJob] = []
    for task, cases in found:
        if options.max_cases is not None:
            cases = cases[: options.max_cases]
        jobs += [
            CaseJob(
                spec,
                task.id,
                c,
                split,
                str(out_dir),
                options.on_unknown_label,
                options.annotation,
            )
            for c, split in assign_splits(spec, task, cases, options.split_from, shared)
        ]
    return jobs


def build_dataset(
    spec: DatasetSpec,
    data_dir: str | Path,
    out_dir: str | Path,
    options: BuildOptions | None = None,
    *,
    on_progress: Callable[[int, int, CaseResult | None], None] | None = None,
) -> BuildManifest:
    """Build every case of ``spec`` found under ``data_dir`` into the store at ``out_dir``.

    Cases already written by an earlier (possibly killed) build are not rebuilt. Every case
    that cannot be built is listed in the manifest's ``skipped`` with its file and reason.

    Args:
        spec: The dataset spec.
        data_dir: Folder with the source files laid out as the spec says.
        out_dir: Store folder (created).
        options: Build options.
        on_progress: Called as ``(done, total, result)`` after each case (``result`` is
            ``None`` for a case resumed from an earlier build).

    Returns:
        The manifest written to ``out_dir/manifest.json``.
    """
    options = options or BuildOptions()
    jobs = plan_jobs(spec, data_dir, out_dir, options)
    opts: dict[str, Any] = {
        "image_storage": IMAGE_STORAGE,
        "max_cases": options.max_cases,
        "split": spec.split.model_dump(),
        "spec_sha256": hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:16],
        "on_unknown_label": options.on_unknown_label,
        "annotation": options.annotation,
    }
    if options.split_from is not None:
        opts["split"] = {"official_plan": Path(options.split_from).name}
        opts["split_from_sha256"] = sha256_file(Path(options.split_from))
    return run_build(
        build_case,
        jobs,
        dataset=spec.name,
        data_dir=data_dir,
        out_dir=out_dir,
        options=options,
        manifest_options=opts,
        on_progress=on_progress,
    )


class BuildOptionsMismatch(ValueError):
    """A store folder was started with other build options; resuming would mix outputs."""


def _check_same_options(out_dir: Path, dataset: str, options: dict[str, Any]) -> None:
    """Refuse to resume a store whose finished cases were built with other options.

    A finished case is skipped on resume, so a changed annotation, image storage, split or
    spec would leave old cases beside new ones under a manifest that describes only the new
    options.
    ``max_cases`` may change (it only selects cases).
    """
    ident = json.dumps(
        {k: v for k, v in options.items() if k != "max_cases"}, sort_keys=True, default=str
    )
    # Beside cases/, not in it: the stamp outlives the per-case files a build removes.
    stamp = out_dir / f".build-options-{dataset}.json"
    if stamp.exists() and stamp.read_text() != ident:
        raise BuildOptionsMismatch(
            f"{out_dir} holds cases of {dataset} built with other options "
            f"({stamp.read_text()}; now {ident}): build into a new folder or delete it"
        )
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(ident)


def run_build(
    fn: Callable[[_K], CaseResult],
    jobs: list[_K],
    *,
    dataset: str,
    data_dir: str | Path,
    out_dir: str | Path,
    options: BuildOptions,
    manifest_options: dict[str, Any],
    on_progress: Callable[[int, int, CaseResult | None], None] | None = None,
) -> BuildManifest:
    """Build the jobs not written yet, then write the manifest (catalog and official builds).

    Args:
        fn: Builds and writes one case (runs in a worker process or a Ray task).
        jobs: Every case of the build; those already in the store are only counted.
        dataset: Dataset name in the store.
        data_dir: Source folder (recorded in the manifest).
        out_dir: Store folder.
        options: ``workers``, ``engine`` and ``seed`` are used.
        manifest_options: The build's identifying options (they make the build id).
        on_progress: Called as ``(done, total, result)`` after each case (``result`` is
            ``None`` for a case resumed from an earlier build).

    Returns:
        The manifest written to ``out_dir/manifest.json``.
    """
    writer = DatasetWriter(out_dir)
    _check_same_options(Path(out_dir), dataset, manifest_options)
    unnamed = invalid_case_ids(jobs, dataset)
    jobs = [j for j in jobs if j.key not in unnamed]
    # A finished case is kept only while its source files are unchanged (see sources).
    resume = plan_resume(
        writer, dataset, jobs, Path(data_dir), prune=manifest_options.get("max_cases") is None
    )
    todo = resume.todo
    done = len(jobs) - len(todo)
    if on_progress is not None:
        for i in range(1, done + 1):
            on_progress(i, len(jobs), None)
    skipped: list[SkippedCase] = list(unnamed.values())
    kinds: dict[str, int] = {"invalid_case_id": len(unnamed)} if unnamed else {}
    workers = options.workers if options.workers > 0 else (os.cpu_count() or 1)
    wrapped = Fingerprinting(fn, dataset, str(out_dir), str(data_dir))
    for result in run_jobs(wrapped, todo, workers, options.engine):
        done += 1
        if result.skipped is not None:
            skipped.append(result.skipped)
            kinds[result.skip_kind] = kinds.get(result.skip_kind, 0) + 1
        if on_progress is not None:
            on_progress(done, len(jobs), result)
    skipped.sort(key=lambda s: (s.dataset, s.case_id))  # completion order is not stable
    totals: dict[str, int] = {}
    for job in jobs:
        stats_file = stats_path(writer.case_paths(dataset, job.key)[0])
        if stats_file.exists():
            for k, v in json.loads(stats_file.read_text()).items():
                totals[k] = totals.get(k, 0) + int(v)
    digests = case_digests(writer, dataset, [j.key for j in jobs])
    # The data digest enters the build id: other source files, another build.
    identity = {**manifest_options, "source_digest": data_digest(digests)}
    manifest = BuildManifest.create(
        datasets=[dataset],
        seed=options.seed,
        options=identity,
        skipped=skipped,
        annotation=manifest_options.get("annotation"),
    )
    # Recorded after the build id is computed: counters describe the output, not the input.
    manifest.options["source_fingerprints"] = digests
    manifest.options["source_changes"] = {
        "rebuilt": resume.rebuilt,
        "removed": resume.removed,
    }
    manifest.options["planner_drops"] = totals
    manifest.options["data_dir"] = str(data_dir)
    manifest.options["engine"] = options.engine
    manifest.options["skipped_by_reason"] = dict(sorted(kinds.items()))
    final = writer.finalize(manifest, only={(dataset, j.key) for j in jobs})
    if not options.keep_cases:
        writer.remove_cases(dataset)
    return final
