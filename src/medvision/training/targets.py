"""Training targets: the answer a model is trained to give, for each prompt style.

One function, :func:`render_target`, pairs with :func:`medvision.tasks.render_prompt`: for the
same sample, style and seen image geometry it returns the completion that answers the prompt
*in the form that prompt asks for*, so training data and evaluation never disagree:

* ``paper-v1`` and ``paper-v1+size``: the official SFT targets (official-versions §9): detection
  ``"x0, y0, x1, y1"`` and T/L ``"major, minor"`` at 3 decimals, A/D ``str(value)`` (the full
  float repr, as the official ``str(metric_value)``; ``ad_decimals`` rounds it instead).
* ``official``: the same values inside ``<answer> </answer>`` tags. The 1.2.1 prompts ask for
  the tags and the 1.2.1 parser reads only inside them; the official 1.2.1 SFT still trained
  bare numbers, which its own parser rejects (official-versions §9). Fixed here.
* ``json``: the JSON object the ``json`` prompt asks for (values at 3 decimals).
* ``cot``: the MedVision-V0 chain of thought (1.2.1 ``COT_TEMPLATE_*`` wording, filled): locate
  the endpoints / landmarks / box corners in relative coordinates, compute the measurement
  from them with the stated image size and pixel size, then ``<answer>``.

Frames. Every coordinate in a CoT target is in the **relative lower-left frame** of
:mod:`medvision.geometry.frames` (``x = col / W``, ``y = (H - row) / H``), the frame the
detection prompt and target use. The official CoT code was inconsistent: the ``feat/sft-cot``
branch wrote T/L endpoints with the origin at the **top-left** (``y = row / H``) while its
detection targets use the lower-left; 1.2.1 switched to ``1 - row / H``. Here one converter
(:func:`~medvision.geometry.frames.points_rc_to_rel`) produces all of them. Relative
coordinates do not change when the model's processor resizes the image, and ``W' * pw'`` (seen
size times seen spacing) equals the native field of view, so the arithmetic in the target holds
for the image the model sees.

Measurements in CoT targets are the sample's ground truth (``Sample.target``). The value
recomputed from the landmarks must agree with it (:data:`COT_REL_TOL`); otherwise the sample is
refused with :class:`TargetError` rather than teaching arithmetic that does not add up.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from medvision.geometry.frames import PointRel, points_rc_to_rel
from medvision.schema import Sample, TaskFamily
from medvision.tasks.prompts import PromptStyle

__all__ = [
    "COT_ABS_TOL",
    "COT_REL_TOL",
    "CotPlan",
    "CotStep",
    "TargetError",
    "answer_text",
    "cot_plan",
    "render_cot_target",
    "render_target",
]

COT_REL_TOL = 0.01
"""Largest relative disagreement between the value recomputed from the landmarks and the
ground truth before a CoT target is refused."""
COT_ABS_TOL = 0.01
"""Absolute slack (mm or degrees) of the same check, for values near zero."""


class TargetError(ValueError):
    """A sample cannot be turned into a training target (the message names the sample)."""


@dataclass(frozen=True)
class CotStep:
    """Ground truth of one CoT step.

    Attributes:
        points_rel: Points ``(x, y)`` the step localises, relative lower-left frame; empty for
            a measurement step.
        value: The measurement (mm or degrees) for a measurement step, else ``None``.
    """

    points_rel: tuple[PointRel, ...] = ()
    value: float | None = None

    @property
    def n_points(self) -> int:
        """Points expected in the step's answer (0 for a measurement step)."""
        return len(self.points_rel)


@dataclass(frozen=True)
class CotPlan:
    """The filled chain of thought of one sample: its steps and the geometry it states.

    Attributes:
        family: Task family.
        metric_type: ``"axes"`` (T/L), ``"distance"`` / ``"angle"`` (A/D) or ``""`` (detection).
        steps: Ground truth per step, in order (T/L 4, distance 3, angle 3, detection 1).
        seen_hw: ``(H', W')`` pixels of the image the model sees.
        seen_spacing_mm_rc: ``(row_mm, col_mm)`` spacing of that image.
        vectors_mm: Angle only: the two physical line vectors ``((Ax, Ay), (Bx, By))`` in mm,
            x to the right and y up; empty otherwise.
        answer: The values inside ``<answer>`` (the sample's target).
    """

    family: TaskFamily
    metric_type: str
    steps: tuple[CotStep, ...]
    seen_hw: tuple[int, int]
    seen_spacing_mm_rc: tuple[float, float]
    vectors_mm: tuple[tuple[float, float], ...]
    answer: tuple[float, ...]

    @property
    def points_per_step(self) -> tuple[int, ...]:
        """Coordinates expected in each ``<step-k-answer>`` (0 = one scalar)."""
        return tuple(s.n_points for s in self.steps)


def _f3(v: float) -> str:
    return f"{v:.3f}"


def answer_text(sample: Sample, *, ad_decimals: int | None = None) -> str:
    """The official SFT answer string (no tags).

    Args:
        sample: The sample.
        ad_decimals: A/D only: round to this many decimals; ``None`` writes ``str(value)``
            as the official code does.

    Returns:
        Detection ``"x0, y0, x1, y1"`` (relative, lower-left origin, 3 decimals); T/L
        ``"major, minor"`` (mm, 3 decimals); A/D the value.

    Raises:
        TargetError: If the target has the wrong number of values or a non-finite one.
    """
    values = _checked_target(sample)
    if sample.family is TaskFamily.ANGLE_DISTANCE:
        value = values[0]
        return str(value) if ad_decimals is None else f"{value:.{ad_decimals}f}"
    return ", ".join(_f3(v) for v in values)


def _checked_target(sample: Sample) -> tuple[float, ...]:
    k = sample.family.n_values
    values = tuple(float(v) for v in sample.target)
    if len(values) != k or not all(math.isfinite(v) for v in values):
        raise TargetError(
            f"sample {sample.sample_id} ({sample.dataset}/{sample.case_id}): {sample.family.value} "
            f"target must be {k} finite values; found {sample.target!r}"
        )
    return values


def _json_answer(sample: Sample) -> str:
    values = [round(v, 3) for v in _checked_target(sample)]
    if sample.family is TaskFamily.DETECTION:
        obj: dict[str, object] = {"box": values}
    elif sample.family is TaskFamily.TUMOR_LESION_SIZE:
        obj = {"major_mm": values[0], "minor_mm": values[1]}
    else:
        obj = {"value": values[0]}
    return json.dumps(obj)


# --- chain of thought -----------------------------------------------------------------------


def _points(sample: Sample, n: int) -> tuple[PointRel, ...]:
    if len(sample.points_rc) != n:
        raise TargetError(
            f"sample {sample.sample_id} ({sample.dataset}/{sample.case_id}): a "
            f"{sample.metric_type or sample.family.value} CoT target needs {n} points_rc; "
            f"found {len(sample.points_rc)}"
        )
    return points_rc_to_rel(sample.points_rc, sample.image_hw)


def _vector_mm(
    p: PointRel, q: PointRel, seen_hw: tuple[int, int], spacing: tuple[float, float]
) -> tuple[float, float]:
    """Physical vector ``q - p`` in mm (x right, y up) as the CoT formula computes it."""
    (h, w), (sr, sc) = seen_hw, spacing
    return ((q[0] - p[0]) * w * sc, (q[1] - p[1]) * h * sr)


def _check_value(sample: Sample, what: str, computed: float, target: float) -> None:
    if not math.isclose(computed, target, rel_tol=COT_REL_TOL, abs_tol=COT_ABS_TOL):
        raise TargetError(
            f"sample {sample.sample_id} ({sample.dataset}/{sample.case_id}): {what} recomputed "
            f"from points_rc is {computed:.4f}, the target is {target:.4f}; expected agreement "
            f"within {COT_REL_TOL:.0%} (landmarks and target disagree; no CoT target written)"
        )


def cot_plan(
    sample: Sample, *, seen_hw: tuple[int, int], seen_spacing_mm_rc: tuple[float, float]
) -> CotPlan:
    """Ground truth of every CoT step of a sample, in the relative lower-left frame.

    Args:
        sample: The sample (T/L needs 4 ``points_rc``: P1, P2 major, P3, P4 minor; distance 2;
            angle 4: line 1 p1, p2, line 2 p1, p2; detection uses ``target``).
        seen_hw: ``(H', W')`` of the image the model sees.
        seen_spacing_mm_rc: ``(row_mm, col_mm)`` spacing of that image.

    Returns:
        The plan.

    Raises:
        TargetError: If points are missing, a line is degenerate, or the value recomputed from
            the points disagrees with the target.
    """
    values = _checked_target(sample)
    fam = sample.family
    if fam is TaskFamily.DETECTION:
        x0, y0, x1, y1 = values
        steps: tuple[CotStep, ...] = (CotStep(points_rel=((x0, y0), (x1, y1))),)
        return CotPlan(fam, "", steps, seen_hw, seen_spacing_mm_rc, (), values)
    if fam is TaskFamily.TUMOR_LESION_SIZE:
        p = _points(sample, 4)
        for (a, b), name, target in (
            ((0, 1), "major axis", values[0]),
            ((2, 3), "minor axis", values[1]),
        ):
            computed = math.hypot(*_vector_mm(p[a], p[b], seen_hw, seen_spacing_mm_rc))
            _check_value(sample, name, computed, target)
        steps = (
            CotStep(points_rel=(p[0], p[1])),
            CotStep(points_rel=(p[2], p[3])),
            CotStep(value=values[0]),
            CotStep(value=values[1]),
        )
        return CotPlan(fam, "axes", steps, seen_hw, seen_spacing_mm_rc, (), values)
    if sample.metric_type == "distance":
        p = _points(sample, 2)
        computed = math.hypot(*_vector_mm(p[0], p[1], seen_hw, seen_spacing_mm_rc))
        _check_value(sample, "distance", computed, values[0])
        steps = (CotStep(points_rel=(p[0],)), CotStep(points_rel=(p[1],)), CotStep(value=values[0]))
        return CotPlan(fam, "distance", steps, seen_hw, seen_spacing_mm_rc, (), values)
    if sample.metric_type == "angle":
        p = _points(sample, 4)
        va = _vector_mm(p[0], p[1], seen_hw, seen_spacing_mm_rc)
        vb = _vector_mm(p[2], p[3], seen_hw, seen_spacing_mm_rc)
        na, nb = math.hypot(*va), math.hypot(*vb)
        if na == 0.0 or nb == 0.0:
            raise TargetError(
                f"sample {sample.sample_id} ({sample.dataset}/{sample.case_id}): angle CoT needs "
                f"two non-degenerate lines; found lengths {na} mm and {nb} mm"
            )
        cos = min(1.0, abs(va[0] * vb[0] + va[1] * vb[1]) / (na * nb))
        _check_value(sample, "angle", math.degrees(math.acos(cos)), values[0])
        steps = (
            CotStep(points_rel=(p[0], p[1])),
            CotStep(points_rel=(p[2], p[3])),
            CotStep(value=values[0]),
        )
        return CotPlan(fam, "angle", steps, seen_hw, seen_spacing_mm_rc, (va, vb), values)
    raise TargetError(
        f"sample {sample.sample_id} ({sample.dataset}/{sample.case_id}): A/D CoT needs "
        f"metric_type 'distance' or 'angle'; found {sample.metric_type!r}"
    )


def _pt(p: PointRel) -> str:
    return f"({_f3(p[0])}, {_f3(p[1])})"


def _geometry_phrase(plan: CotPlan) -> tuple[str, str, str, str, str]:
    """(pixel_width, pixel_height, image_width, image_height, phrase) as the templates state."""
    (h, w), (sr, sc) = plan.seen_hw, plan.seen_spacing_mm_rc
    pw, ph, iw, ih = _f3(sc), _f3(sr), str(w), str(h)
    phrase = (
        f"the pixel dimensions (pixel_width, pixel_height) = ({pw}, {ph}), "
        f"the image size (image_width, image_height) = ({iw}, {ih})"
    )
    return pw, ph, iw, ih, phrase


def _length_formula(
    name: str, suffix: str, a: PointRel, b: PointRel, plan: CotPlan, value: float
) -> str:
    pw, ph, iw, ih, _ = _geometry_phrase(plan)
    x1, y1 = f"x1{suffix}", f"y1{suffix}"
    x2, y2 = f"x2{suffix}", f"y2{suffix}"
    return (
        f"{name} = sqrt((({x2} - {x1}) * image_width * pixel_width)^2 + (({y2} - {y1}) * "
        f"image_height * pixel_height)^2) = sqrt((({_f3(b[0])} - {_f3(a[0])}) * {iw} * {pw})^2 "
        f"+ (({_f3(b[1])} - {_f3(a[1])}) * {ih} * {ph})^2) = {_f3(value)}. "
    )


def _cot_tl(sample: Sample, plan: CotPlan) -> str:
    (a, b), (c, d) = plan.steps[0].points_rel, plan.steps[1].points_rel
    major, minor = plan.answer
    label = sample.label_name
    phrase = _geometry_phrase(plan)[4]
    return (
        "<think> <step-1-reasoning> "
        f"I need to identify the major axis of the ellipse enclosing the {label} and output its "
        "two endpoints. The relative coordinates must be written as (x1_major, y1_major), "
        "(x2_major, y2_major), where x is the relative position in width and y is the relative "
        "position in height. </step-1-reasoning> <step-1-answer> "
        f"The endpoints of the major axis: {_pt(a)}, {_pt(b)}. </step-1-answer> "
        "<step-2-reasoning> "
        f"Next, I must identify the minor axis of the ellipse enclosing the {label} and output "
        "its two endpoints in the same format: (x1_minor, y1_minor), (x2_minor, y2_minor). "
        "</step-2-reasoning> <step-2-answer> "
        f"The endpoints of the minor axis: {_pt(c)}, {_pt(d)}. </step-2-answer> "
        "<step-3-reasoning> "
        f"I now calculate the major axis length using {phrase}, and the distance formula: "
        + _length_formula("major_axis_length", "_major", a, b, plan, major)
        + "</step-3-reasoning> <step-3-answer> "
        f"The major axis length: {_f3(major)}. </step-3-answer> "
        "<step-4-reasoning> "
        "I calculate the minor axis length using the same distance formula: "
        + _length_formula("minor_axis_length", "_minor", c, d, plan, minor)
        + "</step-4-reasoning> <step-4-answer> "
        f"The minor axis length: {_f3(minor)}. </step-4-answer> </think> "
        f"<answer> ({_f3(major)}, {_f3(minor)}) </answer>"
    )


def _cot_distance(sample: Sample, plan: CotPlan) -> str:
    (p,), (q,) = plan.steps[0].points_rel, plan.steps[1].points_rel
    (value,) = plan.answer
    n1, n2 = (
        sample.landmark_names[:2]
        if len(sample.landmark_names) >= 2
        else ("landmark 1", "landmark 2")
    )
    phrase = _geometry_phrase(plan)[4]
    return (
        "<think> <step-1-reasoning> "
        f"I need to identify {n1} and output its relative coordinates. The relative coordinates "
        "must be written as (x1, y1), where x is the relative position in width and y is the "
        "relative position in height. </step-1-reasoning> <step-1-answer> "
        f"The relative coordinates of {n1}: {_pt(p)}. </step-1-answer> <step-2-reasoning> "
        f"Next, I must identify {n2} and output its relative coordinates in the same format: "
        "(x2, y2). </step-2-reasoning> <step-2-answer> "
        f"The relative coordinates of {n2}: {_pt(q)}. </step-2-answer> <step-3-reasoning> "
        f"I now calculate the distance between the two landmarks using {phrase}, and the "
        "distance formula: "
        + _length_formula("distance", "", p, q, plan, value)
        + "</step-3-reasoning> <step-3-answer> "
        f"The distance: {_f3(value)}. </step-3-answer> </think> "
        f"<answer> {_f3(value)} </answer>"
    )


def _cot_angle(sample: Sample, plan: CotPlan) -> str:
    (a, b), (c, d) = plan.steps[0].points_rel, plan.steps[1].points_rel
    (value,) = plan.answer
    names = (
        sample.landmark_names[:4]
        if len(sample.landmark_names) >= 4
        else ("landmark 1", "landmark 2", "landmark 3", "landmark 4")
    )
    pw, ph, iw, ih, phrase = _geometry_phrase(plan)
    (ax, ay), (bx, by) = plan.vectors_mm
    cos = min(1.0, abs(ax * bx + ay * by) / (math.hypot(ax, ay) * math.hypot(bx, by)))
    rad = math.acos(cos)
    return (
        "<think> <step-1-reasoning> "
        f"I need to identify the relative coordinates of {names[0]} and {names[1]} that define "
        "line 1. The relative coordinates must be written as (x1_line1, y1_line1), "
        "(x2_line1, y2_line1), where x is the relative position in width and y is the relative "
        "position in height. </step-1-reasoning> <step-1-answer> "
        f"The relative coordinates of {names[0]} and {names[1]}: {_pt(a)}, {_pt(b)}. "
        "</step-1-answer> <step-2-reasoning> "
        f"Next, I must identify the relative coordinates of {names[2]} and {names[3]} that "
        "define line 2, in the same format: (x1_line2, y1_line2), (x2_line2, y2_line2). "
        "</step-2-reasoning> <step-2-answer> "
        f"The relative coordinates of {names[2]} and {names[3]}: {_pt(c)}, {_pt(d)}. "
        "</step-2-answer> <step-3-reasoning> "
        f"I now calculate the angle between the two lines using {phrase}, and the angle "
        "formula: angle = arccos(|A · B| / (||A|| ||B||)), where A and B are the vectors of the "
        "two lines computed from the physical coordinates of their endpoints. "
        "A = ((x2_line1 - x1_line1) * image_width * pixel_width, (y2_line1 - y1_line1) * "
        f"image_height * pixel_height) = (({_f3(b[0])} - {_f3(a[0])}) * {iw} * {pw}, "
        f"({_f3(b[1])} - {_f3(a[1])}) * {ih} * {ph}) = ({_f3(ax)}, {_f3(ay)}). "
        "B = ((x2_line2 - x1_line2) * image_width * pixel_width, (y2_line2 - y1_line2) * "
        f"image_height * pixel_height) = (({_f3(d[0])} - {_f3(c[0])}) * {iw} * {pw}, "
        f"({_f3(d[1])} - {_f3(c[1])}) * {ih} * {ph}) = ({_f3(bx)}, {_f3(by)}). "
        "Denote A=(Ax, Ay) and B=(Bx, By). Then, angle = arccos(|Ax*Bx + Ay*By| / "
        "(sqrt(Ax^2 + Ay^2) * sqrt(Bx^2 + By^2))) = "
        f"arccos(|{_f3(ax)}*{_f3(bx)} + {_f3(ay)}*{_f3(by)}| / (sqrt({_f3(ax)}^2 + {_f3(ay)}^2) "
        f"* sqrt({_f3(bx)}^2 + {_f3(by)}^2))) = {_f3(rad)} = {_f3(value)} degrees. "
        "</step-3-reasoning> <step-3-answer> "
        f"The angle: {_f3(value)}. </step-3-answer> </think> "
        f"<answer> {_f3(value)} </answer>"
    )


def _cot_detection(sample: Sample, plan: CotPlan) -> str:
    (p, q) = plan.steps[0].points_rel
    return (
        "<think> <step-1-reasoning> "
        f"I need to identify the relative coordinates of the bounding box of {sample.label_name}. "
        "The relative coordinates must be written as (x, y), where x is the relative position "
        "in width and y is the relative position in height. I understand that the origin of "
        "the image space coordinate system is at the lower-left corner of the image. "
        "</step-1-reasoning> <step-1-answer> "
        f"The relative coordinates of the bounding box: {_pt(p)}, {_pt(q)}. </step-1-answer> "
        f"</think> <answer> {_f3(p[0])}, {_f3(p[1])}, {_f3(q[0])}, {_f3(q[1])} </answer>"
    )


def render_cot_target(sample: Sample, plan: CotPlan) -> str:
    """The CoT completion for a sample from its :func:`cot_plan`.

    Args:
        sample: The sample (label and landmark names are written into the reasoning).
        plan: Its plan.

    Returns:
        ``<think> <step-k-reasoning> ... <step-k-answer> ... </think> <answer> ... </answer>``
        with coordinates and values at 3 decimals.
    """
    if plan.family is TaskFamily.DETECTION:
        return _cot_detection(sample, plan)
    if plan.family is TaskFamily.TUMOR_LESION_SIZE:
        return _cot_tl(sample, plan)
    if plan.metric_type == "distance":
        return _cot_distance(sample, plan)
    return _cot_angle(sample, plan)


def render_target(
    sample: Sample,
    style: PromptStyle | str,
    *,
    seen_hw: tuple[int, int],
    seen_spacing_mm_rc: tuple[float, float],
    ad_decimals: int | None = None,
) -> str:
    """The training completion that answers ``render_prompt(sample, style, ...)``.

    Args:
        sample: The sample.
        style: The prompt style the completion answers (see the module docstring).
        seen_hw: ``(H', W')`` of the image the model sees (CoT states it).
        seen_spacing_mm_rc: ``(row_mm, col_mm)`` spacing of that image (CoT states it).
        ad_decimals: A/D rounding for the non-CoT styles (``None``: ``str(value)``).

    Returns:
        The completion text.

    Raises:
        TargetError: If the sample cannot give a target in this style.
    """
    style = PromptStyle(style)
    if style in (PromptStyle.PAPER_V1, PromptStyle.PAPER_V1_SIZE):
        return answer_text(sample, ad_decimals=ad_decimals)
    if style is PromptStyle.OFFICIAL:
        return f"<answer> {answer_text(sample, ad_decimals=ad_decimals)} </answer>"
    if style is PromptStyle.JSON:
        return _json_answer(sample)
    plan = cot_plan(sample, seen_hw=seen_hw, seen_spacing_mm_rc=seen_spacing_mm_rc)
    return render_cot_target(sample, plan)
