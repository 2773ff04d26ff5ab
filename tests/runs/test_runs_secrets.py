"""An API key from the environment never reaches records, cache, manifest, summary, report, logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from medvision.runs.report import write_reports
from medvision.runs.runner import Runner, RunSpec, redact
from medvision.testing.fake_openai import FakeOpenAIServer, FakeRequest, Fault, FaultKind

KEY = "sk-proj-MEDVISIONTESTKEY-7f3e9a2b5c"


def test_api_key_is_nowhere_but_the_header(
    mini_store: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MEDVISION_TEST_KEY", KEY)

    # A careless server: it echoes the key in some errors and in some answers.
    def faults(r: FakeRequest) -> Fault | None:
        if r.index % 5 == 0:
            return Fault(FaultKind.HTTP_ERROR, status=503, message=f"overloaded (key {KEY})")
        return None

    def answer(r: FakeRequest) -> str:
        return (
            f"<answer>0.2, 0.2, 0.5, 0.5</answer> {KEY}"
            if r.index % 3 == 0
            else "<answer>0.2, 0.2, 0.5, 0.5</answer>"
        )

    run_dir = tmp_path / "run"
    with (
        FakeOpenAIServer(api_key=KEY, faults=faults, answer=answer) as srv,
        caplog.at_level(logging.DEBUG),
    ):
        spec = RunSpec(
            dataset_dir=str(mini_store),
            backend="openai",
            model="fake-vlm",
            protocol="official",
            limit=2,
            backend_options={
                "base_url": srv.url,
                "api_key_env": "MEDVISION_TEST_KEY",
                "max_retries": 0,
                "backoff_s": 0.01,
            },
        )
        summary = Runner(spec, run_dir).run()
        write_reports([run_dir], tmp_path / "report")
    # The key did work (the server refuses requests without it) and errors did happen.
    assert summary["status_counts"].get("ok", 0) > 0
    assert summary["status_counts"].get("backend_error", 0) > 0
    files = [p for p in (*run_dir.iterdir(), *(tmp_path / "report").iterdir()) if p.is_file()]
    names = {p.name for p in files}
    assert {"records.jsonl", "cache.jsonl", "run.json", "summary.json", "report.html"} <= names
    for path in files:
        assert KEY not in path.read_text(errors="replace"), path.name
    captured = capfd.readouterr()
    assert KEY not in caplog.text + captured.out + captured.err
    assert "<redacted>" in (run_dir / "records.jsonl").read_text()  # the echoes were scrubbed


def test_redact_removes_secret_looking_options() -> None:
    got = redact(
        {
            "api_key": "sk-1",
            "api_key_env": "OPENAI_API_KEY",
            "base_url": ["https://user:pw@host/v1", "http://h2/v1"],
            "extra_body": {"auth_token": "t", "top_k": 5, "X-Api-Key": "k2"},
            "password": "",
            # Counts named after tokens are settings, not secrets (they stay readable).
            "generation": {"max_new_tokens": 1024, "max_tokens": 16},
        }
    )
    assert got == {
        "api_key": "<redacted>",
        "api_key_env": "OPENAI_API_KEY",
        "base_url": ["https://host/v1", "http://h2/v1"],
        "extra_body": {"auth_token": "<redacted>", "top_k": 5, "X-Api-Key": "<redacted>"},
        "password": "",
        "generation": {"max_new_tokens": 1024, "max_tokens": 16},
    }


def test_secret_names_are_whole_words_and_urls_lose_query_secrets() -> None:
    from medvision.backends.base import is_secret_name
    from medvision.backends.openai_compat import OpenAICompatBackend

    # Every query value is redacted, whatever its name (issue 10 point 9).
    assert redact({"base_url": "http://h/v1?api_key=SECRET&x=1"}) == {
        "base_url": "http://h/v1?api_key=<redacted>&x=<redacted>"
    }
    assert not is_secret_name("skip_special_tokens") and not is_secret_name("min_tokens")
    assert is_secret_name("X-Api-Key") and is_secret_name("access_token")
    # Settings named after tokens are accepted in extra_body; secrets are still refused.
    OpenAICompatBackend("m", "http://127.0.0.1:9/v1", extra_body={"skip_special_tokens": False})
    with pytest.raises(ValueError, match="secrets"):
        OpenAICompatBackend("m", "http://127.0.0.1:9/v1", extra_body={"api_key": "k"})
