"""Bring runs of the official lmms-eval based code in as medvision run folders.

The official benchmark runs ``python -m lmms_eval --log_samples`` once per task; lmms-eval
writes ``<date_id>_samples_<task>.jsonl`` (one line per doc) under ``<output_path>/<model>/``
(reference official-eval-protocol.md sections 0, 1.2 and 6.1). :func:`import_lmms_eval` reads
those files and writes ``records.jsonl``, ``run.json`` and ``summary.json``, so ``medvision
score``, ``report``, ``compare`` and the bootstrap intervals work on runs made with the
official code.

Fields read from each sample line (everything else is ignored):

* ``doc_id``; ``resps`` (raw responses; the official ``_extract_response`` takes
  ``resps[0][0]``) or, where lmms-eval omitted it, ``filtered_resps[0]``;
* ``target``: the target as lmms-eval logged it (``str(list)``), read with
  :func:`ast.literal_eval` (never ``eval``), exactly the numbers the official
  ``parse_outputs`` scores against;
* ``doc``: ``image_file``, ``slice_dim``, ``slice_idx``, ``label`` (detection, T/L),
  ``image_size_2d`` (detection), ``biometric_profile`` (A/D ``metric_type``/``metric_key``).

The task name (``{dataset}_{BoxCoordinate|TumorLesionSize|BiometricsFromLandmarks[_Distance|
_Angle]}_{TaskNN}_{Axial|Coronal|Sagittal}[suffix]``) gives the dataset, family, official task
number and plane; label names, kinds, report groups and the modality come from the catalog
entry whose official fields name that task. What the logs do not hold is left unknown and
said so: the pixel spacing of T/L and A/D images (the official code reads it from the NIfTI
file), so their normalised MAE (nMAE) is missing, never a made-up number.
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import medvision
from medvision.catalog.benchmarks import find_official_task
from medvision.catalog.registry import catalog
from medvision.catalog.spec import DatasetSpec, SpecError, TaskSpec
from medvision.metrics import (
    get_protocol,
    records_to_table,
    sample_metrics,
    summarize_run,
    to_jsonable,
)
from medvision.metrics.jsonvalues import write_json
from medvision.runs.columns_cache import file_state, write_columns
from medvision.runs.integrity import records_digest
from medvision.runs.records import RECORDS_NAME, write_records_atomic
from medvision.runs.scoring import parse_answer
from medvision.runs.spec import RUN_NAME, SUMMARY_NAME, RunError
from medvision.schema import LabelKind, Plane, Record, TaskFamily, make_sample_id

__all__ = ["ImportReport", "OfficialTaskName", "import_lmms_eval", "parse_task_name"]

_TYPES = {
    "BoxCoordinate": (TaskFamily.DETECTION, ""),
    "TumorLesionSize": (TaskFamily.TUMOR_LESION_SIZE, "axes"),
    "BiometricsFromLandmarks": (TaskFamily.ANGLE_DISTANCE, ""),
    "BiometricsFromLandmarks_Distance": (TaskFamily.ANGLE_DISTANCE, "distance"),
    "BiometricsFromLandmarks_Angle": (TaskFamily.ANGLE_DISTANCE, "angle"),
}
_PLANES = {"Sagittal": Plane.SAGITTAL, "Coronal": Plane.CORONAL, "Axial": Plane.AXIAL}
_TASK_RE = re.compile(
    r"^(?P<dataset>.+?)_(?P<type>BoxCoordinate|TumorLesionSize|BiometricsFromLandmarks"
    r"(?:_Distance|_Angle)?)_Task(?P<nn>\d+)_(?P<plane>Axial|Coronal|Sagittal)(?P<suffix>.*)$"
)
_SAMPLES_RE = re.compile(r"_samples_(?P<task>.+)\.jsonl$")


@dataclass(frozen=True)
class OfficialTaskName:
    """The parts of an official lmms-eval task name.

    Attributes:
        name: The whole task name.
        dataset: Catalog name of the dataset (e.g. ``"KiTS23"``).
        family: Task family.
        metric_type: ``"distance"``/``"angle"`` when the name says it, ``"axes"`` for T/L.
        task: Official task number, two digits (``"01"``).
        plane: Slicing plane.
        suffix: What follows the plane (``-336x336``, ``_local_ds``...), or ``""``.
    """

    name: str
    dataset: str
    family: TaskFamily
    metric_type: str
    task: str
    plane: Plane
    suffix: str


def parse_task_name(name: str) -> OfficialTaskName:
    """Split an official lmms-eval task name into its parts.

    Raises:
        ValueError: If the name does not follow the official naming (section 6.1).
    """
    m = _TASK_RE.match(name)
    if m is None:
        raise ValueError(
            f"{name!r} is not an official MedVision task name "
            "({dataset}_{BoxCoordinate|TumorLesionSize|BiometricsFromLandmarks[_Distance|_Angle]}"
            "_TaskNN_{Axial|Coronal|Sagittal}); MaskSize tasks are not part of the benchmark"
        )
    family, metric_type = _TYPES[m["type"]]
    return OfficialTaskName(
        name=name,
        dataset=m["dataset"],
        family=family,
        metric_type=metric_type,
        task=f"{int(m['nn']):02d}",
        plane=_PLANES[m["plane"]],
        suffix=m["suffix"],
    )


@dataclass
class ImportReport:
    """What an import read, wrote and could not use.

    Attributes:
        files: Sample files read.
        records: Records written.
        by_task: Records per task name.
        skipped: ``(file, reason)`` for files or lines that could not be used.
        unknown_tasks: Task names without a catalog entry (imported with plain label ids).
    """

    files: int = 0
    records: int = 0
    by_task: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    unknown_tasks: list[str] = field(default_factory=list)


def _catalog_task(spec: DatasetSpec | None, task: OfficialTaskName) -> TaskSpec | None:
    """The catalog task whose official fields name this official task, if any."""
    if spec is None:
        return None
    try:
        return find_official_task(spec, task.family.value, task.task)[0]
    except SpecError:
        return None


def _response(line: dict[str, Any]) -> str:
    """The raw model text, as the official ``_extract_response`` takes it."""
    resps = line.get("resps")
    value: Any = resps if resps is not None else line.get("filtered_resps")
    # resps[0][0], unwrapping one more list level if present (reference section 3.3).
    while isinstance(value, list):
        if not value:
            return ""
        value = value[0]
    return "" if value is None else str(value)


def _target(raw: Any, n: int, where: str) -> tuple[float, ...]:
    value = ast.literal_eval(raw) if isinstance(raw, str) else raw
    if isinstance(value, int | float):
        value = [value]
    if not isinstance(value, list | tuple) or len(value) != n:
        raise ValueError(f"{where}: target {raw!r} is not {n} numbers")
    return tuple(float(v) for v in value)


def _case_id(image_file: str) -> str:
    name = Path(image_file).name
    for ext in (".nii.gz", ".nii", ".mha", ".nrrd", ".png", ".jpg", ".bmp"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def _label(t: TaskSpec | None, label_id: int | None, tl: bool) -> tuple[str, LabelKind, str]:
    if t is not None and label_id is not None:
        for lab in t.labels:
            if lab.id == label_id:
                return lab.name, lab.kind, lab.group
    kind: LabelKind = "lesion" if tl else "organ"
    name = f"label {label_id}"
    return name, kind, name


def _record(
    line: dict[str, Any],
    task: OfficialTaskName,
    ctask: TaskSpec | None,
    model: str,
    protocol: str,
    where: str,
) -> Record:
    doc = line.get("doc")
    if not isinstance(doc, dict):
        raise ValueError(f"{where}: no 'doc' object (run lmms-eval with --log_samples)")
    family = task.family
    target = _target(line.get("target"), family.n_values, where)
    slice_idx = int(doc.get("slice_idx", -1))
    if "slice_dim" in doc and int(doc["slice_dim"]) != int(task.plane):
        raise ValueError(f"{where}: slice_dim {doc['slice_dim']} disagrees with {task.name}")
    label_id = int(doc["label"]) if family is not TaskFamily.ANGLE_DISTANCE else None
    metric_type, metric_key = task.metric_type, ""
    if family is TaskFamily.ANGLE_DISTANCE:
        prof = doc.get("biometric_profile") or {}
        metric_type = str(prof.get("metric_type", metric_type))
        metric_key = str(prof.get("metric_key", ""))
        name, kind, group = metric_key, "landmark", f"{task.dataset} {metric_type}"
    else:
        name, kind, group = _label(ctask, label_id, family is TaskFamily.TUMOR_LESION_SIZE)
    hw = doc.get("image_size_2d")
    image_hw = (int(hw[0]), int(hw[1])) if isinstance(hw, list) and len(hw) == 2 else (0, 0)
    box_ratio = None
    boxes = doc.get("bounding_boxes")
    if family is TaskFamily.DETECTION:
        dims = (boxes or {}).get("dimensions") if isinstance(boxes, dict) else None
        if dims and image_hw[0] * image_hw[1] > 0:
            box_ratio = float(dims[0][0]) * float(dims[0][1]) / (image_hw[0] * image_hw[1])
        else:  # parse_outputs._patch_doc_detection_task's fallback
            box_ratio = abs(target[2] - target[0]) * abs(target[3] - target[1])
    text = _response(line)
    parsed = parse_answer(text, family.value, protocol, image_hw, metric_type)
    proto = get_protocol(protocol)
    doc_id = line.get("doc_id", "")
    return Record(
        sample_id=make_sample_id("lmms-eval", task.name, doc_id),
        dataset=task.dataset,
        case_id=_case_id(str(doc.get("image_file", doc_id))),
        family=family.value,
        plane=int(task.plane),
        slice_index=slice_idx,
        label_id=label_id,
        label_name=name,
        label_kind=kind,
        label_group=group,
        modality=ctask.modality if ctask is not None else "",
        metric_type=metric_type,
        metric_key=metric_key,
        image_key="",
        image_hw=image_hw,
        seen_hw=image_hw,
        # Unknown: the logs do not carry the pixel spacing (nMAE is missing, not guessed).
        seen_spacing_mm_rc=(0.0, 0.0),
        box_img_ratio=box_ratio,
        target=target,
        model=model,
        backend="lmms-eval",
        protocol=protocol,
        prompt_hash="",
        raw_output=text,
        parsed=parsed.values,
        status=parsed.status.value,
        reason=parsed.reason,
        metrics=sample_metrics(family.value, parsed.values, target, proto),
        latency_s=0.0,
    )


def import_lmms_eval(
    log_dir: str | Path,
    out_dir: str | Path,
    *,
    model: str = "",
    protocol: str = "official",
    overwrite: bool = False,
) -> ImportReport:
    """Convert lmms-eval sample logs of the official MedVision tasks into a run folder.

    Args:
        log_dir: Folder searched recursively for ``*_samples_<task>.jsonl``.
        out_dir: Run folder to write (``records.jsonl``, ``run.json``, ``summary.json``).
        model: Model name for the records (default: the folder holding the logs, as
            lmms-eval names it after the model).
        protocol: Protocol to parse and score with (``official`` for medvision-bm 1.2.1
            outputs, ``paper-v1`` for the paper's code, or ``strict``).
        overwrite: Replace an existing run folder's files.

    Returns:
        What was read and written (lines that could not be used are listed, not fatal).

    Raises:
        RunError: If no sample file is found or the output folder holds a run already.
    """
    get_protocol(protocol)  # refuse an unknown protocol before reading anything
    src, out = Path(log_dir), Path(out_dir)
    files = sorted(p for p in src.rglob("*.jsonl") if _SAMPLES_RE.search(p.name))
    if not files:
        raise RunError(
            f"no lmms-eval sample logs (*_samples_<task>.jsonl) under {src}; run lmms-eval "
            "with --log_samples"
        )
    if (out / RECORDS_NAME).exists() and not overwrite:
        raise RunError(f"{out} already holds a run; pass --overwrite or another folder")
    name = model or files[0].parent.name
    specs = catalog()
    report = ImportReport(files=len(files))
    records: list[Record] = []
    seen: set[str] = set()
    for path in files:
        m = _SAMPLES_RE.search(path.name)
        assert m is not None
        try:
            task = parse_task_name(m["task"])
        except ValueError as exc:
            report.skipped.append((str(path), str(exc)))
            continue
        ctask = _catalog_task(specs.get(task.dataset), task)
        if ctask is None:
            report.unknown_tasks.append(task.name)
        for n, raw in enumerate(path.read_text().splitlines(), start=1):
            if not raw.strip():
                continue
            where = f"{path}:{n}"
            try:
                line = json.loads(raw)
                rec = _record(line, task, ctask, name, protocol, where)
            except (ValueError, SyntaxError, KeyError, TypeError, IndexError) as exc:
                report.skipped.append((where, f"{type(exc).__name__}: {exc}"))
                continue
            if rec.sample_id in seen:  # the same doc logged twice (a rerun into one folder)
                report.skipped.append((where, f"doc_id {line.get('doc_id')} repeated"))
                continue
            seen.add(rec.sample_id)
            records.append(rec)
            report.by_task[task.name] = report.by_task.get(task.name, 0) + 1
    if not records:
        raise RunError(f"no usable sample line in {len(files)} files under {src}")
    report.records = len(records)
    out.mkdir(parents=True, exist_ok=True)
    write_records_atomic(out / RECORDS_NAME, records)
    written = file_state(out / RECORDS_NAME)
    imported = {
        "tool": "lmms-eval",
        "log_dir": str(src.resolve()),
        "files": [str(p.relative_to(src)) for p in files],
        "records_by_task": report.by_task,
        "skipped": len(report.skipped),
        "unknown_tasks": report.unknown_tasks,
        "unknown": ["pixel spacing of T/L and A/D images (nMAE missing)", "image content"],
    }
    meta = {
        "imported_from": imported,
        "spec": {"protocol": protocol, "model": name, "backend": "lmms-eval", "split": "test"},
        "medvision_version": medvision.__version__,
    }
    write_json(out / RUN_NAME, meta, default=str)
    table = records_to_table(records)
    summary = dict(to_jsonable(summarize_run(table, get_protocol(protocol))))
    summary["run"] = {
        "model": name,
        "backend": "lmms-eval",
        "protocol": protocol,
        "imported_from": "lmms-eval",
        "n_records": len(records),
        "status_counts": dict(Counter(r.status for r in records)),
    }
    summary["records_digest"] = records_digest(out / RECORDS_NAME)
    # The scoring columns of the import, so `score` and `report` need not parse the records.
    write_columns(out / RECORDS_NAME, table, 0, summary["records_digest"], unchanged_since=written)
    write_json(out / SUMMARY_NAME, summary, default=str)
    return report
