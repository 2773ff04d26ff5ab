"""`medvision eval` drives the model backends with nothing but command-line options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medvision.cli.app import app
from medvision.runs.records import read_records
from medvision.testing.fake_openai import FakeOpenAIServer

runner = CliRunner()


def test_eval_openai_against_a_local_server(mini_store: Path, tmp_path: Path) -> None:
    with FakeOpenAIServer(model="fake-vlm", answer="<answer>12.5</answer>") as server:
        result = runner.invoke(
            app,
            [
                "eval",
                str(mini_store),
                "-o",
                str(tmp_path / "run"),
                "--backend",
                "openai",
                "--model",
                "fake-vlm",
                "--image-policy",
                "native",
                "--base-url",
                server.url,
                "--families",
                "ad",
                "--protocol",
                "official",
                "--concurrency",
                "4",
            ],
        )
        assert result.exit_code == 0, result.output
        assert len(server.requests) > 0
    records = read_records(tmp_path / "run" / "records.jsonl")
    assert records and all(r.parsed == (12.5,) for r in records)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["protocol"]["name"] == "official"


@pytest.mark.slow
def test_eval_hf_on_a_tiny_local_model(mini_store: Path, tmp_path: Path) -> None:
    from medvision.testing.tiny_vlm import build_tiny_qwen2_vl

    model = build_tiny_qwen2_vl(tmp_path / "tiny")
    result = runner.invoke(
        app,
        [
            "eval",
            str(mini_store),
            "-o",
            str(tmp_path / "run"),
            "--backend",
            "hf",
            "--model",
            str(model),
            "--families",
            "ad",
            "--limit",
            "2",
            "--max-new-tokens",
            "8",
            "--image-policy",
            "qwen2.5-vl",
        ],
    )
    assert result.exit_code == 0, result.output
    records = read_records(tmp_path / "run" / "records.jsonl")
    assert len(records) == 2 * 2  # 2 per configuration: (mini, ad, sagittal, distance|angle)
    # A random tiny model writes gibberish: every answer is recorded and failures counted.
    assert all(r.status in {"ok", "no_answer", "too_few_numbers"} for r in records)
    assert records[0].seen_hw[0] % 28 == 0
    # Truncation is visible: a random model runs to the 8-token limit without an end token.
    assert all(r.finish_reason in {"stop", "length"} for r in records)
    cut = [r for r in records if r.finish_reason == "length"]
    assert cut and all(r.completion_tokens == 8 for r in cut)
    assert all(r.prompt and r.prompt.startswith("Task:") for r in records)
    used = json.loads((tmp_path / "run" / "run.json").read_text())["backend_settings"]
    assert used["generation_used"]["max_new_tokens"] == 8
    assert used["generation_used"]["do_sample"] is False


def test_eval_structured_outputs_sends_each_family_its_schema(
    mini_store: Path, tmp_path: Path
) -> None:
    with FakeOpenAIServer(model="fake-vlm", answer='{"value": 12.5}') as server:
        result = runner.invoke(
            app,
            [
                "eval",
                str(mini_store),
                "-o",
                str(tmp_path / "run"),
                "--backend",
                "openai",
                "--model",
                "fake-vlm",
                "--image-policy",
                "native",
                "--base-url",
                server.url,
                "--families",
                "ad,tl",
                "--limit",
                "2",
                "--protocol",
                "strict",
                "--prompt-style",
                "json",
                "--structured-outputs",
            ],
        )
        assert result.exit_code == 0, result.output
        formats = [r.body.get("response_format") for r in server.requests]
    assert formats and all(f and f["type"] == "json_schema" for f in formats)
    schemas = {json.dumps(f["json_schema"]["schema"], sort_keys=True) for f in formats}
    assert len(schemas) == 2  # one schema per task family in the run
