"""The planners' fast paths against the straightforward ones they replace (identical output).

* ``slice_components`` (one OpenCV labelling of the stacked slices) against scipy labelling
  each 2D slice on its own, as the official planners do;
* the samples (templates, hashed id prefix, inline relative boxes) against ``Sample(...)``
  with ``make_sample_id`` and ``box_rc_to_rel``;
* the lesion components detection hands to T/L against T/L labelling them itself;
* ``samples_to_table`` (column by column) against ``from_pylist`` of ``sample_to_row``.
"""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pyarrow as pa
import pytest
from scipy import ndimage

from medvision.annotate.components import (
    LabelBoxes,
    _official_order,
    label_bounding_boxes,
    slice_components,
)
from medvision.annotate.planners import CaseContext, PlanStats, plan_detection, plan_tumour_lesion
from medvision.annotate.samples import SampleTemplate, id_prefix, sample_id
from medvision.annotate.tl_versions import ANNOTATIONS
from medvision.geometry import box_rc_to_rel
from medvision.schema import Plane, Sample, TaskFamily, make_sample_id
from medvision.store.schema import SAMPLES_SCHEMA, sample_to_row, samples_to_table
from medvision.volumes import from_array
from planner_fixtures import KeySink, three_label_task


def _per_slice_reference(
    mask: np.ndarray, axis: int, offset: tuple[int, int, int]
) -> list[tuple[int, tuple[int, int, int, int], int, int, np.ndarray]]:
    """(slice, box, count, n on slice, crop) per component: scipy on each 2D slice."""
    rest = [a for a in range(3) if a != axis]
    out = []
    for s in range(mask.shape[axis]):
        sl = np.take(mask, s, axis=axis)
        comp, n = ndimage.label(sl)  # 4-connectivity, raster order of first pixel
        counts = np.bincount(comp.ravel(), minlength=n + 1)
        found = ndimage.find_objects(comp)
        for i in sorted(range(1, n + 1), key=lambda i: -int(counts[i])):  # stable: raster
            r, c = found[i - 1]
            box = (
                r.start + offset[rest[0]],
                c.start + offset[rest[1]],
                r.stop - 1 + offset[rest[0]],
                c.stop - 1 + offset[rest[1]],
            )
            out.append((s + offset[axis], box, int(counts[i]), n, comp[r, c] == i))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_slice_components_equal_scipy_slice_by_slice(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(1, 25, size=3))
    # Dense random masks: many equal-size components per slice (ties in the order).
    mask = rng.random(shape) < rng.uniform(0.1, 0.6)
    if seed % 2:
        mask = np.asfortranarray(mask)  # NIfTI volumes load Fortran-ordered
    offset = (3, 0, 7)
    for axis in range(3):
        got = slice_components(mask, axis, offset)
        want = _per_slice_reference(mask, axis, offset)
        assert len(got) == len(want)
        for k, (s, box, count, n, crop) in enumerate(want):
            assert int(got.slice_index[k]) == s
            assert tuple(got.box_rc[k].tolist()) == box
            assert (int(got.pixel_count[k]), int(got.n_on_slice[k])) == (count, n)
            got_crop, origin = got.crop2d(k)
            assert origin == box[:2]
            assert np.array_equal(got_crop, crop)


def test_large_masks_use_16_bit_ids_and_fall_back_to_32_bit_past_65535(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every mask counts as large here. Isolated pixels: 300 x 300 / 4 = 22,500 components per
    # slice, about 90,000 over 4 slices, more than 16-bit ids can number.
    monkeypatch.setattr("medvision.annotate.components.UINT16_IDS_FROM_PIXELS", 0)
    mask = np.zeros((4, 300, 300), dtype=bool)
    mask[:, ::2, ::2] = True
    mask[1, 10:20, 10:20] = True  # one larger component first in its slice's order
    got = slice_components(mask, 0)
    want = _per_slice_reference(mask, 0, (0, 0, 0))
    assert len(got) == len(want) > 65_535
    assert got.labelled.dtype == np.int32
    assert [tuple(b) for b in got.box_rc.tolist()] == [w[1] for w in want]
    assert got.pixel_count.tolist() == [w[2] for w in want]
    crop, origin = got.crop2d(len(got) - 1)
    assert origin == want[-1][1][:2] and np.array_equal(crop, want[-1][4])
    one = slice_components(mask[:1], 0)
    assert one.labelled.dtype == np.uint16  # 22,500 components: 16-bit ids
    want_one = _per_slice_reference(mask[:1], 0, (0, 0, 0))
    assert [tuple(b) for b in one.box_rc.tolist()] == [w[1] for w in want_one]
    assert one.pixel_count.tolist() == [w[2] for w in want_one]
    monkeypatch.undo()
    assert slice_components(mask[:1], 0).labelled.dtype == np.int32  # a small mask


def test_slice_components_of_an_empty_mask() -> None:
    for shape in [(4, 5, 6), (0, 3, 3)]:
        c = slice_components(np.zeros(shape, dtype=bool), 1)
        assert len(c) == 0 and c.box_rc.shape == (0, 4)


def test_ties_follow_the_raster_order_whatever_the_ids() -> None:
    # Three 1-pixel components on one slice of a 3 x 4 stacked image, numbered backwards.
    labelled = np.array([[0, 3, 0, 2], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=np.int32)
    ids = np.array([3, 2, 1], dtype=np.int64)
    top, left = np.array([0, 0, 1]), np.array([1, 3, 0])
    order = _official_order(np.zeros(3, np.int64), np.ones(3, np.int64), ids, top, left, labelled)
    assert ids[order].tolist() == [3, 2, 1]  # (0, 1), (0, 3), (1, 0): raster order


def _labels(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (40, 44, 12)
    grid = np.indices(shape).astype(float)
    arr = np.zeros(shape, dtype=np.uint16)
    for lab in (1, 2, 5, 5):
        centre, radii = rng.uniform(0, shape), rng.uniform(5, 14, size=3)
        arr[sum(((grid[a] - centre[a]) / radii[a]) ** 2 for a in range(3)) <= 1] = lab
    arr[rng.random(shape) < 0.02] = 5  # lesion speckles: ties and rejected fits
    return np.asfortranarray(arr)


def _straightforward(s: Sample, k: int) -> Sample:
    """Sample ``s`` as ``Sample(...)`` makes it, id (``k``: component rank) and box recomputed."""
    fields = {f.name: getattr(s, f.name) for f in dataclasses.fields(Sample)}
    parts = (s.dataset, s.task_id, s.case_id, s.family.value, int(s.plane), s.slice_index)
    fields["sample_id"] = make_sample_id(*parts, s.label_id, k)
    if s.family is TaskFamily.DETECTION:
        assert s.box_rc is not None
        fields["target"] = box_rc_to_rel(s.box_rc, s.image_hw)
    return Sample(**fields)


@pytest.mark.parametrize("seed", [0, 1])
def test_planned_samples_equal_straightforward_ones_and_tables_match(seed: int) -> None:
    labels = from_array(_labels(seed), np.diag([0.8, 1.1, 2.5, 1.0]), "labels")
    ctx = CaseContext("syn", three_label_task(), "c0", "test")
    for annotation in ANNOTATIONS:
        boxes = label_bounding_boxes(labels.array)
        assert isinstance(boxes, LabelBoxes)
        sink = KeySink(labels.shape)
        det = plan_detection(labels, ctx, sink, bboxes=boxes, annotation=annotation)
        shared_stats, own_stats = PlanStats(), PlanStats()
        # T/L takes the lesion components detection left in ``boxes`` ...
        tl = plan_tumour_lesion(
            labels, ctx, KeySink(labels.shape), shared_stats, annotation, bboxes=boxes
        )
        # ... and labels them itself given a plain dict: the same samples either way.
        own = plan_tumour_lesion(
            labels, ctx, KeySink(labels.shape), own_stats, annotation, bboxes=dict(boxes)
        )
        assert repr(tl) == repr(own) and shared_stats == own_stats
        # (v1.0.0's 200 px floor and ring gate leave none here, after fitting a few.)
        assert len(tl) > 50 if annotation != "official-1.0.0" else shared_stats.rejected_fits
        samples = det + tl
        assert len({s.sample_id for s in samples}) == len(samples) > 100
        rank: dict[tuple[object, ...], int] = {}
        for s in samples:
            key = (s.family, s.plane, s.slice_index, s.label_id)
            rank[key] = rank.get(key, -1) + 1
            ref = _straightforward(s, rank[key])
            assert pickle.dumps(s) == pickle.dumps(ref)  # every field, its type and order
        want = pa.Table.from_pylist([sample_to_row(s) for s in samples], schema=SAMPLES_SCHEMA)
        assert samples_to_table(samples).equals(want, check_metadata=True)


def test_sample_template_makes_what_the_constructor_makes() -> None:
    shared = {
        "dataset": "d", "case_id": "c", "split": "test", "family": TaskFamily.TUMOR_LESION_SIZE,
        "plane": Plane.CORONAL, "label_id": 5, "label_name": "lesion", "label_kind": "lesion",
        "label_group": "L", "modality": "CT", "image_description": "x", "spacing_mm_rc": (0.5, 2.0),
        "unit": "mm", "metric_type": "axes", "metric_key": "L-1-2|L-3-4", "metric_name": "",
        "landmark_names": (), "task_id": "01", "annotation": "precise",
    }  # fmt: skip
    own = {
        "sample_id": sample_id(id_prefix("d", "01", "c", "tl", 1), 7, 5, 0), "slice_index": 7,
        "image_key": "k", "image_hw": (9, 8), "target": (3.0, 1.5), "box_rc": (1, 2, 3, 4),
        "n_instances": 2, "points_rc": ((1.0, 2.0),) * 4, "extras": {"feret_mm": 3.5},
    }  # fmt: skip
    made = SampleTemplate(**shared).make(**own)
    plain = Sample(**shared, **own)
    assert made == plain and repr(made) == repr(plain)
    assert pickle.dumps(made) == pickle.dumps(plain)
    assert made.sample_id == make_sample_id("d", "01", "c", "tl", 1, 7, 5, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.target = (1.0, 1.0)  # type: ignore[misc]
    with pytest.raises(TypeError, match="needs exactly"):
        SampleTemplate(**shared).make(**{k: v for k, v in own.items() if k != "extras"})
    with pytest.raises(TypeError, match="not Sample fields"):
        SampleTemplate(colour="red")
