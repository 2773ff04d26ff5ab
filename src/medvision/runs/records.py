"""Run records on disk: ``records.jsonl``, one :class:`~medvision.schema.Record` per line.

Appends are whole batches written with one ``write`` on an ``O_APPEND`` descriptor followed by
``fsync``, so a killed run leaves at most one torn last line; :func:`read_records` ignores it
and :func:`repair_tail` cuts it off before a resumed run appends again.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from medvision.metrics.jsonvalues import NONFINITE, dumps
from medvision.schema import Record

RECORDS_NAME = "records.jsonl"


def record_to_json(record: Record) -> str:
    """Serialise a record as one line of strict JSON.

    A NaN metric (undefined: a failed answer's IoU, an angle's nMAE) is ``null``; every other
    non-finite float (an ``inf`` answer, its ``inf`` MAE) is the string ``"inf"``, ``"-inf"``
    or ``"nan"`` (:mod:`medvision.metrics.jsonvalues`), so it reads back exactly.
    """
    d = asdict(record)
    d["metrics"] = {k: None if math.isnan(v) else v for k, v in d["metrics"].items()}
    return dumps(d, ensure_ascii=False, separators=(",", ":"))


def _float(v: Any) -> float:
    # Files written before this format held a non-finite value as null: it reads back as NaN.
    if v is None:
        return math.nan
    return NONFINITE[v] if isinstance(v, str) else float(v)


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(_float(v) for v in values)


def record_from_json(line: str) -> Record:
    """Parse one line written by :func:`record_to_json` (null metrics -> NaN)."""
    d = json.loads(line)
    if not isinstance(d, dict):
        raise TypeError(f"a record is a JSON object, found a JSON {type(d).__name__}")
    d["image_hw"] = tuple(d["image_hw"])
    d["seen_hw"] = tuple(d["seen_hw"])
    d["seen_spacing_mm_rc"] = _floats(d["seen_spacing_mm_rc"])
    d["target"] = _floats(d["target"])
    d["parsed"] = None if d["parsed"] is None else _floats(d["parsed"])
    d["metrics"] = {k: _float(v) for k, v in d["metrics"].items()}
    return Record(**d)


def append_lines(path: Path, lines: Iterable[str]) -> None:
    """Append text lines durably: one ``write`` of whole lines, then ``fsync``.

    One write on an ``O_APPEND`` descriptor means a killed writer leaves at most one torn
    last line, which :func:`repair_tail` cuts off.
    """
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    if not data:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


def append_records(path: Path, records: Iterable[Record]) -> None:
    """Append records durably: one write of whole lines, then fsync."""
    append_lines(path, (record_to_json(r) for r in records))


def write_records_atomic(path: Path, records: Iterable[Record]) -> None:
    """Replace the file with ``records``: write a temporary file, fsync, rename over."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(record_to_json(r) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def repair_tail(path: Path) -> int:
    """Cut a torn (newline-less) last line left by a killed writer; return bytes removed."""
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with path.open("rb+") as fh:
        fh.seek(max(0, size - 1))
        if fh.read(1) == b"\n":
            return 0
        # Find the last newline; everything after it is a partial record.
        block = 1 << 16
        pos = size
        keep = 0
        while pos > 0:
            start = max(0, pos - block)
            fh.seek(start)
            chunk = fh.read(pos - start)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                keep = start + idx + 1
                break
            pos = start
        fh.truncate(keep)
        return size - keep


class RecordsError(ValueError):
    """A complete line of a records file is not a record (names the file and line)."""


def iter_records(path: Path) -> Iterator[Record]:
    """Yield the complete records of a file; a torn last line is ignored.

    Raises:
        RecordsError: If a complete line is not a valid record (names file and line number,
            and what to do).
    """
    with path.open("r", encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.endswith("\n"):
                return  # torn tail of a killed run
            try:
                yield record_from_json(line)
            except (ValueError, KeyError, TypeError) as exc:
                raise RecordsError(
                    f"{path}:{number}: not a valid record ({type(exc).__name__}: {exc}); "
                    "delete that line (its sample is asked again on resume) or rerun with "
                    "--overwrite"
                ) from exc


def read_records(path: Path) -> list[Record]:
    """Read every complete record of a file (see :func:`iter_records`)."""
    return list(iter_records(path)) if path.exists() else []


def dedupe(records: Iterable[Record]) -> tuple[list[Record], int]:
    """One record per sample id (the last one written), in order of first appearance.

    Two writers on one run folder (before run folders were locked) appended the same
    samples twice; a sample must count once.

    Returns:
        ``(records, number of duplicates dropped)``.
    """
    last: dict[str, Record] = {}
    total = 0
    for r in records:
        total += 1
        last[r.sample_id] = r
    # dict keeps the first insertion position of each key and the last assigned value.
    return list(last.values()), total - len(last)
