"""Interval charts of the report's first screen and plain plot axes for constant data."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest

from medvision.reports.charts import ChartRow, interval_chart, nice_ticks
from medvision.reports.plots import _plain, plain_span


def test_nice_ticks_are_round_and_cover_the_data() -> None:
    assert nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    ticks = nice_ticks(0.121, 0.942)
    assert ticks[0] <= 0.121 and ticks[-1] >= 0.942
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert steps == {0.2}
    # Constant data (an oracle at IoU 1.0, up to rounding) gets a readable span, not 1e-9.
    assert nice_ticks(1.0, 1.0 + 1e-12) == [0.5, 0.75, 1.0, 1.25, 1.5]
    assert nice_ticks(24.2, 24.2)[0] <= 14.2 and nice_ticks(24.2, 24.2)[-1] >= 34.2


def test_interval_chart_draws_every_run_with_its_interval_in_plain_numbers() -> None:
    rows = [
        ChartRow("oracle", 1.0, 1.0, 1.0),
        ChartRow("noisy <b>", 0.327, 0.306, 0.35),
        ChartRow("no detection", math.nan),
    ]
    svg = interval_chart("Detection IoU", rows, lower_is_better=False)
    assert svg.startswith('<svg class="chart"') and svg.endswith("</svg>")
    assert svg.count("<circle") == 2  # one dot per run with the number
    assert "noisy &lt;b&gt;" in svg and "<b>" not in svg  # names are escaped
    assert ">n/a</text>" in svg and "higher is better" in svg
    labels = re.findall(r'text-anchor="middle">([^<]+)</text>', svg)
    assert labels and all(re.fullmatch(r"-?\d+(\.\d+)?", t) for t in labels[:-1])
    assert not any("e" in t for t in labels[:-1])  # no exponent, no offset
    assert interval_chart("x", [ChartRow("a", math.nan)], lower_is_better=True) == ""


def test_plots_of_constant_data_have_plain_axes() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = 1.0 + np.array([0.0, 1e-12, 2e-12, 3e-12])
    assert plain_span(values) == pytest.approx((0.5, 1.5))
    assert plain_span([0.1, 0.9]) is None
    # Matplotlib alone zooms onto the 1e-12 spread and writes an offset on the axis.
    fig, ax = plt.subplots()
    ax.plot(values, values, "o")
    fig.canvas.draw()
    assert ax.yaxis.get_major_formatter().get_offset() != ""
    plt.close(fig)
    fig, ax = plt.subplots()
    ax.plot(values, values, "o")
    _plain(ax, values, values)
    fig.canvas.draw()
    assert ax.xaxis.get_major_formatter().get_offset() == ""
    assert ax.yaxis.get_major_formatter().get_offset() == ""
    assert ax.get_ylim() == pytest.approx((0.5, 1.5))
    plt.close(fig)
