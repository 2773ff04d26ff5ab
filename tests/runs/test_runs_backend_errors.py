"""Infrastructure errors are not model errors: preflight, stop after K, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medvision.cli.app import app
from medvision.runs.records import RECORDS_NAME, read_records
from medvision.runs.runner import RunError, Runner, RunSpec
from medvision.testing.fake_openai import FakeOpenAIServer, FakeRequest, Fault, FaultKind

cli = CliRunner()


def _spec(store: Path, url: str, model: str = "fake-vlm", **options: object) -> RunSpec:
    return RunSpec(
        dataset_dir=str(store),
        backend="openai",
        model=model,
        protocol="official",
        families=("ad",),
        limit=3,
        backend_options={"base_url": url, "backoff_s": 0.01, "max_retries": 1, **options},
        batch_size=2,
    )


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("no_v1", r"HTTP 404 .*ends in /v1"),
        ("model", r"model 'other-vlm' is not served .*fake-vlm"),
        ("key", r"refused the API key \(HTTP 401"),
    ],
)
def test_preflight_turns_a_broken_backend_into_one_line(
    mini_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, match: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "wrong-key")
    with FakeOpenAIServer(api_key="right-key" if case == "key" else None) as srv:
        url = srv.url.removesuffix("/v1") if case == "no_v1" else srv.url
        if case != "key":
            monkeypatch.delenv("OPENAI_API_KEY")
        model = "other-vlm" if case == "model" else "fake-vlm"
        with pytest.raises(RunError, match=match):
            Runner(_spec(mini_store, url, model), tmp_path / "run").run()
        assert srv.requests == []  # no sample was sent
    assert read_records(tmp_path / "run" / RECORDS_NAME) == []


def test_cli_preflight_failure_is_one_line_and_exit_1(mini_store: Path, tmp_path: Path) -> None:
    with FakeOpenAIServer() as srv:
        url = srv.url.removesuffix("/v1")
        args = ["eval", str(mini_store), "--out", str(tmp_path / "run"), "--backend", "openai"]
        args += ["--model", "fake-vlm", "--base-url", url, "--families", "ad", "--limit", "2"]
        from medvision.cli.app import main

        with pytest.raises(SystemExit) as stop:
            _main(main, args)
    assert stop.value.code == 1


def _main(main: object, args: list[str]) -> None:
    import sys

    old = sys.argv
    sys.argv = ["medvision", *args]
    try:
        main()  # type: ignore[operator]
    finally:
        sys.argv = old


def test_run_stops_after_k_fatal_errors_in_a_row(mini_store: Path, tmp_path: Path) -> None:
    # The key is revoked after the preflight: every completion gets 401.
    def revoked(req: FakeRequest) -> Fault:
        return Fault(FaultKind.HTTP_ERROR, status=401, message="key revoked")

    with FakeOpenAIServer(faults=revoked) as srv:
        spec = _spec(mini_store, srv.url, concurrency=1)
        spec = RunSpec(**{**spec.__dict__, "families": ("detection",), "limit": 0})
        runner = Runner(spec, tmp_path / "run")
        total = len(runner.samples())
        with pytest.raises(RunError, match=r"stopped after 4 backend errors in a row"):
            runner.run(stop_after_errors=3)
        asked = len(srv.requests)
    assert total > 8
    records = read_records(tmp_path / "run" / RECORDS_NAME)
    # Batches of 4 (4 x concurrency): the run stopped after its first batch.
    assert len(records) == asked < total
    assert {r.status for r in records} == {"backend_error"}
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["outcomes"]["backend_error"] == len(records)


def _eval_args(store: Path, out: Path, url: str) -> list[str]:
    return [
        "eval",
        str(store),
        "--out",
        str(out),
        "--backend",
        "openai",
        "--model",
        "fake-vlm",
        "--base-url",
        url,
        "--families",
        "ad",
        "--limit",
        "3",
        "--max-retries",
        "0",
        "--image-policy",  # "fake-vlm" is no model family: auto would refuse it
        "native",
    ]


def test_eval_exits_non_zero_while_backend_errors_remain(mini_store: Path, tmp_path: Path) -> None:
    # One request in three fails with a 400 (not fatal: the run goes on).
    def some(req: FakeRequest) -> Fault | None:
        return Fault(FaultKind.HTTP_ERROR, status=400) if req.index % 3 == 0 else None

    out = tmp_path / "run"
    with FakeOpenAIServer(faults=some) as srv:
        first = cli.invoke(app, _eval_args(mini_store, out, srv.url), env={"COLUMNS": "200"})
        assert first.exit_code == 3, first.output
        assert "got no answer from the backend" in first.output
        assert "--allow-errors" in first.output
        allowed = cli.invoke(
            app, [*_eval_args(mini_store, out, srv.url), "--allow-errors"], env={"COLUMNS": "200"}
        )
        assert allowed.exit_code == 0, allowed.output
        srv.faults = None
        fixed = cli.invoke(
            app, [*_eval_args(mini_store, out, srv.url), "--retry-errors"], env={"COLUMNS": "200"}
        )
    assert fixed.exit_code == 0, fixed.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["outcomes"]["backend_error"] == 0


@pytest.mark.parametrize(("status", "fatal"), [(401, True), (403, True), (404, True), (400, False)])
def test_backend_marks_errors_a_retry_cannot_fix(status: int, fatal: bool) -> None:
    from medvision.backends import ChatRequest, Message, TextPart
    from medvision.backends.openai_compat import OpenAICompatBackend

    def fail(req: FakeRequest) -> Fault:
        return Fault(FaultKind.HTTP_ERROR, status=status)

    request = ChatRequest("r1", (Message("user", (TextPart("hi"),)),))
    with FakeOpenAIServer(faults=fail) as srv:
        backend = OpenAICompatBackend("fake-vlm", srv.url, max_retries=0)
        (answer,) = backend.generate([request])
        url = srv.url
    assert answer.error is not None and answer.error_fatal is fatal
    # A refused connection, once its retries are spent, is fatal too.
    dead = OpenAICompatBackend("fake-vlm", url, max_retries=1, backoff_s=0.01)
    (answer,) = dead.generate([request])
    assert answer.error is not None and "cannot connect" in answer.error and answer.error_fatal
