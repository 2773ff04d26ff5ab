"""``medvision benchmarks list|show`` and ``medvision eval --benchmark``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medvision.cli.app import app, main

runner = CliRunner()


def test_list_counts_configurations_per_family() -> None:
    result = runner.invoke(app, ["benchmarks", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "paper-main" in x)
    assert [c.strip() for c in line.split("│")[1:6]] == ["paper-main", "28", "10", "5", "SCA"]


def test_show_json_is_an_array_with_the_required_keys(mini_store: Path) -> None:
    result = runner.invoke(
        app, ["benchmarks", "show", "paper-main", "--json", "--dataset-dir", str(mini_store)]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert isinstance(rows, list) and len(rows) == 43
    required = {"dataset", "official_task", "family", "plane", "target", "test_samples", "present"}
    assert all(required <= set(r) for r in rows)
    assert {r["family"] for r in rows} == {"detection", "tl", "ad"}
    assert {r["plane"] for r in rows} <= {"S", "C", "A"}
    # mini holds none of the paper's datasets.
    assert not any(r["present"] for r in rows) and all(r["test_samples"] == 0 for r in rows)
    kits = next(r for r in rows if r["dataset"] == "KiTS23" and r["family"] == "tl")
    assert (kits["official_task"], kits["target"]) == ("01", "kidney tumor")


def test_show_table_flags_unverified_and_counts(mini_store: Path) -> None:
    result = runner.invoke(
        app,
        ["benchmarks", "show", "paper-plane-ood", "--dataset-dir", str(mini_store)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "paper-plane-ood: 70 task configurations" in result.output
    assert "build has 0 of 70 configurations (0 test samples)" in result.output
    assert "note" in result.output


def test_show_unknown_name_fails() -> None:
    result = runner.invoke(app, ["benchmarks", "show", "paper"])
    assert result.exit_code != 0


def test_eval_benchmark_on_mini_refuses_with_one_line(
    mini_store: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["medvision", "eval", str(mini_store), "-o", str(tmp_path / "r"),
            "--backend", "random", "--benchmark", "paper-main"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 1
    out = capsys.readouterr().out
    assert "error: benchmark paper-main" in out and "has none of its 43" in out


def test_generation_limit_defaults_to_the_protocols(mini_store: Path, tmp_path: Path) -> None:
    """1.2.1 generates up to 4096 new tokens, c221615 up to 1024; an explicit value wins."""
    cases = [
        ("official", [], 4096),
        ("paper-v1", [], 1024),
        ("official", ["--max-new-tokens", "77"], 77),
    ]
    for i, (protocol, extra, expected) in enumerate(cases):
        out = tmp_path / f"r{i}"
        args = ["eval", str(mini_store), "-o", str(out), "--backend", "oracle",
                "--protocol", protocol, "--limit", "1", "--families", "ad", *extra]  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        spec = json.loads((out / "run.json").read_text())["spec"]
        assert spec["generation"]["max_new_tokens"] == expected


def test_show_counts_the_builds_test_samples_per_configuration(
    mini_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With mini given official fields, every configuration is present with its test count."""
    import medvision.catalog.benchmarks as benchmarks
    from medvision.catalog.registry import catalog
    from medvision.catalog.spec import DatasetSpec
    from medvision.cli.benchmark_cmds import benchmark_rows
    from medvision.store import open_dataset

    data = catalog()["mini"].model_dump()
    data["tasks"][0]["detection"] |= {"official_task": "01", "official_planes": ["A", "C"]}
    data["tasks"][1]["official"] = {"ad": "01", "ad_planes": ["S"]}
    mini = DatasetSpec.model_validate(data)
    monkeypatch.setattr(benchmarks, "catalog", lambda: {"mini": mini})
    rows = benchmark_rows(benchmarks.get_benchmark("all"), mini_store)
    test = open_dataset(mini_store).samples(split="test")
    expected = {
        ("detection", "A"): sum(s.family.value == "detection" and s.plane == 2 for s in test),
        ("detection", "C"): sum(s.family.value == "detection" and s.plane == 1 for s in test),
        ("ad", "S"): sum(s.family.value == "ad" for s in test),
    }
    got: dict[tuple[str, str], int] = {}
    for r in rows:
        got[(r["family"], r["plane"])] = got.get((r["family"], r["plane"]), 0) + r["test_samples"]
    assert got == expected and all(v > 0 for v in expected.values())
    assert all(r["present"] for r in rows)
    assert {r["metric_type"] for r in rows if r["family"] == "ad"} == {"distance", "angle"}


def test_show_flags_configurations_whose_prompt_text_is_not_verified() -> None:
    result = runner.invoke(app, ["benchmarks", "show", "paper-main", "--json"])
    assert result.exit_code == 0, result.output
    rows = {(r["dataset"], r["family"], r["official_task"]): r for r in json.loads(result.output)}
    skm = rows[("SKM-TEA", "detection", "01")]  # the reference quotes its description and names
    assert skm["prompt_verified"] is True and skm["prompt_notes"] == []
    brats = rows[("BraTS24", "detection", "01")]
    assert brats["prompt_verified"] is False and brats["prompt_notes"]
    ours = runner.invoke(
        app, ["benchmarks", "show", "paper-main", "--json", "--prompt-style", "json"]
    )
    assert not any(r["prompt_verified"] for r in json.loads(ours.output))
