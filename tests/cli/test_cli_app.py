from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from medvision.cli.app import app

runner = CliRunner()


def _commands(group: typer.Typer, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for cmd in group.registered_commands:
        out.append((*prefix, cmd.name or cmd.callback.__name__.replace("_", "-")))
    for sub in group.registered_groups:
        out.append((*prefix, sub.name))
        out += _commands(sub.typer_instance, (*prefix, sub.name))
    return out


def test_every_command_has_help() -> None:
    commands = _commands(app)
    assert {("demo",), ("build",), ("eval",), ("score",), ("report",), ("datasets", "list")} <= set(
        commands
    )
    for cmd in commands:
        result = runner.invoke(app, [*cmd, "--help"])
        assert result.exit_code == 0, (cmd, result.output)
        assert "Usage" in result.output


def test_demo_runs_end_to_end_and_resumes(tmp_path: Path) -> None:
    args = ["demo", "--out", str(tmp_path), "--cases", "2", "--limit", "20", "--workers", "1"]
    first = runner.invoke(app, args, env={"COLUMNS": "160"})
    assert first.exit_code == 0, first.output
    assert "leaderboard" in first.output.lower()
    # paper-v1 baselines on the default official-1.4.0 build: one ground-truth warning.
    assert first.output.count("warning:") == 1 and "official-1.4.0" in first.output
    report = tmp_path / "report" / "report.html"
    assert report.exists() and (tmp_path / "report" / "leaderboard.md").exists()
    summary = json.loads((tmp_path / "runs" / "oracle" / "summary.json").read_text())
    assert summary["detection"]["all"]["IoU"] > 0.999
    records = (tmp_path / "runs" / "random" / "records.jsonl").read_text().splitlines()
    # A second demo resumes: nothing is evaluated twice.
    second = runner.invoke(app, args, env={"COLUMNS": "160"})
    assert second.exit_code == 0, second.output
    again = (tmp_path / "runs" / "random" / "records.jsonl").read_text().splitlines()
    assert again == records


def test_datasets_list_and_info() -> None:
    listed = runner.invoke(app, ["datasets", "list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "mini" in listed.output
    info = runner.invoke(app, ["datasets", "info", "mini"])
    assert info.exit_code == 0
    assert "lateral ventricle" in info.output


def test_bad_arguments_give_clear_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", str(tmp_path), "--out", str(tmp_path / "r")])
    assert result.exit_code != 0
    assert str(tmp_path) in (result.output + str(result.exception))
    bad = runner.invoke(app, ["eval", str(tmp_path), "-o", str(tmp_path / "r"), "--planes", "X"])
    assert bad.exit_code != 0 and "planes" in bad.output


def test_backend_specific_options_are_refused_for_other_backends(tmp_path: Path) -> None:
    for flag, value, owner in (
        ("--concurrency", "4", "openai"),
        ("--device", "cuda", "hf"),
        ("--noise", "0.1", "oracle"),
    ):
        result = runner.invoke(
            app,
            ["eval", str(tmp_path), "-o", str(tmp_path / "r"), "--backend", "random", flag, value],
        )
        assert result.exit_code != 0
        assert f"{flag} applies to the {owner} backend" in result.output
