"""Reports over run folders: leaderboard (terminal, Markdown, CSV, JSON), intervals and HTML.

:func:`write_reports` reads each run's ``summary.json`` and ``records.jsonl``, scores the
records once (:func:`medvision.metrics.headline.prepare`), adds seeded bootstrap intervals,
per-dataset / per-plane / per-box-size breakdowns, the box-size-vs-random analysis and plots,
and writes ``leaderboard.{md,csv,json}``, ``analysis.json`` and one self-contained
``report.html``. :func:`compare_run_dirs` is the paired comparison of two run folders.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from rich.console import Console
from rich.text import Text

from medvision.backends.baselines import random_boxes_rel
from medvision.metrics.bootstrap import Method, bootstrap_headline
from medvision.metrics.boxsize import box_size_analysis
from medvision.metrics.headline import prepare
from medvision.metrics.jsonvalues import dumps, loads
from medvision.metrics.macro import macro_report
from medvision.metrics.outcomes import answered_rows
from medvision.metrics.paired import PairedResult, compare_runs
from medvision.metrics.protocols import get_protocol
from medvision.reports import (
    leaderboard,
    print_leaderboard,
    to_csv,
    to_markdown,
    write_html_report,
)
from medvision.reports.failures import failure_counts
from medvision.reports.html import RunAnalysis
from medvision.reports.paper_tables import paper_tables_markdown
from medvision.reports.plots import render_plots
from medvision.reports.tables import CI_KEYS, COLUMNS, ci_markdown, failure_notes
from medvision.runs.columns_cache import scoring_table
from medvision.runs.integrity import summary_is_current
from medvision.runs.records import RECORDS_NAME, dedupe, read_records
from medvision.runs.runner import RUN_NAME, SUMMARY_NAME, RunError
from medvision.runs.scoring import rescore
from medvision.schema import Record, Sample
from medvision.store import BuiltDataset, open_dataset

__all__ = ["FORMATS", "compare_run_dirs", "write_reports"]

Format = Literal["md", "csv", "json", "html"]
FORMATS: tuple[Format, ...] = ("md", "csv", "json", "html")


def _run_name(run_dir: Path, summary: dict[str, Any]) -> str:
    model = summary.get("run", {}).get("model")
    return str(model) if model else run_dir.name


def _load_summary(run_dir: Path) -> tuple[dict[str, Any], str | None]:
    """``(summary, dataset_dir or None)`` of a finished run folder.

    A ``summary.json`` that was not made from the records file as it is now (a resume
    killed between its appends and its summary) is never shown: the summary is recomputed
    from the records (:func:`~medvision.runs.scoring.rescore`, nothing written).
    """
    summary_path = run_dir / SUMMARY_NAME
    records_path = run_dir / RECORDS_NAME
    if not summary_path.exists() and not records_path.exists():
        raise RunError(f"{run_dir} is not a finished run: {summary_path} is missing")
    summary = loads(summary_path.read_text()) if summary_path.exists() else {}
    if not summary_path.exists() or not summary_is_current(summary, records_path):
        summary = rescore(run_dir, write=False)
        summary["run"]["recomputed"] = "summary.json was older than records.jsonl"
    ds_dir: str | None = None
    meta_path = run_dir / RUN_NAME
    if meta_path.exists():
        ds_dir = json.loads(meta_path.read_text()).get("spec", {}).get("dataset_dir")
    return summary, ds_dir


def _load_run(run_dir: Path) -> tuple[dict[str, Any], list[Record], str | None]:
    """``(summary, records, dataset_dir or None)`` of a finished run folder.

    The summary as :func:`_load_summary` gives it; records count once per sample id.
    """
    summary, ds_dir = _load_summary(run_dir)
    records, _ = dedupe(read_records(run_dir / RECORDS_NAME))
    return summary, records, ds_dir


def write_reports(
    run_dirs: Sequence[Path],
    out: Path,
    *,
    console: Console | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    formats: Sequence[str] = FORMATS,
    max_gallery: int = 24,
    random_draws: int = 100,
    bootstrap_method: Method = "cluster",
) -> list[dict[str, Any]]:
    """Write the leaderboard files, ``analysis.json`` and ``report.html`` into ``out``.

    Args:
        run_dirs: Finished run folders.
        out: Output folder (created).
        console: Where the terminal leaderboard and notes are printed (``None``: nowhere).
        bootstrap: Bootstrap replicates per run (0 skips the intervals).
        seed: Seed of the bootstrap (the random-box baseline uses 1024 + ``seed``).
        formats: Any of ``md``, ``csv``, ``json`` (leaderboard and ``analysis.json``), ``html``.
        max_gallery: Gallery samples per family per run.
        random_draws: Random boxes per detection sample for the box-size baseline.
        bootstrap_method: Bootstrap unit: ``cluster`` (cases/subjects, default) or ``slice``.

    Returns:
        The leaderboard rows.

    The numbers (intervals, breakdowns, box-size analysis) are computed from each run's
    records read straight into Arrow columns
    (:func:`medvision.runs.columns_cache.scoring_table`: the run's column file when it is
    current, else ``records.jsonl``); record objects are read only for
    the HTML report's galleries and the failure counts of a summary without ``outcomes``.

    Raises:
        RunError: If a folder is not a finished run (names the missing file).
        ValueError: If a format is unknown.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown report formats {unknown}; expected some of {list(FORMATS)}")
    out.mkdir(parents=True, exist_ok=True)
    summaries: dict[str, dict[str, Any]] = {}
    records: dict[str, list[Record]] = {}
    tables: dict[str, pa.Table] = {}
    datasets: dict[str, BuiltDataset] = {}
    for run_dir in run_dirs:
        summary, ds_dir = _load_summary(run_dir)
        name = _run_name(run_dir, summary)
        if name in summaries:
            name = f"{name} ({run_dir.name})"
        summaries[name] = summary
        tables[name] = scoring_table(run_dir / RECORDS_NAME).table
        if "html" in formats or not isinstance(summary.get("outcomes"), dict):
            # Objects for the galleries, and for the failure counts of an older summary.
            records[name] = dedupe(read_records(run_dir / RECORDS_NAME))[0]
        if ds_dir and ds_dir not in datasets and Path(ds_dir).exists():
            datasets[ds_dir] = open_dataset(ds_dir)

    def load_image(rec: Record) -> bytes:
        # The image as the model saw it: the record's rendering rule (records written
        # before it was recorded: their protocol's default rule).
        rendering = rec.rendering or get_protocol(rec.protocol).rendering
        for ds in datasets.values():
            try:
                return ds.image(rec, rendering)
            except KeyError:
                continue
        raise KeyError(rec.image_key)

    analyses: dict[str, RunAnalysis] = {}
    intervals: dict[str, dict[str, Any]] = {}
    analysis_json: dict[str, Any] = {}
    for name, summary in summaries.items():
        proto = get_protocol(str((summary.get("protocol") or {}).get("name", "official")))
        # Backend errors hold no answer: they stay out of the metrics (summary["outcomes"]).
        prep = prepare(answered_rows(tables[name]), proto)
        ci = (
            {
                k: v.to_dict()
                for k, v in bootstrap_headline(
                    prep, n_boot=bootstrap, seed=seed, method=bootstrap_method
                ).items()
            }
            if bootstrap > 0
            else {}
        )
        box = box_size_analysis(prep, random_boxes_rel, n_draws=random_draws, seed=1024 + seed)
        macro = macro_report(prep)
        plots, note = render_plots(prep, summary, box) if "html" in formats else ([], None)
        box_d = box.to_dict() if box is not None else None
        analyses[name] = RunAnalysis(ci, macro, box_d, plots, note)
        intervals[name] = ci
        analysis_json[name] = {
            "protocol": proto.name,
            "intervals": ci,
            "macro": macro,
            "box_size": box_d,
            "failure_notes": failure_notes(summary),
        }

    failures = {name: failure_counts(s, records.get(name)) for name, s in summaries.items()}
    rows = leaderboard(summaries, failures)
    shown = intervals if any(intervals.values()) else None
    if "md" in formats:
        notes = [f"- {run}: {n}" for run, s in summaries.items() for n in failure_notes(s)]
        text = to_markdown(rows, shown)
        in_table = {k for k, _ in COLUMNS}
        if shown:  # the macro averages are not columns of the leaderboard: their own table
            text += "\n" + ci_markdown(shown, keys=[k for k in CI_KEYS if k not in in_table])
        if notes:
            text += "\nParse failures:\n\n" + "\n".join(notes) + "\n"
        text += "\n" + paper_tables_markdown(summaries)
        (out / "leaderboard.md").write_text(text)
    if "csv" in formats:
        to_csv(rows, out / "leaderboard.csv")
    if "json" in formats:
        (out / "leaderboard.json").write_text(dumps(rows, indent=1, default=str))
        (out / "analysis.json").write_text(dumps(analysis_json, indent=1))
    if "html" in formats:
        index: dict[str, Sample] = {}
        wanted = {r.sample_id for recs in records.values() for r in recs if r.family != "detection"}
        for ds in datasets.values():
            for smp in ds.samples(families=("tl", "ad")):
                if smp.sample_id in wanted:
                    index[smp.sample_id] = smp
        write_html_report(
            out / "report.html",
            summaries=summaries,
            records_by_run=records,
            image_loader=load_image if datasets else None,
            max_gallery=max_gallery,
            analyses=analyses,
            sample_lookup=index.get,
        )
    if console is not None:
        print_leaderboard(rows, console, shown)
        for run, s in summaries.items():
            for n in failure_notes(s):
                # Text, not markup: run names and labels may contain "[".
                console.print(Text.assemble(("note ", "yellow"), f"{run}: {n}"))
    return rows


def compare_run_dirs(
    run_a: Path,
    run_b: Path,
    *,
    protocol: str | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    method: Method = "cluster",
) -> PairedResult:
    """Paired comparison of two finished runs on their shared samples (B - A).

    Args:
        run_a: Baseline run folder.
        run_b: Run folder compared against it.
        protocol: Protocol to score both under; default: run A's summary protocol.
        bootstrap: Replicates of the paired bootstrap.
        seed: Seed of the bootstrap.
        level: Coverage of the intervals.
        method: Bootstrap unit: ``cluster`` (cases/subjects, default) or ``slice``.

    Returns:
        The :class:`medvision.metrics.paired.PairedResult`.

    Raises:
        RunError: If a folder is not a finished run.
        ValueError: If the runs share no sample or disagree on a shared target.
    """
    sa, ra, _ = _load_run(run_a)
    sb, rb, _ = _load_run(run_b)
    name = protocol or str((sa.get("protocol") or {}).get("name", "official"))
    return compare_runs(
        ra,
        rb,
        get_protocol(name),
        name_a=_run_name(run_a, sa),
        name_b=_run_name(run_b, sb),
        n_boot=bootstrap,
        seed=seed,
        level=level,
        method=method,
    )
