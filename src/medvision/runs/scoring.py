"""Answers to records: parse a model's text as a protocol says, score it, re-score a run folder."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from medvision.backends import ChatResponse
from medvision.metrics import Protocol, get_protocol, sample_metrics, summarize_run, to_jsonable
from medvision.metrics.jsonvalues import loads, write_json
from medvision.parsing import ParsedAnswer, ParseStatus, parse_last_k, parse_robust
from medvision.runs.columns_cache import with_scoring_table
from medvision.runs.integrity import records_digest
from medvision.runs.lock import RunLock
from medvision.runs.records import RECORDS_NAME, dedupe, read_records, write_records_atomic
from medvision.runs.spec import SUMMARY_NAME, RunError, RunSpec
from medvision.schema import Record, Sample, TaskFamily
from medvision.tasks.image_policy import ImagePolicy


def parse_answer(
    text: str, family_name: str, protocol: str, seen_hw: tuple[int, int], metric_type: str = ""
) -> ParsedAnswer:
    """Parse a model answer as the protocol says (official last-k, or our robust parser)."""
    family = TaskFamily(family_name)
    if protocol == "strict":
        return parse_robust(text, family, image_hw=seen_hw, metric_type=metric_type)
    if protocol == "official":
        return parse_last_k(text, family.n_values, version="official")
    return parse_last_k(text, family.n_values, version="paper-v1")


def record_of(
    s: Sample,
    r: ChatResponse,
    *,
    spec: RunSpec,
    policy: ImagePolicy,
    protocol: Protocol,
    prompt_hash: str,
    annotation: str | None = None,
    prompt: str | None = None,
    rendering: str | None = None,
) -> Record:
    """The record of one sample's response: parsed as ``spec.protocol`` says, then scored.

    Args:
        s: The sample.
        r: The backend's response (an error becomes a ``backend_error`` record).
        spec: The run spec (model, backend, protocol names).
        policy: The image policy (the size and spacing the model saw).
        protocol: The protocol whose switches score the answer.
        prompt_hash: Hash of the prompt sent.
        annotation: The ground-truth version of the sample's target (the build's).
        prompt: The prompt text to keep in the record (``None``: not logged).
        rendering: The rendering rule of the image the model was shown.
    """
    seen_hw = policy.seen_hw(s.image_hw)
    if r.error is not None:
        parsed = ParsedAnswer(None, ParseStatus.BACKEND_ERROR, r.error)
    else:
        parsed = parse_answer(r.text, s.family.value, spec.protocol, seen_hw, s.metric_type)
    metrics = sample_metrics(s.family.value, parsed.values, s.target, protocol)
    reason = parsed.reason
    if not parsed.ok and r.finish_reason == "length":
        # A failure explained by truncation, not by the model's reading.
        reason = f"{reason} (the answer was cut at the token limit)"
    return Record(
        sample_id=s.sample_id,
        dataset=s.dataset,
        case_id=s.case_id,
        family=s.family.value,
        plane=int(s.plane),
        slice_index=s.slice_index,
        label_id=s.label_id,
        label_name=s.label_name,
        label_kind=s.label_kind,
        label_group=s.label_group,
        modality=s.modality,
        metric_type=s.metric_type,
        metric_key=s.metric_key,
        image_key=s.image_key,
        image_hw=s.image_hw,
        seen_hw=seen_hw,
        seen_spacing_mm_rc=policy.seen_spacing(s.spacing_mm_rc, s.image_hw),
        box_img_ratio=s.extras.get("box_img_ratio"),
        target=s.target,
        model=spec.model_name,
        backend=spec.backend,
        protocol=spec.protocol,
        prompt_hash=prompt_hash,
        raw_output=r.text,
        parsed=parsed.values,
        status=parsed.status.value,
        reason=reason,
        metrics=metrics,
        latency_s=r.latency_s,
        prompt_tokens=r.prompt_tokens,
        completion_tokens=r.completion_tokens,
        finish_reason=r.finish_reason,
        annotation=annotation,
        prompt=prompt,
        rendering=rendering,
    )


def rescore(
    run_dir: str | Path,
    *,
    protocol: str | None = None,
    reparse: bool = False,
    write: bool = True,
) -> dict[str, Any]:
    """Recompute the summary (and, when they change, the per-sample metrics) from the records.

    One record per sample id is kept (the last written); ``run.duplicates_dropped`` says how
    many were dropped.

    Args:
        run_dir: A run directory.
        protocol: Score under another protocol (implies re-parsing the raw outputs).
        reparse: Re-parse the raw outputs even under the same protocol. Records judged by
            an LLM (``judge_output`` set) are re-read from the judge's stored reply.
        write: Write the results (else only return the summary: reports use this when a
            ``summary.json`` is older than its records).

    Returns:
        The summary. Under the run's own protocol, ``summary.json`` is rewritten (the ``run``
        block of the summary is kept); under another protocol the results go to
        ``summary-<protocol>.json`` and ``records-<protocol>.jsonl``.

    Under the run's own protocol without ``reparse`` (what ``medvision score`` does by
    default) the per-sample values do not change: the parsed answers and statuses stay, and
    the per-sample metrics in the records were computed from them under that protocol when
    they were written. So the file is not rewritten and no record object is built: the
    records are read straight into Arrow columns (from the run's column file
    ``records.columns.arrow`` when its digest matches, see :mod:`medvision.runs.columns_cache`,
    else by :func:`medvision.runs.records_arrow.read_scoring_table`) and summarised; the
    summary's ``records_digest`` is that of the file as it is, so summary and records stay
    consistent. The records are read and rewritten one object at a time (with recomputed
    per-sample metrics) only when something changes them: ``reparse``, another protocol,
    duplicate sample ids to drop from the file (with ``write``), a record whose protocol is
    not the run's, or a file the fast reader refuses (a torn or bad line: see
    :mod:`medvision.runs.records_arrow`).

    Raises:
        RunError: No records, or another process writes the folder (when ``write``).
    """
    out = Path(run_dir)
    if not write:
        return _rescore(out, protocol, reparse, write)
    with RunLock(out):
        return _rescore(out, protocol, reparse, write)


def _summary_file(
    out: Path, summary: dict[str, Any], name: str, n: int, duplicates: int
) -> dict[str, Any]:
    """``summary`` with the ``run`` block of the folder's ``summary.json`` and this scoring's."""
    old_summary = out / SUMMARY_NAME
    run_block = loads(old_summary.read_text()).get("run", {}) if old_summary.exists() else {}
    summary["run"] = {
        **run_block,
        "protocol": name,
        "n_records": n,
        "n_backend_errors": summary["outcomes"]["backend_error"],
        "duplicates_dropped": duplicates,
    }
    return summary


def _rescore_columns(out: Path, protocol: str | None, write: bool) -> dict[str, Any] | None:
    """The summary under the run's own protocol straight from Arrow columns, or ``None``.

    ``None`` when the records must be read as objects (see :func:`rescore`). The columns
    come from the run's column file when it is current
    (:mod:`medvision.runs.columns_cache`), else from ``records.jsonl``; the records digest is
    computed in a thread meanwhile.
    """

    def summarize(table: pa.Table, duplicates: int) -> dict[str, Any] | None:
        if not table.num_rows or (write and duplicates):
            return None  # no records (the object path says so) or duplicates to repair on disk
        name = str(table["protocol"][0].as_py())
        if (protocol is not None and protocol != name) or not pc.all(
            pc.equal(table["protocol"], name)
        ).as_py():
            return None
        return dict(to_jsonable(summarize_run(table, get_protocol(name))))

    got = with_scoring_table(out / RECORDS_NAME, summarize, write_cache=write, fallback=False)
    if got is None:
        return None
    columns, summary = got
    if summary is None:
        return None
    name = str(columns.table["protocol"][0].as_py())
    summary = _summary_file(out, summary, name, columns.table.num_rows, columns.duplicates)
    summary["records_digest"] = columns.digest
    if write:
        summary["run"]["rescored"] = "recomputed"
        write_json(out / SUMMARY_NAME, summary)
    return summary


def _rescore(out: Path, protocol: str | None, reparse: bool, write: bool) -> dict[str, Any]:
    if not reparse and (out / RECORDS_NAME).exists():
        fast = _rescore_columns(out, protocol, write)
        if fast is not None:
            return fast
    digest = records_digest(out / RECORDS_NAME)
    records, duplicates = dedupe(read_records(out / RECORDS_NAME))
    if not records:
        raise RunError(f"{out / RECORDS_NAME} holds no records")
    name = protocol or records[0].protocol
    proto = get_protocol(name)
    again = reparse or name != records[0].protocol
    rescored: list[Record] = []
    for r in records:
        values: tuple[float, ...] | None = r.parsed
        status, reason = r.status, r.reason
        if again and r.status != ParseStatus.BACKEND_ERROR.value:
            if r.judge_output is not None:
                # A judged run re-reads the judge's stored reply: no network, same parser.
                from medvision.runs.judge import parse_judged

                p = parse_judged(
                    r.raw_output, r.judge_output, r.family, name, r.seen_hw, r.metric_type
                )
            else:
                p = parse_answer(r.raw_output, r.family, name, r.seen_hw, r.metric_type)
            values, status, reason = p.values, p.status.value, p.reason
        metrics = sample_metrics(r.family, values, r.target, proto)
        rescored.append(
            Record(
                **{
                    **asdict(r),
                    "parsed": values,
                    "status": status,
                    "reason": reason,
                    "metrics": metrics,
                    "protocol": name,
                }
            )
        )
    summary = dict(to_jsonable(summarize_run(rescored, proto)))
    same = name == records[0].protocol
    old_summary = out / SUMMARY_NAME
    summary = _summary_file(out, summary, name, len(rescored), duplicates)
    summary["records_digest"] = digest
    if not write:
        return summary
    if same:
        summary["run"]["rescored"] = "reparsed" if again else "recomputed"
        # The records must say what the summary says (reports read both).
        write_records_atomic(out / RECORDS_NAME, rescored)
        summary["records_digest"] = records_digest(out / RECORDS_NAME)
        target = old_summary
    else:
        summary["run"]["rescored_from"] = records[0].protocol
        write_records_atomic(out / f"records-{name}.jsonl", rescored)
        target = out / f"summary-{name}.json"
    write_json(target, summary)
    return summary
