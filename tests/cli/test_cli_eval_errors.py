"""Common mistakes give one line that names the fix; retry limits are the user's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medvision.cli.app import main
from medvision.cli.eval_checks import missing_extra
from medvision.runs.records import RECORDS_NAME
from medvision.testing.fake_openai import FakeOpenAIServer, FakeRequest, Fault, FaultKind


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    old = sys.argv
    sys.argv = ["medvision", *args]
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = int(stop.code or 0)
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert "Traceback" not in output
    return " ".join(lines)


def test_unknown_prompt_style_leaves_no_run_folder(
    mini_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code, text = _run(["eval", str(mini_store), "-o", str(out), "--prompt-style", "foo"], capsys)
    assert code == 1
    assert "unknown prompt style 'foo'; choose one of: paper-v1" in _one_line(text)
    assert not out.exists()


def test_model_folder_that_does_not_exist(
    mini_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["eval", str(mini_store), "-o", str(tmp_path / "r"), "--backend", "hf"]
    code, text = _run([*args, "--model", "/nonexistent/model"], capsys)
    assert code == 2 and "no such folder" in text and "hub id" in text
    assert not (tmp_path / "r").exists()


def test_missing_extra_names_the_pip_line(mini_store: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
        "from medvision.cli.app import main\n"
        f"sys.argv = ['medvision', 'eval', {str(mini_store)!r}, '-o', {str(tmp_path / 'r')!r}, "
        f"'--backend', 'hf', '--model', {str(model)!r}, '--families', 'ad', '--limit', '1', "
        "'--image-policy', 'native']\n"
        "main()\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "COLUMNS": "300"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 1, proc.stderr
    assert 'pip install "medvision-bench[hf]"' in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    err = ModuleNotFoundError("No module named 'trl'", name="trl")
    assert missing_extra(err, ["train", "sft"]) is not None
    assert "[train]" in (missing_extra(ModuleNotFoundError(name="torch"), ["train"]) or "")
    assert missing_extra(ModuleNotFoundError(name="no_such_thing"), []) is None


def test_garbage_line_inside_records(
    mini_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code, _ = _run(["eval", str(mini_store), "-o", str(out), "--limit", "2"], capsys)
    assert code == 0
    lines = (out / RECORDS_NAME).read_text().splitlines(keepends=True)
    lines.insert(3, "this is not json\n")
    (out / RECORDS_NAME).write_text("".join(lines))
    for args in (["score", str(out)], ["eval", str(mini_store), "-o", str(out), "--limit", "2"]):
        code, text = _run(args, capsys)
        line = _one_line(text)
        assert code == 1, text
        assert f"{RECORDS_NAME}:4: not a valid record" in line and "delete that line" in line


def test_eval_pointed_at_a_source_or_demo_folder(
    mini_source: Path, mini_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = _run(["eval", str(mini_source), "-o", str(tmp_path / "a")], capsys)
    assert code == 1 and "DatasetWriter" not in text
    assert "is not a built dataset" in _one_line(text) and "medvision build" in text
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "dataset-n2-s0").symlink_to(mini_store)
    code, text = _run(["eval", str(demo), "-o", str(tmp_path / "b")], capsys)
    assert code == 1 and "dataset-n2-s0" in _one_line(text)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_retry_limits_are_options(
    mini_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every completion is a 503 asking for a 100000 s wait.
    def busy(req: FakeRequest) -> Fault:
        return Fault(FaultKind.HTTP_ERROR, status=503, retry_after="100000")

    out = tmp_path / "run"
    with FakeOpenAIServer(faults=busy) as srv:
        args = ["eval", str(mini_store), "-o", str(out), "--backend", "openai"]
        args += ["--model", "fake-vlm", "--base-url", srv.url, "--families", "ad"]
        args += ["--limit", "1", "--max-retries", "2", "--max-retry-wait", "0.05"]
        args += ["--image-policy", "native"]  # "fake-vlm" is no model family
        code, text = _run(args, capsys)
        attempts = len(srv.requests)
    assert code == 3, text  # finished, every sample a backend error
    summary = json.loads((out / "summary.json").read_text())
    n = summary["outcomes"]["backend_error"]
    assert n == summary["outcomes"]["total"] > 0
    assert attempts == 3 * n  # first try + 2 retries each
    settings = json.loads((out / "run.json").read_text())["backend_settings"]
    assert settings["max_retries"] == 2 and settings["max_retry_after_s"] == 0.05
