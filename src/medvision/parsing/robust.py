r"""The strict-protocol answer parser: find the answer a model meant, or say why there is none.

The official parsers (:mod:`medvision.parsing.official`) take the last ``k`` numbers of the
text, so they read label names ("vertebra L1"), Gemini's "Text Block 3" headers, exponents and
``.5`` wrongly. This parser works in four steps.

1. **Scope.** ``<think>...</think>`` is removed. Then the first of these that exists is the
   answer scope, and it is authoritative (too few numbers there is a failure, not a reason
   to search the reasoning): the last ``<answer>...</answer>`` block (an unclosed final
   ``<answer>`` runs to the end); the last ``\boxed{...}``; a JSON object or array with
   answer keys; the paragraph after the last ``Answer:`` marker; the whole text.
2. **Numbers.** ``.5``, ``1e-3``, ``+3``, ``−3`` and ``12.`` are numbers. A minus sign after
   "digit space" is a dash, not a sign (``10 - 12``). Thousands separators are accepted
   only when unambiguous: ``1,234.5`` (a decimal part follows), ``10,000`` (a group starts
   with ``0``, which a separate number would not) or ``1,500 mm`` (a length/angle unit
   follows); ``120,340,560,780`` stays four numbers. Ignored: numbers glued to letters
   (``L1``, ``T12``, ``C7``, ``P4``, ``x1``, ``3D``, ``1st``, ``512x512``), integers after an
   index word (``Step 2``, ``Text Block 3``, ``(landmark 1)``, ``line 2``), and list markers
   at a line start (``1. The major axis``).
3. **Units.** A unit directly after a number (``mm``, ``cm``, ``°``/``degrees``, ``%``,
   ``px``/``pixels``) is attached to it, and a number without a unit inherits the unit of the
   next number when only ``x``, ``×``, ``by``, ``,``, ``and``, ``/`` or a dash separate them
   (``2.3 x 1.5 cm``). Numbers whose unit cannot be an answer of the family are dropped
   (``%`` and ``px`` for sizes, ``mm`` for boxes, ``mm`` for an angle ...). In free text
   (the last two scopes) a size or angle answer prefers numbers that carry a unit when there
   are at least ``k`` of them. For T/L and A/D a range ``10-12 mm`` / ``10 to 12 mm`` counts
   as its midpoint.
4. **Family checks.** Detection: ``%`` is divided by 100; if every value is in ``[0, 1]`` the
   box is taken as the relative lower-left frame the prompt asks for; if any value is ``> 1``
   (or carries ``px``) it is read as **pixel (x, y) with the origin at the top-left, x along
   the width and y down the rows** (how most VLMs answer) and converted with ``image_hw``
   (the size of the image the model saw) through :func:`medvision.geometry.frames.points_rc_to_rel`;
   corners are then sorted so ``x0 <= x1`` and ``y0 <= y1``; anything outside ``[0, 1]`` is
   ``OUT_OF_RANGE``. T/L: ``cm`` times 10, sorted so major >= minor, negative is
   ``OUT_OF_RANGE``. A/D: ``cm`` times 10 for distances, negative is ``OUT_OF_RANGE``, an
   angle above 180 degrees is ``OUT_OF_RANGE``.

A response with too few numbers that contains a refusal ("I cannot", "I'm unable", "not
possible to determine", ...) is ``REFUSAL``; with no number at all it is ``NO_ANSWER``,
otherwise ``TOO_FEW_NUMBERS``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

from medvision.geometry.frames import points_rc_to_rel
from medvision.parsing.types import ParsedAnswer, ParseStatus
from medvision.schema import TaskFamily

__all__ = ["parse_robust"]

_MetricType = str  # "", "axes", "distance" or "angle" (Sample.metric_type)
_METRIC_TYPES = ("", "axes", "distance", "angle")

# --- scope -----------------------------------------------------------------------------

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)
_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)
_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
_ANSWER_OPEN = re.compile(r"<answer>", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\s*\{")
# "Answer:", "Final answer:", "**Answer:**", "**Answer**:", Gemini JSON mode's "Answer\n:".
_ANSWER_MARKER = re.compile(r"\banswer\b\s*(?:\*\*|__)?\s*[:：]", re.IGNORECASE)
_PARAGRAPH_END = re.compile(r"\n[ \t]*\n")
# The example in the official 1.2.1 prefix, sometimes echoed by models.
_PLACEHOLDER = "answer here"

# --- numbers ---------------------------------------------------------------------------

_NUMBER = re.compile(
    r"""
    (?:(?<![\w.])|(?<=\d[xX]))           # not glued to a word or number, except "25.3x14.2"
    (?:(?<!\d\s)(?P<sign>[-+\u2212]))?  # a sign, unless after "digit space" (10 - 12)
    (?P<body>
        \d{1,3}(?:,\d{3})+(?:\.\d+)?    # comma-grouped, decided below
      | \d+(?:\.\d*)?                   # 12, 12., 12.5
      | \.\d+                           # .5
    )
    (?P<exp>[eE][-+]?\d+)?
    """,
    re.VERBOSE,
)
_GLUED_UNIT = re.compile(
    r"(?:mm|cm|px|deg|degrees?|pixels?|millimet(?:er|re)s?|centimet(?:er|re)s?)(?![A-Za-z])",
    re.IGNORECASE,
)
_UNIT = re.compile(
    r"""[ \t]*(?:
        (?P<pct>%)
      | (?P<deg>[°º˚]|deg(?:rees?)?\b)
      | (?P<mm>mm\b|millimet(?:er|re)s?\b)
      | (?P<cm>cm\b|centimet(?:er|re)s?\b)
      | (?P<px>px\b|pixels?\b)
    )""",
    re.VERBOSE | re.IGNORECASE,
)
# An integer right after one of these words is an index, not a measurement.
_INDEX_WORD_BEFORE = re.compile(
    r"\b(?:step|block|line|landmark|point|task|figure|fig\.|table|slice|case|label|option|part"
    r"|image|item)\s*#?\s*$",
    re.IGNORECASE,
)
# "25.3x14.2": an ``x`` glued between two numbers separates them when either has decimals
# (integer pairs such as "512x512" stay an image size, not two measurements).
_GLUED_X = re.compile(r"[xX](?=\d)")
# Echoed acquisition facts: the number right after these words is the pixel size the prompt
# stated, not a measurement ("the pixel size is 0.5 mm", "spacing of 0.781 mm x 0.781 mm").
_PIXEL_CONTEXT = re.compile(
    r"(?:pixel|voxel)[ \t]*(?:size|spacing|dimensions?)|\bspacing\b|\bresolution\b",
    re.IGNORECASE,
)
# A measurement word after the pixel-size phrase ends its scope ("given the pixel size, the
# major axis is 25 mm": 25 is the answer).
_MEASURE_WORD = re.compile(
    r"axis|axes|distance|angle|length|diameter|size\s+of\s+the|answer|spans?|measures?"
    r"|is\s+about|therefore|so\b|=",
    re.IGNORECASE,
)
_LIST_MARKER = re.compile(
    r"^[ \t]*(?:[-*+][ \t]+)?(?:\*\*)?\d{1,2}[.)](?:\*\*)?[ \t]+(?=[A-Za-z*(_\[])", re.M
)
_UNIT_CHAIN = re.compile(r"[ \t]*(?:[x×*,/]|by|and|[-–—])[ \t]*", re.IGNORECASE)
_RANGE_SEP = re.compile(r"[ \t]*(?:[-–—~]|to)[ \t]*", re.IGNORECASE)

_REFUSAL = re.compile(
    r"""
    \bI\s+(?:cannot|can\s*not|can[’']t|am\s+(?:unable|not\s+able))\b
  | \bI[’']m\s+(?:unable|not\s+able)\b
  | \bunable\s+to\s+(?:determine|provide|measure|estimate|answer|identify|locate|assess)\b
  | \b(?:not\s+possible|impossible)\s+to\s+(?:determine|provide|measure|estimate|tell)\b
  | \bcannot\s+be\s+(?:determined|measured|estimated|assessed)\b
  | \bI\s+(?:apologi[sz]e|am\s+sorry)\b | \bI[’']m\s+sorry\b
  | \bas\s+an\s+AI\b
    """,
    re.VERBOSE | re.IGNORECASE,
)

_LENGTH_UNITS = frozenset({"mm", "cm"})


@dataclass(frozen=True)
class _Num:
    """A number found in the text, with its unit (``None`` when bare) and its span."""

    value: float
    unit: str | None
    start: int = -1
    end: int = -1


def _unit_at(text: str, pos: int) -> str | None:
    """Return the unit written right after position ``pos`` (same line), if any."""
    m = _UNIT.match(text, pos)
    if m is None:
        return None
    name = next(name for name, val in m.groupdict().items() if val is not None)
    return "%" if name == "pct" else name


def _decimal_pair(text: str, m: re.Match[str]) -> bool:
    """True if ``m`` and the number after its glued ``x`` are not both integers."""
    nxt = _NUMBER.match(text, m.end() + 1)
    return nxt is not None and ("." in m.group(0) or "." in nxt.group(0))


def _echoed_spacing(text: str, start: int) -> bool:
    """True if the number at ``start`` repeats a pixel size/spacing stated in its clause."""
    window = text[max(0, start - 48) : start]
    matches = list(_PIXEL_CONTEXT.finditer(window))
    if not matches:
        return False
    last = matches[-1]
    between = window[last.end() :]
    # Same clause only: a sentence end or a measurement word in between releases the number.
    return not (_MEASURE_WORD.search(between) or re.search(r"[.;:!?,](?:\s|$)|\n", between))


def _tokenize(text: str) -> list[_Num]:
    """Find the numbers of ``text`` that can be measurements (rules in the module docstring)."""
    markers = [m.span() for m in _LIST_MARKER.finditer(text)]
    out: list[_Num] = []
    for m in _NUMBER.finditer(text):
        start, end = m.span()
        nxt = text[end : end + 1]
        if (
            nxt
            and (nxt.isalpha() or nxt == "_")
            and not _GLUED_UNIT.match(text, end)
            and not (_GLUED_X.match(text, end) and _decimal_pair(text, m))
        ):
            continue  # "3D", "1st", "2x" in "2x3": part of a word, not a value
        if start >= 2 and text[start - 1] in "xX":
            before = re.search(r"\d+(?:\.\d+)?$", text[: start - 1])
            if before is None or ("." not in before.group(0) and "." not in m.group(0)):
                continue  # the second half of an integer "512x512": an image size
        if _echoed_spacing(text, start):
            continue
        if any(a <= start < b for a, b in markers):
            continue
        sign = (m.group("sign") or "").replace("\u2212", "-")
        body = m.group("body")
        exp = m.group("exp") or ""
        unit = _unit_at(text, end)
        is_integer = not sign and not exp and "." not in body and "," not in body
        if is_integer and _INDEX_WORD_BEFORE.search(text, max(0, start - 24), start):
            continue
        if "," not in body:
            out.append(_Num(float(sign + body + exp), unit, start, end))
            continue
        groups = body.split(",")
        thousands = (
            "." in body
            or any(g.startswith("0") for g in groups[1:])
            or (unit is not None and unit != "px")
        )
        if thousands:
            out.append(_Num(float(sign + body.replace(",", "") + exp), unit, start, end))
            continue
        # A list written without spaces ("120,340,560,780"): one number per group.
        pos = m.start("body")
        for i, g in enumerate(groups):
            last = i == len(groups) - 1
            value = float((sign if i == 0 else "") + g + (exp if last else ""))
            g_end = end if last else pos + len(g)
            out.append(_Num(value, unit if last else None, start if i == 0 else pos, g_end))
            pos += len(g) + 1
    return _inherit_units(text, out)


def _inherit_units(text: str, nums: list[_Num]) -> list[_Num]:
    """Give a bare number the unit of the next one in chains like ``2.3 x 1.5 cm``."""
    out = list(nums)
    for i in range(len(out) - 2, -1, -1):
        cur, nxt = out[i], out[i + 1]
        if (
            cur.unit is None
            and nxt.unit is not None
            and nxt.start >= cur.end >= 0
            and _UNIT_CHAIN.fullmatch(text, cur.end, nxt.start)
        ):
            out[i] = replace(cur, unit=nxt.unit)
    return out


def _merge_ranges(text: str, nums: list[_Num]) -> list[_Num]:
    """Replace ``a-b`` / ``a to b`` (``a <= b``) by its midpoint (sizes and angles only)."""
    out: list[_Num] = []
    i = 0
    while i < len(nums):
        cur = nums[i]
        if i + 1 < len(nums):
            nxt = nums[i + 1]
            if (
                cur.end >= 0
                and nxt.start >= cur.end
                and _RANGE_SEP.fullmatch(text, cur.end, nxt.start)
                and 0 <= cur.value <= nxt.value
                and (cur.unit is None or cur.unit == nxt.unit)
            ):
                out.append(_Num((cur.value + nxt.value) / 2, nxt.unit, cur.start, nxt.end))
                i += 2
                continue
        out.append(cur)
        i += 1
    return out


# --- JSON ------------------------------------------------------------------------------

_JSON_MAX_STARTS = 256
_DET_KEYS = ("box", "bbox", "bbox_2d", "box_2d", "bounding_box", "coordinates", "coords")
_TL_KEYS = ("axes", "lengths", "size")
_AD_KEYS = ("value", "distance", "angle", "measurement", "length")
_COMMON_KEYS = ("answer", "value", "result", "final_answer")
_CORNER_KEYS = (
    ("x0", "y0", "x1", "y1"),
    ("x1", "y1", "x2", "y2"),
    ("xmin", "ymin", "xmax", "ymax"),
    ("x_min", "y_min", "x_max", "y_max"),
)


def _norm_key(key: str) -> str:
    return re.sub(r"[\s\-]+", "_", key.strip().lower())


def _unit_from_key(nkey: str) -> str | None:
    for suffix, unit in (
        ("_mm", "mm"),
        ("_cm", "cm"),
        ("_deg", "deg"),
        ("_degree", "deg"),
        ("_degrees", "deg"),
        ("_px", "px"),
        ("_pixels", "px"),
        ("_percent", "%"),
    ):
        if nkey.endswith(suffix):
            return unit
    return None


def _json_value_nums(value: object, unit: str | None) -> list[_Num] | None:
    """Numbers held by one JSON value (number, numeric string, list of either)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return [_Num(float(value), unit)]
    if isinstance(value, str):
        return [n if n.unit is not None else replace(n, unit=unit) for n in _tokenize(value)]
    if isinstance(value, list):
        out: list[_Num] = []
        for item in value:
            if isinstance(item, list | dict):
                return None
            got = _json_value_nums(item, unit)
            if got is None:
                return None
            out.extend(got)
        return out
    return None


def _json_answer(obj: object, family: TaskFamily, k: int) -> list[_Num] | None:
    """Extract ``k`` answer numbers from a decoded JSON value, or ``None`` if it has none."""
    if isinstance(obj, list):
        direct = _json_value_nums(obj, None) if all(not isinstance(x, str) for x in obj) else None
        if direct is not None and len(direct) == k:
            return direct
        for item in obj:
            if isinstance(item, dict | list):
                got = _json_answer(item, family, k)
                if got is not None:
                    return got
        return None
    if not isinstance(obj, dict):
        return None
    items = [(_norm_key(str(key)), val) for key, val in obj.items()]
    if family is TaskFamily.TUMOR_LESION_SIZE:
        major = next((kv for kv in items if "major" in kv[0]), None)
        minor = next((kv for kv in items if "minor" in kv[0]), None)
        if major is not None and minor is not None:
            a = _json_value_nums(major[1], _unit_from_key(major[0]))
            b = _json_value_nums(minor[1], _unit_from_key(minor[0]))
            if a is not None and b is not None and len(a) == 1 and len(b) == 1:
                return [a[0], b[0]]
    if family is TaskFamily.DETECTION:
        keys = dict(items)
        for names in _CORNER_KEYS:
            if all(n in keys for n in names):
                corners = [_json_value_nums(keys[n], None) for n in names]
                if all(c is not None and len(c) == 1 for c in corners):
                    return [c[0] for c in corners if c is not None]
    family_keys = {
        TaskFamily.DETECTION: _DET_KEYS,
        TaskFamily.TUMOR_LESION_SIZE: _TL_KEYS,
        TaskFamily.ANGLE_DISTANCE: _AD_KEYS,
    }[family]
    for wanted in (*family_keys, *_COMMON_KEYS):
        for nkey, val in items:
            if nkey != wanted and not nkey.startswith(wanted + "_"):
                continue
            if isinstance(val, dict):
                got = _json_answer(val, family, k)
            else:
                nums = _json_value_nums(val, _unit_from_key(nkey))
                ok = nums is not None and (
                    len(nums) == k or (isinstance(val, str) and len(nums) >= k)
                )
                got = nums[-k:] if ok and nums is not None else None
            if got is not None:
                return got
    return None


def _json_candidates(segment: str) -> Iterator[object]:
    """Decoded JSON objects/arrays of ``segment``, the last-starting first."""
    decoder = json.JSONDecoder()
    starts = [i for i, ch in enumerate(segment) if ch in "{["][-_JSON_MAX_STARTS:]
    for i in reversed(starts):
        try:
            obj, _ = decoder.raw_decode(segment, i)
        except (json.JSONDecodeError, RecursionError):  # not JSON, or absurdly nested
            continue
        yield obj


# --- scope selection ----------------------------------------------------------------------


def _strip_think(text: str) -> str:
    """Remove reasoning blocks; an unclosed ``<think>`` hides everything after it except answers."""
    body = _THINK_BLOCK.sub(" ", text)
    closes = list(_THINK_CLOSE.finditer(body))
    if closes:  # a closing tag whose opening was in the prompt (chat templates do this)
        body = body[closes[-1].end() :]
    opened = _THINK_OPEN.search(body)
    if opened is not None:  # truncated reasoning: keep only what precedes it and answer tags
        after = body[opened.end() :]
        tag = _ANSWER_OPEN.search(after)
        body = body[: opened.start()] + (" " + after[tag.start() :] if tag else "")
    return body


def _answer_tag_scope(body: str) -> str | None:
    blocks = [b for b in _ANSWER_BLOCK.findall(body) if b.strip().lower() != _PLACEHOLDER]
    closed_end = 0
    for m in _ANSWER_BLOCK.finditer(body):
        closed_end = m.end()
    opens = [m for m in _ANSWER_OPEN.finditer(body) if m.start() >= closed_end]
    if opens:  # a final unclosed <answer> (output cut at the token limit)
        return body[opens[-1].end() :]
    return blocks[-1] if blocks else None


def _boxed_scope(body: str) -> str | None:
    starts = list(_BOXED.finditer(body))
    if not starts:
        return None
    begin = starts[-1].end()
    depth = 1
    for i in range(begin, len(body)):
        if body[i] == "{":
            depth += 1
        elif body[i] == "}":
            depth -= 1
            if depth == 0:
                return body[begin:i]
    return body[begin:]


def _marker_scope(body: str) -> str | None:
    markers = list(_ANSWER_MARKER.finditer(body))
    if not markers:
        return None
    rest = body[markers[-1].end() :].lstrip()
    end = _PARAGRAPH_END.search(rest)
    return rest[: end.start()] if end else rest


# --- family checks -------------------------------------------------------------------------


def _allowed_units(family: TaskFamily, metric_type: str) -> frozenset[str | None]:
    if family is TaskFamily.DETECTION:
        return frozenset({None, "%", "px"})
    if family is TaskFamily.TUMOR_LESION_SIZE or metric_type == "distance":
        return frozenset({None, "mm", "cm"})
    if metric_type == "angle":
        return frozenset({None, "deg"})
    return frozenset({None, "mm", "cm", "deg"})


def _finish_detection(nums: list[_Num], image_hw: tuple[int, int] | None) -> ParsedAnswer:
    values = [n.value / 100 if n.unit == "%" else n.value for n in nums]
    if not all(math.isfinite(v) for v in values):
        return ParsedAnswer.failure(ParseStatus.OUT_OF_RANGE, f"non-finite box {values!r}")
    if any(v < 0 for v in values):
        return ParsedAnswer.failure(ParseStatus.OUT_OF_RANGE, f"negative coordinate in {values!r}")
    note = ""
    # Relative boxes may overshoot 1 slightly; only values well above it are pixels.
    if 1 < max(values) <= 2 and not any(n.unit == "px" for n in nums):
        return ParsedAnswer.failure(
            ParseStatus.OUT_OF_RANGE,
            f"box {values!r} has a coordinate between 1 and 2: neither relative nor pixels",
        )
    if any(v > 1 for v in values) or any(n.unit == "px" for n in nums):
        if image_hw is None:
            return ParsedAnswer.failure(
                ParseStatus.OUT_OF_RANGE,
                f"box {values!r} has values > 1 (pixel coordinates?) and no image size was given",
            )
        h, w = image_hw
        xa, ya, xb, yb = values
        if max(xa, xb) > w or max(ya, yb) > h:
            return ParsedAnswer.failure(
                ParseStatus.OUT_OF_RANGE,
                f"pixel box {values!r} (x, y) lies outside the {w}x{h} (WxH) image",
            )
        # Pixel (x, y), origin top-left, y down == (row=y, col=x) in the array frame.
        (x0, y0), (x1, y1) = points_rc_to_rel([(ya, xa), (yb, xb)], image_hw)
        values = [x0, y0, x1, y1]
        note = f"pixel (x, y) top-left coordinates converted with image_hw={image_hw}"
    x0, x1 = sorted((values[0], values[2]))
    y0, y1 = sorted((values[1], values[3]))
    if not all(0.0 <= v <= 1.0 for v in (x0, y0, x1, y1)):
        return ParsedAnswer.failure(
            ParseStatus.OUT_OF_RANGE, f"box {(x0, y0, x1, y1)!r} outside [0, 1]"
        )
    return ParsedAnswer.success((x0, y0, x1, y1), note)


def _finish_size(nums: list[_Num], family: TaskFamily, metric_type: str) -> ParsedAnswer:
    values = [n.value * 10 if n.unit == "cm" else n.value for n in nums]
    note = "cm converted to mm" if any(n.unit == "cm" for n in nums) else ""
    if not all(math.isfinite(v) for v in values):
        return ParsedAnswer.failure(ParseStatus.OUT_OF_RANGE, f"non-finite value in {values!r}")
    if any(v < 0 for v in values):
        return ParsedAnswer.failure(ParseStatus.OUT_OF_RANGE, f"negative value in {values!r}")
    if family is TaskFamily.TUMOR_LESION_SIZE:
        major, minor = values
        if minor > major:
            note = "; ".join(filter(None, [note, "swapped so major >= minor"]))
        return ParsedAnswer.success((max(values), min(values)), note)
    is_angle = metric_type == "angle" or nums[0].unit == "deg"
    if is_angle and values[0] > 180:
        return ParsedAnswer.failure(
            ParseStatus.OUT_OF_RANGE, f"angle {values[0]} degrees is above 180"
        )
    return ParsedAnswer.success((values[0],), note)


def parse_robust(
    text: str,
    family: TaskFamily,
    *,
    image_hw: tuple[int, int] | None = None,
    metric_type: _MetricType = "",
) -> ParsedAnswer:
    """Parse a model answer with the strict protocol's rules (see the module docstring).

    Args:
        text: Raw model response.
        family: Task family; fixes ``k`` (4, 2 or 1) and the checks.
        image_hw: ``(H, W)`` in pixels of the image the model saw, used only to convert a
            detection answer given in pixel coordinates; without it such an answer is
            ``OUT_OF_RANGE``.
        metric_type: :attr:`medvision.schema.Sample.metric_type` (``"distance"`` or
            ``"angle"`` for A/D; ``""`` or ``"axes"`` otherwise). For A/D with ``""``, an
            answer is treated as an angle only if it carries a degree unit.

    Returns:
        OK with detection ``(x0, y0, x1, y1)`` relative (origin lower-left, sorted), T/L
        ``(major_mm, minor_mm)`` (sorted), or A/D ``(value,)`` in mm or degrees; else a
        failure with its status and reason.

    Raises:
        ValueError: If ``metric_type`` is not one of ``""``, ``"axes"``, ``"distance"``,
            ``"angle"`` (a caller error).

    Example:
        >>> parse_robust("<think>L1 is 3 cm</think><answer>2.3, 1.5 cm</answer>",
        ...              TaskFamily.TUMOR_LESION_SIZE).values
        (23.0, 15.0)
    """
    if metric_type not in _METRIC_TYPES:
        raise ValueError(f"metric_type must be one of {_METRIC_TYPES}; found {metric_type!r}")
    k = family.n_values
    if not text.strip():
        return ParsedAnswer.failure(ParseStatus.NO_ANSWER, "empty response")
    body = _strip_think(text)

    scope: str | None = _answer_tag_scope(body)
    source = "<answer> block"
    if scope is None:
        scope, source = _boxed_scope(body), "\\boxed{}"
    free_text = scope is None
    if scope is None:
        scope, source = body, "text"

    nums: list[_Num] | None = None
    for candidate in _json_candidates(scope):
        nums = _json_answer(candidate, family, k)
        if nums is not None:
            source += " (JSON)"
            free_text = False
            break
    if nums is None:
        if free_text:
            marker = _marker_scope(scope)
            if marker is not None:
                scope, source = marker, "'Answer:' paragraph"
        nums = _tokenize(scope)
        if family is not TaskFamily.DETECTION:
            nums = _merge_ranges(scope, nums)

    allowed = _allowed_units(family, metric_type)
    nums = [n for n in nums if n.unit in allowed]
    if free_text and family is not TaskFamily.DETECTION:
        with_unit = [n for n in nums if n.unit is not None]
        if len(with_unit) >= k:
            nums = with_unit

    if len(nums) < k:
        found = [n.value for n in nums]
        if _REFUSAL.search(body):
            return ParsedAnswer.failure(
                ParseStatus.REFUSAL, f"refusal with {len(nums)} of {k} numbers ({source})"
            )
        if not nums:
            return ParsedAnswer.failure(ParseStatus.NO_ANSWER, f"no usable number in the {source}")
        return ParsedAnswer.failure(
            ParseStatus.TOO_FEW_NUMBERS, f"expected {k} numbers in the {source}; found {found!r}"
        )
    chosen = nums[-k:]
    if family is TaskFamily.DETECTION:
        result = _finish_detection(chosen, image_hw)
    else:
        result = _finish_size(chosen, family, metric_type)
    if not result.ok:
        return result
    reason = "; ".join(filter(None, [f"from {source}", result.reason]))
    return ParsedAnswer.success(result.values or (), reason)
