"""The HTML report in a real headless Chromium: no console error, injected script never runs.

Needs Debian's ``chromium`` (``apt-get install chromium chromium-driver``). The harness logs
every console message to stderr (``--enable-logging=stderr``) and dumps the DOM after load;
a positive control proves it sees both a console error and a script that ran.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

import pytest

from medvision.runs.records import RECORDS_NAME, append_records, read_records
from medvision.runs.report import write_reports
from medvision.runs.runner import Runner, RunSpec, rescore
from medvision.testing.browser import HEADLESS_FLAGS, chromium, load_report

CHROMIUM = chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless test needs Debian's chromium (apt-get install chromium)"
)

EVIL = (
    "<script>document.title='PWNED';console.error('pwned');"
    "document.body.insertAdjacentHTML('beforeend','<div id=\"pwned\"></div>')</script>"
    "<img src=x onerror=\"document.title='PWNED2'\"> 0.1, 0.2, 0.3, 0.4"
)


def load(path: Path, tmp: Path) -> tuple[str, list[str]]:
    """DOM after load and console messages of ``path`` in headless Chromium."""
    assert CHROMIUM is not None
    proc = subprocess.run(
        [
            CHROMIUM,
            *HEADLESS_FLAGS,
            f"--user-data-dir={tmp / 'chromium-profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=3000",
            "--dump-dom",
            path.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc.stdout, console


def test_harness_sees_console_errors_and_running_scripts(tmp_path: Path) -> None:
    page = tmp_path / "control.html"
    page.write_text(f"<!DOCTYPE html><html><head><title>t</title></head><body>{EVIL}</body></html>")
    dom, console = load(page, tmp_path)
    assert any("pwned" in line for line in console)
    assert "<title>PWNED" in dom and '<div id="pwned"></div>' in dom


def test_report_loads_cleanly_and_model_script_does_not_run(
    mini_store: Path, tmp_path: Path
) -> None:
    runs = []
    for backend, opts in (("oracle", {"noise": 0.1}), ("random", {})):
        spec = RunSpec(
            dataset_dir=str(mini_store), backend=backend, model=backend, protocol="official",
            limit=12, backend_options=opts,
        )  # fmt: skip
        Runner(spec, tmp_path / backend).run()
        runs.append(tmp_path / backend)
    # The model "answers" with HTML and script in a few records of every family.
    path = runs[0] / RECORDS_NAME
    records = read_records(path)
    seen: set[str] = set()
    evil = []
    for r in records:
        if r.family not in seen:
            seen.add(r.family)
            r = dataclasses.replace(r, raw_output=EVIL, label_name=EVIL[:40])
        evil.append(r)
    path.unlink()
    append_records(path, evil)
    rescore(runs[0])
    out = tmp_path / "report"
    write_reports(runs, out, bootstrap=50, max_gallery=60)
    html = (out / "report.html").read_text()
    assert html.count("&lt;script&gt;document.title") >= 3  # shown, escaped, in the gallery
    assert "<script" not in html.lower()
    dom, console = load(out / "report.html", tmp_path)
    assert console == []
    title = re.search(r"<title>(.*?)</title>", dom)
    assert title is not None and title.group(1) == "MedVision report"
    assert '<div id="pwned">' not in dom  # no such element (escaped text is fine)
    assert "&lt;script&gt;document.title='PWNED'" in dom  # the answer is text in the page
    assert dom.count("<svg") >= 3 and "data:image/png;base64," in dom


def test_width_harness_sees_overflow_and_console_errors(tmp_path: Path) -> None:
    page = tmp_path / "wide.html"
    page.write_text(
        "<!DOCTYPE html><html><head><title>w</title></head><body>"
        "<div style='width:3000px'>wide</div><script>console.error('seen')</script></body></html>"
    )
    got = load_report(page, width=1400)
    assert got.metrics["closed"]["scroll"] > got.metrics["closed"]["client"]
    assert got.metrics["overflowing"]
    assert any("seen" in line for line in got.console)


def test_report_of_four_runs_fits_1400px_and_leads_with_the_answer(
    mini_store: Path, tmp_path: Path
) -> None:
    runs = []
    for name, backend, opts in (
        ("oracle", "oracle", {"noise": 0.0}),
        ("oracle-noisy", "oracle", {"noise": 0.1}),
        ("prior", "prior", {}),
        ("random-baseline-with-a-rather-long-run-name", "random", {}),
    ):
        spec = RunSpec(
            dataset_dir=str(mini_store), backend=backend, model=name, protocol="paper-v1",
            limit=30, backend_options=opts,
        )  # fmt: skip
        Runner(spec, tmp_path / name).run()
        runs.append(tmp_path / name)
    out = tmp_path / "report"
    write_reports(runs, out, bootstrap=50, random_draws=10)
    html = (out / "report.html").read_text()
    got = load_report(out / "report.html", width=1400, height=900)
    m = got.metrics
    assert got.console == []
    assert m["title"] == "MedVision report"
    # No horizontal scrollbar at 1400 px, neither as loaded nor with every section opened.
    assert m["closed"]["scroll"] <= m["closed"]["client"] <= 1400
    assert m["opened"]["scroll"] <= m["opened"]["client"]
    assert m["overflowing"] == []
    # First screen: the leaderboard (every run) ends within the 900 px window; then one
    # chart per family; the per-run details (4 runs + "all columns") start closed.
    assert m["board_bottom"] is not None and m["board_bottom"] < 900
    assert m["charts"] == 3
    assert m["details"] == 5 and m["details_open"] == 0
    board = html[html.index('<table class="board">') : html.index("</table>")]
    assert board.count("<tr>") == 5 and board.count('class="ci"') >= 4
