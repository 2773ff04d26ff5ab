"""Strict JSON that keeps non-finite floats: ``inf``, ``-inf`` and ``nan`` as strings.

JSON has no infinity or NaN. An answer too large for float32 parses to ``inf`` (as the
official parser does) and its MAE is ``inf``; writing that as ``null`` would turn a result
into a missing value, and Python's default ``Infinity`` token is not JSON. Every file
medvision writes (``records.jsonl``, ``summary.json``, report JSON) therefore writes a
non-finite float as the string ``"inf"``, ``"-inf"`` or ``"nan"``, and reading turns those
three strings back into floats, so a value survives the round trip exactly. ``None`` stays
``null`` (a summary's "no value": a metric no answered sample supports).

Example:
    >>> loads(dumps({"mae": float("inf"), "n": 3}))
    {'mae': inf, 'n': 3}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["NONFINITE", "decode_floats", "dumps", "encode_floats", "loads", "write_json"]

#: The strings that stand for non-finite floats in medvision's JSON files.
NONFINITE: dict[str, float] = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _name(value: float) -> str:
    if math.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


def encode_floats(obj: Any) -> Any:
    """A copy of ``obj`` (dicts, lists, tuples) with non-finite floats as their strings."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else _name(obj)
    if isinstance(obj, Mapping):
        return {k: encode_floats(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [encode_floats(v) for v in obj]
    return obj


def decode_floats(obj: Any) -> Any:
    """The inverse of :func:`encode_floats`: ``"inf"``, ``"-inf"``, ``"nan"`` become floats.

    Dict keys are never decoded, only values (a label may be named anything).
    """
    if isinstance(obj, str):
        return NONFINITE.get(obj, obj)
    if isinstance(obj, dict):
        return {k: decode_floats(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode_floats(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`encode_floats` (strict JSON: ``allow_nan=False``)."""
    return json.dumps(encode_floats(obj), allow_nan=False, **kwargs)


def loads(text: str | bytes) -> Any:
    """``json.loads`` then :func:`decode_floats`."""
    return decode_floats(json.loads(text))


def write_json(path: Path, obj: Any, **kwargs: Any) -> None:
    """Write ``obj`` as :func:`dumps` (indented) to ``path`` atomically.

    The text goes to ``<path>.tmp`` first and is renamed over ``path``, so a reader never
    sees half a file. ``kwargs`` go to :func:`json.dumps` (``default=str`` for paths...).
    """
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(obj, indent=1, **kwargs))
    tmp.replace(path)
