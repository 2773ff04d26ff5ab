"""A single self-contained HTML report that leads with the answer.

First screen (:mod:`medvision.reports.overview`): one leaderboard across all runs with the
headline numbers, their bootstrap intervals and failures by kind, then one chart per task
family with every run side by side. Below, every run's details (tables, analyses, plots and a
gallery of samples) sit in a ``<details>`` element, closed by default.

The file references nothing outside itself: CSS is inline, images are ``data:`` URIs of base64
PNG, boxes are inline SVG, and there is no script. Every text that came from a record or a
model (raw output, labels, run names) is passed through :func:`html.escape`, so a model that
answers ``<script>...`` shows that text and runs nothing. The gallery (images with ground
truth and prediction drawn over) is built by :mod:`medvision.reports.gallery`.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from medvision.reports.failures import FAILURE_KINDS, failure_counts, failure_text
from medvision.reports.gallery import (
    GalleryImages,
    ImageLoader,
    SampleLookup,
    gallery_html,
    select_gallery,
)
from medvision.reports.overview import OVERVIEW_CSS, overview_html
from medvision.reports.plots import Plot
from medvision.reports.tables import (
    CI_KEYS,
    failure_notes,
    format_interval,
    format_value,
    leaderboard,
)
from medvision.schema import Record

__all__ = ["RunAnalysis", "select_gallery", "write_html_report"]


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
    images: GalleryImages,
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
        f"<br><span class=muted>{_e(switches)}</span>"
        f"<br>Image rendering: <b>{_e((summary.get('run') or {}).get('rendering') or '?')}</b>"
        "</p>",
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
    parts.append(gallery_html(records, images, name, max_gallery, lookup))
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
        image_loader: ``record -> image bytes``, the image the record's model was shown
            (PNG preferred; other formats PIL reads are re-encoded to PNG). ``None`` draws the
            overlays on an empty canvas.
        max_gallery: Samples shown per task family per run.
        analyses: Run name -> intervals, breakdowns, box-size analysis and plots.
        sample_lookup: ``sample_id -> Sample`` for T/L axes and A/D landmarks.
    """
    failures = {run: failure_counts(s, records_by_run.get(run)) for run, s in summaries.items()}
    rows = leaderboard(summaries, failures)
    intervals = {run: a.intervals for run, a in (analyses or {}).items() if a.intervals}
    images = GalleryImages(image_loader)
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
