r"""The one prompt renderer, used by evaluation and by training-data export.

Five styles (:class:`PromptStyle`):

* ``paper-v1``: GitHub c221615 (official-eval-protocol §2), byte for byte, including the
  quirks: detection says "corner"; T/L keeps the raw unit (``mm``: c221615 expands only string
  units and the T/L unit reaches it as a one-element list, official-versions "Settled from
  the features schema"), A/D distance replaces ``mm`` by ``millimeters``, the angle keeps the
  raw unit (``degree``) and the A/D pixel line hard-codes ``mm``. No image-size line.
* ``paper-v1+size``: ours, ``paper-v1`` with the 1.2.1 image-size line
  (``The image size is {W} pixels (width) x {H} pixels (height).``) inserted before the pixel
  line of T/L and A/D prompts, for paper-comparable runs that still state the size of the
  image the model sees (``official`` already has the line). Detection is unchanged (1.2.1
  states no size for detection either).
* ``official``: PyPI medvision-bm 1.2.1 non-CoT prompts (official-versions §7): the
  ``<think>``/``<answer>`` prefix before the format line, the short T/L and A/D format lines,
  "corners", ``": {description}"`` omitted when the description is empty, an image-size line
  before the pixel line, and units normalised (mm/cm/degree -> millimeters/centimeters/
  degrees, anything else is an error; the angle pixel line uses millimeters).
* ``cot``: ours, the 1.2.1 ``-CoT`` text: the ``official`` question, then
  ``Format requirement:\n{F}\nReasoning steps:\n{C}\nFollow the reasoning steps ...`` with
  the per-family F and C of official-versions §7; the answer goes in ``<answer>`` tags.
* ``json``: ours, for structured decoding: the ``official`` question (image-size and pixel
  lines included) with a format requirement asking for one JSON object and nothing else:
  detection ``{"box": [x0, y0, x1, y1]}`` (relative, origin lower-left, y up), T/L
  ``{"major_mm": <number>, "minor_mm": <number>}``, A/D ``{"value": <number>}`` (mm or
  degrees). No ``<think>``/``<answer>`` tags. :func:`medvision.parsing.parse_robust` reads it.

Pixel sizes are written ``{width:.3f} ... (width) x {height:.3f} ... (height)`` with width the
column spacing ``seen_spacing_mm_rc[1]`` and height the row spacing ``seen_spacing_mm_rc[0]``.
The image-size line states ``seen_hw`` as ``{W} pixels (width) x {H} pixels (height)``.

:func:`response_schema` gives the JSON schema of the ``json`` style's answer per family, for
backends with structured outputs (vLLM ``StructuredOutputsParams(json=...)``, OpenAI-compatible
``response_format={"type": "json_schema", ...}``).
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any

from medvision.schema import Sample, TaskFamily

__all__ = ["PromptStyle", "prompt_hash", "render_prompt", "response_schema"]


class PromptStyle(StrEnum):
    """Prompt wording (see the module docstring)."""

    PAPER_V1 = "paper-v1"
    PAPER_V1_SIZE = "paper-v1+size"
    OFFICIAL = "official"
    COT = "cot"
    JSON = "json"


# --- official strings (paper-v1, official-eval-protocol §2.1) -------------------------------

FORMAT_BOX = (
    "The answer should be four decimal numbers separated by commas without any units or "
    "additional text. "
    "The first two numbers are the coordinates of the lower-left corner and the last two "
    "numbers are the coordinates of the upper-right corner of the bounding box. "
    "Use relative coordinates in the image space, where the origin is at the lower-left corner "
    "of the image. "
    "Relative coordinates should be values between 0 and 1, representing the relative positions "
    "in the image."
)
FORMAT_TL_V1 = (
    "The answer should be two decimal numbers separated by a comma without any units or "
    "additional text. "
    "The first is the major axis length, and the second is the minor axis length."
)
FORMAT_AD_V1 = "The answer should be a single decimal number without any units or additional text."

# --- PyPI 1.2.1 (official-versions §7) -----------------------------------------------------

ANSWER_TAG_PREFIX = (
    "The reasoning process and the final answer must be enclosed within <think> </think> and "
    "<answer> </answer> tags, respectively. For example: <think> reasoning process here "
    "</think> <answer> answer here </answer>. "
)
FORMAT_TL_121 = (
    "The answer should be two decimal numbers separated by a comma. "
    "The first is the major axis length, and the second is the minor axis length."
)
FORMAT_AD_121 = "The answer should be a single decimal number."

_COT_TAIL = (
    "Report the reasoning process and final answer within <think> </think> and <answer> "
    "</answer> tags, respectively. Inside <think> </think>, include reasoning and step results "
    "using <step-k-reasoning> </step-k-reasoning> and <step-k-answer> </step-k-answer> tags. "
)
COT_FORMAT_TL = (
    "The final answer must be enclosed within <answer> </answer> tags. The answer should consist "
    "of two decimal numbers separated by a comma, without units or extra text. The first number "
    "is the major axis length, and the second is the minor axis length."
)
COT_FORMAT_AD = (
    "The final answer must be enclosed within <answer> </answer> tags. The answer should be a "
    "single decimal number without units or extra text."
)
COT_STEPS_TL = (
    "Step 1: Identify the major axis (the longest diameter) of the ellipse enclosing the target "
    "region. Find its two endpoints and record their relative coordinates in the format (x, y) = "
    "(relative position in width direction, relative position in height direction). Denote the "
    "endpoints as (x1_major, y1_major) and (x2_major, y2_major). "
    "Step 2: Identify the minor axis (the shortest diameter) of the ellipse. Find its two "
    "endpoints and record their relative coordinates in the same (x, y) format. Denote them as "
    "(x1_minor, y1_minor) and (x2_minor, y2_minor). "
    "Step 3: Given the pixel dimensions (pixel_width, pixel_height) and image size (image_width, "
    "image_height), compute the physical length of the major axis using: major_axis_length = "
    "sqrt(((x2_major - x1_major) * image_width * pixel_width)^2 + ((y2_major - y1_major) * "
    "image_height * pixel_height)^2). "
    "Step 4: Similarly, compute the physical length of the minor axis using: minor_axis_length = "
    "sqrt(((x2_minor - x1_minor) * image_width * pixel_width)^2 + ((y2_minor - y1_minor) * "
    "image_height * pixel_height)^2). " + _COT_TAIL
)
COT_STEPS_DISTANCE = (
    "Step 1: Identify the landmark 1 and record its relative coordinates in the format (x, y) = "
    "(relative position in width direction, relative position in height direction). Denote the "
    "coordinates as (x1, y1). "
    "Step 2: Identify the landmark 2 and record its relative coordinates in the same (x, y) "
    "format. Denote the coordinates as (x2, y2). "
    "Step 3: Given the pixel dimensions (pixel_width, pixel_height) and image size (image_width, "
    "image_height), compute the physical distance between the two landmarks using: distance = "
    "sqrt(((x2 - x1) * image_width * pixel_width)^2 + ((y2 - y1) * image_height * "
    "pixel_height)^2). " + _COT_TAIL
)
COT_STEPS_ANGLE = (
    "Step 1: Identify line 1 and record the relative coordinates of its two endpoints in the "
    "format (x, y) = (relative position in width direction, relative position in height "
    "direction). Denote the endpoints as (x1_line1, y1_line1) and (x2_line1, y2_line1). "
    "Step 2: Identify line 2 and record the relative coordinates of its two endpoints in the "
    "same (x, y) format. Denote them as (x1_line2, y1_line2) and (x2_line2, y2_line2). "
    "Step 3: Given the pixel dimensions (pixel_width, pixel_height) and image size (image_width, "
    "image_height), compute the angle between the two lines using the formula: angle = "
    "arccos(|A · B| / (||A|| ||B||)), where A and B are the vectors of the two lines computed "
    "from the physical coordinates of their endpoints. A = ((x2_line1 - x1_line1) * image_width "
    "* pixel_width, (y2_line1 - y1_line1) * image_height * pixel_height) and B = ((x2_line2 - "
    "x1_line2) * image_width * pixel_width, (y2_line2 - y1_line2) * image_height * "
    "pixel_height). Denote A=(Ax, Ay) and B=(Bx, By). Then, angle = arccos(|Ax*Bx + Ay*By| / "
    "(sqrt(Ax^2 + Ay^2) * sqrt(Bx^2 + By^2))). " + _COT_TAIL
)
COT_STEPS_BOX = (
    "Step 1: Identify the relative coordinates of the bounding box. The relative coordinates "
    "must be written as (x, y), where x is the relative position in width and y is the relative "
    "position in height. " + _COT_TAIL
)
_COT_CLOSING = "Follow the reasoning steps to get the final answer in the required format."

# --- ours: JSON -----------------------------------------------------------------------------

_JSON_LEAD = "Answer with a single JSON object and nothing else, in the form "
JSON_FORMAT_BOX = (
    _JSON_LEAD + '{"box": [x0, y0, x1, y1]}, where (x0, y0) is the lower-left corner and '
    "(x1, y1) is the upper-right corner of the bounding box, in relative coordinates between 0 "
    "and 1 with the origin at the lower-left corner of the image (x increases to the right, y "
    "increases upwards)."
)
JSON_FORMAT_TL = (
    _JSON_LEAD + '{"major_mm": <number>, "minor_mm": <number>}, where major_mm is the major '
    "axis length and minor_mm is the minor axis length, both in millimeters."
)
JSON_FORMAT_DISTANCE = (
    _JSON_LEAD + '{"value": <number>}, where value is the distance in millimeters.'
)
JSON_FORMAT_ANGLE = _JSON_LEAD + '{"value": <number>}, where value is the angle in degrees.'

_UNITS_121 = {"mm": "millimeters", "cm": "centimeters", "degree": "degrees"}


def _unit_121(sample: Sample) -> str:
    """1.2.1 unit normalisation: mm/cm/degree only; anything else is refused."""
    try:
        return _UNITS_121[sample.unit]
    except KeyError:
        raise ValueError(
            f"sample {sample.sample_id}: unit {sample.unit!r} is not one of "
            f"{sorted(_UNITS_121)} (the 1.2.1 prompts accept no other)"
        ) from None


def _metric_type(sample: Sample) -> str:
    if sample.metric_type not in ("distance", "angle"):
        raise ValueError(
            f"sample {sample.sample_id}: A/D needs metric_type 'distance' or 'angle'; "
            f"found {sample.metric_type!r}"
        )
    return sample.metric_type


def _landmarks(sample: Sample, n: int) -> tuple[str, ...]:
    if len(sample.landmark_names) < n:
        raise ValueError(
            f"sample {sample.sample_id}: {sample.metric_type} prompt needs {n} landmark names; "
            f"found {sample.landmark_names!r}"
        )
    return sample.landmark_names[:n]


def _pixel_line(spacing_mm_rc: tuple[float, float], unit: str) -> str:
    """The official pixel-size sentence: width (column spacing) first, then height (rows)."""
    height, width = spacing_mm_rc
    return (
        f"The pixel size for this image is {width:.3f} {unit} (width) x "
        f"{height:.3f} {unit} (height)."
    )


def _size_line(seen_hw: tuple[int, int]) -> str:
    height, width = seen_hw
    return f"The image size is {width} pixels (width) x {height} pixels (height)."


def _ad_task(sample: Sample, unit: str) -> str:
    r"""The A/D task sentence (``task_prompt``), ending with ``.\n`` as in the official code."""
    name = sample.metric_name
    if _metric_type(sample) == "distance":
        p1, p2 = _landmarks(sample, 2)
        if name:
            return (
                f"estimate the distance of {name} in {unit}, "
                f"which is the distance between 2 landmark points: "
                f"(landmark 1) {p1}, "
                f"(landmark 2) {p2}.\n"
            )
        return (
            f"estimate the distance between 2 landmark points in {unit}: "
            f"(landmark 1) {p1}, "
            f"(landmark 2) {p2}.\n"
        )
    l1p1, l1p2, l2p1, l2p2 = _landmarks(sample, 4)
    lines = (
        f"(line 1) the line connecting {l1p1} and {l1p2}, "
        f"(line 2) the line connecting {l2p1} and {l2p2}.\n"
    )
    if name:
        return (
            f"estimate the angle of {name} in {unit}, which is the angle between 2 lines: {lines}"
        )
    return f"estimate the angle between 2 lines in {unit}: {lines}"


def _render_paper_v1(
    sample: Sample, spacing_mm_rc: tuple[float, float], seen_hw: tuple[int, int] | None = None
) -> str:
    """The c221615 prompt; with ``seen_hw``, the size line goes before the pixel line."""
    size = f"{_size_line(seen_hw)}\n" if seen_hw is not None else ""
    head = f"Task:\nGiven the input medical image: {sample.image_description}, "
    if sample.family is TaskFamily.DETECTION:
        return (
            head + "return the coordinates of the lower-left and upper-right corner of the "
            f"bounding box for the {sample.label_name}.\n"
            f"Format requirement:\n{FORMAT_BOX}"
        )
    if sample.family is TaskFamily.TUMOR_LESION_SIZE:
        # c221615 expands only *string* units, and the T/L unit reaches it as a one-element
        # list (the HF features declare biometric_profile a sequence; official-versions,
        # "Settled from the features schema"), so the paper's T/L prompts say "mm".
        unit = sample.unit
        return (
            head + "estimate the major and minor axis lengths of the ellipse enclosing the "
            f"{sample.label_name}, in {unit}.\n"
            f"Additional information:\n{size}{_pixel_line(spacing_mm_rc, unit)}\n"
            f"Format requirement:\n{FORMAT_TL_V1}"
        )
    # A/D: distances replace every "mm"; angles keep the unit as is; the pixel line says mm.
    is_distance = _metric_type(sample) == "distance"
    unit = sample.unit.replace("mm", "millimeters") if is_distance else sample.unit
    return (
        head + _ad_task(sample, unit) + "Additional information:\n"
        f"{size}{_pixel_line(spacing_mm_rc, 'mm')}\n"
        f"Format requirement:\n{FORMAT_AD_V1}"
    )


def _question_121(
    sample: Sample, seen_hw: tuple[int, int], spacing_mm_rc: tuple[float, float]
) -> str:
    r"""The 1.2.1 question up to and including ``Format requirement:\n``."""
    desc = sample.image_description
    head = "Task:\nGiven the input medical image" + (f": {desc}, " if desc else ", ")
    if sample.family is TaskFamily.DETECTION:
        return (
            head + "return the coordinates of the lower-left and upper-right corners of the "
            f"bounding box for the {sample.label_name}.\nFormat requirement:\n"
        )
    unit = _unit_121(sample)
    if sample.family is TaskFamily.TUMOR_LESION_SIZE:
        task = (
            "estimate the major and minor axis lengths of the ellipse enclosing the "
            f"{sample.label_name}, in {unit}.\n"
        )
        spatial = unit
    else:
        task = _ad_task(sample, unit)
        # The pixel line uses the spatial unit; angle tasks are forced to millimeters.
        spatial = "millimeters" if _metric_type(sample) == "angle" else unit
    return (
        head + task + "Additional information:\n"
        f"{_size_line(seen_hw)}\n"
        f"{_pixel_line(spacing_mm_rc, spatial)}\n"
        "Format requirement:\n"
    )


def _format_121(sample: Sample) -> str:
    if sample.family is TaskFamily.DETECTION:
        return ANSWER_TAG_PREFIX + FORMAT_BOX
    if sample.family is TaskFamily.TUMOR_LESION_SIZE:
        return ANSWER_TAG_PREFIX + FORMAT_TL_121
    return ANSWER_TAG_PREFIX + FORMAT_AD_121


def _cot_parts(sample: Sample) -> tuple[str, str]:
    """(F, C) of the 1.2.1 ``-CoT`` variant for the sample's family."""
    if sample.family is TaskFamily.DETECTION:
        return ANSWER_TAG_PREFIX + FORMAT_BOX, COT_STEPS_BOX
    if sample.family is TaskFamily.TUMOR_LESION_SIZE:
        return COT_FORMAT_TL, COT_STEPS_TL
    steps = COT_STEPS_DISTANCE if _metric_type(sample) == "distance" else COT_STEPS_ANGLE
    return COT_FORMAT_AD, steps


def _json_format(sample: Sample) -> str:
    if sample.family is TaskFamily.DETECTION:
        return JSON_FORMAT_BOX
    expected = (
        "degree"
        if sample.family is TaskFamily.ANGLE_DISTANCE and (_metric_type(sample) == "angle")
        else "mm"
    )
    if sample.unit != expected:
        raise ValueError(
            f"sample {sample.sample_id}: the json style asks for {expected}; "
            f"found unit {sample.unit!r}"
        )
    if sample.family is TaskFamily.TUMOR_LESION_SIZE:
        return JSON_FORMAT_TL
    return JSON_FORMAT_DISTANCE if expected == "mm" else JSON_FORMAT_ANGLE


def render_prompt(
    sample: Sample,
    style: PromptStyle | str,
    *,
    seen_hw: tuple[int, int],
    seen_spacing_mm_rc: tuple[float, float],
) -> str:
    """Render the user prompt for one sample.

    Args:
        sample: The sample (family, label name, description, unit, A/D names).
        style: Prompt style (or its string value, e.g. ``"paper-v1"``).
        seen_hw: ``(H, W)`` in pixels of the image the model sees (stated by every style but
            ``paper-v1``, for T/L and A/D).
        seen_spacing_mm_rc: Pixel spacing ``(row_mm, col_mm)`` of the image the model sees
            (stated for T/L and A/D; unused for detection).

    Returns:
        The prompt text (no trailing newline).

    Raises:
        ValueError: If the style is unknown, or the sample lacks what its family's prompt
            needs (A/D metric type or landmark names) or has a unit the style cannot state.
    """
    style = PromptStyle(style)
    if style is PromptStyle.PAPER_V1:
        return _render_paper_v1(sample, seen_spacing_mm_rc)
    if style is PromptStyle.PAPER_V1_SIZE:
        return _render_paper_v1(sample, seen_spacing_mm_rc, seen_hw)
    question = _question_121(sample, seen_hw, seen_spacing_mm_rc)
    if style is PromptStyle.OFFICIAL:
        return question + _format_121(sample)
    if style is PromptStyle.COT:
        fmt, steps = _cot_parts(sample)
        return question + f"{fmt}\nReasoning steps:\n{steps}\n{_COT_CLOSING}"
    return question + _json_format(sample)


def prompt_hash(text: str) -> str:
    """Short content hash of a rendered prompt (recorded per sample).

    Args:
        text: Prompt text.

    Returns:
        The first 16 hex characters of the sha256 of the UTF-8 text.
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


_NUMBER: dict[str, Any] = {"type": "number"}


def response_schema(family: TaskFamily | str) -> dict[str, Any]:
    """JSON schema of the ``json`` style's answer for one task family (structured outputs).

    Field names and units are those the ``json`` prompts ask for and
    :func:`medvision.parsing.parse_robust` reads: detection ``{"box": [x0, y0, x1, y1]}``
    (relative, origin lower-left, y up; exactly four numbers), T/L ``{"major_mm",
    "minor_mm"}`` (mm), A/D ``{"value"}`` (mm or degrees). No other keys are allowed, so a
    constrained decoder cannot wander.

    Args:
        family: ``"detection"``, ``"tl"`` or ``"ad"`` (a :class:`TaskFamily` or its value).

    Returns:
        A fresh JSON-schema dict (callers may modify it).

    Raises:
        ValueError: If ``family`` is unknown.

    Example:
        >>> response_schema("ad")["required"]
        ['value']
    """
    try:
        fam = TaskFamily(family)
    except ValueError:
        known = [f.value for f in TaskFamily]
        raise ValueError(f"unknown task family {family!r}; expected one of {known}") from None
    if fam is TaskFamily.DETECTION:
        properties: dict[str, Any] = {
            "box": {"type": "array", "items": dict(_NUMBER), "minItems": 4, "maxItems": 4}
        }
    elif fam is TaskFamily.TUMOR_LESION_SIZE:
        properties = {"major_mm": dict(_NUMBER), "minor_mm": dict(_NUMBER)}
    else:
        properties = {"value": dict(_NUMBER)}
    return {
        "title": f"medvision_{fam.value}_answer",
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
