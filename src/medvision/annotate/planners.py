"""Planners: turn one case (volumes, landmarks) into typed :class:`~medvision.schema.Sample` s.

The three planners follow the official ``medvision_ds`` planners (reference
dataset-construction.md sections 3.3-3.7) with the corrections of the latest official version:

* detection: every slice of every requested plane, every nonzero label, one box per
  4-connected component, inclusive min/max; the official loader's single-instance filter
  (more than one component, or a side under ``min_side_px``) is applied when the spec asks.
* tumour/lesion size: the ellipse fitted to each lesion component under the build's
  ground-truth version (:mod:`medvision.annotate.tl_versions`: ``official-1.0.0``,
  ``official-1.4.0``, ``precise``), with that version's floor, gates and single-instance
  filter. The RECIST longest diameter and its perpendicular are recorded beside it.
* angle/distance: landmarks in voxel indices of the RAS+ array, 3D physical distance and the
  acute unsigned angle; the image is the slice through the first point.

Images are requested through an :class:`ImageSink`, which stores each slice once (losslessly).

Detection and T/L are vectorised per volume: each label is cropped to its 3D bounding box and
labelled once per plane, all its slices in one pass (:mod:`medvision.annotate.components`),
which gives every slice's 4-connected components in the official order; detection hands the
lesion labels' components to T/L (:class:`~medvision.annotate.components.LabelBoxes`). Only
the ellipse/Feret fits run per component. Samples are made from per-label templates
(:mod:`medvision.annotate.samples`), the same objects as ``Sample(...)`` makes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from medvision.annotate.components import (
    Box3D,
    SliceComponents,
    label_bounding_boxes,
    share_components,
    slice_components,
    take_components,
)
from medvision.annotate.samples import id_prefix, label_template, sample_id
from medvision.annotate.tl_versions import (
    DEFAULT_ANNOTATION,
    Annotation,
    LesionFit,
    counts_fitted_instances,
    measure_component,
    min_cluster_pixels,
)
from medvision.catalog.spec import MeasurementSpec, TaskSpec, plane_of
from medvision.geometry import angle_deg, component_boxes_to_rel, distance_mm
from medvision.schema import Plane, Sample, Split, TaskFamily, make_sample_id
from medvision.volumes import Volume


class ImageSink(Protocol):
    """Encodes and stores the image of a slice once (losslessly); returns its key and size."""

    def image(self, plane: Plane, index: int) -> tuple[str, tuple[int, int]]:
        """Return ``(content key, (H, W))`` of the stored slice."""
        ...


@dataclass(frozen=True)
class CaseContext:
    """Identity of the case being planned (copied into every sample)."""

    dataset: str
    task: TaskSpec
    case_id: str
    split: Split


class PlanError(ValueError):
    """A case cannot be planned (e.g. a landmark outside the image); names case and file."""


@dataclass
class PlanStats:
    """Counters of what a planner looked at and dropped (reported in the manifest)."""

    dropped_multi_instance: int = 0
    dropped_small: int = 0
    rejected_fits: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def _in_plane_spacing(volume: Volume, plane: Plane) -> tuple[float, float]:
    """(row, col) pixel spacing in mm of the slices along ``plane`` (as ``slice_volume``)."""
    sp = volume.spacing_mm
    row_axis, col_axis = (a for a in range(3) if a != int(plane))
    return (sp[row_axis], sp[col_axis])


def _slice_runs(comps: SliceComponents) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of the components of each slice (they are sorted by slice)."""
    if len(comps) == 0:
        return []
    starts = np.flatnonzero(np.r_[True, np.diff(comps.slice_index) != 0])
    ends = np.r_[starts[1:], len(comps)]
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _label_crop(
    labels: Volume, label_id: int, box: tuple[slice, slice, slice]
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Boolean mask of one label inside its 3D bounding box, and the box's corner index."""
    return labels.array[box] == label_id, (box[0].start, box[1].start, box[2].start)


def _tl_needs(ctx: CaseContext, label_id: int, plane: Plane) -> bool:
    """Whether the case's T/L planner will label ``label_id`` along ``plane`` too."""
    tl = ctx.task.tl
    return tl is not None and label_id in tl.labels and any(plane_of(c) == plane for c in tl.planes)


def plan_detection(
    labels: Volume,
    ctx: CaseContext,
    sink: ImageSink,
    stats: PlanStats | None = None,
    *,
    bboxes: Mapping[int, Box3D] | None = None,
    annotation: str = "",
) -> list[Sample]:
    """Detection samples of one case (one per slice, label and kept component).

    Vectorised per volume: each requested label is cropped to its 3D bounding box and
    labelled once per plane, every slice in one pass
    (:func:`~medvision.annotate.components.slice_components`), which yields the official
    per-slice 4-connected components of every slice.

    Besides the official box fields, ``extras["area_mm2"]`` is the label's whole area on the
    slice (all components; the official MaskSize ``ROI_area`` = pixel count x row spacing x
    column spacing) and ``extras["label_pixel_count"]`` its pixel count.

    Args:
        labels: Label volume (RAS+).
        ctx: Case identity; ``ctx.task.detection`` must be set.
        sink: Where slice images go.
        stats: Optional counters to update.
        bboxes: ``label_bounding_boxes(labels.array)`` when the caller has it (one
            ``find_objects`` pass over the volume serves every planner). When it is that
            function's :class:`~medvision.annotate.components.LabelBoxes`, the components
            of the labels the task's T/L planner also measures are left in it for
            :func:`plan_tumour_lesion` (until it takes them).
        annotation: Ground-truth version recorded in every sample (the build's; detection
            boxes are the same under every version). ``""`` leaves it to the caller.

    Returns:
        The samples, ordered by plane (as listed in the spec), slice, label, component
        (largest first).
    """
    spec = ctx.task.detection
    assert spec is not None
    stats = stats if stats is not None else PlanStats()
    if bboxes is None:
        bboxes = label_bounding_boxes(labels.array)
    wanted = [lab for lab in sorted(set(spec.labels)) if lab in bboxes]
    planes = list(dict.fromkeys(plane_of(code) for code in spec.planes))
    # plane -> slice -> [(label, boxes [[r0, c0, r1, c1]], pixel counts)], labels ascending,
    # as Python ints. Only these outlive the loop: one label's crop is in memory at a time
    # (and the components the T/L planner will need, when ``bboxes`` can carry them).
    groups: dict[Plane, dict[int, list[tuple[int, list[list[int]], list[int]]]]] = {
        p: {} for p in planes
    }
    for lab in wanted:
        mask, offset = _label_crop(labels, lab, bboxes[lab])
        for plane in planes:
            comps = slice_components(mask, int(plane), offset)
            per_slice = groups[plane]
            slice_index = comps.slice_index.tolist()
            boxes, counts = comps.box_rc.tolist(), comps.pixel_count.tolist()
            for a, b in _slice_runs(comps):
                per_slice.setdefault(slice_index[a], []).append((lab, boxes[a:b], counts[a:b]))
            if _tl_needs(ctx, lab, plane):
                share_components(bboxes, labels.array, lab, comps)
            del comps
        del mask
    out: list[Sample] = []
    for plane in planes:
        sr, sc = _in_plane_spacing(labels, plane)
        n_pixels = int(np.prod([n for ax, n in enumerate(labels.shape) if ax != int(plane)]))
        prefix = id_prefix(
            ctx.dataset, ctx.task.id, ctx.case_id, TaskFamily.DETECTION.value, int(plane)
        )
        templates = {
            lab: label_template(
                ctx.dataset,
                ctx.task,
                ctx.case_id,
                ctx.split,
                TaskFamily.DETECTION,
                plane,
                ctx.task.label(lab),
                spacing_mm_rc=(sr, sc),
                unit="relative",
                annotation=annotation,
            )
            for lab in wanted
        }
        per_slice = groups[plane]
        for index in sorted(per_slice):
            for lab, boxes, counts in per_slice[index]:
                n_comp = len(counts)
                label_pixels = sum(counts)
                if spec.single_instance:
                    if n_comp > 1:
                        stats.dropped_multi_instance += 1
                        continue
                    r0, c0, r1, c1 = boxes[0]
                    if min(r1 - r0 + 1, c1 - c0 + 1) < spec.min_side_px:
                        stats.dropped_small += 1
                        continue
                key, hw = sink.image(plane, index)
                targets = component_boxes_to_rel(boxes, hw)
                template = templates[lab]
                img_area = float(hw[0] * hw[1])
                area_mm2 = label_pixels * sr * sc
                label_count = float(label_pixels)
                for k, (box, count, target) in enumerate(zip(boxes, counts, targets, strict=True)):
                    r0, c0, r1, c1 = box
                    h, w = r1 - r0 + 1, c1 - c0 + 1
                    out.append(
                        template.make(
                            sample_id=sample_id(prefix, index, lab, k),
                            slice_index=index,
                            image_key=key,
                            image_hw=hw,
                            n_instances=n_comp,
                            target=target,
                            box_rc=(r0, c0, r1, c1),
                            extras={
                                "size_mm_h": h * sr,
                                "size_mm_w": w * sc,
                                "mask_image_ratio": count / n_pixels,
                                "box_img_ratio": h * w / img_area,
                                "area_mm2": area_mm2,
                                "label_pixel_count": label_count,
                            },
                        )
                    )
    return out


def plan_tumour_lesion(
    labels: Volume,
    ctx: CaseContext,
    sink: ImageSink,
    stats: PlanStats | None = None,
    annotation: Annotation = DEFAULT_ANNOTATION,
    *,
    bboxes: Mapping[int, Box3D] | None = None,
) -> list[Sample]:
    """Tumour/lesion size samples of one case (major/minor axes in mm per lesion component).

    The components of every slice come from one in-slice labelling per label and plane
    (:func:`~medvision.annotate.components.slice_components`); only the ellipse and Feret
    fits run per component, as they must (each traces its own contour).

    The ground-truth version (:mod:`medvision.annotate.tl_versions`) sets the fit, the
    cluster floor and what the single-instance filter counts: every cluster on the slice
    (``official-1.4.0``, ``precise``), or the fitted ellipses (``official-1.0.0``).

    Args:
        labels: Label volume (RAS+).
        ctx: Case identity; ``ctx.task.tl`` must be set.
        sink: Where slice images go.
        stats: Optional counters to update.
        annotation: Ground-truth version (recorded in every sample).
        bboxes: ``label_bounding_boxes(labels.array)`` when the caller has it (one
            ``find_objects`` pass over the volume serves every planner). Components that
            :func:`plan_detection` left in it for this volume are used, not recomputed.

    Returns:
        The samples, ordered by label, plane, slice, component size.
    """
    spec = ctx.task.tl
    assert spec is not None
    stats = stats if stats is not None else PlanStats()
    floor = min_cluster_pixels(annotation)
    count_fitted = counts_fitted_instances(annotation)
    if bboxes is None:
        bboxes = label_bounding_boxes(labels.array)
    out: list[Sample] = []
    for label_id in spec.labels:
        if label_id not in bboxes:
            continue
        lab = ctx.task.label(label_id)
        crop: tuple[np.ndarray, tuple[int, int, int]] | None = None
        for code in spec.planes:
            plane = plane_of(code)
            spacing = _in_plane_spacing(labels, plane)
            hw_ = _in_plane(labels.shape, plane)
            slice_hw = (int(hw_[0]), int(hw_[1]))
            comps = take_components(bboxes, labels.array, label_id, int(plane))
            if comps is None:
                if crop is None:
                    crop = _label_crop(labels, label_id, bboxes[label_id])
                comps = slice_components(crop[0], int(plane), crop[1])
            prefix = id_prefix(
                ctx.dataset,
                ctx.task.id,
                ctx.case_id,
                TaskFamily.TUMOR_LESION_SIZE.value,
                int(plane),
            )
            template = label_template(
                ctx.dataset,
                ctx.task,
                ctx.case_id,
                ctx.split,
                TaskFamily.TUMOR_LESION_SIZE,
                plane,
                lab,
                spacing_mm_rc=spacing,
                unit="mm",
                metric_type="axes",
                metric_key="L-1-2|L-3-4",
                annotation=annotation,
            )
            for a, b in _slice_runs(comps):
                index = int(comps.slice_index[a])
                n_total = b - a
                if spec.single_instance and not count_fitted and n_total > 1:
                    stats.dropped_multi_instance += 1
                    continue
                found: list[LesionFit] = []
                for i in range(a, b):
                    if int(comps.pixel_count[i]) < floor:
                        stats.dropped_small += 1
                        continue
                    m = measure_component(annotation, comps, i, spacing, slice_hw)
                    if m is None:
                        stats.rejected_fits += 1
                        continue
                    found.append(m)
                if not found:
                    continue
                if spec.single_instance and count_fitted and len(found) > 1:
                    stats.dropped_multi_instance += 1
                    continue
                key, hw = sink.image(plane, index)
                n_instances = len(found) if count_fitted else n_total
                for k, m in enumerate(found):
                    e, d = m.fit, m.diameters
                    out.append(
                        template.make(
                            sample_id=sample_id(prefix, index, lab.id, k),
                            slice_index=index,
                            image_key=key,
                            image_hw=hw,
                            n_instances=n_instances,
                            target=(e.major_mm, e.minor_mm),
                            box_rc=m.box_rc,
                            points_rc=tuple(e.endpoints_rc),
                            extras={
                                "feret_mm": d.longest_mm,
                                "perpendicular_mm": d.perpendicular_mm,
                                "pixel_count": float(m.pixel_count),
                            },
                        )
                    )
    return out


def _in_plane(point: tuple[float, ...], plane: Plane) -> tuple[float, float]:
    """Drop the sliced axis of a 3D triple: a voxel index's (row, col) or a slice's spacing."""
    rest = [v for ax, v in enumerate(point) if ax != int(plane)]
    return (rest[0], rest[1])


def plan_angle_distance(
    image: Volume,
    landmarks: dict[str, tuple[float, ...]],
    ctx: CaseContext,
    sink: ImageSink,
    *,
    landmark_file: str = "<landmarks>",
) -> list[Sample]:
    """Angle/distance samples of one case, one per measurement of the task.

    Args:
        image: Image volume (RAS+); landmarks index its array.
        landmarks: Landmark key -> voxel index (i, j, k) in the RAS+ array.
        ctx: Case identity; ``ctx.task.measurements`` defines what is measured.
        sink: Where slice images go.
        landmark_file: Name used in error messages.

    Returns:
        The samples, in measurement order.

    Raises:
        PlanError: If a landmark is missing or lies outside the image.
    """
    shape = image.shape
    for key, point in landmarks.items():
        # The voxel a point falls in is floor(v + 0.5); it must exist.
        if any(not (0 <= math.floor(v + 0.5) < s) for v, s in zip(point, shape, strict=True)):
            raise PlanError(
                f"case {ctx.case_id}: landmark {key} at {list(point)} in {landmark_file} lies "
                f"outside the image of shape {list(shape)}"
            )
    spacing = image.spacing_mm
    out: list[Sample] = []
    for m in ctx.task.measurements:
        missing = [p for p in m.points if p not in landmarks]
        if missing:
            raise PlanError(
                f"case {ctx.case_id}: {landmark_file} lacks landmarks {missing} needed by {m.key}"
            )
        pts = [landmarks[p] for p in m.points]
        out.append(_measurement_sample(m, pts, spacing, ctx, sink))
    return out


def _measurement_sample(
    m: MeasurementSpec,
    pts: list[tuple[float, ...]],
    spacing: tuple[float, float, float],
    ctx: CaseContext,
    sink: ImageSink,
) -> Sample:
    plane = plane_of(m.plane)
    # Half-up, not Python's half-to-even round(): 2.5 and 3.5 go the same way.
    index = math.floor(pts[0][int(plane)] + 0.5)
    if m.type == "distance":
        value = distance_mm(pts[0], pts[1], spacing)
        unit = "mm"
    else:
        value = angle_deg((pts[0], pts[1]), (pts[2], pts[3]), spacing)
        unit = "degree"
    key, hw = sink.image(plane, index)
    return Sample(
        sample_id=make_sample_id(ctx.dataset, ctx.task.id, ctx.case_id, "ad", m.key),
        task_id=ctx.task.id,
        dataset=ctx.dataset,
        case_id=ctx.case_id,
        split=ctx.split,
        family=TaskFamily.ANGLE_DISTANCE,
        plane=plane,
        slice_index=index,
        label_id=None,
        label_name=m.name or m.key,
        label_kind="landmark",
        label_group=f"{ctx.dataset} {m.type}",
        modality=ctx.task.modality,
        image_description=ctx.task.image_description,
        image_key=key,
        image_hw=hw,
        spacing_mm_rc=_in_plane(spacing, plane),
        target=(value,),
        unit=unit,
        points_rc=tuple(_in_plane(p, plane) for p in pts),
        metric_type=m.type,
        metric_key=m.key,
        metric_name=m.name,
        landmark_names=tuple(ctx.task.landmarks[p] for p in m.points),
    )
