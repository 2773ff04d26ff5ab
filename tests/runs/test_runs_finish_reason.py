"""Records keep token counts and why generation stopped; truncation explains a failure."""

from __future__ import annotations

from pathlib import Path

from medvision.backends import GenerationConfig
from medvision.runs.records import RECORDS_NAME, read_records
from medvision.runs.runner import Runner, RunSpec
from medvision.testing.fake_openai import FakeOpenAIServer


def _run(store: Path, out: Path, url: str, max_new_tokens: int) -> list:
    spec = RunSpec(
        dataset_dir=str(store), backend="openai", model="fake-vlm", families=("ad",), limit=2,
        generation=GenerationConfig(max_new_tokens=max_new_tokens),
        backend_options={"base_url": url, "concurrency": 2},
    )  # fmt: skip
    Runner(spec, out).run()
    return read_records(out / RECORDS_NAME)


def test_truncated_answers_are_recorded_as_such(mini_store: Path, tmp_path: Path) -> None:
    long_answer = "Let me think step by step about the landmarks first and then 42.0"
    with FakeOpenAIServer(model="fake-vlm", answer=long_answer) as server:
        cut = _run(mini_store, tmp_path / "cut", server.url, max_new_tokens=4)
        whole = _run(mini_store, tmp_path / "whole", server.url, max_new_tokens=64)
    assert cut and all(r.finish_reason == "length" for r in cut)
    assert all(r.status != "ok" and "cut at the token limit" in r.reason for r in cut)
    assert all(r.completion_tokens == 4 and r.prompt_tokens for r in cut)
    assert all(r.finish_reason == "stop" and r.parsed == (42.0,) for r in whole)
