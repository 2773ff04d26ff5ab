"""Training targets: official answer formats and CoT steps in the relative lower-left frame."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest

from medvision.schema import Plane, Sample, TaskFamily
from medvision.training.rewards import RewardTarget, score_completion
from medvision.training.targets import TargetError, answer_text, cot_plan, render_target


def _sample(family: TaskFamily, **kw: object) -> Sample:
    base = dict(
        sample_id="s1",
        dataset="toy",
        case_id="c1",
        split="train",
        family=family,
        plane=Plane.AXIAL,
        slice_index=0,
        label_id=1,
        label_name="lesion",
        label_kind="lesion",
        label_group="g",
        modality="CT",
        image_description="a CT slice",
        image_key="0" * 64,
        image_hw=(100, 200),
        spacing_mm_rc=(0.5, 2.0),
        target=(0.1, 0.2, 0.3, 0.4),
        unit="relative",
    )
    base.update(kw)
    return Sample(**base)  # type: ignore[arg-type]


# A T/L sample on a 100 x 200 image, spacing 0.5 mm rows x 2 mm cols.
# Major axis: row 20, cols 50 -> 150: 100 px * 2 mm = 200 mm. Minor: col 100, rows 10 -> 30: 10 mm.
TL = _sample(
    TaskFamily.TUMOR_LESION_SIZE,
    target=(200.0, 10.0),
    unit="mm",
    metric_type="axes",
    points_rc=((20.0, 50.0), (20.0, 150.0), (10.0, 100.0), (30.0, 100.0)),
)
ANGLE = _sample(
    TaskFamily.ANGLE_DISTANCE,
    target=(45.0,),
    unit="degree",
    metric_type="angle",
    label_id=None,
    landmark_names=("A", "B", "C", "D"),
    # line 1 horizontal (cols 0 -> 10 = 20 mm); line 2: 20 mm right and 40 rows = 20 mm up
    points_rc=((50.0, 0.0), (50.0, 10.0), (50.0, 0.0), (10.0, 10.0)),
)


def test_official_answer_formats() -> None:
    det = _sample(TaskFamily.DETECTION, target=(0.1, 0.25, 0.3333333, 0.5))
    assert answer_text(det) == "0.100, 0.250, 0.333, 0.500"
    assert answer_text(TL) == "200.000, 10.000"
    dist = _sample(TaskFamily.ANGLE_DISTANCE, target=(12.345678,), metric_type="distance")
    assert answer_text(dist) == "12.345678"  # official str(value)
    assert answer_text(dist, ad_decimals=2) == "12.35"
    kw = dict(seen_hw=(100, 200), seen_spacing_mm_rc=(0.5, 2.0))
    assert render_target(TL, "paper-v1", **kw) == "200.000, 10.000"
    # The size line changes the prompt, not the answer it asks for.
    assert render_target(TL, "paper-v1+size", **kw) == "200.000, 10.000"
    assert render_target(TL, "official", **kw) == "<answer> 200.000, 10.000 </answer>"
    assert render_target(TL, "json", **kw) == '{"major_mm": 200.0, "minor_mm": 10.0}'


def test_cot_points_are_relative_lower_left() -> None:
    plan = cot_plan(TL, seen_hw=(100, 200), seen_spacing_mm_rc=(0.5, 2.0))
    # row 20 of 100 is 80 % of the way up from the bottom; col 50 of 200 is x = 0.25
    assert plan.steps[0].points_rel == ((0.25, 0.8), (0.75, 0.8))
    assert plan.steps[1].points_rel == ((0.5, 0.9), (0.5, 0.7))
    assert plan.points_per_step == (2, 2, 0, 0)
    text = render_target(TL, "cot", seen_hw=(100, 200), seen_spacing_mm_rc=(0.5, 2.0))
    assert "(0.250, 0.800), (0.750, 0.800)" in text
    assert text.endswith("<answer> (200.000, 10.000) </answer>")


def test_cot_arithmetic_holds_for_a_resized_image() -> None:
    # The model sees the image at 50 x 400: spacing becomes 1.0 x 1.0 mm. W' * pw' = 400 mm.
    text = render_target(TL, "cot", seen_hw=(50, 400), seen_spacing_mm_rc=(1.0, 1.0))
    m = re.search(r"sqrt\(\(\(([\d.]+) - ([\d.]+)\) \* (\d+) \* ([\d.]+)\)\^2", text)
    assert m is not None
    x2, x1, w, pw = (float(g) for g in m.groups())
    assert (x2 - x1) * w * pw == pytest.approx(200.0)
    assert "(image_width, image_height) = (400, 50)" in text


def test_cot_target_earns_the_full_reward() -> None:
    for sample in (TL, ANGLE):
        plan = cot_plan(sample, seen_hw=(100, 200), seen_spacing_mm_rc=(0.5, 2.0))
        text = render_target(sample, "cot", seen_hw=(100, 200), seen_spacing_mm_rc=(0.5, 2.0))
        steps = tuple(s.points_rel if s.n_points else s.value for s in plan.steps)
        target = RewardTarget(sample.family, sample.target, sample.metric_type, steps)  # type: ignore[arg-type]
        b = score_completion(text, target)
        assert b.format == 1.0 and b.answer == pytest.approx(1.0)
        assert b.process == pytest.approx(1.0, abs=1e-3)  # 3-decimal rounding of the points


def test_angle_vectors_are_physical() -> None:
    plan = cot_plan(ANGLE, seen_hw=(100, 200), seen_spacing_mm_rc=(0.5, 2.0))
    (ax, ay), (bx, by) = plan.vectors_mm
    assert (ax, ay) == pytest.approx((20.0, 0.0))
    assert (bx, by) == pytest.approx((20.0, 20.0))  # y up: row 50 -> 10 is upwards
    text = render_target(ANGLE, "cot", seen_hw=(100, 200), seen_spacing_mm_rc=(0.5, 2.0))
    assert f"= {math.radians(45):.3f} = 45.000 degrees" in text


def test_missing_points_and_disagreeing_target_are_refused() -> None:
    kw = dict(seen_hw=(100, 200), seen_spacing_mm_rc=(0.5, 2.0))
    with pytest.raises(TargetError, match=r"s1 .*needs 4 points_rc; found 0"):
        render_target(dataclasses.replace(TL, points_rc=()), "cot", **kw)
    with pytest.raises(TargetError, match=r"major axis recomputed .* 200.0000, the target is 150"):
        render_target(dataclasses.replace(TL, target=(150.0, 10.0)), "cot", **kw)
    with pytest.raises(TargetError, match="finite"):
        render_target(dataclasses.replace(TL, target=(math.nan, 1.0)), "official", **kw)


def test_mini_store_cot_targets_all_build(mini_store: object) -> None:
    from medvision.store import open_dataset
    from medvision.tasks import get_policy

    ds = open_dataset(mini_store)  # type: ignore[arg-type]
    policy = get_policy("qwen2.5-vl")
    samples = ds.samples()
    for s in samples:
        hw = policy.seen_hw(s.image_hw)
        sp = policy.seen_spacing(s.spacing_mm_rc, s.image_hw)
        assert "<answer>" in render_target(s, "cot", seen_hw=hw, seen_spacing_mm_rc=sp)
    assert {s.family for s in samples} == set(TaskFamily)
