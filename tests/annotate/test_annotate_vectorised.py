"""The per-volume planners equal a straightforward per-slice planning (independent path).

The reference below loops over every slice with the 2D geometry functions
(``boxes_from_label_slice``, ``single_instance``, ``lesion_measurements``), as the official
planner does; the planners label each volume once. Every field of every sample must agree.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from medvision.annotate.components import slice_components
from medvision.annotate.planners import CaseContext, PlanStats, plan_detection, plan_tumour_lesion
from medvision.catalog.spec import DetectionSpec
from medvision.geometry import boxes_from_label_slice, lesion_measurements, single_instance
from medvision.schema import Plane
from medvision.volumes import from_array, slice_volume
from planner_fixtures import KeySink, three_label_task


def _random_labels(seed: int, shape: tuple[int, int, int]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    arr = np.zeros(shape, dtype=np.uint16)
    grid = np.indices(shape).astype(float)
    for lab in (1, 2, 5):
        for _ in range(3):
            centre = rng.uniform(0, shape)
            radii = rng.uniform(2, 7, size=3)
            inside = sum(((grid[a] - centre[a]) / radii[a]) ** 2 for a in range(3)) <= 1
            arr[inside] = lab
    noise = rng.random(shape) < 0.01  # speckles: many one-pixel components
    arr[noise] = 1
    return arr


def _reference_detection(labels, ctx, min_side):  # type: ignore[no-untyped-def]
    rows = []
    spec = ctx.task.detection
    for code in spec.planes:
        plane = {"S": Plane.SAGITTAL, "C": Plane.CORONAL, "A": Plane.AXIAL}[code]
        for index in range(labels.shape[int(plane)]):
            sl = slice_volume(labels, plane, index)
            by_label = boxes_from_label_slice(sl.pixels, sl.spacing_mm_rc, labels=spec.labels)
            for lab in sorted(by_label):
                comps = by_label[lab]
                if not comps:
                    continue
                if spec.single_instance:
                    kept = single_instance(comps, min_side_px=min_side)
                    if kept is None:
                        continue
                    comps = [kept]
                for c in comps:
                    rows.append(
                        (
                            plane,
                            index,
                            lab,
                            c.box_rc,
                            len(by_label[lab]),
                            c.size_mm,
                            c.mask_image_ratio,
                            sl.spacing_mm_rc,
                            float((sl.pixels == lab).sum()) * math.prod(sl.spacing_mm_rc),
                        )
                    )
    return rows


@pytest.mark.parametrize(("seed", "single"), [(0, False), (1, True), (2, False)])
def test_detection_equals_per_slice_reference(seed: int, single: bool) -> None:
    shape = (23, 31, 17)
    affine = np.diag([0.7, 1.3, 2.5, 1.0])
    labels = from_array(_random_labels(seed, shape), affine, "labels")
    ctx = CaseContext("syn", three_label_task(single), "c0", "test")
    got = plan_detection(labels, ctx, KeySink(shape), PlanStats())
    want = _reference_detection(labels, ctx, 3)
    assert len(got) == len(want) > 50
    for s, (plane, index, lab, box, n, size_mm, ratio, spacing, area) in zip(
        got, want, strict=True
    ):
        assert (s.plane, s.slice_index, s.label_id, s.box_rc) == (plane, index, lab, box)
        assert s.n_instances == n and s.spacing_mm_rc == spacing
        assert (s.extras["size_mm_h"], s.extras["size_mm_w"]) == size_mm
        assert s.extras["mask_image_ratio"] == ratio
        assert s.extras["area_mm2"] == pytest.approx(area, rel=1e-12)


def test_tl_equals_per_slice_reference() -> None:
    shape = (30, 26, 14)
    labels = from_array(_random_labels(3, shape), np.diag([0.8, 1.1, 3.0, 1.0]), "labels")
    ctx = CaseContext("syn", three_label_task(False), "c0", "train")
    stats = PlanStats()
    got = plan_tumour_lesion(labels, ctx, KeySink(shape), stats, "precise")
    want = []
    rejected = 0
    for plane in (Plane.SAGITTAL, Plane.CORONAL, Plane.AXIAL):
        for index in range(shape[int(plane)]):
            sl = slice_volume(labels, plane, index)
            mask = sl.pixels == 5
            found = lesion_measurements(mask, sl.spacing_mm_rc)
            n = int(ndimage.label(mask)[1])
            rejected += n - len(found)
            want += [(plane, index, m, n) for m in found]
    assert len(got) == len(want) > 10
    assert stats.rejected_fits == rejected
    for s, (plane, index, m, n) in zip(got, want, strict=True):
        assert (s.plane, s.slice_index, s.box_rc, s.n_instances) == (plane, index, m.box_rc, n)
        assert s.target == (m.ellipse.major_mm, m.ellipse.minor_mm)
        assert s.points_rc == m.ellipse.endpoints_rc
        assert s.extras["feret_mm"] == m.diameters.longest_mm


def test_single_instance_counts_only_real_drops() -> None:
    arr = np.zeros((1, 40, 40), dtype=np.uint16)
    arr[0, 2:20, 2:20] = 1  # kept
    arr[0, 25:27, 25:27] = 2  # one component, 2 px wide: dropped as small
    arr[0, 30:35, 2:8] = 5
    arr[0, 30:35, 20:30] = 5  # two components: dropped as multi-instance
    labels = from_array(arr, np.eye(4), "labels")
    task = three_label_task(True).model_copy(
        update={"detection": DetectionSpec(labels=[1, 2, 5], planes=["S"], min_side_px=3)}
    )
    stats = PlanStats()
    got = plan_detection(labels, CaseContext("syn", task, "c", "test"), KeySink(arr.shape), stats)
    assert [(s.label_id, s.box_rc) for s in got] == [(1, (2, 2, 19, 19))]
    assert (stats.dropped_small, stats.dropped_multi_instance) == (1, 1)


def test_slice_components_orders_largest_first_then_raster() -> None:
    m = np.zeros((4, 6, 6), dtype=bool)
    m[1, 0, 4:6] = True  # 2 px, first in raster order
    m[1, 3:5, 0:2] = True  # 4 px
    m[1, 5, 5] = True  # 1 px
    m[2, 0, 0] = True
    c = slice_components(m, 0, offset=(10, 0, 0))
    assert c.slice_index.tolist() == [11, 11, 11, 12]
    assert c.pixel_count.tolist() == [4, 2, 1, 1]
    assert c.n_on_slice.tolist() == [3, 3, 3, 1]
    assert c.box_rc[0].tolist() == [3, 0, 4, 1]
    crop, off = c.crop2d(1)
    assert off == (0, 4) and crop.tolist() == [[True, True]]
