"""Writes lmms-eval sample logs of official MedVision tasks, in the format lmms-eval writes.

One ``<date_id>_samples_<task>.jsonl`` per task under ``<output_path>/<model>/``; each line
holds ``doc_id``, ``doc`` (the official doc fields of reference section 1.2), ``target``
(``str(list)``, as lmms-eval logs it), ``resps`` (``[[text]]``) or only ``filtered_resps``,
and ``doc_hash``. Responses mix exact answers, perturbed answers, answers outside the
``<answer>`` tag, too few numbers and refusals, so every official parse outcome occurs.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

DATE_ID = "20260301_101500"
DET = "KiTS23_BoxCoordinate_Task01_Axial"
TL = "KiTS23_TumorLesionSize_Task01_Axial"
AD = "Ceph-Biometrics-400_BiometricsFromLandmarks_Distance_Task01_Sagittal"
UNUSABLE = "KiTS23_MaskSize_Task01_Axial"


def _answer(values: list[float], rng: random.Random) -> str:
    text = ", ".join(f"{v:.4f}" for v in values)
    style = rng.random()
    if style < 0.45:
        return f"<answer>{text}</answer>"
    if style < 0.6:
        return f"Reasoning: 12 and 7. Final: {text}"  # no tag: official 1.2.1 fails it
    if style < 0.75:
        return f"<answer>{', '.join(f'{v:.2f}' for v in values[:-1])}</answer>"  # too few
    if style < 0.85:
        return "I cannot measure this image."
    return f"<answer>{text}</answer> (and again <answer>{text}</answer>)"


def _det_doc(i: int, rng: random.Random) -> tuple[dict[str, Any], list[float]]:
    h, w = 512, 480
    r0, c0 = rng.randint(0, 300), rng.randint(0, 300)
    r1, c1 = r0 + rng.randint(10, 150), c0 + rng.randint(10, 150)
    target = [c0 / w, (h - r1) / h, c1 / w, (h - r0) / h]  # reference section 3.1
    doc = {
        "image_file": f"/data/KiTS23/dataset/case_{i % 7:05d}/imaging.nii.gz",
        "slice_dim": 2,
        "slice_idx": 40 + i,
        "taskID": 1,
        "label": rng.choice([1, 2, 3]),
        "image_size_2d": [h, w],
        "bounding_boxes": {
            "min_coords": [[r0, c0]],
            "max_coords": [[r1, c1]],
            "dimensions": [[r1 - r0 + 1, c1 - c0 + 1]],
        },
    }
    return doc, target


def _tl_doc(i: int, rng: random.Random) -> tuple[dict[str, Any], list[float]]:
    major = round(rng.uniform(8, 60), 3)
    minor = round(major * rng.uniform(0.3, 1.0), 3)
    doc = {
        "image_file": f"/data/KiTS23/dataset/case_{i % 5:05d}/imaging.nii.gz",
        "slice_dim": 2,
        "slice_idx": 60 + i,
        "taskID": 1,
        "label": 2,
        "biometric_profile": {
            "metric_unit": "mm",
            "metric_value_major_axis": [major],
            "metric_value_minor_axis": [minor],
        },
    }
    return doc, [major, minor]


def _ad_doc(i: int, rng: random.Random) -> tuple[dict[str, Any], list[float]]:
    value = round(rng.uniform(20, 90), 3)
    doc = {
        "image_file": f"/data/Ceph/RawImage/{i:03d}.nii.gz",
        "slice_dim": 0,
        "slice_idx": 0,
        "taskID": 1,
        "biometric_profile": {
            "metric_type": "distance",
            "metric_map_name": "lines_map",
            "metric_key": rng.choice(["L-1-2", "L-2-5", "L-3-4"]),
            "metric_unit": "mm",
            "metric_value": value,
        },
    }
    return doc, [value]


def write_lmms_logs(
    root: Path, model: str = "qwen2_5_vl_7b", n: int = 40, seed: int = 0, omit_resps: bool = True
) -> Path:
    """Write the logs of three official tasks (and one unusable) under ``root/model/``.

    With ``omit_resps``, every ninth line has only ``filtered_resps`` (lmms-eval leaves
    ``resps`` out when equal; the official ``parse_outputs`` cannot read such a line).
    """
    rng = random.Random(seed)
    out = root / model
    out.mkdir(parents=True, exist_ok=True)
    for task, make in ((DET, _det_doc), (TL, _tl_doc), (AD, _ad_doc)):
        lines = []
        for i in range(n):
            doc, target = make(i, rng)
            noisy = [v * rng.uniform(0.8, 1.2) if rng.random() < 0.6 else v for v in target]
            text = _answer(noisy, rng)
            line: dict[str, Any] = {
                "doc_id": i,
                "doc": doc,
                "target": str(target),
                "filtered_resps": [text],
                "doc_hash": f"{i:064x}",
            }
            if not omit_resps or i % 9 != 4:
                line["resps"] = [[text]]
            lines.append(json.dumps(line))
        rng.shuffle(lines)  # the official parse_outputs sorts by doc_id itself
        (out / f"{DATE_ID}_samples_{task}.jsonl").write_text("\n".join(lines) + "\n")
        (out / f"{DATE_ID}_results.json").write_text(json.dumps({"results": {}}))
    (out / f"{DATE_ID}_samples_{UNUSABLE}.jsonl").write_text('{"doc_id": 0}\n')
    return out
