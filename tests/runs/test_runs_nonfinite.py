"""Non-finite values survive records, summaries, score and reports exactly."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

from medvision.metrics.jsonvalues import dumps, loads
from medvision.runs.records import RECORDS_NAME, read_records, record_from_json, record_to_json
from medvision.runs.report import write_reports
from medvision.runs.runner import SUMMARY_NAME, Runner, RunSpec, rescore
from medvision.testing.fake_openai import FakeOpenAIServer


def _same(a: object, b: object) -> bool:
    """Equality where NaN equals NaN (records keep NaN metrics)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_an_answer_too_large_for_float32_round_trips(mini_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    spec = RunSpec(
        dataset_dir=str(mini_store),
        backend="openai",
        model="fake-vlm",
        protocol="official",
        families=("tl", "ad"),
        limit=2,
        backend_options={"concurrency": 2},
    )
    with FakeOpenAIServer(answer="<answer>1e39, 1e39</answer>") as srv:
        spec = RunSpec(**{**spec.__dict__, "backend_options": {"base_url": srv.url}})
        summary = Runner(spec, out).run()
    records = read_records(out / RECORDS_NAME)
    assert records and all(r.parsed is not None for r in records)
    assert all(v == math.inf for r in records for v in r.parsed or ())  # the official float32
    assert any(r.metrics["mae"] == math.inf for r in records)
    for r in records:
        assert _same(asdict(record_from_json(record_to_json(r))), asdict(r))
    # The summary returned equals the one read back.
    assert loads((out / SUMMARY_NAME).read_text()) == summary
    # score and the report helpers read it all without crashing.
    again = rescore(out)
    assert loads((out / SUMMARY_NAME).read_text()) == again
    assert again["tl"] == summary["tl"] and again["ad"] == summary["ad"]
    rows = write_reports([out], tmp_path / "report", bootstrap=20, formats=("md", "json", "html"))
    assert rows[0]["num_records"] == len(records)
    assert "Infinity" not in (tmp_path / "report" / "leaderboard.json").read_text()


def test_json_values_are_strict_and_lossless() -> None:
    value = {"a": [math.inf, -math.inf, 1.5, None], "b": {"c": math.nan}, "inf": "x"}
    text = dumps(value)
    assert "Infinity" not in text and "NaN" not in text
    back = loads(text)
    assert back["a"][:3] == [math.inf, -math.inf, 1.5] and back["a"][3] is None
    assert math.isnan(back["b"]["c"]) and back["inf"] == "x"  # keys are never decoded
