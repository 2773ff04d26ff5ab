"""Table-driven tests: realistic model outputs through the official paper-v1 and robust parsers.

Every expectation was worked out by hand from the rules, not by running the code:

* ``official``: the substrings ``-?\\d+\\.?\\d*`` matches in the whole text, last ``k``,
  cast with ``np.float32`` (given as strings), or the failure status;
* ``robust``: the values :func:`parse_robust` should return, or its failure status.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medvision.parsing import ParseStatus, parse_last_k, parse_robust
from medvision.schema import TaskFamily

DET = TaskFamily.DETECTION
TL = TaskFamily.TUMOR_LESION_SIZE
AD = TaskFamily.ANGLE_DISTANCE


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    family: TaskFamily
    official: tuple[str, ...] | ParseStatus
    robust: tuple[float, ...] | ParseStatus
    image_hw: tuple[int, int] | None = None
    metric_type: str = ""


CASES = [
    # guards against preferring an echoed pixel size (it has a unit) over the bare answer.
    Case(
        "ad_echoed_pixel_size_first",
        "The pixel size is 0.500 millimeters. The distance is 45.2",
        AD,
        ("45.2",),
        (45.2,),
        metric_type="distance",
    ),
    # guards against the pixel size repeated after the answer being taken as the answer.
    Case(
        "ad_echoed_pixel_size_last",
        "The distance is 12.5. Pixel size 0.5 mm",
        AD,
        ("0.5",),
        (12.5,),
        metric_type="distance",
    ),
    # guards against reading a repeated in-plane spacing as the two axes.
    Case(
        "tl_echoed_spacing_then_axes",
        "Given the pixel size of 0.781 mm x 0.781 mm, the lesion spans 32 by 20 pixels, "
        "so 25.0, 15.6",
        TL,
        ("25.0", "15.6"),
        (25.0, 15.6),
    ),
    # guards against a relative box with one coordinate just above 1 turning into pixels.
    Case(
        "det_relative_slightly_above_one",
        "0.2, 0.3, 0.5, 1.2",
        DET,
        ("0.2", "0.3", "0.5", "1.2"),
        ParseStatus.OUT_OF_RANGE,
        image_hw=(512, 512),
    ),
    # guards against losing the first axis of a size written "25.3x14.2 mm".
    Case(
        "tl_glued_x_separator",
        "Size: 25.3x14.2 mm",
        TL,
        ("25.3", "14.2"),
        (25.3, 14.2),
    ),
    # guards against breaking the plain format the prompt asks for.
    Case(
        "det_plain",
        "0.12, 0.34, 0.56, 0.78",
        DET,
        ("0.12", "0.34", "0.56", "0.78"),
        (0.12, 0.34, 0.56, 0.78),
    ),
    # guards against reasoning numbers ("slice 3") leaking into an explicit "Answer:" line.
    Case(
        "det_reasoning_answer_line",
        "The tumor is in the left hemisphere near slice 3 of the series. Its lower-left corner "
        "is at (0.21, 0.40) and upper-right at (0.35, 0.62).\nAnswer: 0.21, 0.40, 0.35, 0.62",
        DET,
        ("0.21", "0.40", "0.35", "0.62"),
        (0.21, 0.40, 0.35, 0.62),
    ),
    # guards against reading a rejected candidate box inside <think>.
    Case(
        "det_think_then_answer_tag",
        "<think>The mass spans roughly 30% of the width; candidate box 0.1, 0.2, 0.4, 0.5 "
        "looked too small.</think> <answer>0.15, 0.25, 0.45, 0.55</answer>",
        DET,
        ("0.15", "0.25", "0.45", "0.55"),
        (0.15, 0.25, 0.45, 0.55),
    ),
    # guards against text after the <answer> block (the official last-4 takes "512 x 512").
    Case(
        "det_text_after_answer_tag",
        "<answer>0.15, 0.25, 0.45, 0.55</answer>\nNote: the image is 512 x 512.",
        DET,
        ("0.45", "0.55", "512", "512"),
        (0.15, 0.25, 0.45, 0.55),
    ),
    # guards against losing a fenced JSON answer.
    Case(
        "det_json_fenced",
        '```json\n{"box": [0.1, 0.2, 0.3, 0.4]}\n```',
        DET,
        ("0.1", "0.2", "0.3", "0.4"),
        (0.1, 0.2, 0.3, 0.4),
    ),
    # guards against scoring Qwen grounding pixels as relative: x/W, (H - y)/H, then sorted.
    # x: 120/800 = 0.15, 560/800 = 0.7; y: (1000-340)/1000 = 0.66, (1000-780)/1000 = 0.22.
    Case(
        "det_qwen_bbox_2d_pixels",
        '```json\n[{"bbox_2d": [120, 340, 560, 780], "label": "liver"}]\n```',
        DET,
        ("120", "340", "560", "780"),
        (0.15, 0.22, 0.7, 0.66),
        image_hw=(1000, 800),
    ),
    # guards against guessing a pixel frame without the image size.
    Case(
        "det_pixels_without_image_size",
        "Answer: 120, 340, 560, 780",
        DET,
        ("120", "340", "560", "780"),
        ParseStatus.OUT_OF_RANGE,
    ),
    # guards against accepting pixel boxes that leave the image (560 > W = 512).
    Case(
        "det_pixels_outside_image",
        "<answer>[120, 340, 560, 780]</answer>",
        DET,
        ("120", "340", "560", "780"),
        ParseStatus.OUT_OF_RANGE,
        image_hw=(512, 512),
    ),
    # guards against percentages being read as pixels.
    Case(
        "det_percent",
        "The box spans from x=12% to x=48% horizontally and y=30% to y=55% vertically. "
        "Answer: 12%, 30%, 48%, 55%",
        DET,
        ("12", "30", "48", "55"),
        (0.12, 0.30, 0.48, 0.55),
    ),
    # guards against unsorted corners (upper-right given first).
    Case(
        "det_unsorted_corners",
        "<answer>0.6, 0.7, 0.2, 0.3</answer>",
        DET,
        ("0.6", "0.7", "0.2", "0.3"),
        (0.2, 0.3, 0.6, 0.7),
    ),
    # guards against Gemini "Text Block N" headers after the answer.
    Case(
        "det_gemini_text_blocks",
        "Text Block 1:\nAnswer: 0.31, 0.22, 0.58, 0.47\nText Block 2:\nThe box covers the "
        "left kidney.",
        DET,
        ("0.22", "0.58", "0.47", "2"),
        (0.31, 0.22, 0.58, 0.47),
    ),
    # guards against echoed vertebra labels ("L1", "T12") read as numbers.
    Case(
        "det_vertebra_labels",
        "The L1 vertebra box: 0.40, 0.35, 0.60, 0.55 (T12 excluded)",
        DET,
        ("0.35", "0.60", "0.55", "12"),
        (0.40, 0.35, 0.60, 0.55),
    ),
    # guards against ".12" being read as 12.
    Case(
        "det_leading_dot",
        "<answer>.12, .34, .56, .78</answer>",
        DET,
        ("12", "34", "56", "78"),
        (0.12, 0.34, 0.56, 0.78),
    ),
    # guards against losing a LaTeX \boxed{} answer.
    Case(
        "det_boxed",
        "So the final box is \\boxed{0.25, 0.30, 0.55, 0.70}.",
        DET,
        ("0.25", "0.30", "0.55", "0.70"),
        (0.25, 0.30, 0.55, 0.70),
    ),
    # guards against list markers and variable names (x0, y1) read as coordinates.
    Case(
        "det_numbered_list",
        "Coordinates:\n1. x0 = 0.20\n2. y0 = 0.10\n3. x1 = 0.45\n4. y1 = 0.38",
        DET,
        ("0.45", "4.", "1", "0.38"),
        (0.20, 0.10, 0.45, 0.38),
    ),
    # guards against "(x1, y1, x2, y2)" headers before the tuple.
    Case(
        "det_named_tuple",
        "The bounding box is (x1, y1, x2, y2) = (0.12, 0.30, 0.47, 0.66).",
        DET,
        ("0.12", "0.30", "0.47", "0.66"),
        (0.12, 0.30, 0.47, 0.66),
    ),
    # guards against breaking the plain T/L format.
    Case("tl_plain", "23.5, 15.2", TL, ("23.5", "15.2"), (23.5, 15.2)),
    # guards against sentence answers with units.
    Case(
        "tl_sentence_mm",
        "The major axis is 23.5 mm and the minor axis is 15.2 mm.",
        TL,
        ("23.5", "15.2"),
        (23.5, 15.2),
    ),
    # guards against centimetres scored as millimetres (and the "≈" sign).
    Case("tl_cm", "Major axis ≈ 2.4 cm, minor axis ≈ 1.6 cm.", TL, ("2.4", "1.6"), (24.0, 16.0)),
    # guards against a shared trailing unit ("2.3 x 1.5 cm") converting only one value.
    Case("tl_shared_cm", "Approximately 2.3 x 1.5 cm.", TL, ("2.3", "1.5"), (23.0, 15.0)),
    # guards against minor-before-major answers.
    Case("tl_swapped", "<answer>12.0, 30.5</answer>", TL, ("12.0", "30.5"), (30.5, 12.0)),
    # guards against pixel counts read as millimetres.
    Case(
        "tl_pixels_then_mm",
        "The lesion spans 40 pixels by 25 pixels. With a pixel size of 0.8 mm, that is "
        "32.0 mm x 20.0 mm.",
        TL,
        ("32.0", "20.0"),
        (32.0, 20.0),
    ),
    # guards against ranges read as a negative second number ("30-32" -> 30, -32).
    Case(
        "tl_ranges",
        "The tumour measures about 30-32 mm along its long axis and 18-20 mm across.",
        TL,
        ("18", "-20"),
        (31.0, 19.0),
    ),
    # guards against trailing label echoes ("label 2", "T2-weighted").
    Case(
        "tl_trailing_label_echo", "41.3, 28.7 (label 2, T2-weighted)", TL, ("2", "2"), (41.3, 28.7)
    ),
    # guards against counting a refusal as an ordinary parse failure.
    Case(
        "tl_refusal",
        "I'm unable to measure the lesion accurately from this image.",
        TL,
        ParseStatus.NO_ANSWER,
        ParseStatus.REFUSAL,
    ),
    # guards against a partial refusal with one number being scored.
    Case(
        "tl_partial_refusal",
        "I cannot determine the minor axis; the major axis is roughly 25 mm.",
        TL,
        ParseStatus.TOO_FEW_NUMBERS,
        ParseStatus.REFUSAL,
    ),
    # guards against losing JSON key/value answers.
    Case("tl_json", '{"major_mm": 27.4, "minor_mm": 19.1}', TL, ("27.4", "19.1"), (27.4, 19.1)),
    # guards against accepting negative lengths.
    Case(
        "tl_negative", "<answer>-12.5, 8.0</answer>", TL, ("-12.5", "8.0"), ParseStatus.OUT_OF_RANGE
    ),
    # guards against exponents split into mantissa and "-2"-style fragments.
    Case("tl_exponents", "<answer>2.35e1, 1.5e1</answer>", TL, ("1.5", "1"), (23.5, 15.0)),
    # guards against an echoed prompt example hiding the real answer.
    Case(
        "tl_echoed_placeholder",
        "<think> reasoning process here </think> <answer> answer here </answer>\nThe major "
        "axis is 35 mm and the minor axis is 21 mm.",
        TL,
        ("35", "21"),
        (35.0, 21.0),
    ),
    # guards against breaking the plain A/D format.
    Case("ad_plain", "72.4", AD, ("72.4",), (72.4,), metric_type="distance"),
    # guards against the degree sign blocking an angle.
    Case(
        "ad_degree_sign",
        "The SNA angle is approximately 82.5°.",
        AD,
        ("82.5",),
        (82.5,),
        metric_type="angle",
    ),
    # guards against impossible angles.
    Case(
        "ad_angle_over_180",
        "<answer>270</answer>",
        AD,
        ("270",),
        ParseStatus.OUT_OF_RANGE,
        metric_type="angle",
    ),
    # guards against centimetre distances scored as millimetres.
    Case(
        "ad_distance_cm",
        "Distance between Sella and Nasion: 7.1 cm",
        AD,
        ("7.1",),
        (71.0,),
        metric_type="distance",
    ),
    # guards against ".85" read as 85.
    Case("ad_leading_dot", "The distance is .85 mm", AD, ("85",), (0.85,), metric_type="distance"),
    # guards against landmark indices and "2D" after the value.
    Case(
        "ad_landmark_echo",
        "The distance from landmark 1 (Sella) to landmark 2 (Nasion) is 68.2 mm, measured on "
        "the 2D projection.",
        AD,
        ("2",),
        (68.2,),
        metric_type="distance",
    ),
    # guards against splitting a decimal thousands-grouped number.
    Case(
        "ad_thousands",
        "<answer>1,234.5</answer>",
        AD,
        ("234.5",),
        (1234.5,),
        metric_type="distance",
    ),
    # guards against an explicit plus sign or a unit word blocking the parse.
    Case("ad_plus_sign", "Answer: +3.5 degrees", AD, ("3.5",), (3.5,), metric_type="angle"),
    # guards against accepting negative angles.
    Case(
        "ad_negative_angle",
        "The angle is -15 degrees (measured clockwise).",
        AD,
        ("-15",),
        ParseStatus.OUT_OF_RANGE,
        metric_type="angle",
    ),
    # guards against crashing on an empty response.
    Case("ad_empty", "", AD, ParseStatus.NO_ANSWER, ParseStatus.NO_ANSWER, metric_type="distance"),
    # guards against scoring a truncated reasoning trace ("^2" of the formula).
    Case(
        "ad_truncated_think",
        "<think>First I locate Sella at (120, 340) and Nasion at (560, 300). The distance is "
        "sqrt(440^2 + 40^2)",
        AD,
        ("2",),
        ParseStatus.NO_ANSWER,
        metric_type="distance",
    ),
    # guards against markdown bold around the marker and the value.
    Case(
        "ad_markdown_bold",
        "**Final Answer:** **74.6 mm**",
        AD,
        ("74.6",),
        (74.6,),
        metric_type="distance",
    ),
    # guards against Gemini JSON-mode rendering ("Answer\n: ...") and px values in the thought.
    Case(
        "ad_gemini_json_mode",
        "Thought\n: The two landmarks are 420 px apart at 0.1 mm/px.\nAnswer\n: 42.0\n",
        AD,
        ("42.0",),
        (42.0,),
        metric_type="distance",
    ),
]


def _f32(parts: tuple[str, ...]) -> tuple[float, ...]:
    return tuple(float(np.float32(p)) for p in parts)


def test_table_is_large_and_ids_unique() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_official_paper_v1(case: Case) -> None:
    got = parse_last_k(case.text, case.family.n_values, version="paper-v1")
    if isinstance(case.official, ParseStatus):
        assert got.status is case.official and got.values is None
    else:
        assert got.status is ParseStatus.OK
        assert got.values == _f32(case.official)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_robust(case: Case) -> None:
    got = parse_robust(case.text, case.family, image_hw=case.image_hw, metric_type=case.metric_type)
    if isinstance(case.robust, ParseStatus):
        assert got.status is case.robust, got.reason
        assert got.values is None and got.reason
    else:
        assert got.status is ParseStatus.OK, got.reason
        assert got.values == pytest.approx(case.robust, abs=1e-12)


# --- focused rules -----------------------------------------------------------------------


def test_thousands_only_when_unambiguous() -> None:
    # "10,000" has a group starting with 0: one number. "120,340,..." is a list.
    assert parse_robust("<answer>10,000 and 20</answer>", TL).values == (10000.0, 20.0)
    got = parse_robust("<answer>120,340,560,780</answer>", DET, image_hw=(1000, 1000))
    assert got.values == pytest.approx((0.12, 0.22, 0.56, 0.66))
    # A length unit after the group makes it one number.
    assert parse_robust("It is 1,500 mm", AD, metric_type="distance").values == (1500.0,)


def test_unit_filters_follow_the_family() -> None:
    # An angle answer ignores the mm numbers around it; a distance ignores degrees.
    text = "Pixel size 0.1 mm; the angle is 35 degrees; the segment is 42 mm long."
    assert parse_robust(text, AD, metric_type="angle").values == (35.0,)
    assert parse_robust(text, AD, metric_type="distance").values == (42.0,)


def test_unclosed_answer_tag_runs_to_the_end() -> None:
    got = parse_robust("<think>x</think><answer>0.1, 0.2, 0.3", DET)
    assert got.status is ParseStatus.TOO_FEW_NUMBERS
    assert parse_robust("<answer>18.5, 11", TL).values == (18.5, 11.0)


def test_answer_tag_is_authoritative() -> None:
    # Reasoning numbers are not used when the tagged answer has too few.
    got = parse_robust("The box is 0.1, 0.2, 0.3, 0.4. <answer>0.5</answer>", DET)
    assert got.status is ParseStatus.TOO_FEW_NUMBERS


def test_closing_think_without_opening() -> None:
    # Chat templates may put "<think>" in the prompt; only the text after "</think>" counts.
    assert parse_robust("slice 12, 14 mm ... </think>\n\n7.5", AD).values == (7.5,)


def test_relative_box_out_of_range_and_negative() -> None:
    assert parse_robust("0.1, -0.2, 0.3, 0.4", DET).status is ParseStatus.OUT_OF_RANGE


def test_json_corner_keys_and_answer_string() -> None:
    got = parse_robust('{"xmin": 0.3, "ymin": 0.1, "xmax": 0.5, "ymax": 0.4}', DET)
    assert got.values == (0.3, 0.1, 0.5, 0.4)
    got = parse_robust('{"Thought": "slice 3 of 12", "Answer": "0.2, 0.3, 0.6, 0.7"}', DET)
    assert got.values == (0.2, 0.3, 0.6, 0.7)
    assert parse_robust('{"value": "64 degrees"}', AD).values == (64.0,)


def test_reason_names_the_scope() -> None:
    assert "<answer> block" in parse_robust("<answer>3</answer>", AD).reason
    assert "cm converted" in parse_robust("3 cm", AD, metric_type="distance").reason


def test_bad_metric_type_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="metric_type"):
        parse_robust("3", AD, metric_type="area")


_PIECES = st.sampled_from(
    [
        "<think>",
        "</think>",
        "<answer>",
        "</answer>",
        "\\boxed{",
        "}",
        "{",
        "}",
        "[",
        "]",
        '"box": ',
        '"major": ',
        "Answer:",
        "1.",
        "0.5",
        ".5",
        "-3",
        "1e-3",
        "1,234",
        "L1",
        "mm",
        "cm",
        "%",
        "°",
        " ",
        "\n",
        ",",
        "x",
        "to",
        "-",
        "I cannot",
        "Block 2",
        "px",
        "9" * 40,
    ]
)


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(_PIECES, max_size=25), family=st.sampled_from(list(TaskFamily)))
def test_parsers_never_raise_and_keep_the_invariant(pieces: list[str], family: TaskFamily) -> None:
    text = "".join(pieces)
    for got in (
        parse_robust(text, family, image_hw=(100, 120)),
        parse_last_k(text, family.n_values),
        parse_last_k(text, family.n_values, version="official"),
    ):
        assert (got.values is not None) == got.ok
        if got.values is not None:
            assert len(got.values) == family.n_values
    robust = parse_robust(text, family, image_hw=(100, 120))
    if robust.values is not None and family is TaskFamily.DETECTION:
        x0, y0, x1, y1 = robust.values
        assert 0 <= x0 <= x1 <= 1 and 0 <= y0 <= y1 <= 1
    elif robust.values is not None:
        assert all(0 <= v < float("inf") for v in robust.values)
        if family is TaskFamily.TUMOR_LESION_SIZE:
            assert robust.values[0] >= robust.values[1]
