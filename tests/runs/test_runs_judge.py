"""``--parser judge``: an LLM judge (the fake OpenAI server, scripted) extracts the answers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medvision.cli.app import app
from medvision.runs.integrity import records_digest, summary_is_current
from medvision.runs.judge import (
    JUDGE_CACHE_NAME,
    JudgeSpec,
    judge_run,
    parse_judged,
)
from medvision.runs.records import RECORDS_NAME, read_records
from medvision.runs.runner import Runner, RunSpec
from medvision.runs.scoring import rescore
from medvision.runs.spec import RunError
from medvision.testing.fake_openai import FakeOpenAIServer, FakeRequest, Fault, FaultKind

# The last-k regex reads "8.25, 90" here; the stated answer is "12.5, 8.25".
ANSWER = "My estimate: 12.5, 8.25. Confidence 90 percent."


def _judge_reply(quote: str | None) -> str:
    return json.dumps({"quote": quote})


def _main_run(store: Path, out: Path) -> None:
    with FakeOpenAIServer(model="m", answer=ANSWER) as srv:
        spec = RunSpec(
            dataset_dir=str(store),
            backend="openai",
            model="m",
            protocol="paper-v1",
            families=("tl",),
            limit=2,
            backend_options={"base_url": srv.url, "concurrency": 2},
        )
        Runner(spec, out).run()


def _spec(url: str) -> JudgeSpec:
    return JudgeSpec(
        model="judge", base_url=(url,), backend_options={"max_retries": 0, "backoff_s": 0.01}
    )


def test_judge_reparses_keeps_its_output_and_resumes(mini_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _main_run(mini_store, out)
    regex = read_records(out / RECORDS_NAME)
    assert regex and all(r.parsed == (8.25, 90.0) for r in regex)

    def judge(req: FakeRequest) -> str:
        assert ANSWER in req.text and "two numbers" in req.text
        return _judge_reply("12.5, 8.25")

    with FakeOpenAIServer(model="judge", answer=judge) as srv:
        summary = judge_run(out, _spec(srv.url))
        asked = len(srv.requests)
        again = judge_run(out, _spec(srv.url))  # everything cached: no new request
        assert len(srv.requests) == asked == len(regex)
    records = read_records(out / RECORDS_NAME)
    assert all(r.parsed == (12.5, 8.25) and r.status == "ok" for r in records)
    assert all(r.judge_output == _judge_reply("12.5, 8.25") for r in records)
    assert summary["run"]["parser"] == "judge" and summary["run"]["judge"]["model"] == "judge"
    assert again["run"]["parser"] == "judge"
    assert len((out / JUDGE_CACHE_NAME).read_text().splitlines()) == len(records)
    # The judged summary is tied to the judged records: a same-size edit that keeps the
    # records' mtime is still seen as stale.
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["records_digest"] == records_digest(out / RECORDS_NAME)
    assert summary_is_current(on_disk, out / RECORDS_NAME)
    path = out / RECORDS_NAME
    st = path.stat()
    text = path.read_text()
    edited = text.replace('"status":"ok"', '"status":"xx"', 1)
    assert edited != text
    path.write_text(edited)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size
    assert not summary_is_current(on_disk, path)
    path.write_text(text)
    # Re-parsing re-reads the stored judge reply (no judge server needed).
    rescore(out, reparse=True)
    assert all(r.parsed == (12.5, 8.25) for r in read_records(out / RECORDS_NAME))


def test_failed_judge_requests_leave_records_unchanged(mini_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _main_run(mini_store, out)
    before = (out / RECORDS_NAME).read_text()
    n = len(before.splitlines())

    def fail_second(req: FakeRequest) -> Fault | None:
        return Fault(FaultKind.HTTP_ERROR, status=400) if req.index == 1 else None

    with (
        FakeOpenAIServer(
            model="judge", answer=_judge_reply("12.5, 8.25"), faults=fail_second
        ) as srv,
        pytest.raises(RunError, match=f"1 of {n} requests failed"),
    ):
        judge_run(out, _spec(srv.url))
    assert (out / RECORDS_NAME).read_text() == before
    # The answers that came back are cached: the next pass asks only the failed one.
    with FakeOpenAIServer(model="judge", answer=_judge_reply("12.5, 8.25")) as srv:
        judge_run(out, _spec(srv.url))
        assert len(srv.requests) == 1


@pytest.mark.parametrize(
    ("reply", "status", "reason"),
    [
        (_judge_reply("13.0, 9.0"), "no_answer", "judge quote not in the response"),
        (_judge_reply(None), "no_answer", "judge found no final answer"),
        ("I think it is 12.5", "no_answer", "no JSON object"),
        (_judge_reply("12.5, 8.25"), "ok", "judge"),
        (_judge_reply("12.5,   8.25."), "ok", "judge"),  # whitespace runs compare as one
    ],
)
def test_parse_judged_checks_the_quote(reply: str, status: str, reason: str) -> None:
    p = parse_judged(ANSWER, reply, "tl", "paper-v1", (100, 100))
    assert p.status.value == status
    assert reason in p.reason
    if p.ok:
        assert p.values == (12.5, 8.25)


def test_official_protocol_reads_the_quote_as_the_answer_block() -> None:
    p = parse_judged(
        "So <answer>1,234.5</answer>", _judge_reply("1,234.5"), "ad", "official", (1, 1)
    )
    assert p.values == (1234.5,)  # the 1.2.1 regex strips the thousands comma


def test_eval_parser_judge_from_the_command_line(mini_store: Path, tmp_path: Path) -> None:
    with (
        FakeOpenAIServer(model="m", answer=ANSWER) as main_srv,
        FakeOpenAIServer(model="judge", answer=_judge_reply("12.5, 8.25")) as judge_srv,
    ):
        result = CliRunner().invoke(
            app,
            [
                "eval",
                str(mini_store),
                "-o",
                str(tmp_path / "run"),
                "--backend",
                "openai",
                "--model",
                "m",
                "--image-policy",
                "native",
                "--base-url",
                main_srv.url,
                "--families",
                "tl",
                "--limit",
                "1",
                "--parser",
                "judge",
                "--judge-model",
                "judge",
                "--judge-base-url",
                judge_srv.url,
            ],
        )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["run"]["parser"] == "judge"
    assert all(r.parsed == (12.5, 8.25) for r in read_records(tmp_path / "run" / RECORDS_NAME))
    bad = CliRunner().invoke(
        app,
        ["eval", str(mini_store), "-o", str(tmp_path / "r2"), "--parser", "judge"],
    )
    assert bad.exit_code != 0 and "--judge-model" in bad.output


def test_a_judged_run_is_not_extended_by_the_regex_parser(mini_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _main_run(mini_store, out)
    with FakeOpenAIServer(model="judge", answer=_judge_reply("12.5, 8.25")) as srv:
        judge_run(out, _spec(srv.url))
    result = CliRunner().invoke(
        app, ["eval", str(mini_store), "-o", str(out), "--backend", "oracle", "--families", "tl"]
    )
    assert isinstance(result.exception, RunError)
    assert "--parser judge" in str(result.exception)


def test_judge_command_on_a_finished_run(mini_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _main_run(mini_store, out)
    with FakeOpenAIServer(model="judge", answer=_judge_reply("12.5, 8.25")) as srv:
        result = CliRunner().invoke(
            app, ["judge", str(out), "--judge-model", "judge", "--judge-base-url", srv.url]
        )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "judge.json").read_text())
    assert manifest["judge_model"] == "judge" and manifest["judge_prompt"] == "medvision-judge-v1"
    assert all(r.judge_output is not None for r in read_records(out / RECORDS_NAME))
