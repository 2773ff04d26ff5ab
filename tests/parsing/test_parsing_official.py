"""The official last-k parsers, both versions (official-versions §1, official-eval-protocol §3.3).

Expected values are the substrings the official regexes match, worked out by hand and cast
with ``np.float32`` (the official cast), so the oracle is the documented rule itself.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from medvision.parsing import ParsedAnswer, ParseStatus, parse_last_k


def f32(*parts: str) -> tuple[float, ...]:
    return tuple(float(np.float32(p)) for p in parts)


# official-versions §1 "Examples of divergence": (input, k, OLD parts, NEW parts or None=fail).
DIVERGENCE = [
    ("1,234.5", 1, ("234.5",), ("1234.5",)),
    ("10,000 and 20", 2, ("000", "20"), ("10000", "20")),
    ("1.5e-2", 1, ("-2",), ("1.5e-2",)),
    ("+3.2", 1, ("3.2",), ("+3.2",)),
    ("5.", 1, ("5.",), ("5",)),
    ("[120,340,560,780]", 4, ("120", "340", "560", "780"), None),
    ("0.1,0.2,0.3,0.4", 4, ("0.1", "0.2", "0.3", "0.4"), ("0.1", "0.2", "0.3", "0.4")),
    ("0.1, 0.2", 2, ("0.1", "0.2"), ("0.1", "0.2")),
]


@pytest.mark.parametrize(("text", "k", "old", "new"), DIVERGENCE)
def test_divergence_table(
    text: str, k: int, old: tuple[str, ...], new: tuple[str, ...] | None
) -> None:
    got_old = parse_last_k(text, k, version="paper-v1")
    assert got_old == ParsedAnswer(f32(*old), ParseStatus.OK)
    # 1.2.1 only reads inside <answer> tags, so the same text is wrapped.
    got_new = parse_last_k(f"<answer>{text}</answer>", k, version="official")
    if new is None:
        assert got_new.status is ParseStatus.TOO_FEW_NUMBERS and got_new.values is None
    else:
        assert got_new == ParsedAnswer(f32(*new), ParseStatus.OK)


def test_values_are_float32_values() -> None:
    # 0.1 is not a float32; the official cast keeps the float32 neighbour 0.10000000149...
    (v,) = parse_last_k("0.1", 1).values or ()
    assert v == 0.10000000149011612 and v != 0.1


def test_paper_v1_reads_the_whole_text_and_takes_the_last_k() -> None:
    text = "<think>slice 40</think> The answer is 0.2, 0.3, 0.6, 0.7. Confidence 9"
    # matches: 40, 0.2, 0.3, 0.6, 0.7 (the final "." is not followed by a digit), 9.
    got = parse_last_k(text, 4)
    assert got.values == f32("0.3", "0.6", "0.7", "9")


def test_paper_v1_failures() -> None:
    assert parse_last_k("no numbers here", 1).status is ParseStatus.NO_ANSWER
    got = parse_last_k("only 0.5 and 0.6", 4)
    assert got.status is ParseStatus.TOO_FEW_NUMBERS and got.values is None
    assert "found 2" in got.reason


def test_paper_v1_negative_values_pass_through() -> None:
    # parse_outputs does not reject negatives (only the in-harness A/D check does).
    assert parse_last_k("-12.5", 1).values == (-12.5,)


def test_paper_v1_overflow_is_inf_like_numpy() -> None:
    got = parse_last_k("9" * 50, 1)
    assert got.ok and got.values is not None and math.isinf(got.values[0])


def test_official_needs_an_answer_tag() -> None:
    got = parse_last_k("0.1, 0.2", 2, version="official")
    assert got.status is ParseStatus.NO_ANSWER and "answer" in got.reason


def test_official_reads_only_the_first_answer_block() -> None:
    text = "<answer>1, 2</answer> then <answer>3, 4</answer>"
    assert parse_last_k(text, 2, version="official").values == (1.0, 2.0)


def test_official_block_spans_lines_and_ignores_text_outside() -> None:
    text = "Slice 7.\n<answer>\n12.5,\n8.0\n</answer>\nDone 99"
    assert parse_last_k(text, 2, version="official").values == (12.5, 8.0)


def test_official_empty_and_short_blocks() -> None:
    assert parse_last_k("<answer></answer>", 1, version="official").status is (
        ParseStatus.NO_ANSWER
    )
    got = parse_last_k("<answer>0.5</answer>", 2, version="official")
    assert got.status is ParseStatus.TOO_FEW_NUMBERS


def test_official_tag_is_case_sensitive_like_the_original() -> None:
    assert parse_last_k("<ANSWER>3</ANSWER>", 1, version="official").status is (
        ParseStatus.NO_ANSWER
    )


def test_caller_errors_raise() -> None:
    with pytest.raises(ValueError, match="k must be"):
        parse_last_k("1", 0)
    with pytest.raises(ValueError, match="version"):
        parse_last_k("1", 1, version="v2")  # type: ignore[arg-type]


def test_parsed_answer_invariant() -> None:
    with pytest.raises(ValueError):
        ParsedAnswer(None, ParseStatus.OK)
    with pytest.raises(ValueError):
        ParsedAnswer((1.0,), ParseStatus.REFUSAL)
    assert ParsedAnswer.success((1,)).ok and not ParsedAnswer.failure(ParseStatus.NO_ANSWER, "x").ok


def test_status_values_match_schema() -> None:
    from typing import get_args

    from medvision.schema import ParseStatusName

    assert {s.value for s in ParseStatus} == set(get_args(ParseStatusName))
