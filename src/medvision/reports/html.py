"""A single self-contained HTML report that leads with the answer.

First screen (:mod:`medvision.reports.overview`): one leaderboard across all runs with the
headline numbers, their bootstrap intervals and failures by kind, then one chart per task
family with every run side by side. Below, every run's details (tables, analyses, plots and a
gallery of samples) sit in a ``<details>`` element, closed by default.

The file references nothing outside itself: CSS is inline, images are ``data:`` URIs of base64
PNG, boxes are inline SVG, and there is no script. Every text that came from a record or a
model (raw output, labels, run names) is passed through :func:`html.escape`, so a model that
answers ``<script>...`` shows that text and runs nothing.

Detection samples show the ground-truth box (green) and the predicted box (red) over the image.
Boxes are relative ``[x0, y0, x1, y1]`` with origin lower-left; they are turned into array
``(r0, c0, r1, c1)`` by :func:`medvision.geometry.frames.rel_to_box_rc`, i.e. SVG ``x = x*W``,
``y = (1 - y)*H``. Corners of a prediction are sorted for drawing only (its score uses the
protocol's rule).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from PIL import Image

from medvision.geometry.frames import rel_to_box_rc
from medvision.metrics.per_sample import sample_metrics
from medvision.metrics.protocols import PROTOCOLS
from medvision.reports.failures import FAILURE_KINDS, failure_counts, failure_text
from medvision.reports.overview import OVERVIEW_CSS, overview_html
from medvision.reports.plots import Plot
from medvision.reports.tables import (
    CI_KEYS,
    failure_notes,
    format_interval,
    format_value,
    leaderboard,
)
from medvision.schema import Plane, Record, Sample, TaskFamily

__all__ = ["RunAnalysis", "select_gallery", "write_html_report"]

ImageLoader = Callable[[str], bytes]
SampleLookup = Callable[[str], Sample | None]
"""``sample_id -> Sample`` of the built dataset (for T/L axes and A/D landmarks), or None."""

CSP: Final = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
"""Content-Security-Policy of the report: no script, no network, only inline images/CSS."""


@dataclass(frozen=True)
class RunAnalysis:
    """Everything beyond the official summary that the report shows for one run.

    Attributes:
        intervals: Headline key -> bootstrap interval dict (``Interval.to_dict()``).
        macro: :func:`medvision.metrics.macro.macro_report` output.
        box_size: ``BoxSizeAnalysis.to_dict()`` or ``None`` without detection.
        plots: Rendered plots.
        plots_note: Why plots are missing, or ``None``.
    """

    intervals: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    macro: Mapping[str, Any] = field(default_factory=dict)
    box_size: Mapping[str, Any] | None = None
    plots: Sequence[Plot] = ()
    plots_note: str | None = None


_PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"
_DISPLAY_PX: Final = 320
_GT_COLOUR: Final = "#1a9e3f"
_PRED_COLOUR: Final = "#d7263d"

_CSS: Final = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5rem;color:#1d1d1f}
h1{font-size:1.6rem}h2{margin-top:2.5rem;border-bottom:2px solid #ddd}h3{margin-top:1.5rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.85rem}
th,td{border:1px solid #ccc;padding:.2rem .45rem;text-align:right}
th{background:#f2f2f2}td.k,th.k{text-align:left}
.proto{background:#eef4ff;border-left:4px solid #3b6fd4;padding:.4rem .7rem}
.gallery{display:flex;flex-wrap:wrap;gap:1rem}
figure{margin:0;border:1px solid #ddd;padding:.5rem;width:340px;font-size:.8rem}
figure svg{display:block;background:#222}
pre{white-space:pre-wrap;word-break:break-word;background:#f7f7f7;padding:.3rem;
max-height:9rem;overflow:auto}
.warn{background:#fff4e0;border-left:4px solid #e08a00;padding:.3rem .7rem;margin:.3rem 0}
.plots img{max-width:100%;border:1px solid #ddd;margin:.3rem}
.gt{color:#1a9e3f;font-weight:600}.pred{color:#d7263d;font-weight:600}.muted{color:#777}
"""


def _e(value: object) -> str:
    """HTML-escape any value's text (quotes included, safe in attributes)."""
    return html.escape(str(value), quote=True)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], key_cols: int = 1) -> str:
    """An HTML table; the first ``key_cols`` columns are left-aligned text."""
    cls = [' class="k"' if i < key_cols else "" for i in range(len(headers))]
    head = "".join(f"<th{c}>{_e(h)}</th>" for c, h in zip(cls, headers, strict=True))
    body = "".join(
        "<tr>"
        + "".join(f"<td{c}>{_e(format_value(v))}</td>" for c, v in zip(cls, row, strict=True))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _metric_rows(
    groups: Mapping[str, Mapping[str, Any]], names: Sequence[str]
) -> list[list[object]]:
    """Rows ``[key, N, metric...]`` for a mapping of group metrics."""
    return [
        [key, m.get("num_samples", m.get("samples")), *(m.get(n) for n in names)]
        for key, m in groups.items()
    ]


_DET_COLS: Final = ("IoU", "F1", "Precision", "Recall", "SuccessRate", "IoU>0.5", "avgMAE")
_DET_LABELS: Final = ("IoU", "F1 (box Dice)", "Precision", "Recall", "SR", "IoU>=0.5", "MAE")
_ERR_COLS: Final = ("avgMAE", "avgMRE", "SuccessRate", "MRE<0.1", "MRE<0.2", "MRE<0.3")
_ERR_LABELS: Final = ("MAE", "MRE", "SR", "MRE<0.1", "MRE<0.2", "MRE<0.3")
_LINE_COLS: Final = ("MAE", "MRE", "SR", "MRE<0.1", "MRE<0.2", "MRE<0.3")


def _detection_section(det: Mapping[str, Any]) -> str:
    """Detection tables: anatomy vs T/L, every group, exclusions."""
    parts = ["<h3>Detection</h3>"]
    split_rows = []
    for name, key in (("anatomy", "anatomy"), ("tumour/lesion", "tumor_lesion")):
        mm = (det.get(key) or {}).get("mean_metrics") or {}
        split_rows.append(
            [name, mm.get("num_regions"), mm.get("total_samples"), *(mm.get(c) for c in _DET_COLS)]
        )
    all_m = det.get("all") or {}
    split_rows.append(
        ["all samples", None, all_m.get("num_samples"), *(all_m.get(c) for c in _DET_COLS)]
    )
    parts.append(_table(["split", "groups", "N", *_DET_LABELS], split_rows))
    parts.append("<p class=muted>Groups (label group @ modality (plane)):</p>")
    parts.append(
        _table(["group", "N", *_DET_LABELS], _metric_rows(det.get("groups") or {}, _DET_COLS))
    )
    excluded = det.get("excluded") or {}
    if excluded:
        parts.append(
            "<p class=muted>Left out of the anatomy / T-L split: "
            + "; ".join(f"{_e(k)} ({_e(v)})" for k, v in excluded.items())
            + "</p>"
        )
    return "".join(parts)


def _tl_section(tl: Mapping[str, Any]) -> str:
    """T/L tables: model line and every label group."""
    model = tl.get("model") or {}
    parts = [
        "<h3>Tumour/lesion size</h3>",
        _table(
            ["model line", "N", *_LINE_COLS],
            [["weighted", model.get("num_samples"), *(model.get(c) for c in _LINE_COLS)]],
        ),
    ]
    dropped = tl.get("dropped_all_failed") or []
    if dropped:
        parts.append(
            "<p class=muted>Dropped from the model line because every sample failed "
            f"(official rule): {_e(', '.join(dropped))}. SR with them kept: "
            f"{_e(format_value(tl.get('SR_all_groups')))}</p>"
        )
    parts.append(
        _table(["label group", "N", *_ERR_LABELS], _metric_rows(tl.get("groups") or {}, _ERR_COLS))
    )
    return "".join(parts)


def _ad_section(ad: Mapping[str, Any]) -> str:
    """A/D tables: model line, group averages, every measurement label."""
    model = ad.get("model") or {}
    groups = ad.get("groups") or {}
    parts = [
        "<h3>Angle / distance</h3>",
        _table(
            ["model line", "N", *_LINE_COLS],
            [["weighted", model.get("num_samples"), *(model.get(c) for c in _LINE_COLS)]],
        ),
        _table(
            ["group", "N", *_LINE_COLS],
            [[k, g.get("samples"), *(g.get(c) for c in _LINE_COLS)] for k, g in groups.items()],
        ),
        _table(["label", "N", *_ERR_LABELS], _metric_rows(ad.get("labels") or {}, _ERR_COLS)),
    ]
    if ad.get("near_zero_excluded"):
        parts.append(
            f"<p class=muted>{_e(ad['near_zero_excluded'])} samples with a near-zero target "
            "were excluded by the protocol.</p>"
        )
    return "".join(parts)


# ----------------------------------------------------------------------------------------------
# gallery


def _png_data_uri(data: bytes) -> str:
    """``data:image/png;base64,...`` of ``data``, re-encoded to PNG if it is another format."""
    if not data.startswith(_PNG_MAGIC):
        with Image.open(io.BytesIO(data)) as im:
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            data = buf.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _load_image(loader: ImageLoader | None, key: str) -> tuple[str | None, str]:
    """``(data URI or None, reason)`` for an image key."""
    if loader is None:
        return None, "no image loader given"
    try:
        return _png_data_uri(loader(key)), ""
    except (KeyError, OSError) as exc:  # missing file / unknown key / unreadable image
        return None, f"image {key[:16]} unavailable: {type(exc).__name__}: {exc}"


class _Images:
    """Each distinct image once, referenced from every figure that shows it.

    The first use of an image key adds ``<image id=...>`` to one hidden ``<svg><defs>`` at the
    top of the page; every figure then draws ``<use href="#id">`` (a same-document reference,
    no request). Runs evaluated on the same samples share their gallery images, so a report of
    several runs holds each PNG once instead of once per run.
    """

    def __init__(self, loader: ImageLoader | None) -> None:
        self._loader = loader
        self._refs: dict[str, tuple[str | None, str]] = {}
        self._defs: list[str] = []

    def ref(self, key: str, hw: tuple[int, int]) -> tuple[str | None, str]:
        """``(element id or None, reason)`` of image ``key`` of size ``hw`` (rows, cols)."""
        if key not in self._refs:
            uri, reason = _load_image(self._loader, key)
            if uri is None:
                self._refs[key] = (None, reason)
            else:
                iid = f"img{len(self._defs)}"
                self._defs.append(
                    f'<image id="{iid}" href="{_e(uri)}" x="0" y="0" width="{hw[1]}" '
                    f'height="{hw[0]}"/>'
                )
                self._refs[key] = (iid, "")
        return self._refs[key]

    def defs(self) -> str:
        """The hidden ``<svg>`` holding every image used (empty when none)."""
        if not self._defs:
            return ""
        return (
            '<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>'
            + "".join(self._defs)
            + "</defs></svg>"
        )


def _svg_rect(box_rel: Sequence[float], hw: tuple[int, int], colour: str, dash: bool) -> str:
    """An SVG rectangle for a relative lower-left box, or ``""`` when it cannot be drawn."""
    if len(box_rel) != 4 or not all(math.isfinite(float(v)) for v in box_rel):
        return ""
    r0, c0, r1, c1 = rel_to_box_rc(box_rel, hw)
    x, y = min(c0, c1), min(r0, r1)
    w, h = abs(c1 - c0), abs(r1 - r0)
    dash_attr = ' stroke-dasharray="6 3"' if dash else ""
    return (
        f'<rect x="{x:.2f}" y="{y:.2f}" width="{w:.2f}" height="{h:.2f}" fill="none" '
        f'stroke="{colour}" stroke-width="2" vector-effect="non-scaling-stroke"{dash_attr}/>'
    )


def _svg_line(p: Sequence[float], q: Sequence[float], colour: str, dash: bool) -> str:
    """An SVG segment between two (row, col) pixel points (x = col, y = row)."""
    vals = [float(v) for v in (*p, *q)]
    if not all(math.isfinite(v) for v in vals):
        return ""
    dash_attr = ' stroke-dasharray="5 3"' if dash else ""
    return (
        f'<line x1="{vals[1]:.2f}" y1="{vals[0]:.2f}" x2="{vals[3]:.2f}" y2="{vals[2]:.2f}" '
        f'stroke="{colour}" stroke-width="2" vector-effect="non-scaling-stroke"{dash_attr}/>'
    )


def _svg_point(p: Sequence[float], colour: str, hw: tuple[int, int]) -> str:
    """A small SVG circle at a (row, col) pixel point."""
    r = max(hw) / 80.0
    return (
        f'<circle cx="{float(p[1]):.2f}" cy="{float(p[0]):.2f}" r="{r:.2f}" fill="{colour}" '
        'fill-opacity="0.8"/>'
    )


def _mm_per_px(p: Sequence[float], q: Sequence[float], spacing_rc: Sequence[float]) -> float:
    """Millimetres per pixel along the direction ``p -> q`` for a (row, col) spacing in mm."""
    dr, dc = float(q[0]) - float(p[0]), float(q[1]) - float(p[1])
    n = math.hypot(dr, dc)
    if n == 0.0:
        return math.nan
    return math.hypot(dr / n * float(spacing_rc[0]), dc / n * float(spacing_rc[1]))


def _scaled_segment(
    p: Sequence[float],
    q: Sequence[float],
    length_mm: float,
    spacing_rc: Sequence[float],
    *,
    centred: bool,
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """A segment along ``p -> q`` of ``length_mm``, centred on the midpoint or starting at ``p``."""
    mpp = _mm_per_px(p, q, spacing_rc)
    if not (math.isfinite(mpp) and mpp > 0 and math.isfinite(length_mm)):
        return None
    dr, dc = float(q[0]) - float(p[0]), float(q[1]) - float(p[1])
    n = math.hypot(dr, dc)
    ur, uc = dr / n, dc / n
    half = length_mm / mpp / (2.0 if centred else 1.0)
    if centred:
        mr, mc = (float(p[0]) + float(q[0])) / 2, (float(p[1]) + float(q[1])) / 2
        return (mr - ur * half, mc - uc * half), (mr + ur * half, mc + uc * half)
    return (float(p[0]), float(p[1])), (float(p[0]) + ur * half, float(p[1]) + uc * half)


def _overlays(rec: Record, sample: Sample | None, hw: tuple[int, int]) -> tuple[str, str]:
    """SVG overlays and a legend line for one record (ground truth green, prediction red)."""
    fam = TaskFamily(rec.family)
    if fam is TaskFamily.DETECTION:
        svg = _svg_rect(rec.target, hw, _GT_COLOUR, dash=False)
        if rec.parsed is not None:
            svg += _svg_rect(rec.parsed, hw, _PRED_COLOUR, dash=True)
        return svg, "green: ground-truth box; red dashed: predicted box"
    if sample is None or not sample.points_rc:
        return "", "axes/landmarks unavailable (the built dataset was not found)"
    pts = sample.points_rc
    sp = sample.spacing_mm_rc
    pred = rec.parsed
    svg = ""
    if fam is TaskFamily.TUMOR_LESION_SIZE and len(pts) >= 4:
        svg += _svg_line(pts[0], pts[1], _GT_COLOUR, dash=False)
        svg += _svg_line(pts[2], pts[3], _GT_COLOUR, dash=False)
        if pred is not None and len(pred) == 2:
            for (a, b), length in (((pts[0], pts[1]), pred[0]), ((pts[2], pts[3]), pred[1])):
                seg = _scaled_segment(a, b, float(length), sp, centred=True)
                if seg is not None:
                    svg += _svg_line(seg[0], seg[1], _PRED_COLOUR, dash=True)
        return svg, (
            "green: true major and minor axes; red dashed: the predicted lengths drawn along "
            "the true axes"
        )
    for p in pts:
        svg += _svg_point(p, _GT_COLOUR, hw)
    if rec.metric_type == "angle" and len(pts) >= 4:
        svg += _svg_line(pts[0], pts[1], _GT_COLOUR, dash=False)
        svg += _svg_line(pts[2], pts[3], _GT_COLOUR, dash=False)
        return svg, "green: landmarks and the two lines of the angle (the angle is in the text)"
    if len(pts) >= 2:
        svg += _svg_line(pts[0], pts[1], _GT_COLOUR, dash=False)
        if pred is not None and len(pred) == 1:
            seg = _scaled_segment(pts[0], pts[1], float(pred[0]), sp, centred=False)
            if seg is not None:
                svg += _svg_line(seg[0], seg[1], _PRED_COLOUR, dash=True)
        return svg, (
            "green: landmarks and the true distance; red dashed: the predicted distance from "
            "the first landmark"
        )
    return svg, "green: landmarks"


def _svg(image_id: str | None, hw: tuple[int, int], overlays: str) -> str:
    """Inline SVG of size ``hw`` (rows, cols) with the image (by reference) and the overlays."""
    h, w = hw
    scale = _DISPLAY_PX / max(h, w)
    image = f'<use href="#{_e(image_id)}"/>' if image_id else ""
    return (
        f'<svg viewBox="0 0 {w} {h}" width="{w * scale:.0f}" height="{h * scale:.0f}" '
        f'role="img">{image}{overlays}</svg>'
    )


def _values(v: Sequence[float] | None) -> str:
    """Values as ``[a, b]`` with 4 significant decimals, or ``none``."""
    if v is None:
        return "none"
    return "[" + ", ".join(f"{float(x):.4g}" for x in v) + "]"


def _figure(rec: Record, images: _Images, protocol_name: str, lookup: SampleLookup | None) -> str:
    """One gallery figure: image + overlays, target vs prediction, scores, raw output."""
    hw = (int(rec.image_hw[0]), int(rec.image_hw[1]))
    image_id, reason = images.ref(rec.image_key, hw)
    fam = TaskFamily(rec.family)
    scores: dict[str, float] = {}
    protocol = PROTOCOLS.get(protocol_name)
    if protocol is not None:
        scores = sample_metrics(fam, rec.parsed, rec.target, protocol)
    sample = lookup(rec.sample_id) if lookup is not None else None
    overlays, legend = _overlays(rec, sample, hw)
    unit = {
        "detection": "relative",
        "tl": "mm",
        "ad": "deg" if rec.metric_type == "angle" else "mm",
    }
    what = (
        rec.label_name
        if fam is not TaskFamily.ANGLE_DISTANCE
        else (f"{rec.metric_type} {rec.metric_key}")
    )
    plane = Plane(rec.plane).name.lower() if rec.plane in (0, 1, 2) else str(rec.plane)
    score_text = ", ".join(f"{k}={format_value(v)}" for k, v in scores.items() if k != "success")
    lines = [
        f"<figcaption><b>{_e(what)}</b> <span class=muted>{_e(rec.dataset)} / "
        f"{_e(rec.case_id)} / {_e(plane)} {_e(rec.slice_index)} / {_e(rec.modality)}</span><br>",
        f"<span class=gt>target</span> {_e(_values(rec.target))} {_e(unit[fam.value])}<br>",
        f"<span class=pred>prediction</span> {_e(_values(rec.parsed))} "
        f"<span class=muted>(status {_e(rec.status)}"
        + (f": {_e(rec.reason)}" if rec.reason else "")
        + ")</span><br>",
        f"<span class=muted>{_e(score_text)}</span><br>" if score_text else "",
        f"<span class=muted>{_e(legend)}</span>",
        f"<br><span class=muted>{_e(reason)}</span>" if reason else "",
        f"<pre>{_e(rec.raw_output)}</pre></figcaption>",
    ]
    # A record without a known image size (imported from logs that hold no image) has no
    # picture to draw on: the caption alone.
    picture = _svg(image_id, hw, overlays) if min(hw) > 0 else ""
    return f"<figure>{picture}{''.join(lines)}</figure>"


def _size_preference(rec: Record) -> float:
    """Detection: distance of the box/image ratio from 10 % in log space (mid-size first)."""
    ratio = rec.box_img_ratio
    if ratio is None and len(rec.target) == 4:
        ratio = abs(rec.target[2] - rec.target[0]) * abs(rec.target[3] - rec.target[1])
    if ratio is None or not ratio > 0:
        return math.inf
    return abs(math.log(ratio / 0.1))


def select_gallery(records: Sequence[Record], family: TaskFamily, n: int) -> list[Record]:
    """A deterministic, diverse choice of ``n`` records of one family.

    Records are grouped by (dataset, plane, label or measurement); groups are visited round
    robin in sorted order, one record at a time, so the gallery spreads over datasets, planes
    and labels before it repeats one. Within a group, detection prefers mid-size boxes (area
    near 10 % of the image) and then the sample id; the other families go by sample id. The
    choice depends on the records only, never on their order in the file.

    Args:
        records: A run's records (any families).
        family: The family to choose from.
        n: How many to choose (fewer if there are fewer).

    Returns:
        The chosen records, in display order.
    """
    groups: dict[tuple[str, int, str], list[Record]] = {}
    for r in records:
        if r.family != family.value:
            continue
        label = r.label_name if family is not TaskFamily.ANGLE_DISTANCE else r.metric_key
        groups.setdefault((r.dataset, r.plane, label), []).append(r)
    queues = []
    for key in sorted(groups):
        members = groups[key]
        if family is TaskFamily.DETECTION:
            members.sort(key=lambda r: (_size_preference(r), r.sample_id))
        else:
            members.sort(key=lambda r: r.sample_id)
        queues.append(members)
    chosen: list[Record] = []
    depth = 0
    while len(chosen) < n and any(depth < len(q) for q in queues):
        for q in queues:
            if depth < len(q) and len(chosen) < n:
                chosen.append(q[depth])
        depth += 1
    return chosen


def _gallery(
    records: Sequence[Record],
    images: _Images,
    protocol_name: str,
    max_gallery: int,
    lookup: SampleLookup | None,
) -> str:
    """Gallery sections per family: a diverse selection of ``max_gallery`` records each."""
    parts: list[str] = []
    titles = {
        "detection": "Detection samples (green: ground truth, red dashed: prediction)",
        "tl": "Tumour/lesion size samples (green: true axes, red dashed: predicted lengths)",
        "ad": "Angle/distance samples (green: landmarks and true measurement)",
    }
    for fam in TaskFamily:
        chosen = select_gallery(records, fam, max(0, max_gallery))
        if not chosen:
            continue
        figures = "".join(_figure(r, images, protocol_name, lookup) for r in chosen)
        parts.append(f'<h3>{_e(titles[fam.value])}</h3><div class="gallery">{figures}</div>')
    return "".join(parts)


# ----------------------------------------------------------------------------------------------
# analyses


def _analysis_section(analysis: RunAnalysis) -> str:
    """Bootstrap intervals, macro breakdowns, box size vs random and the plots."""
    parts: list[str] = []
    iv = analysis.intervals
    if iv:
        shown = [k for k in CI_KEYS if (iv.get(k) or {}).get("estimate") is not None]
        first = iv[shown[0]] if shown else {}
        parts.append(
            "<h3>Confidence intervals</h3><p class=muted>"
            f"{_e(format(first.get('level', 0.95), '.0%'))}"
            f" percentile {_e(first.get('method', 'slice'))} bootstrap, "
            f"{_e(first.get('n_boot', ''))} replicates, "
            + ("cases/subjects" if first.get("method") == "cluster" else "samples")
            + " resampled within their official group and dataset.</p>"
        )
        parts.append(
            _table(["number", "estimate [interval]"], [[k, format_interval(iv[k])] for k in shown])
        )
    cols = ("num_samples", "IoU", "avgMAE", "avgMRE", "SuccessRate")
    for fam, m in (analysis.macro or {}).items():
        rows: list[list[object]] = []
        for section, title in (
            ("by_dataset", "dataset"),
            ("plane_split", "plane"),
            ("by_plane", "plane"),
            ("by_box_size", "box size"),
        ):
            for name, met in (m.get(section) or {}).items():
                rows.append([title, name, *(met.get(c) for c in cols)])
        for section, title in (
            ("macro_dataset", "macro over datasets"),
            ("macro_plane", "macro over planes"),
            ("macro_box_size", "macro over box sizes"),
        ):
            if m.get(section):
                rows.append([title, "", *(m[section].get(c) for c in cols)])
        parts.append(
            f"<h3>{_e(fam)}: per dataset, plane and box size (pooled within each part)</h3>"
        )
        parts.append(_table(["by", "part", "N", "IoU", "MAE", "MRE", "SR"], rows, key_cols=2))
    box = analysis.box_size
    if box and box.get("bins"):
        rows = []
        for b in box["bins"]:
            mo, ro, rd = box["model"][b], box["random_official"][b], box["random_per_draw"][b]
            rows.append(
                [
                    b,
                    mo.get("num_samples"),
                    mo.get("IoU"),
                    ro.get("IoU"),
                    mo.get("IoU>0.5"),
                    ro.get("IoU>0.5"),
                    rd.get("IoU>0.5"),
                ]
            )
        parts.append(
            "<h3>Detection against box size, beside random boxes</h3><p class=muted>"
            f"{_e(box.get('n_draws'))} random boxes per sample, seed {_e(box.get('seed'))}. "
            "Official: IoU>=0.5 of the mean IoU of the draws; per draw: the share of single "
            "draws reaching IoU 0.5.</p>"
        )
        parts.append(
            _table(
                [
                    "box/image",
                    "N",
                    "IoU",
                    "random IoU",
                    "IoU>=0.5",
                    "random official",
                    "random per draw",
                ],
                rows,
            )
        )
    if analysis.plots_note:
        parts.append(f'<p class="warn">{_e(analysis.plots_note)}</p>')
    if analysis.plots:
        imgs = "".join(
            f'<figure style="width:auto"><img src="{_e(p.uri)}" alt="{_e(p.title)}">'
            f"<figcaption>{_e(p.title)}</figcaption></figure>"
            for p in analysis.plots
        )
        parts.append(f'<h3>Plots</h3><div class="plots gallery">{imgs}</div>')
    return "".join(parts)


# ----------------------------------------------------------------------------------------------


def _run_section(
    run: str,
    summary: Mapping[str, Any],
    records: Sequence[Record],
    images: _Images,
    max_gallery: int,
    analysis: RunAnalysis | None,
    lookup: SampleLookup | None,
) -> str:
    """Everything about one run."""
    counts = failure_counts(summary, records)
    proto = summary.get("protocol") or {}
    name = str(proto.get("name", "unknown"))
    switches = ", ".join(f"{k}={v}" for k, v in proto.items() if k not in ("name", "description"))
    parts = [
        f"<section><h3>{_e(run)}</h3>",
        f'<p class="proto">Protocol: <b>{_e(name)}</b> \u2014 {_e(proto.get("description", ""))}'
        f"<br><span class=muted>{_e(switches)}</span></p>",
        "<p>Models: "
        + _e(", ".join(summary.get("models") or []) or "\u2014")
        + f" \u00b7 records: {_e(summary.get('num_records'))}</p>",
        _table(
            ["failure kind", "count"],
            [[label, counts.get(key)] for key, label in FAILURE_KINDS],
        ),
        _table(["parse status", "count"], list((summary.get("status_counts") or {}).items())),
        *(f'<p class="warn">{_e(note)}</p>' for note in failure_notes(summary)),
    ]
    if summary.get("detection"):
        parts.append(_detection_section(summary["detection"]))
    if summary.get("tl"):
        parts.append(_tl_section(summary["tl"]))
    if summary.get("ad"):
        parts.append(_ad_section(summary["ad"]))
    if analysis is not None:
        parts.append(_analysis_section(analysis))
    parts.append(_gallery(records, images, name, max_gallery, lookup))
    parts.append("</section>")
    return "".join(parts)


def write_html_report(
    path: str | Path,
    *,
    summaries: Mapping[str, Mapping[str, Any]],
    records_by_run: Mapping[str, Sequence[Record]],
    image_loader: ImageLoader | None,
    max_gallery: int = 24,
    analyses: Mapping[str, RunAnalysis] | None = None,
    sample_lookup: SampleLookup | None = None,
) -> None:
    """Write one self-contained HTML report for one or more runs.

    The page carries a Content-Security-Policy (:data:`CSP`) that forbids scripts and every
    network request, and all text from records is escaped.

    Args:
        path: Output ``.html`` file; overwritten.
        summaries: Run name -> :func:`medvision.metrics.summarize_run` output.
        records_by_run: Run name -> the run's records (for the gallery); may lack a run.
        image_loader: ``image_key -> image bytes`` (PNG preferred; other formats PIL reads
            are re-encoded to PNG). ``None`` draws the overlays on an empty canvas.
        max_gallery: Samples shown per task family per run.
        analyses: Run name -> intervals, breakdowns, box-size analysis and plots.
        sample_lookup: ``sample_id -> Sample`` for T/L axes and A/D landmarks.
    """
    failures = {run: failure_counts(s, records_by_run.get(run)) for run, s in summaries.items()}
    rows = leaderboard(summaries, failures)
    intervals = {run: a.intervals for run, a in (analyses or {}).items() if a.intervals}
    images = _Images(image_loader)
    sections = "".join(
        '<details class="run"><summary>'
        + _e(f"{run} \u2014 protocol {(s.get('protocol') or {}).get('name', 'unknown')}, ")
        + _e(f"{s.get('num_records')} records; {failure_text(failures[run])}")
        + "</summary>"
        + _run_section(
            run,
            s,
            records_by_run.get(run, ()),
            images,
            max_gallery,
            (analyses or {}).get(run),
            sample_lookup,
        )
        + "</details>"
        for run, s in summaries.items()
    )
    doc = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>MedVision report</title><style>{_CSS}{OVERVIEW_CSS}</style></head><body>"
        f"{images.defs()}<h1>MedVision report</h1>"
        f"{overview_html(rows, intervals)}"
        f"<h2>Runs</h2><p class=muted>Every run's tables, analyses, plots and sample gallery "
        f"(click to open).</p>{sections}</body></html>\n"
    )
    Path(path).write_text(doc, encoding="utf-8")
