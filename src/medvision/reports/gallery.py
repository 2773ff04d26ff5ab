"""The sample gallery of the HTML report: images with ground truth and prediction drawn over.

Detection samples show the ground-truth box (green) and the predicted box (red) over the image.
Boxes are relative ``[x0, y0, x1, y1]`` with origin lower-left; they are turned into array
``(r0, c0, r1, c1)`` by :func:`medvision.geometry.frames.rel_to_box_rc`, i.e. SVG ``x = x*W``,
``y = (1 - y)*H``. Corners of a prediction are sorted for drawing only (its score uses the
protocol's rule). T/L samples draw the true axes and the predicted lengths along them; A/D
samples the landmarks and the true (and predicted) distance.

Every image is embedded once per page (:class:`GalleryImages`: a hidden ``<svg><defs>``
referenced by ``<use>``), however many runs show it. Every text is escaped.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable, Sequence
from typing import Final

from PIL import Image

from medvision.geometry.frames import rel_to_box_rc
from medvision.metrics.per_sample import sample_metrics
from medvision.metrics.protocols import PROTOCOLS
from medvision.reports.tables import format_value
from medvision.schema import Plane, Record, Sample, TaskFamily

__all__ = ["GalleryImages", "ImageLoader", "SampleLookup", "gallery_html", "select_gallery"]

#: Record -> bytes of the image its model was shown (rendered by the record's rendering rule).
ImageLoader = Callable[[Record], bytes]
SampleLookup = Callable[[str], Sample | None]
"""``sample_id -> Sample`` of the built dataset (for T/L axes and A/D landmarks), or None."""

_PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"
_DISPLAY_PX: Final = 320
_GT_COLOUR: Final = "#1a9e3f"
_PRED_COLOUR: Final = "#d7263d"


def _e(value: object) -> str:
    """HTML-escape any value's text (quotes included, safe in attributes)."""
    return html.escape(str(value), quote=True)


def _png_data_uri(data: bytes) -> str:
    """``data:image/png;base64,...`` of ``data``, re-encoded to PNG if it is another format."""
    if not data.startswith(_PNG_MAGIC):
        with Image.open(io.BytesIO(data)) as im:
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            data = buf.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _load_image(loader: ImageLoader | None, rec: Record) -> tuple[str | None, str]:
    """``(data URI or None, reason)`` for the image a record's model was shown."""
    if loader is None:
        return None, "no image loader given"
    try:
        return _png_data_uri(loader(rec)), ""
    except (KeyError, OSError, ValueError) as exc:  # unknown key / unreadable or bad image
        return None, f"image {rec.image_key[:16]} unavailable: {type(exc).__name__}: {exc}"


class GalleryImages:
    """Each distinct image once, referenced from every figure that shows it.

    The first use of an image (by its bytes: a slice rendered by two rules is two images)
    adds ``<image id=...>`` to one hidden ``<svg><defs>`` at the top of the page; every figure
    then draws ``<use href="#id">`` (a same-document reference, no request). Runs evaluated on
    the same samples with the same rendering share their gallery images, so a report of
    several runs holds each PNG once instead of once per run.
    """

    def __init__(self, loader: ImageLoader | None) -> None:
        self._loader = loader
        self._refs: dict[str, tuple[str | None, str]] = {}
        self._defs: list[str] = []

    def ref(self, rec: Record, hw: tuple[int, int]) -> tuple[str | None, str]:
        """``(element id or None, reason)`` of the image of ``rec``, of size ``hw`` (rows, cols)."""
        uri, reason = _load_image(self._loader, rec)
        key = uri if uri is not None else f"missing:{rec.image_key}"
        if key not in self._refs:
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


def _figure(
    rec: Record, images: GalleryImages, protocol_name: str, lookup: SampleLookup | None
) -> str:
    """One gallery figure: image + overlays, target vs prediction, scores, raw output."""
    hw = (int(rec.image_hw[0]), int(rec.image_hw[1]))
    image_id, reason = images.ref(rec, hw)
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


def gallery_html(
    records: Sequence[Record],
    images: GalleryImages,
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
