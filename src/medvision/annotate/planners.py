"""Planners: turn one case (volumes, landmarks) into typed :class:`~medvision.schema.Sample` s.

The three planners follow the official ``medvision_ds`` planners (reference
dataset-construction.md sections 3.3-3.7) with the corrections of the latest official version:

* detection: every slice of every requested plane, every nonzero label, one box per
  4-connected component, inclusive min/max; the official loader's single-instance filter
  (more than one component, or a side under ``min_side_px``) is applied when the spec asks.
* tumour/lesion size: the ellipse fitted to each lesion component's contour in physical
  coordinates with the right spacing pairing, axes from the continuous ellipse, the v1.4.0
  guards; slices with more than one component are dropped when ``single_instance`` is set
  (the official ``n_total_clusters > 1`` filter). The RECIST longest diameter and its
  perpendicular are recorded beside it.
* angle/distance: landmarks in voxel indices of the RAS+ array, 3D physical distance and the
  acute unsigned angle; the image is the slice through the first point.

Images are requested through an :class:`ImageSink`, which renders and stores each slice once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy import ndimage

from medvision.catalog.spec import MeasurementSpec, TaskSpec, plane_of
from medvision.geometry import (
    angle_deg,
    box_rc_to_rel,
    boxes_from_label_slice,
    distance_mm,
    lesion_measurements,
    single_instance,
)
from medvision.schema import Plane, Sample, Split, TaskFamily, make_sample_id
from medvision.volumes import Volume, slice_volume


class ImageSink(Protocol):
    """Renders, encodes and stores the image of a slice once; returns its key and size."""

    def image(self, plane: Plane, index: int) -> tuple[str, tuple[int, int]]:
        """Return ``(content key, (H, W))`` of the stored PNG of this slice."""
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


def _occupied(mask: np.ndarray, plane: Plane) -> np.ndarray:
    """Indices along ``plane`` of the slices holding any True voxel (one pass per volume)."""
    other = tuple(ax for ax in range(3) if ax != int(plane))
    return np.flatnonzero(mask.any(axis=other))


def plan_detection(
    labels: Volume, ctx: CaseContext, sink: ImageSink, stats: PlanStats | None = None
) -> list[Sample]:
    """Detection samples of one case (one per slice, label and kept component).

    Args:
        labels: Label volume (RAS+).
        ctx: Case identity; ``ctx.task.detection`` must be set.
        sink: Where slice images go.
        stats: Optional counters to update.

    Returns:
        The samples, ordered by plane, slice, label.
    """
    spec = ctx.task.detection
    assert spec is not None
    stats = stats if stats is not None else PlanStats()
    wanted = np.asarray(sorted(spec.labels))
    present = np.isin(labels.array, wanted)
    out: list[Sample] = []
    for code in spec.planes:
        plane = plane_of(code)
        for index in _occupied(present, plane):
            sl = slice_volume(labels, plane, int(index))
            by_label = boxes_from_label_slice(sl.pixels, sl.spacing_mm_rc, labels=spec.labels)
            for label_id in sorted(by_label):
                comps = by_label[label_id]
                if spec.single_instance:
                    kept = single_instance(comps, min_side_px=spec.min_side_px)
                    if kept is None:
                        if len(comps) > 1:
                            stats.dropped_multi_instance += 1
                        else:
                            stats.dropped_small += 1
                        continue
                    comps = [kept]
                key, hw = sink.image(plane, int(index))
                lab = ctx.task.label(label_id)
                for k, comp in enumerate(comps):
                    out.append(
                        Sample(
                            sample_id=make_sample_id(
                                ctx.dataset,
                                ctx.task.id,
                                ctx.case_id,
                                "detection",
                                int(plane),
                                int(index),
                                label_id,
                                k,
                            ),
                            dataset=ctx.dataset,
                            case_id=ctx.case_id,
                            split=ctx.split,
                            family=TaskFamily.DETECTION,
                            plane=plane,
                            slice_index=int(index),
                            label_id=label_id,
                            label_name=lab.name,
                            label_kind=lab.kind,
                            label_group=lab.group,
                            modality=ctx.task.modality,
                            image_description=ctx.task.image_description,
                            image_key=key,
                            image_hw=hw,
                            spacing_mm_rc=sl.spacing_mm_rc,
                            target=box_rc_to_rel(comp.box_rc, hw),
                            unit="relative",
                            box_rc=comp.box_rc,
                            n_instances=len(by_label[label_id]),
                            extras={
                                "size_mm_h": comp.size_mm[0],
                                "size_mm_w": comp.size_mm[1],
                                "mask_image_ratio": comp.mask_image_ratio,
                                "box_img_ratio": comp.size_px[0]
                                * comp.size_px[1]
                                / float(hw[0] * hw[1]),
                            },
                        )
                    )
    return out


def plan_tumour_lesion(
    labels: Volume, ctx: CaseContext, sink: ImageSink, stats: PlanStats | None = None
) -> list[Sample]:
    """Tumour/lesion size samples of one case (major/minor axes in mm per lesion component).

    Args:
        labels: Label volume (RAS+).
        ctx: Case identity; ``ctx.task.tl`` must be set.
        sink: Where slice images go.
        stats: Optional counters to update.

    Returns:
        The samples, ordered by label, plane, slice, component size.
    """
    spec = ctx.task.tl
    assert spec is not None
    stats = stats if stats is not None else PlanStats()
    out: list[Sample] = []
    for label_id in spec.labels:
        lesion = labels.array == label_id
        if not lesion.any():
            continue
        lab = ctx.task.label(label_id)
        for code in spec.planes:
            plane = plane_of(code)
            for index in _occupied(lesion, plane):
                sl = slice_volume(labels, plane, int(index))
                mask2d = sl.pixels == label_id
                _, n_total = ndimage.label(mask2d)
                if spec.single_instance and n_total > 1:
                    stats.dropped_multi_instance += 1
                    continue
                found = lesion_measurements(mask2d, sl.spacing_mm_rc)
                stats.rejected_fits += n_total - len(found)
                if not found:
                    continue
                key, hw = sink.image(plane, int(index))
                for k, m in enumerate(found):
                    e, d = m.ellipse, m.diameters
                    out.append(
                        Sample(
                            sample_id=make_sample_id(
                                ctx.dataset,
                                ctx.task.id,
                                ctx.case_id,
                                "tl",
                                int(plane),
                                int(index),
                                label_id,
                                k,
                            ),
                            dataset=ctx.dataset,
                            case_id=ctx.case_id,
                            split=ctx.split,
                            family=TaskFamily.TUMOR_LESION_SIZE,
                            plane=plane,
                            slice_index=int(index),
                            label_id=label_id,
                            label_name=lab.name,
                            label_kind=lab.kind,
                            label_group=lab.group,
                            modality=ctx.task.modality,
                            image_description=ctx.task.image_description,
                            image_key=key,
                            image_hw=hw,
                            spacing_mm_rc=sl.spacing_mm_rc,
                            target=(e.major_mm, e.minor_mm),
                            unit="mm",
                            box_rc=m.box_rc,
                            n_instances=int(n_total),
                            points_rc=tuple(e.endpoints_rc),
                            metric_type="axes",
                            metric_key="L-1-2|L-3-4",
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
        if any(not (-0.5 <= v <= s - 0.5) for v, s in zip(point, shape, strict=True)):
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
    index = round(pts[0][int(plane)])
    if m.type == "distance":
        value = distance_mm(pts[0], pts[1], spacing)
        unit = "mm"
    else:
        value = angle_deg((pts[0], pts[1]), (pts[2], pts[3]), spacing)
        unit = "degree"
    key, hw = sink.image(plane, index)
    return Sample(
        sample_id=make_sample_id(ctx.dataset, ctx.task.id, ctx.case_id, "ad", m.key),
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
