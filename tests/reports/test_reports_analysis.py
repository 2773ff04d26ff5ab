"""Report analyses: gallery choice and overlays, failure notes, intervals, formats, compare."""

from __future__ import annotations

import builtins
import csv
import itertools
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from medvision.cli.app import app
from medvision.metrics import get_protocol, summarize_run
from medvision.metrics.headline import prepare
from medvision.reports.html import RunAnalysis, select_gallery, write_html_report
from medvision.reports.plots import render_plots
from medvision.reports.tables import ci_markdown, failure_notes, format_interval
from medvision.runs.report import write_reports
from medvision.runs.runner import Runner, RunSpec
from medvision.schema import Plane, Record, Sample, TaskFamily
from record_factory import make_record


def rec(
    family: str, parsed: tuple[float, ...] | None, target: tuple[float, ...], **kw: Any
) -> Record:
    return make_record(
        family,
        parsed,
        target,
        **{"prefix": "g", "image_hw": (100, 200), "seen_hw": (100, 200), **kw},
    )


def test_gallery_is_diverse_deterministic_and_prefers_mid_size_boxes() -> None:
    records = []
    for ds, plane, label in itertools.product(("D1", "D2"), (0, 2), ("kidney", "liver")):
        for side in (0.02, 0.3, 0.9):  # box areas 0.0004, 0.09, 0.81
            t = (0.0, 0.0, side, side)
            records.append(rec("detection", t, t, dataset=ds, plane=plane, label_name=label))
    chosen = select_gallery(records, TaskFamily.DETECTION, 8)
    # One per (dataset, plane, label) before any repeats, each the mid-size box.
    assert len({(r.dataset, r.plane, r.label_name) for r in chosen}) == 8
    assert all(r.target[2] == 0.3 for r in chosen)
    shuffled = records[:]
    random.Random(0).shuffle(shuffled)
    assert select_gallery(shuffled, TaskFamily.DETECTION, 8) == chosen
    assert len(select_gallery(records, TaskFamily.DETECTION, 100)) == len(records)
    assert select_gallery(records, TaskFamily.TUMOR_LESION_SIZE, 5) == []


def _sample(
    family: TaskFamily, points: tuple[tuple[float, float], ...], sid: str, **kw: Any
) -> Sample:
    return Sample(
        sample_id=sid, dataset="D1", case_id="c", split="test", family=family,
        plane=Plane.AXIAL, slice_index=0, label_id=None, label_name="x", label_kind="tumour",
        label_group="X", modality="CT", image_description="", image_key="k",
        image_hw=(100, 200), spacing_mm_rc=(0.5, 2.0), target=(1.0,), unit="mm",
        points_rc=points, **kw,
    )  # fmt: skip


def test_gallery_draws_tl_axes_and_ad_landmarks_in_pixels(tmp_path: Path) -> None:
    # Major axis along rows from (10, 50) to (50, 50): 40 px * 0.5 mm = 20 mm. Minor along
    # columns from (30, 45) to (30, 55): 10 px * 2 mm = 20 mm. Predicted (10, 40) mm: the
    # major is drawn 20 px long centred at (30, 50); the minor 20 px long centred at (30, 50).
    tl = rec("tl", (10.0, 40.0), (20.0, 20.0), sample_id="tl1", metric_type="axes")
    tl_s = _sample(TaskFamily.TUMOR_LESION_SIZE, ((10, 50), (50, 50), (30, 45), (30, 55)), "tl1")
    # Distance from (20, 20) to (20, 120): 100 px * 2 mm = 200 mm; predicted 100 mm is 50 px.
    ad = rec("ad", (100.0,), (200.0,), sample_id="ad1", metric_type="distance", metric_key="L-1-2")
    ad_s = _sample(TaskFamily.ANGLE_DISTANCE, ((20, 20), (20, 120)), "ad1")
    lookup = {"tl1": tl_s, "ad1": ad_s}
    records = [tl, ad]
    out = tmp_path / "r.html"
    write_html_report(
        out, summaries={"r": summarize_run(records, get_protocol("official"))},
        records_by_run={"r": records}, image_loader=None, sample_lookup=lookup.get,
    )  # fmt: skip
    text = out.read_text()
    lines = re.findall(
        r'<line x1="([\d.]+)" y1="([\d.]+)" x2="([\d.]+)" y2="([\d.]+)" stroke="(#\w+)"', text
    )
    got = {(tuple(round(float(v), 2) for v in ln[:4]), ln[4]) for ln in lines}
    green, red = "#1a9e3f", "#d7263d"
    assert ((50.0, 10.0, 50.0, 50.0), green) in got  # true major (x = col, y = row)
    assert ((50.0, 20.0, 50.0, 40.0), red) in got  # predicted 10 mm major: 20 px
    assert ((40.0, 30.0, 60.0, 30.0), red) in got  # predicted 40 mm minor: 20 px
    assert ((20.0, 20.0, 120.0, 20.0), green) in got  # true distance
    assert ((20.0, 20.0, 70.0, 20.0), red) in got  # predicted 100 mm from the first landmark
    gallery = text[text.index("<h2>Runs</h2>") :]  # the charts above draw circles too
    assert gallery.count("<circle") == 2
    # Without the dataset the report still renders and says why there are no axes.
    write_html_report(out, summaries={"r": {}}, records_by_run={"r": records}, image_loader=None)
    assert "axes/landmarks unavailable" in out.read_text()


def test_failure_notes_name_counts_and_rules() -> None:
    records = [rec("detection", None, (0.1, 0.1, 0.2, 0.2)) for _ in range(3)]
    records.append(rec("detection", (0.1, 0.1, 0.2, 0.2), (0.1, 0.1, 0.2, 0.2)))
    records.append(rec("tl", None, (10.0, 5.0), label_name="lonely"))
    records.append(rec("tl", (10.0, 5.0), (10.0, 5.0), label_name="fine"))
    notes = failure_notes(summarize_run(records, get_protocol("official")))
    assert any(
        n.startswith("Detection: 3 of 4 answers (75.0%) failed") and "as 0" in n for n in notes
    )
    assert any(n.startswith("Tumour/lesion size: 1 of 2 answers (50.0%)") for n in notes)
    assert any("dropped from the model line" in n and "lonely" in n for n in notes)
    clean = [rec("tl", (10.0, 5.0), (10.0, 5.0))]
    assert failure_notes(summarize_run(clean, get_protocol("official"))) == []


def test_interval_formatting() -> None:
    iv = {"estimate": 0.5, "low": 0.4, "high": 0.61, "level": 0.95, "n_boot": 200}
    assert format_interval(iv) == "0.5000 [0.4000, 0.6100]"
    assert format_interval({"estimate": None}) == "\u2014"
    md = ci_markdown({"a|b": {"tl_MRE": iv}})
    assert "95% slice bootstrap intervals (200 replicates" in md  # no method: slice
    assert "| a\\|b | 0.5000 [0.4000, 0.6100] |" in md
    assert "det_all_IoU" not in md  # columns without numbers are left out


def test_report_without_matplotlib_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_import = builtins.__import__

    def no_mpl(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("matplotlib"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    records = [rec("tl", (10.0, 5.0), (12.0, 5.0))]
    summary = summarize_run(records, get_protocol("official"))
    plots, note = render_plots(prepare(records, get_protocol("official")), summary, None)
    assert plots == [] and note is not None and "matplotlib is not installed" in note
    out = tmp_path / "r.html"
    write_html_report(
        out, summaries={"r": summary}, records_by_run={"r": records}, image_loader=None,
        analyses={"r": RunAnalysis(plots_note=note)},
    )  # fmt: skip
    assert "matplotlib is not installed" in out.read_text()


def test_plots_render_as_inline_png() -> None:
    pytest.importorskip("matplotlib", reason="matplotlib is an optional report dependency")
    records = [rec("tl", (10.0 + i, 5.0), (12.0, 5.0)) for i in range(10)]
    records += [
        rec("detection", (0.1, 0.1, 0.3, 0.3), (0.1, 0.1, 0.2 + i / 50, 0.3)) for i in range(10)
    ]
    proto = get_protocol("official")
    summary = summarize_run(records, proto)
    plots, note = render_plots(prepare(records, proto), summary, None)
    assert note is None
    titles = [p.title for p in plots]
    assert "Tumour/lesion error against target size" in titles
    assert "Detection IoU against target box size" in titles
    assert all(p.uri.startswith("data:image/png;base64,iVBOR") for p in plots)


@pytest.fixture(scope="module")
def two_runs(mini_store: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    out = []
    for backend, opts in (("oracle", {"noise": 0.05}), ("random", {})):
        spec = RunSpec(
            dataset_dir=str(mini_store), backend=backend, model=backend, protocol="official",
            limit=15, backend_options=opts,
        )  # fmt: skip
        Runner(spec, root / backend).run()
        out.append(root / backend)
    return out


def test_write_reports_all_formats(two_runs: list[Path], tmp_path: Path) -> None:
    rows = write_reports(two_runs, tmp_path, bootstrap=60, seed=1, random_draws=20)
    assert [r["run"] for r in rows] == ["oracle", "random"]
    md = (tmp_path / "leaderboard.md").read_text()
    assert md.startswith(
        "Benchmark: n/a \u00b7 Protocol: official \u00b7 Ground truth (T/L): official-1.4.0"
    )
    assert "Intervals: 95% cluster bootstrap, 60 replicates, cases/subjects" in md
    assert "| parse failures | truncated | refused | backend errors |" in md
    with (tmp_path / "leaderboard.csv").open() as fh:
        assert [r["run"] for r in csv.DictReader(fh)] == ["oracle", "random"]
    analysis = json.loads((tmp_path / "analysis.json").read_text())
    iv = analysis["oracle"]["intervals"]["det_all_IoU"]
    assert iv["n_boot"] == 60 and iv["method"] == "cluster"
    if iv["low"] is None:  # every group holds one case of the 4-case mini store: no interval
        assert iv["n_valid"] == 0 and iv["estimate"] is not None
    else:
        assert iv["low"] <= iv["estimate"] <= iv["high"]
    sl = tmp_path / "slice"
    write_reports(
        two_runs, sl, bootstrap=60, seed=1, random_draws=20, formats=("json",),
        bootstrap_method="slice",
    )  # fmt: skip
    iv = json.loads((sl / "analysis.json").read_text())["oracle"]["intervals"]["det_all_IoU"]
    assert iv["method"] == "slice" and iv["low"] <= iv["estimate"] <= iv["high"]
    assert analysis["random"]["box_size"]["n_draws"] == 20
    assert "by_dataset" in analysis["random"]["macro"]["tl"]
    html = (tmp_path / "report.html").read_text()
    assert "Content-Security-Policy" in html and "Confidence intervals" in html
    assert "beside random boxes" in html
    # Same seed, same numbers.
    again = tmp_path / "again"
    write_reports(two_runs, again, bootstrap=60, seed=1, random_draws=20, formats=("json",))
    assert json.loads((again / "analysis.json").read_text()) == analysis
    assert not (again / "report.html").exists()
    with pytest.raises(ValueError, match="unknown report formats"):
        write_reports(two_runs, again, formats=("pdf",))


def test_compare_command(two_runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "cmp.json"
    result = CliRunner().invoke(
        app,
        ["compare", str(two_runs[1]), str(two_runs[0]), "--bootstrap", "80", "--json", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "det_all_IoU" in result.output and "shared samples" in result.output
    assert "Holm" in result.output and "Primary numbers" in result.output
    data = json.loads(out.read_text())
    assert data["run_a"] == "random" and data["run_b"] == "oracle"
    assert data["correction"]["method"] == "holm" and data["bootstrap"] == "cluster"
    m = data["metrics"]["det_all_IoU"]
    assert m["better"] == "B" and m["diff"]["low"] > 0
    assert data["n_only_a"] == {k: 0 for k in data["n_shared"]}
    bad = CliRunner().invoke(app, ["compare", str(two_runs[0]), str(tmp_path)])
    assert bad.exit_code != 0
    assert "is not a finished run" in str(bad.exception)
