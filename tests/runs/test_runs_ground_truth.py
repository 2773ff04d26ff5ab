"""The build's ground-truth version travels to samples, records, the run summary and reports;
``paper-v1`` on a build that is not ``official-1.0.0`` warns once."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medvision.builder.engine import BuildOptions, BuildOptionsMismatch, build_dataset
from medvision.catalog.registry import get_spec
from medvision.cli.app import app
from medvision.reports import leaderboard, to_markdown
from medvision.runs.ground_truth import GroundTruthWarning
from medvision.runs.records import RECORDS_NAME, read_records
from medvision.runs.report import write_reports
from medvision.runs.runner import Runner, RunSpec
from medvision.schema import TaskFamily
from medvision.store import open_dataset


@pytest.fixture(scope="module")
def store_v100(mini_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mini_v100")
    options = BuildOptions(workers=1, max_cases=2, annotation="official-1.0.0")
    build_dataset(get_spec("mini"), mini_source, out, options)
    return out


def _gt_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, GroundTruthWarning)]


def test_the_build_records_its_annotation_everywhere(store_v100: Path) -> None:
    ds = open_dataset(store_v100)
    assert ds.manifest.annotation == "official-1.0.0"
    assert ds.manifest.options["annotation"] == "official-1.0.0"
    samples = ds.samples()
    assert samples and {s.annotation for s in samples} == {"official-1.0.0"}
    # Every family carries it, not only T/L.
    assert {s.family for s in samples} >= {TaskFamily.DETECTION, TaskFamily.ANGLE_DISTANCE}


def test_a_store_refuses_to_resume_under_another_annotation(
    mini_source: Path, store_v100: Path
) -> None:
    options = BuildOptions(workers=1, max_cases=2, annotation="precise")
    with pytest.raises(BuildOptionsMismatch, match="annotation"):
        build_dataset(get_spec("mini"), mini_source, store_v100, options)


def test_unknown_annotation_is_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("official-1.0.0, official-1.4.0, precise")):
        BuildOptions(annotation="official-2.0")  # type: ignore[arg-type]


def test_paper_v1_on_a_140_build_warns_once_and_says_so(mini_store: Path, tmp_path: Path) -> None:
    spec = RunSpec(dataset_dir=str(mini_store), backend="oracle", families=("tl",), limit=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runner = Runner(spec, tmp_path / "run")
        summary = runner.run()
    notes = _gt_warnings(caught)
    assert len(notes) == 1
    assert "official-1.4.0" in notes[0] and "official-1.0.0" in notes[0]
    assert summary["run"]["annotation"] == "official-1.4.0"
    records = read_records(tmp_path / "run" / RECORDS_NAME)
    assert records and {r.annotation for r in records} == {"official-1.4.0"}
    md = to_markdown(leaderboard({"oracle": summary}))
    assert "Ground truth (T/L): official-1.4.0" in md
    write_reports([tmp_path / "run"], tmp_path / "report", bootstrap=10)
    for name in ("leaderboard.md", "report.html"):
        assert "Ground truth (T/L): official-1.4.0" in (tmp_path / "report" / name).read_text()


def test_no_warning_on_the_papers_ground_truth_or_other_protocols(
    mini_store: Path, store_v100: Path, tmp_path: Path
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Runner(RunSpec(dataset_dir=str(store_v100), backend="oracle"), tmp_path / "a")
        Runner(
            RunSpec(dataset_dir=str(mini_store), backend="oracle", protocol="official"),
            tmp_path / "b",
        )
    assert _gt_warnings(caught) == []


def test_cli_build_takes_annotation_and_eval_prints_the_warning(
    mini_source: Path, tmp_path: Path
) -> None:
    cli = CliRunner()
    bad = cli.invoke(
        app, ["build", str(mini_source), "-o", str(tmp_path / "x"), "--annotation", "v1"]
    )
    assert bad.exit_code == 2
    assert "official-1.4.0" in bad.output
    out = tmp_path / "ds"
    args = ["build", str(mini_source), "-o", str(out), "--max-cases", "1", "--workers", "1"]
    built = cli.invoke(app, [*args, "--annotation", "precise"])
    assert built.exit_code == 0, built.output
    assert open_dataset(out).manifest.annotation == "precise"
    ev = cli.invoke(
        app,
        ["eval", str(out), "--backend", "oracle", "--out", str(tmp_path / "run"), "--limit", "2"],
        env={"COLUMNS": "200"},
    )
    assert ev.exit_code == 0, ev.output
    assert ev.output.count("warning:") == 1
    assert "ground truth is precise" in " ".join(ev.output.split())
