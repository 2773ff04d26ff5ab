"""Leaderboard tables from run summaries (:func:`medvision.metrics.summarize_run` output).

One row per run. Detection columns come from the anatomy and tumour/lesion splits (groups of
at least ``min_group_size`` samples, official section 4.4) and from all detection samples
pooled, so a small run still shows a number; T/L and A/D columns are the official model lines.
Overlap thresholds are written ``IoU>=0.5`` because the official ``IoU>0.5`` tests ``>=``.
Every table names the benchmark, protocol and ground-truth version that produced it
(:func:`provenance_line`; ``n/a`` / ``not recorded`` when a run did not record them), shows the
bootstrap interval under or beside each headline number when intervals are given, and counts
failures by kind (:mod:`medvision.reports.failures`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.table import Table
from rich.text import Text

from medvision.reports.failures import FAILURE_KINDS, failure_counts

__all__ = [
    "CI_KEYS",
    "COLUMNS",
    "TERMINAL_COLUMNS",
    "ci_markdown",
    "failure_notes",
    "format_interval",
    "format_value",
    "ground_truth_line",
    "leaderboard",
    "print_leaderboard",
    "protocol_line",
    "provenance_line",
    "to_csv",
    "to_markdown",
]

Row = dict[str, Any]

COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("run", "run"),
    ("benchmark", "benchmark"),
    ("protocol", "protocol"),
    ("annotation", "ground truth"),
    ("det_anatomy_IoU", "Det anatomy IoU"),
    ("det_anatomy_SR", "Det anatomy SR"),
    ("det_anatomy_IoU>=0.5", "Det anatomy IoU>=0.5"),
    ("det_tl_IoU", "Det T/L IoU"),
    ("det_tl_SR", "Det T/L SR"),
    ("det_tl_IoU>=0.5", "Det T/L IoU>=0.5"),
    ("det_all_IoU", "Det all IoU"),
    ("det_all_SR", "Det all SR"),
    ("det_all_IoU>=0.5", "Det all IoU>=0.5"),
    ("tl_MAE", "T/L MAE (mm)"),
    ("tl_MRE", "T/L MRE"),
    ("tl_SR", "T/L SR"),
    ("tl_MRE<0.1", "T/L MRE<0.1"),
    ("tl_MRE<0.2", "T/L MRE<0.2"),
    ("tl_MRE<0.3", "T/L MRE<0.3"),
    ("ad_MAE", "A/D MAE"),
    ("ad_MRE", "A/D MRE"),
    ("ad_SR", "A/D SR"),
    ("num_records", "records"),
    ("num_answered", "answered"),
    *FAILURE_KINDS,
)
"""``(row key, column label)`` in display order for Markdown and CSV."""

TERMINAL_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("run", "run"),
    ("det_anatomy_IoU", "Det IoU\nanat."),
    ("det_tl_IoU", "Det IoU\nT/L"),
    ("det_all_IoU", "Det IoU\nall"),
    ("tl_MRE", "T/L\nMRE"),
    ("tl_MRE<0.1", "T/L\nMRE<.1"),
    ("ad_MRE", "A/D\nMRE"),
    ("num_records", "N"),
    ("failures", "fail\np/t/r/b"),
)
"""A narrower selection for terminals (the files keep every column); the headline numbers
carry their interval on a second line and ``failures`` reads ``parse/truncated/refused/backend``
(:data:`FAILURE_KEY_LINE`)."""

FAILURE_KEY_LINE: Final = (
    "fail p/t/r/b: parse failures (every kind) / of them truncated at the token limit / "
    "of them refused / backend errors (no answer, not scored); ? = not recorded."
)


def _get(d: Mapping[str, Any] | None, *keys: str) -> Any:
    """Nested lookup returning ``None`` when any level is missing."""
    cur: Any = d
    for k in keys:
        if not isinstance(cur, Mapping) or k not in cur:
            return None
        cur = cur[k]
    return cur


def _num(v: Any) -> float | None:
    """A float (infinities kept: an ``inf`` MAE is a result) or ``None`` (missing, NaN)."""
    if v is None or isinstance(v, bool):
        return None
    f = float(v)  # also reads the "inf"/"-inf" strings of medvision's JSON files
    return None if math.isnan(f) else f


def leaderboard(
    summaries: Mapping[str, Mapping[str, Any]],
    failures: Mapping[str, Mapping[str, int | None]] | None = None,
) -> list[Row]:
    """One leaderboard row per run.

    Args:
        summaries: Run name -> :func:`medvision.metrics.summarize_run` output.
        failures: Run name -> failure counts by kind
            (:func:`medvision.reports.failures.failure_counts` of the run's records), for runs
            whose summary has no ``outcomes`` block; default: read from each summary.

    Returns:
        Rows keyed as :data:`COLUMNS` (``None`` where a run has no such number), in the order
        of ``summaries``. ``benchmark`` and ``annotation`` (the ground-truth version) come from
        ``summary["run"]`` and are ``None`` when the run did not record them;
        ``num_answered``, ``num_backend_errors`` and ``num_failed`` (parse failures, backend
        errors apart) come from ``summary["outcomes"]``, and the failure kinds of
        :data:`medvision.reports.failures.FAILURE_KINDS` beside them.
    """
    rows: list[Row] = []
    for run, s in summaries.items():
        det, tl, ad = s.get("detection"), s.get("tl"), s.get("ad")
        counts = s.get("status_counts") or {}
        outcomes = s.get("outcomes") or {
            "answered": s.get("num_records", 0) - counts.get("backend_error", 0),
            "backend_error": counts.get("backend_error", 0),
            "parse_failure": sum(v for k, v in counts.items() if k not in ("ok", "backend_error")),
        }
        # Backend errors hold no answer: they are counted apart, never as parse failures.
        kinds = (failures or {}).get(run) or failure_counts(s)
        row: Row = {
            "run": run,
            "benchmark": _get(s, "run", "benchmark"),
            "protocol": _get(s, "protocol", "name"),
            "annotation": _get(s, "run", "annotation"),
            "num_records": s.get("num_records"),
            "num_answered": outcomes.get("answered"),
            "num_backend_errors": outcomes.get("backend_error"),
            "num_failed": outcomes.get("parse_failure"),
            **{k: kinds.get(k) for k, _ in FAILURE_KINDS},
        }
        for part, split in (("anatomy", "anatomy"), ("tl", "tumor_lesion")):
            base = _get(det, split, "mean_metrics")
            row[f"det_{part}_IoU"] = _num(_get(base, "IoU"))
            row[f"det_{part}_SR"] = _num(_get(base, "SuccessRate"))
            row[f"det_{part}_IoU>=0.5"] = _num(_get(base, "IoU>0.5"))
        row["det_all_IoU"] = _num(_get(det, "all", "IoU"))
        row["det_all_SR"] = _num(_get(det, "all", "SuccessRate"))
        row["det_all_IoU>=0.5"] = _num(_get(det, "all", "IoU>0.5"))
        for key in ("MAE", "MRE", "SR", "MRE<0.1", "MRE<0.2", "MRE<0.3"):
            row[f"tl_{key}"] = _num(_get(tl, "model", key))
        for key in ("MAE", "MRE", "SR"):
            row[f"ad_{key}"] = _num(_get(ad, "model", key))
        rows.append(row)
    return rows


def protocol_line(rows: Sequence[Mapping[str, Any]]) -> str:
    """``"Protocol: official"``, or ``"Protocols (mixed): a, b"`` when rows differ."""
    names = sorted({str(r.get("protocol")) for r in rows})
    if len(names) == 1:
        return f"Protocol: {names[0]}"
    return f"Protocols (mixed): {', '.join(names)}"


def ground_truth_line(rows: Sequence[Mapping[str, Any]]) -> str:
    """``"Ground truth (T/L): official-1.4.0"``; several versions are listed as mixed.

    A run whose build did not record its version shows ``not recorded``.
    """
    names = sorted({str(r.get("annotation") or "not recorded") for r in rows})
    if len(names) == 1:
        return f"Ground truth (T/L): {names[0]}"
    return f"Ground truth (T/L, mixed): {', '.join(names)}"


def _same_or_mixed(rows: Sequence[Mapping[str, Any]], key: str, missing: str) -> str:
    names = sorted({missing if r.get(key) is None else str(r.get(key)) for r in rows})
    if len(names) == 1:
        return names[0]
    return f"mixed ({', '.join(names)})"


def provenance_line(rows: Sequence[Mapping[str, Any]]) -> str:
    """``"Benchmark: n/a · Protocol: official · Ground truth (T/L): official-1.4.0"``.

    A field that differs between rows reads ``mixed (a, b)``; a run that did not record its
    benchmark shows ``n/a``; the ground-truth part is :func:`ground_truth_line`
    (``not recorded`` for builds made before versions were recorded).
    """
    return (
        f"Benchmark: {_same_or_mixed(rows, 'benchmark', 'n/a')} \u00b7 "
        f"Protocol: {_same_or_mixed(rows, 'protocol', 'n/a')} \u00b7 "
        f"{ground_truth_line(rows)}"
    )


def interval_line(intervals: Mapping[str, Mapping[str, Mapping[str, Any]]] | None) -> str:
    """One sentence on the intervals shown (level, method, replicates), or ``""``."""
    first = next(
        (iv for run in (intervals or {}).values() for iv in run.values() if iv.get("n_boot")),
        None,
    )
    if first is None:
        return ""
    method = first.get("method", "slice")
    unit = (
        "cases/subjects resampled within their official group and dataset"
        if method == "cluster"
        else "single samples resampled within their official group and dataset"
    )
    return (
        f"Intervals: {float(first.get('level', 0.95)):.0%} {method} bootstrap, "
        f"{first.get('n_boot')} replicates, {unit}."
    )


def format_value(v: Any, digits: int = 4) -> str:
    """Format one cell: floats with ``digits`` decimals, ``None``/NaN as an em dash."""
    if v is None:
        return "\u2014"
    if isinstance(v, float):
        if math.isnan(v):
            return "\u2014"
        return f"{v:.{digits}f}" if math.isfinite(v) else ("inf" if v > 0 else "-inf")
    return str(v)


def _md_cell(text: str) -> str:
    """Escape the characters that break a Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def to_markdown(
    rows: Sequence[Mapping[str, Any]],
    intervals: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> str:
    """Markdown leaderboard: provenance lines, then a pipe table with :data:`COLUMNS`.

    Args:
        rows: Leaderboard rows.
        intervals: Run name -> headline key -> interval dict; headline cells then read
            ``estimate [low, high]``.

    Returns:
        The Markdown text.
    """
    header = "| " + " | ".join(label for _, label in COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in COLUMNS) + "|"

    def cell(r: Mapping[str, Any], k: str) -> str:
        iv = (intervals or {}).get(str(r.get("run")), {}).get(k)
        if k in CI_KEYS and iv and iv.get("low") is not None:
            return format_interval(iv)
        return format_value(r.get(k))

    body = ["| " + " | ".join(_md_cell(cell(r, k)) for k, _ in COLUMNS) + " |" for r in rows]
    head = [provenance_line(rows)]
    if line := interval_line(intervals):
        head.append(line)
    return "\n".join([*(f"{h}  " for h in head), "", header, sep, *body]) + "\n"


def to_csv(rows: Sequence[Mapping[str, Any]], path: str | Path) -> None:
    """Write the rows as CSV (the ``protocol`` column names the protocol of each row).

    Args:
        rows: Leaderboard rows.
        path: Output file; overwritten. Missing numbers are empty cells.
    """
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([k for k, _ in COLUMNS])
        for r in rows:
            writer.writerow(["" if r.get(k) is None else r.get(k) for k, _ in COLUMNS])


def _compact(v: float) -> str:
    """At most 4 significant characters: ``.301``, ``1.61``, ``21.9``, ``-.050``, ``318``."""
    if not math.isfinite(v):
        return "\u2014"
    a = abs(v)
    if round(a, 3) < 1:
        text = f"{v:.3f}".replace("0.", ".", 1)
    elif a < 9.995:
        text = f"{v:.2f}"
    elif a < 99.95:
        text = f"{v:.1f}"
    else:
        text = f"{v:.0f}"
    return "0" if v == 0 else text


def print_leaderboard(
    rows: Sequence[Mapping[str, Any]],
    console: Console | None = None,
    intervals: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> None:
    """Print the leaderboard as a rich table.

    The title names the benchmark, protocol and ground-truth version; each headline number
    has its interval ``[low,high]`` on the line below it when ``intervals`` are given, and
    the failure columns count parse failures (truncated and refused are sub-counts of them)
    and backend errors.
    """
    caption = " ".join(x for x in (interval_line(intervals), FAILURE_KEY_LINE) if x)
    table = Table(
        title=Text(f"MedVision leaderboard \u2014 {provenance_line(rows)}"),
        caption=Text(caption),
    )
    for _, label in TERMINAL_COLUMNS:
        # Fold, never cut: a number is shown whole or wrapped, not ending in an ellipsis.
        table.add_column(label, justify="left" if label == "run" else "right", overflow="fold")
    for r in rows:
        cells = []
        for k, _ in TERMINAL_COLUMNS:
            if k == "failures":
                kinds = (r.get(f) for f, _ in FAILURE_KINDS)
                cells.append(Text("/".join("?" if v is None else str(v) for v in kinds)))
                continue
            text = format_value(r.get(k), 3)
            iv = (intervals or {}).get(str(r.get("run")), {}).get(k)
            if iv and iv.get("low") is not None and iv.get("high") is not None:
                text += f"\n[{_compact(float(iv['low']))},{_compact(float(iv['high']))}]"
            # Text cells: a run name like "[red]x" must not be read as rich markup.
            cells.append(Text(text))
        table.add_row(*cells)
    (console or Console()).print(table)


CI_KEYS: Final[tuple[str, ...]] = (
    "det_anatomy_IoU",
    "det_tl_IoU",
    "det_all_IoU",
    "det_all_IoU>=0.5",
    "det_macro_IoU",
    "tl_MAE",
    "tl_MRE",
    "tl_MRE<0.1",
    "tl_macro_MRE",
    "ad_MAE",
    "ad_MRE",
    "ad_macro_MRE",
)
"""Headline numbers whose bootstrap intervals the Markdown and HTML tables show."""


def format_interval(ci: Mapping[str, Any] | None, digits: int = 4) -> str:
    """``"0.4123 [0.3990, 0.4250]"`` from an interval dict, or an em dash when undefined."""
    if not ci or ci.get("estimate") is None:
        return "\u2014"
    est = format_value(float(ci["estimate"]), digits)
    if ci.get("low") is None or ci.get("high") is None:
        return est
    return f"{est} [{float(ci['low']):.{digits}f}, {float(ci['high']):.{digits}f}]"


def ci_markdown(
    intervals: Mapping[str, Mapping[str, Mapping[str, Any]]], keys: Sequence[str] = CI_KEYS
) -> str:
    """Markdown table of bootstrap intervals: one row per run, one column per headline key.

    Args:
        intervals: Run name -> headline key -> interval dict (``Interval.to_dict()``).
        keys: Headline keys to show (columns without any number are dropped).

    Returns:
        The table, preceded by a line naming the level and replicates (empty if no intervals).
    """
    if not intervals:
        return ""
    shown = [
        k
        for k in keys
        if any((iv.get(k) or {}).get("estimate") is not None for iv in intervals.values())
    ]
    first = next((iv[k] for iv in intervals.values() for k in shown if k in iv), {})
    level = float(first.get("level", 0.95)) if first else 0.95
    n_boot = first.get("n_boot", "?") if first else "?"
    head = "| run | " + " | ".join(shown) + " |"
    sep = "|---|" + "|".join("---" for _ in shown) + "|"
    body = [
        f"| {_md_cell(run)} | " + " | ".join(format_interval(iv.get(k)) for k in shown) + " |"
        for run, iv in intervals.items()
    ]
    method = first.get("method", "slice") if first else "slice"
    unit = "cases/subjects" if method == "cluster" else "samples"
    title = (
        f"{level:.0%} {method} bootstrap intervals ({n_boot} replicates, {unit} resampled "
        "within their official group and dataset):"
    )
    return "\n".join([title, "", head, sep, *body]) + "\n"


_FAMILY_NAMES: Final[dict[str, str]] = {
    "detection": "Detection",
    "tl": "Tumour/lesion size",
    "ad": "Angle/distance",
}


def failure_notes(summary: Mapping[str, Any]) -> list[str]:
    """Plain-text notes on how parse failures enter each family's numbers.

    Args:
        summary: :func:`medvision.metrics.summarize_run` output.

    Returns:
        One sentence per family with at least one failed answer (and per official drop rule
        that removed a label), naming the count, the share and which metrics it drives.
    """
    notes: list[str] = []
    for fam, counts in (summary.get("status_counts_by_family") or {}).items():
        total = int(sum(counts.values()))
        failed = total - int(counts.get("ok", 0))
        if not total or not failed:
            continue
        share = failed / total
        name = _FAMILY_NAMES.get(fam, fam)
        head = f"{name}: {failed} of {total} answers ({share:.1%}) failed to parse"
        if fam == "detection":
            how = (
                "IoU, F1, precision and recall count them as 0 and SR and IoU>=k as misses; "
                "MAE averages only the successful answers."
            )
        else:
            how = (
                "MAE and MRE average only the successful answers, so they describe the "
                f"{1 - share:.1%} that parsed; SR and MRE<k count failures as misses."
            )
        notes.append(f"{head}; {how}")
    tl = summary.get("tl") or {}
    if tl.get("dropped_all_failed"):
        notes.append(
            "Tumour/lesion: labels where every answer failed are dropped from the model line "
            f"(official rule), which raises its SR: {', '.join(tl['dropped_all_failed'])}."
        )
    ad = summary.get("ad") or {}
    if ad.get("labels_all_failed"):
        notes.append(
            "Angle/distance: labels where every answer failed keep their samples in the "
            "MAE/MRE denominator (official quirk), which lowers those averages: "
            f"{', '.join(ad['labels_all_failed'])}."
        )
    return notes
