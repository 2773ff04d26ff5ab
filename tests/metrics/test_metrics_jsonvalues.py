"""Strict JSON files: non-finite floats as strings, written atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from medvision.metrics.jsonvalues import loads, write_json


def _strict(text: str) -> object:
    def refuse(token: str) -> None:
        raise ValueError(f"non-strict JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


def test_write_json_keeps_infinities_as_strings_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text('{"old": true}')
    write_json(path, {"mae": math.inf, "low": -math.inf, "n": 3, "at": tmp_path}, default=str)
    text = path.read_text()
    assert _strict(text) == {"mae": "inf", "low": "-inf", "n": 3, "at": str(tmp_path)}
    assert loads(text)["mae"] == math.inf
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_strict_reader_refuses_what_json_dumps_would_write() -> None:
    # The check above can fail: plain json.dumps writes the constant Infinity.
    with pytest.raises(ValueError, match="Infinity"):
        _strict(json.dumps({"mae": math.inf}))
