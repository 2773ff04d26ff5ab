import base64
import io
import re
from pathlib import Path
from typing import Any

from PIL import Image

from medvision.metrics import get_protocol, summarize_run
from medvision.reports import write_html_report
from medvision.schema import Record
from record_factory import make_record

EVIL = "<script>alert(1)</script>"


def png(w: int, h: int, colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, format="PNG")
    return buf.getvalue()


def jpeg(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (10, 200, 10)).save(buf, format="JPEG")
    return buf.getvalue()


def rec(
    family: str,
    parsed: tuple[float, ...] | None,
    target: tuple[float, ...],
    *,
    raw: str,
    image_key: str,
    **kw: object,
) -> Record:
    defaults: dict[str, Any] = dict(
        prefix="h",
        dataset="D",
        case_id="case7",
        slice_index=3,
        image_key=image_key,
        image_hw=(20, 40),
        seen_hw=(20, 40),
        model="tiny-vlm",
        backend="baseline",
        raw_output=raw,
        reason="" if parsed is not None else "no number",
    )
    return make_record(family, parsed, target, **{**defaults, **kw})


def build(tmp_path: Path) -> tuple[str, dict[str, bytes]]:
    images = {"imgA": png(40, 20, (200, 0, 0)), "imgB": jpeg(40, 20)}
    records = [
        # pred vs target: I = 0.3 * 0.4, Ap = At = 0.16 -> IoU 0.12 / 0.20 = 0.6.
        rec(
            "detection",
            (0.1, 0.2, 0.5, 0.6),
            (0.2, 0.2, 0.6, 0.6),
            raw=f"{EVIL} 0.1,0.2,0.5,0.6",
            image_key="imgA",
            label_name="kidney <b>left</b>",
        ),
        rec("detection", None, (0.2, 0.2, 0.6, 0.6), raw="I cannot", image_key="missing"),
        rec(
            "tl",
            (12.0, 6.0),
            (10.0, 8.0),
            raw="<answer>12, 6</answer>",
            image_key="imgB",
            label_name="liver tumor",
            label_kind="tumour",
            metric_type="axes",
        ),
        rec(
            "ad",
            (30.0,),
            (20.0,),
            raw="30 degrees",
            image_key="imgA",
            dataset="Ceph-Biometrics-400",
            metric_type="angle",
            metric_key="SNA",
            label_kind="landmark",
        ),
    ]
    summary = summarize_run(records, get_protocol("official"))
    out = tmp_path / "report.html"
    write_html_report(
        out,
        summaries={"run-1": summary},
        records_by_run={"run-1": records},
        image_loader=lambda rec: images[rec.image_key],
        max_gallery=24,
    )
    return out.read_text(encoding="utf-8"), images


def test_report_escapes_model_output_and_is_self_contained(tmp_path: Path) -> None:
    text, images = build(tmp_path)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script" not in text.lower()
    assert "kidney &lt;b&gt;left&lt;/b&gt;" in text
    assert "http://" not in text and "https://" not in text
    # Only data: URIs and same-document references (each image once, drawn by <use>).
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", text)
    assert re.search(r'<use href="#img\d+"/>', text)
    # The PNG is embedded as is; the JPEG was re-encoded to PNG.
    assert "data:image/png;base64," + base64.b64encode(images["imgA"]).decode() in text
    assert "data:image/jpeg" not in text
    uris = re.findall(r'href="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    decoded = {base64.b64decode(u)[:8] for u in uris}
    assert decoded == {b"\x89PNG\r\n\x1a\n"}
    assert "unavailable: KeyError" in text  # the missing image is named, not fatal


def test_report_boxes_in_svg_pixels(tmp_path: Path) -> None:
    text, _ = build(tmp_path)
    # W = 40, H = 20. Target [0.2,0.2,0.6,0.6]: x = 0.2*40 = 8, y = (1-0.6)*20 = 8,
    # width = 0.4*40 = 16, height = 0.4*20 = 8.
    assert '<svg viewBox="0 0 40 20"' in text
    assert 'x="8.00" y="8.00" width="16.00" height="8.00" fill="none" stroke="#1a9e3f"' in text
    # Prediction [0.1,0.2,0.5,0.6]: x = 4.
    assert 'x="4.00" y="8.00" width="16.00" height="8.00" fill="none" stroke="#d7263d"' in text


def test_report_numbers_and_protocol(tmp_path: Path) -> None:
    text, _ = build(tmp_path)
    assert "Protocol: <b>official</b>" in text
    # Detection: 2 samples, IoU (0.6 + 0) / 2 = 0.3, SR 0.5.
    assert "<td>0.3000</td>" in text
    assert "<td>0.5000</td>" in text
    # Per-sample IoU in the gallery caption.
    assert "iou=0.6000" in text
    # T/L: MAE (2 + 2) / 2 = 2, MRE (0.2 + 0.25) / 2 = 0.225.
    assert "<td>2.0000</td>" in text and "<td>0.2250</td>" in text
    # A/D: MAE 10, MRE 0.5; group average named as the official one.
    assert "<td>10.0000</td>" in text and "Ceph-Angle" in text
    assert "no_answer" in text  # failures are visible
