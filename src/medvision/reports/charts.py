"""Inline SVG interval charts: one number of every run side by side, with its interval.

Drawn as plain SVG text (no plotting library, no script, a few kilobytes): one row per run,
a dot at the estimate and a bar from the interval's low to its high end, on a linear axis
whose ticks are round numbers of the data's own scale (no offset, no scientific notation).
Constant data (every value equal, e.g. an oracle at IoU 1.0) gets a fixed span around the
value instead of a zero-width axis. Text is escaped by the caller's :func:`html.escape`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ChartRow", "interval_chart", "nice_ticks"]


@dataclass(frozen=True)
class ChartRow:
    """One run in a chart.

    Attributes:
        label: Run name (plain text).
        estimate: The number (NaN when the run has none).
        low: Interval low end (NaN when there is no interval).
        high: Interval high end (NaN when there is no interval).
    """

    label: str
    estimate: float
    low: float = math.nan
    high: float = math.nan


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering ``[lo, hi]`` (about ``n`` of them; plain decimal steps).

    Example:
        >>> nice_ticks(0.0, 1.0)
        [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
        >>> nice_ticks(0.5, 0.5)
        [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi < lo:
        lo, hi = hi, lo
    span = hi - lo
    if span <= 1e-9 * max(1.0, abs(lo), abs(hi)):  # constant data: a fixed, readable span
        half = 0.5 if abs(lo) < 2 else 10 ** math.floor(math.log10(abs(lo)))
        lo, hi = lo - half, hi + half
        if lo < 0 <= lo + half:  # keep a value near 0..1 on a 0-based axis
            lo = 0.0
        span = hi - lo
    raw = span / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    t = first
    while t < hi + step * 0.999:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _fmt(v: float) -> str:
    """A tick label: plain decimals, no exponent, trailing zeros trimmed."""
    text = f"{v:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def interval_chart(
    title: str, rows: Sequence[ChartRow], *, lower_is_better: bool, width: int = 640
) -> str:
    """An inline SVG: every run's estimate and interval on one shared axis.

    Args:
        title: Accessible name of the chart (plain text).
        rows: One row per run, in display order.
        lower_is_better: Adds "lower is better" / "higher is better" under the axis.
        width: Width in CSS pixels (the SVG scales down with its container).

    Returns:
        ``<svg ...>...</svg>``, or ``""`` when no run has the number.
    """
    shown = [r for r in rows if math.isfinite(r.estimate)]
    if not shown:
        return ""
    values = [v for r in shown for v in (r.estimate, r.low, r.high) if math.isfinite(v)]
    ticks = nice_ticks(min(values), max(values))
    x0, x1 = ticks[0], ticks[-1]
    left, right, top, row_h = 170, 20, 8, 26
    plot_w = width - left - right
    height = top + row_h * len(rows) + 42

    def x(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * plot_w

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{html.escape(title, quote=True)}">'
    ]
    axis_y = top + row_h * len(rows)
    for t in ticks:
        xt = x(t)
        parts.append(
            f'<line x1="{xt:.1f}" y1="{top}" x2="{xt:.1f}" y2="{axis_y}" stroke="#e3e3e3"/>'
            f'<text x="{xt:.1f}" y="{axis_y + 14}" font-size="11" text-anchor="middle">'
            f"{_fmt(t)}</text>"
        )
    parts.append(
        f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" stroke="#888"/>'
    )
    direction = "lower is better" if lower_is_better else "higher is better"
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{axis_y + 32}" font-size="11" '
        f'text-anchor="middle" fill="#666">{direction}</text>'
    )
    for i, r in enumerate(rows):
        cy = top + row_h * i + row_h / 2
        label = r.label if len(r.label) <= 26 else r.label[:25] + "\u2026"
        parts.append(
            f'<text x="{left - 8}" y="{cy + 4:.1f}" font-size="12" text-anchor="end">'
            f"{html.escape(label)}</text>"
        )
        if not math.isfinite(r.estimate):
            parts.append(
                f'<text x="{left + 4}" y="{cy + 4:.1f}" font-size="11" fill="#888">n/a</text>'
            )
            continue
        if math.isfinite(r.low) and math.isfinite(r.high):
            parts.append(
                f'<line x1="{x(r.low):.1f}" y1="{cy:.1f}" x2="{x(r.high):.1f}" y2="{cy:.1f}" '
                'stroke="#3b6fd4" stroke-width="3"/>'
            )
        parts.append(
            f'<circle cx="{x(r.estimate):.1f}" cy="{cy:.1f}" r="4.5" fill="#1d1d1f">'
            f"<title>{html.escape(r.label)}: {_fmt(r.estimate)}"
            + (
                f" [{_fmt(r.low)}, {_fmt(r.high)}]"
                if math.isfinite(r.low) and math.isfinite(r.high)
                else ""
            )
            + "</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)
