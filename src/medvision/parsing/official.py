r"""The official MedVision answer parser, in both released versions, reproduced exactly.

``paper-v1`` (GitHub c221615, the paper's tables):
``re.findall(r"-?\d+\.?\d*", text)`` over the **whole** response, fewer than ``k`` numbers
is a failure, the last ``k`` are each cast with ``np.float32``.

``official`` (PyPI medvision-bm 1.2.1): only the **first** ``<answer>(.*?)</answer>`` block
(DOTALL) is searched, a response without it fails, numbers match
``[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?`` with ``,`` stripped from each
match, then the last ``k`` are cast with ``np.float32``.

Neither version rejects negative values or reorders anything; those checks belong to the
metrics of each preset. The status distinguishes "no number at all" (``NO_ANSWER``) from "some
but fewer than k" (``TOO_FEW_NUMBERS``) only for reporting: both are the official failure.
"""

from __future__ import annotations

import math
import re
from typing import Literal

import numpy as np

from medvision.parsing.types import ParsedAnswer, ParseStatus

__all__ = ["OfficialVersion", "parse_last_k"]

OfficialVersion = Literal["paper-v1", "official"]

_NUMBER_V1 = re.compile(r"-?\d+\.?\d*")
_NUMBER_V121 = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def _to_float32(part: str) -> float:
    """Cast one matched number as the official code does (``np.float32(part.strip())``).

    Overflow gives ``inf`` in the official code (numpy only warns), so the warning is
    silenced here rather than turned into a failure.
    """
    with np.errstate(over="ignore"):
        return float(np.float32(part.strip()))


def parse_last_k(text: str, k: int, *, version: OfficialVersion = "paper-v1") -> ParsedAnswer:
    """Parse the last ``k`` numbers of a response with the official rule of ``version``.

    Args:
        text: Raw model response.
        k: Numbers expected (detection 4, T/L 2, A/D 1; :attr:`TaskFamily.n_values`).
        version: ``"paper-v1"`` (GitHub c221615) or ``"official"`` (PyPI 1.2.1).

    Returns:
        OK with the last ``k`` numbers as Python floats holding their float32 value, in the
        order they appear; otherwise ``NO_ANSWER`` (no number, or no ``<answer>`` tag under
        ``official``) or ``TOO_FEW_NUMBERS``.

    Raises:
        ValueError: If ``k < 1`` or ``version`` is unknown (caller errors, not model errors).

    Example:
        >>> parse_last_k("The answer is 1,234.5", 1).values
        (234.5,)
        >>> parse_last_k("<answer>1,234.5</answer>", 1, version="official").values
        (1234.5,)
    """
    if k < 1:
        raise ValueError(f"k must be >= 1; found {k}")
    if version == "paper-v1":
        numbers = _NUMBER_V1.findall(text)
        scope = "response"
    elif version == "official":
        tag = _ANSWER_TAG.search(text)
        if tag is None:
            return ParsedAnswer.failure(
                ParseStatus.NO_ANSWER, "no <answer>...</answer> block (official 1.2.1 rule)"
            )
        numbers = [m.replace(",", "") for m in _NUMBER_V121.findall(tag.group(1))]
        scope = "first <answer> block"
    else:
        raise ValueError(f"version must be 'paper-v1' or 'official'; found {version!r}")

    if not numbers:
        return ParsedAnswer.failure(ParseStatus.NO_ANSWER, f"no number in the {scope}")
    if len(numbers) < k:
        return ParsedAnswer.failure(
            ParseStatus.TOO_FEW_NUMBERS,
            f"expected {k} numbers in the {scope}; found {len(numbers)}: {numbers!r}",
        )
    # The official code joins the last k with "," and splits again; no match contains ","
    # (1.2.1 strips it), so the parts are exactly the matches.
    parts = numbers[-k:]
    try:
        values = tuple(_to_float32(p) for p in parts)
    except ValueError as exc:  # the official code fails the sample on any cast error
        return ParsedAnswer.failure(
            ParseStatus.TOO_FEW_NUMBERS, f"cannot cast {parts!r} to float32: {exc}"
        )
    note = "float32 overflow to inf (as official)" if any(math.isinf(v) for v in values) else ""
    return ParsedAnswer.success(values, note)
