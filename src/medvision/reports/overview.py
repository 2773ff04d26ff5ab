"""The first screen of the HTML report: the answer before the details.

1. One leaderboard across all runs with the headline numbers and their bootstrap intervals
   and failures by kind, narrow enough for a 1400 px window (every other column sits in a
   closed ``<details>`` one click away, inside its own horizontal scroller).
2. Per task family one chart with every run side by side and its interval drawn
   (:func:`medvision.reports.charts.interval_chart`), on the family's primary number
   (:data:`medvision.metrics.paired.PRIMARY`: detection IoU, T/L MRE, A/D MRE).

All text is escaped; the output is static HTML and inline SVG.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from medvision.metrics.paired import PRIMARY
from medvision.reports.charts import ChartRow, interval_chart
from medvision.reports.failures import FAILURE_KINDS
from medvision.reports.tables import COLUMNS, format_value, interval_line, provenance_line

__all__ = ["BOARD_COLUMNS", "OVERVIEW_CSS", "overview_html"]

Intervals = Mapping[str, Mapping[str, Mapping[str, Any]]]

BOARD_COLUMNS: Final[tuple[tuple[str, str, bool], ...]] = (
    ("det_all_IoU", "Detection IoU (all)", False),
    ("det_anatomy_IoU", "Detection IoU anatomy", False),
    ("det_tl_IoU", "Detection IoU tumour/lesion", False),
    ("tl_MRE", "T/L MRE", True),
    ("tl_MAE", "T/L MAE (mm)", True),
    ("ad_MRE", "A/D MRE", True),
)
"""``(headline key, label, lower is better)`` of the first-screen leaderboard."""

_FAMILY_TITLES: Final[dict[str, str]] = {
    "detection": "Detection: IoU of every run (all detection samples pooled)",
    "tl": "Tumour/lesion size: MRE of every run",
    "ad": "Angle/distance: MRE of every run",
}

OVERVIEW_CSS: Final = """
.board td,.board th{white-space:nowrap}.board td.k{white-space:normal;overflow-wrap:anywhere;
max-width:16rem}.board td b{font-size:.95rem}.ci{color:#666;font-size:.72rem}
.scroll{overflow-x:auto;max-width:100%}
details{margin:.6rem 0}details>summary{cursor:pointer;font-weight:600;padding:.2rem 0}
details.run{border:1px solid #ddd;border-radius:4px;padding:.2rem .8rem}
.charts{display:flex;flex-wrap:wrap;gap:1.2rem}.charts figure{width:auto;max-width:100%}
svg.chart{max-width:100%;height:auto;background:#fff}
"""


def _e(v: object) -> str:
    return html.escape(str(v), quote=True)


def _cell(value: Any, iv: Mapping[str, Any] | None) -> str:
    """``<b>estimate</b><br><span class=ci>[low, high]</span>`` (dash when missing)."""
    text = f"<b>{_e(format_value(value, 3))}</b>"
    if iv and iv.get("low") is not None and iv.get("high") is not None:
        text += (
            f'<br><span class="ci">[{_e(format_value(float(iv["low"]), 3))}, '
            f"{_e(format_value(float(iv['high']), 3))}]</span>"
        )
    return f"<td>{text}</td>"


def _failures(row: Mapping[str, Any]) -> str:
    """Failure kinds of one row as a compact cell."""
    parts = []
    for key, label in FAILURE_KINDS:
        v = row.get(key)
        parts.append(f"{label} {'n/a' if v is None else v}")
    joined = " \u00b7 ".join(parts)
    return f'<td class="k">{_e(joined)}</td>'


def _board(rows: Sequence[Mapping[str, Any]], intervals: Intervals) -> str:
    head = "".join(f"<th>{_e(label)}</th>" for _, label, _ in BOARD_COLUMNS)
    body = []
    for r in rows:
        run = str(r.get("run"))
        ivs = intervals.get(run) or {}
        cells = "".join(_cell(r.get(k), ivs.get(k)) for k, _, _ in BOARD_COLUMNS)
        body.append(
            f'<tr><td class="k">{_e(run)}</td>{cells}'
            f"<td>{_e(format_value(r.get('num_records')))}</td>{_failures(r)}</tr>"
        )
    return (
        '<table class="board"><thead><tr><th class="k">run</th>'
        f'{head}<th>records</th><th class="k">failures by kind</th></tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _all_columns(rows: Sequence[Mapping[str, Any]]) -> str:
    head = "".join(f"<th>{_e(label)}</th>" for _, label in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(format_value(r.get(k)))}</td>" for k, _ in COLUMNS) + "</tr>"
        for r in rows
    )
    return (
        "<details><summary>All leaderboard columns</summary>"
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
        "</table></div></details>"
    )


def _charts(rows: Sequence[Mapping[str, Any]], intervals: Intervals) -> str:
    figures = []
    for fam, key in PRIMARY.items():
        chart_rows = []
        for r in rows:
            run = str(r.get("run"))
            iv = (intervals.get(run) or {}).get(key) or {}
            est = iv.get("estimate", r.get(key))

            def num(v: Any) -> float:
                return float(v) if v is not None else math.nan

            chart_rows.append(ChartRow(run, num(est), num(iv.get("low")), num(iv.get("high"))))
        svg = interval_chart(
            _FAMILY_TITLES[fam], chart_rows, lower_is_better=key.endswith(("MAE", "MRE"))
        )
        if svg:
            figures.append(
                f"<figure>{svg}<figcaption>{_e(_FAMILY_TITLES[fam])} "
                f"<span class=muted>({_e(key)}; dot: estimate, bar: interval)</span>"
                "</figcaption></figure>"
            )
    if not figures:
        return ""
    return f'<h2>By task family</h2><div class="charts">{"".join(figures)}</div>'


def overview_html(rows: Sequence[Mapping[str, Any]], intervals: Intervals) -> str:
    """The report's first screen: provenance, leaderboard with intervals, family charts.

    Args:
        rows: Leaderboard rows (:func:`medvision.reports.tables.leaderboard`).
        intervals: Run name -> headline key -> interval dict (may be empty).

    Returns:
        HTML: the leaderboard, the "all columns" details, then one chart per family.
    """
    line = interval_line(intervals) or "No bootstrap intervals were computed."
    return (
        f'<p class="proto">{_e(provenance_line(rows))}<br>'
        f"<span class=muted>{_e(line)} Truncated and refused answers are part of the parse "
        "failures; backend errors hold no answer and are not scored.</span></p>"
        f"<h2>Leaderboard</h2>{_board(rows, intervals)}{_all_columns(rows)}"
        f"{_charts(rows, intervals)}"
    )
