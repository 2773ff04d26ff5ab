"""Plots for the HTML report, rendered to base64 PNG ``data:`` URIs (no file, no network).

matplotlib is optional: it is imported inside :func:`render_plots`; without it the function
returns no plots and a sentence saying so, which the report prints in place of the figures.

Plots (each skipped when the run has no data for it):

* per-label bars: detection IoU per official group, T/L and A/D MRE per label;
* error against target size: detection IoU against the box/image area ratio, T/L absolute
  error (mm) against the target major axis (mm);
* box-size curves: the run's IoU and ``IoU>=0.5`` per box-size bin beside the random baseline
  (official draw-mean and our per-draw thresholding);
* error histograms: detection IoU, T/L and A/D relative error (clipped at 2 for display).

Every axis is plain (no offset, no scientific notation), and constant or near-constant data
(an oracle's IoU of 1.0 up to rounding) is shown on a fixed span around its value instead of
a zoomed axis whose 1e-8 offset would read as noise (:func:`plain_span`).
"""

from __future__ import annotations

import base64
import contextlib
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from medvision.metrics.boxsize import BoxSizeAnalysis
from medvision.metrics.headline import Prepared
from medvision.schema import TaskFamily

__all__ = ["Plot", "plain_span", "render_plots"]


@dataclass(frozen=True)
class Plot:
    """One rendered figure.

    Attributes:
        title: Caption text (plain; escaped by the HTML writer).
        uri: ``data:image/png;base64,...``.
    """

    title: str
    uri: str


def plain_span(values: Any) -> tuple[float, float] | None:
    """A fixed axis span for constant or near-constant data, else ``None``.

    Data whose spread is at most ``1e-9`` of its scale gets ``value +- 0.5`` (values within
    2 of 0) or ``+-`` the value's power of ten, so the axis shows round ticks around it.

    Example:
        >>> plain_span([1.0, 1.0 + 1e-12])
        (0.5, 1.5)
        >>> plain_span([0.1, 0.9]) is None
        True
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return None
    lo, hi = float(v.min()), float(v.max())
    if hi - lo > 1e-9 * max(1.0, abs(lo), abs(hi)):
        return None
    c = (lo + hi) / 2
    half = 0.5 if abs(c) < 2 else float(10 ** math.floor(math.log10(abs(c))))
    return round(c - half, 9), round(c + half, 9)  # round ticks, not 0.5000000000005


def _plain(ax: Any, x: Any = None, y: Any = None) -> None:
    """Plain tick labels on both axes; fixed spans for (near-)constant ``x`` / ``y`` data."""
    for axis in ("x", "y"):
        # A categorical axis (bar labels) has no offset to remove.
        with contextlib.suppress(AttributeError):
            ax.ticklabel_format(axis=axis, style="plain", useOffset=False)
    if x is not None and (span := plain_span(x)) is not None:
        ax.set_xlim(*span)
    if y is not None and (span := plain_span(y)) is not None:
        ax.set_ylim(*span)


def _uri(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _bars(plt: Any, values: Mapping[str, float], xlabel: str, title: str) -> Plot | None:
    items = [(k, v) for k, v in values.items() if v is not None and math.isfinite(float(v))]
    if not items:
        return None
    items = items[:40]  # a readable figure; the tables hold every group
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(items) + 1.2))
    vals = [float(v) for _, v in items]
    ax.barh([k for k, _ in items][::-1], vals[::-1], color="#3b6fd4")
    ax.set_xlabel(xlabel)
    _plain(ax)
    if max(vals) - min(vals) <= 1e-9 * max(1.0, *map(abs, vals)):  # equal bars from 0
        ax.set_xlim(0, (plain_span(vals) or (0.0, 1.0))[1])
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    out = Plot(title, _uri(fig))
    plt.close(fig)
    return out


def _scatter(plt: Any, x: Any, y: Any, xlabel: str, ylabel: str, title: str) -> Plot | None:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return None
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.scatter(x[ok], y[ok], s=6, alpha=0.5, color="#d7263d")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _plain(ax, x[ok], y[ok])
    fig.tight_layout()
    out = Plot(title, _uri(fig))
    plt.close(fig)
    return out


def _hist(plt: Any, v: Any, xlabel: str, title: str, clip: float | None = None) -> Plot | None:
    v = np.asarray(v, dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return None
    if clip is not None:
        v = np.minimum(v, clip)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    span = plain_span(v)
    ax.hist(v, bins=40, range=span, color="#3b6fd4")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("samples")
    _plain(ax, v)
    fig.tight_layout()
    out = Plot(title, _uri(fig))
    plt.close(fig)
    return out


def _box_curves(plt: Any, box: BoxSizeAnalysis) -> Plot | None:
    if not box.labels:
        return None
    x = np.arange(len(box.labels))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, name in ((axes[0], "IoU", "mean IoU"), (axes[1], "IoU>0.5", "IoU>=0.5 rate")):
        for src, label, style in (
            (box.model, "model", "o-"),
            (box.random_official, "random (official: mean of draws)", "s--"),
            (box.random_per_draw, "random (per draw)", "^:"),
        ):
            ax.plot(x, [src[b].get(key, math.nan) for b in box.labels], style, label=label, ms=4)
        ax.set_xticks(x)
        ax.set_xticklabels(
            [b.replace("Box/Image", "").strip() for b in box.labels], rotation=60, fontsize=6
        )
        ax.set_ylabel(name)
        _plain(ax)
        ax.set_ylim(0, 1)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    out = Plot("Detection against box size, beside the random baseline", _uri(fig))
    plt.close(fig)
    return out


def render_plots(
    prep: Prepared, summary: Mapping[str, Any], box: BoxSizeAnalysis | None
) -> tuple[list[Plot], str | None]:
    """Render every plot of one run.

    Args:
        prep: The prepared run (per-sample scores).
        summary: Its :func:`medvision.metrics.summarize_run` output (group tables).
        box: Its box-size analysis, if any.

    Returns:
        ``(plots, note)``: ``note`` is ``None`` or a sentence explaining why there are no plots.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "Plots are missing: matplotlib is not installed (pip install matplotlib)."
    plots: list[Plot | None] = []
    det = summary.get("detection") or {}
    tl = summary.get("tl") or {}
    ad = summary.get("ad") or {}
    if det:
        groups = {k: m.get("IoU") for k, m in (det.get("groups") or {}).items()}
        plots.append(
            _bars(plt, groups, "IoU", "Detection IoU per group (label @ modality (plane))")
        )
    if tl:
        groups = {k: m.get("avgMRE") for k, m in (tl.get("groups") or {}).items()}
        plots.append(_bars(plt, groups, "MRE", "Tumour/lesion MRE per label"))
    if ad:
        labels = {k: m.get("avgMRE") for k, m in (ad.get("labels") or {}).items()}
        plots.append(_bars(plt, labels, "MRE", "Angle/distance MRE per measurement"))
    fd = prep.families.get(TaskFamily.DETECTION)
    if fd is not None:
        plots.append(
            _scatter(
                plt,
                fd.box_img_ratio,
                fd.scores["iou"],
                "box area / image area",
                "IoU",
                "Detection IoU against target box size",
            )
        )
        plots.append(_hist(plt, fd.scores["iou"], "IoU", "Detection IoU histogram"))
    if box is not None:
        plots.append(_box_curves(plt, box))
    fd = prep.families.get(TaskFamily.TUMOR_LESION_SIZE)
    if fd is not None:
        err = fd.scores["mae"]
        plots.append(
            _scatter(
                plt,
                fd.targets[:, 0],
                err,
                "target major axis (mm)",
                "MAE (mm)",
                "Tumour/lesion error against target size",
            )
        )
        plots.append(
            _hist(
                plt,
                fd.scores["mre"],
                "relative error (clipped at 2)",
                "Tumour/lesion relative error histogram",
                clip=2.0,
            )
        )
    fd = prep.families.get(TaskFamily.ANGLE_DISTANCE)
    if fd is not None:
        plots.append(
            _hist(
                plt,
                fd.scores["mre"],
                "relative error (clipped at 2)",
                "Angle/distance relative error histogram",
                clip=2.0,
            )
        )
    return [p for p in plots if p is not None], None
