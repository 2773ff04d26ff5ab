"""Import the official ``benchmark_plan_*.json.gz`` files as MedVision samples.

A user who has the official plans (from the ``YongchengYAO/MedVision`` dataset repository) and
the source NIfTI files evaluates exactly the official samples: boxes and measurements are
taken from the plan as published (not recomputed), splits from its ``train_cases`` /
``test_cases``, and only the images are read here, from the NIfTI files the plan names.

Schema (reference dataset-construction.md section 4.1)::

    {"dataset_info": {"dataset": ...}, "tasks": [{"task_ID", "task_type", "image_modality",
      "image_description", "labels_map", ["target_label"], ["landmarks_map", "lines_map",
      "angles_map"], "train_cases": [case...], "test_cases": [case...]}]}
    case = {"case_ID", "image_file", "mask_file", "image_file_info": {"voxel_size",
      "array_size", ...}, "slice_profiles_x|y|z": [{"slice_idx", ["n_total_clusters"],
      "slice_profile": [...]}]}

Frames: ``slice_profiles_x/y/z`` slice RAS+ axis 0/1/2 (our :class:`~medvision.schema.Plane`
values); ``min_coords``/``max_coords`` are inclusive ``(dim0, dim1)`` indices of the 2D slice,
our ``box_rc`` directly. Measurements are in mm or degrees as published.

The official loader's filters are applied by default (``apply_filters``): detection drops a
(slice, label) with more than one box or whose box has a side under 10 px; T/L drops a slice
whose ``n_total_clusters`` (v1.1.0+, else the number of ellipses) exceeds one.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from medvision.annotate.planners import ImageSink
from medvision.catalog.spec import DatasetSpec
from medvision.geometry import box_rc_to_rel
from medvision.schema import LabelKind, Plane, Sample, Split, TaskFamily, make_sample_id

__all__ = [
    "OFFICIAL_MIN_SIDE_PX",
    "OfficialCase",
    "OfficialPlanStats",
    "PlanFormatError",
    "case_key",
    "iter_cases",
    "load_plan",
    "official_split",
    "official_split_by_image",
    "plan_case_samples",
    "plan_dataset_name",
    "split_map",
]

#: The official load-time detection filter's smallest box side, in pixels.
OFFICIAL_MIN_SIDE_PX = 10

_AXES: tuple[tuple[str, Plane], ...] = (
    ("x", Plane.SAGITTAL),
    ("y", Plane.CORONAL),
    ("z", Plane.AXIAL),
)

Plan = Mapping[str, Any]


class PlanFormatError(ValueError):
    """An official plan file does not follow the published schema; names file and field."""


@dataclass(frozen=True)
class OfficialCase:
    """One case of one task of an official plan.

    Attributes:
        task_id: The task's ``task_ID`` (e.g. ``"01"``).
        case_id: The case's ``case_ID``.
        split: ``"train"`` if listed in ``train_cases``, else ``"test"``.
        image_file: Image path relative to the dataset folder, as the plan gives it.
        record: The case's plan entry (slice profiles, file info).
    """

    task_id: str
    case_id: str
    split: Split
    image_file: str
    record: Mapping[str, Any]


@dataclass
class OfficialPlanStats:
    """What the official filters dropped while converting one case."""

    dropped_multi_instance: int = 0
    dropped_small: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def load_plan(path: str | Path) -> dict[str, Any]:
    """Read a ``benchmark_plan_*.json.gz`` (or plain ``.json``) file and check its shape.

    Raises:
        PlanFormatError: If the file cannot be read, is not JSON, or lacks ``tasks`` or a
            task's ``task_ID``/``train_cases``/``test_cases`` (the message names the file).
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
        text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        data = json.loads(text)
    except (OSError, EOFError, zlib.error, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PlanFormatError(
            f"cannot read official plan {p}: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
        raise PlanFormatError(f"official plan {p}: expected an object with a 'tasks' list")
    for i, task in enumerate(data["tasks"]):
        if not isinstance(task, dict):
            raise PlanFormatError(f"official plan {p}: tasks[{i}] is not an object")
        for key in ("task_ID", "train_cases", "test_cases"):
            if key not in task:
                raise PlanFormatError(f"official plan {p}: tasks[{i}] lacks {key!r}")
    return data


def plan_dataset_name(plan: Plan) -> str:
    """The plan's dataset name (``dataset_info.dataset``), made safe for a file name."""
    info = plan.get("dataset_info", {})
    name = str(info.get("dataset", "")) if isinstance(info, Mapping) else ""
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in name).strip(".-")
    return safe or "official"


def _task(plan: Plan, task_id: str) -> Mapping[str, Any]:
    for task in plan["tasks"]:
        if str(task["task_ID"]) == task_id:
            return task  # type: ignore[no-any-return]
    known = [str(t["task_ID"]) for t in plan["tasks"]]
    raise KeyError(f"official plan has no task {task_id!r}; tasks: {known}")


def iter_cases(plan: Plan, task_id: str | None = None) -> list[OfficialCase]:
    """Every case of every task (or of one task), train first, in plan order.

    Raises:
        PlanFormatError: If a case lacks ``case_ID`` or ``image_file``.
        KeyError: If ``task_id`` is not a task of the plan.
    """
    tasks = [_task(plan, task_id)] if task_id is not None else list(plan["tasks"])
    out: list[OfficialCase] = []
    for task in tasks:
        tid = str(task["task_ID"])
        for split, key in (("train", "train_cases"), ("test", "test_cases")):
            for case in task[key]:
                if not isinstance(case, Mapping) or "case_ID" not in case:
                    raise PlanFormatError(f"task {tid}: a {key} entry lacks 'case_ID'")
                if "image_file" not in case:
                    raise PlanFormatError(f"task {tid} case {case['case_ID']}: no 'image_file'")
                sp: Split = "train" if split == "train" else "test"
                out.append(
                    OfficialCase(tid, str(case["case_ID"]), sp, str(case["image_file"]), case)
                )
    return out


class _CaseSplit(Protocol):
    @property
    def task_id(self) -> str: ...
    @property
    def case_id(self) -> str: ...
    @property
    def split(self) -> Split: ...


def split_map(cases: Iterable[_CaseSplit]) -> dict[str, Split]:
    """``case_ID -> split`` of the given cases.

    Raises:
        PlanFormatError: If a case is listed on both sides (within or across tasks).
    """
    out: dict[str, Split] = {}
    for case in cases:
        prev = out.setdefault(case.case_id, case.split)
        if prev != case.split:
            raise PlanFormatError(
                f"case {case.case_id} is listed in both train_cases and test_cases "
                f"(task {case.task_id})"
            )
    return out


def official_split(plan: Plan, task_id: str | None = None) -> dict[str, Split]:
    """``case_ID -> split`` from the plan's ``train_cases``/``test_cases``.

    Args:
        plan: A loaded plan (:func:`load_plan`).
        task_id: One task, or ``None`` for all tasks together.

    Returns:
        Case id to ``"train"``/``"test"``.

    Raises:
        PlanFormatError: If a case is listed on both sides (within or across tasks).
    """
    return split_map(iter_cases(plan, task_id))


def official_split_by_image(plan: Plan, task_id: str) -> dict[str, Split]:
    """Image file name (no folder) -> split for one task, for matching files on disk."""
    return {Path(c.image_file).name: c.split for c in iter_cases(plan, task_id)}


def case_key(plan: Plan, case: _CaseSplit) -> str:
    """Case id in the store: prefixed by the task id when the plan has several tasks."""
    return case.case_id if len(plan["tasks"]) == 1 else f"{case.task_id}-{case.case_id}"


def _label_info(
    spec: DatasetSpec | None, task_id: str, label_id: int, name: str, tl: bool
) -> tuple[str, LabelKind, str]:
    """Name, kind and report group of a label.

    From the catalog spec when it has the label, else the plan's name with the kind guessed
    from it (tumour/lesion words; T/L target labels are at least lesions).
    """
    if spec is not None:
        for t in spec.tasks:
            if t.id == task_id:
                for lab in t.labels:
                    if lab.id == label_id:
                        return lab.name, lab.kind, lab.group
    low = name.lower()
    kind: LabelKind
    if "tumo" in low or "cancer" in low or "metasta" in low:
        kind = "tumour"
    elif "lesion" in low or tl:
        kind = "lesion"
    else:
        kind = "organ"
    return name, kind, name


def _family(task: Mapping[str, Any]) -> TaskFamily:
    kind = str(task.get("task_type", "")).lower()
    if kind == "detection":
        return TaskFamily.DETECTION
    if kind == "biometry":
        return TaskFamily.TUMOR_LESION_SIZE if "target_label" in task else TaskFamily.ANGLE_DISTANCE
    raise PlanFormatError(
        f"task {task.get('task_ID')}: task_type {task.get('task_type')!r} has no sample family "
        "(expected 'detection' or 'biometry'; segmentation plans hold no benchmark targets)"
    )


def _in_plane(values: Sequence[Any], plane: Plane) -> tuple[float, float]:
    rest = [float(v) for ax, v in enumerate(values) if ax != int(plane)]
    return (rest[0], rest[1])


def _landmark_names(
    task: Mapping[str, Any], metric_map: str, key: str
) -> tuple[str, tuple[str, ...]]:
    """Clinical name and landmark names of a metric.

    ``task[metric_map][key] = {name, element_map_name, element_keys}``; a distance's elements
    are landmark names, an angle's are lines whose elements are landmark names.
    """
    try:
        entry = task[metric_map][key]
        name = str(entry.get("name", ""))
        elements = [task[entry["element_map_name"]][k] for k in entry["element_keys"]]
        if all(isinstance(e, str) for e in elements):
            return name, tuple(str(e) for e in elements)
        names: list[str] = []
        for line in elements:
            names += [str(task[line["element_map_name"]][k]) for k in line["element_keys"]]
        return name, tuple(names)
    except (KeyError, TypeError, AttributeError) as exc:
        raise PlanFormatError(
            f"task {task.get('task_ID')}: cannot resolve landmarks of {metric_map}[{key!r}] "
            f"({type(exc).__name__}: {exc})"
        ) from exc


@dataclass(frozen=True)
class _CaseCtx:
    """What every sample of one case shares."""

    plan_task: Mapping[str, Any]
    case: OfficialCase
    dataset: str
    key: str
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    sink: ImageSink
    spec: DatasetSpec | None
    labels_map: dict[str, str]
    apply_filters: bool
    stats: OfficialPlanStats

    def fields(
        self, family: TaskFamily, plane: Plane, index: int, *parts: object
    ) -> dict[str, Any]:
        image_key, hw = self.sink.image(plane, index)
        return {
            "sample_id": make_sample_id(
                "official-plan", self.dataset, self.case.task_id, self.key, *parts
            ),
            "dataset": self.dataset,
            "task_id": self.case.task_id,
            "case_id": self.key,
            "split": self.case.split,
            "family": family,
            "plane": plane,
            "slice_index": index,
            "modality": str(self.plan_task.get("image_modality", "")),
            "image_description": str(self.plan_task.get("image_description", "")),
            "image_key": image_key,
            "image_hw": hw,
            "spacing_mm_rc": _in_plane(self.spacing_mm, plane),
        }

    def label(self, label_id: int, tl: bool) -> tuple[str, LabelKind, str]:
        plan_name = self.labels_map.get(str(label_id), str(label_id))
        return _label_info(self.spec, self.case.task_id, label_id, plan_name, tl)


def plan_case_samples(
    plan: Plan,
    case: OfficialCase,
    shape: tuple[int, int, int],
    spacing_mm: tuple[float, float, float],
    sink: ImageSink,
    *,
    spec: DatasetSpec | None = None,
    apply_filters: bool = True,
    stats: OfficialPlanStats | None = None,
) -> list[Sample]:
    """Samples of one official case, targets exactly as the plan publishes them.

    Args:
        plan: The loaded plan.
        case: One of :func:`iter_cases`.
        shape: Shape of the RAS+ image array (voxels).
        spacing_mm: Voxel spacing of the RAS+ image (axis 0, 1, 2) in mm.
        sink: Stores the slice images (losslessly).
        spec: Catalog spec of the dataset, for label kinds and groups (optional).
        apply_filters: Apply the official loader filters (see module docstring).
        stats: Counters of filtered samples.

    Returns:
        The samples, by plane, slice and label (or metric) in plan order.

    Raises:
        PlanFormatError: If a slice entry does not follow the schema or indexes a slice
            outside the image.
    """
    task = _task(plan, case.task_id)
    ctx = _CaseCtx(
        plan_task=task,
        case=case,
        dataset=plan_dataset_name(plan),
        key=case_key(plan, case),
        shape=shape,
        spacing_mm=spacing_mm,
        sink=sink,
        spec=spec,
        labels_map={str(k): str(v) for k, v in dict(task.get("labels_map", {})).items()},
        apply_filters=apply_filters,
        stats=stats if stats is not None else OfficialPlanStats(),
    )
    family = _family(task)
    out: list[Sample] = []
    for axis_name, plane in _AXES:
        where = f"case {case.case_id} slice_profiles_{axis_name}"
        for entry in case.record.get(f"slice_profiles_{axis_name}", []) or []:
            try:
                index = int(entry["slice_idx"])
                profile = list(entry["slice_profile"])
                if not 0 <= index < shape[int(plane)]:
                    raise PlanFormatError(
                        f"{where}: slice_idx {index} is outside the image "
                        f"(expected 0..{shape[int(plane)] - 1})"
                    )
                if family is TaskFamily.DETECTION:
                    out += _detection(ctx, profile, plane, index)
                elif family is TaskFamily.TUMOR_LESION_SIZE:
                    n_total = int(entry.get("n_total_clusters", len(profile)))
                    out += _tumour_lesion(ctx, profile, n_total, plane, index)
                else:
                    out += _angle_distance(ctx, profile, plane, index)
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                if isinstance(exc, PlanFormatError):
                    raise
                raise PlanFormatError(
                    f"{where}: entry does not follow the plan schema ({type(exc).__name__}: {exc})"
                ) from exc
    return out


def _detection(ctx: _CaseCtx, profile: list[Any], plane: Plane, index: int) -> list[Sample]:
    out: list[Sample] = []
    for lp in profile:
        label_id = int(lp["label"])
        boxes = list(lp.get("bboxes", []))
        if not boxes:
            continue
        if ctx.apply_filters:
            if len(boxes) > 1:
                ctx.stats.dropped_multi_instance += 1
                continue
            if min(int(v) for v in boxes[0]["dimensions"]) < OFFICIAL_MIN_SIDE_PX:
                ctx.stats.dropped_small += 1
                continue
        name, kind, group = ctx.label(label_id, False)
        for k, bb in enumerate(boxes):
            r0, c0 = (int(v) for v in bb["min_coords"])
            r1, c1 = (int(v) for v in bb["max_coords"])
            fields = ctx.fields(
                TaskFamily.DETECTION, plane, index, "detection", int(plane), index, label_id, k
            )
            hw = fields["image_hw"]
            if not (0 <= r0 <= r1 < hw[0] and 0 <= c0 <= c1 < hw[1]):
                raise PlanFormatError(
                    f"case {ctx.case.case_id}: box {[r0, c0, r1, c1]} of label {label_id} on "
                    f"slice {index} lies outside the {hw[0]}x{hw[1]} image"
                )
            box_rc = (r0, c0, r1, c1)
            extras = {
                "size_mm_h": float(bb["sizes"][0]),
                "size_mm_w": float(bb["sizes"][1]),
                "box_img_ratio": (r1 - r0 + 1) * (c1 - c0 + 1) / float(hw[0] * hw[1]),
            }
            if "mask_image_ratio" in bb:
                extras["mask_image_ratio"] = float(bb["mask_image_ratio"])
            out.append(
                Sample(
                    **fields,
                    label_id=label_id,
                    label_name=name,
                    label_kind=kind,
                    label_group=group,
                    target=box_rc_to_rel(box_rc, hw),
                    unit="relative",
                    box_rc=box_rc,
                    n_instances=len(boxes),
                    extras=extras,
                )
            )
    return out


def _tumour_lesion(
    ctx: _CaseCtx, ellipses: list[Any], n_total: int, plane: Plane, index: int
) -> list[Sample]:
    if not ellipses:
        return []
    if ctx.apply_filters and n_total > 1:
        ctx.stats.dropped_multi_instance += 1
        return []
    label_id = int(ctx.plan_task["target_label"])
    name, kind, group = ctx.label(label_id, True)
    out: list[Sample] = []
    for k, metrics in enumerate(ellipses):
        values = {str(m["metric_key"]): float(m["metric_value"]) for m in metrics}
        if "L-1-2" not in values or "L-3-4" not in values:
            raise PlanFormatError(
                f"case {ctx.case.case_id} slice {index}: an ellipse lacks L-1-2/L-3-4, "
                f"found {sorted(values)}"
            )
        fields = ctx.fields(
            TaskFamily.TUMOR_LESION_SIZE, plane, index, "tl", int(plane), index, label_id, k
        )
        out.append(
            Sample(
                **fields,
                label_id=label_id,
                label_name=name,
                label_kind=kind,
                label_group=group,
                target=(values["L-1-2"], values["L-3-4"]),
                unit="mm",
                n_instances=n_total,
                metric_type="axes",
                metric_key="L-1-2|L-3-4",
            )
        )
    return out


def _angle_distance(ctx: _CaseCtx, profile: list[Any], plane: Plane, index: int) -> list[Sample]:
    out: list[Sample] = []
    for m in profile:
        mtype = str(m["metric_type"])
        key = str(m["metric_key"])
        name, names = _landmark_names(ctx.plan_task, str(m["metric_map_name"]), key)
        if mtype not in ("distance", "angle") or len(names) != (2 if mtype == "distance" else 4):
            raise PlanFormatError(
                f"case {ctx.case.case_id}: A/D metric {key}: type {mtype!r} with {len(names)} "
                "landmarks is not a distance (2 landmarks) or an angle (4)"
            )
        fields = ctx.fields(TaskFamily.ANGLE_DISTANCE, plane, index, "ad", int(plane), index, key)
        out.append(
            Sample(
                **fields,
                label_id=None,
                label_name=name or key,
                label_kind="landmark",
                label_group=f"{ctx.dataset} {mtype}",
                target=(float(m["metric_value"]),),
                unit=str(m.get("metric_unit", "mm" if mtype == "distance" else "degree")),
                metric_type=mtype,
                metric_key=key,
                metric_name=name,
                landmark_names=names,
            )
        )
    return out
