"""Do a run's records still describe its dataset, and its summary its records?

* **Selection**: each record carries what identifies its sample's data (target, image
  content hash, image size, family, measurement, label). :func:`stale_records` compares them
  with the samples the run selects from the store *now*: a store rebuilt at the same path
  from other sources removes samples and changes targets, and a resumed run must not mix
  those records in. :func:`selection_digest` hashes the same fields over the selection (the
  run manifest stores it beside the build id).
* **Summary**: :func:`records_digest` (sha256 and size of ``records.jsonl``) is stored in
  ``summary.json``; :func:`summary_is_current` says whether a summary was made from the
  records file as it is now (a resume killed after appending records but before writing the
  summary leaves an older summary behind).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medvision.runs.records import read_records, write_records_atomic
from medvision.runs.spec import RunError
from medvision.schema import Record, Sample

__all__ = [
    "Staleness",
    "drop_stale",
    "records_digest",
    "records_digest_lines",
    "sample_signature",
    "selection_digest",
    "stale_records",
    "summary_is_current",
]

Signature = tuple[Any, ...]


def _signature(
    family: str,
    target: Sequence[float],
    image_key: str,
    image_hw: Sequence[int],
    plane: int,
    slice_index: int,
    label_id: int | None,
    metric_type: str,
    metric_key: str,
) -> Signature:
    return (
        family,
        tuple(float(v) for v in target),
        image_key,
        tuple(int(v) for v in image_hw),
        int(plane),
        int(slice_index),
        label_id,
        metric_type,
        metric_key,
    )


def sample_signature(s: Sample) -> Signature:
    """What a record must agree on with its sample (sample id aside)."""
    return _signature(
        s.family.value,
        s.target,
        s.image_key,
        s.image_hw,
        int(s.plane),
        s.slice_index,
        s.label_id,
        s.metric_type,
        s.metric_key,
    )


def record_signature(r: Record) -> Signature:
    """:func:`sample_signature` of the sample a record was made from."""
    return _signature(
        r.family,
        r.target,
        r.image_key,
        r.image_hw,
        r.plane,
        r.slice_index,
        r.label_id,
        r.metric_type,
        r.metric_key,
    )


def selection_digest(samples: Iterable[Sample]) -> str:
    """sha256 (16 hex) of the selected samples' ids and signatures, in id order."""
    items = sorted((s.sample_id, sample_signature(s)) for s in samples)
    text = json.dumps(items, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Staleness:
    """Records that do not describe the current selection.

    Attributes:
        removed: Sample ids of records whose sample is not selected any more (removed from
            the store, or no longer within the selection).
        changed: Sample ids of records whose sample is selected but whose data changed
            (target, image, size, label or measurement).
    """

    removed: tuple[str, ...]
    changed: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.removed or self.changed)

    @property
    def ids(self) -> frozenset[str]:
        """Every stale sample id."""
        return frozenset(self.removed) | frozenset(self.changed)

    def describe(self) -> str:
        """``"82 records of samples no longer selected, 42 with changed data"``."""
        parts = []
        if self.removed:
            parts.append(f"{len(self.removed)} records of samples no longer in the selection")
        if self.changed:
            parts.append(f"{len(self.changed)} records whose sample's data changed")
        return " and ".join(parts)


def stale_records(records: Iterable[Record], samples: Iterable[Sample]) -> Staleness:
    """Which records do not describe the current selection (see :class:`Staleness`)."""
    current = {s.sample_id: sample_signature(s) for s in samples}
    removed: dict[str, None] = {}
    changed: dict[str, None] = {}
    for r in records:
        sig = current.get(r.sample_id)
        if sig is None:
            removed[r.sample_id] = None
        elif sig != record_signature(r):
            changed[r.sample_id] = None
    return Staleness(tuple(removed), tuple(changed))


def drop_stale(records_path: Path, samples: Sequence[Sample], *, allow: bool) -> None:
    """Refuse to resume over records that no longer describe the store (or drop them).

    Args:
        records_path: The run's ``records.jsonl``.
        samples: The run's selection over the store as it is now.
        allow: Drop the stale records (``--rescore-changed``); their samples are asked again,
            or re-scored from the cache when only the target changed.

    Raises:
        RunError: Stale records and not ``allow``.
    """
    records = read_records(records_path)
    stale = stale_records(records, samples)
    if not stale:
        return
    if not allow:
        raise RunError(
            f"{records_path.parent} holds {stale.describe()}: the dataset changed since this "
            "run started (rebuilt from other sources?). Pass --rescore-changed to drop those "
            "records and ask again (answers whose image did not change are re-scored from the "
            "cache), or use a new --out"
        )
    write_records_atomic(records_path, [r for r in records if r.sample_id not in stale.ids])


def records_digest(path: Path) -> dict[str, Any]:
    """``{"sha256": hex, "bytes": size}`` of a records file (``None`` hash if missing)."""
    return records_digest_lines(path)[0]


def records_digest_lines(path: Path) -> tuple[dict[str, Any], int]:
    """:func:`records_digest` and the number of newline characters, in one pass over the file."""
    if not path.exists():
        return {"sha256": None, "bytes": 0}, 0
    h = hashlib.sha256()
    size = 0
    lines = 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
            lines += chunk.count(b"\n")
    return {"sha256": h.hexdigest(), "bytes": size}, lines


def summary_is_current(summary: Mapping[str, Any], records_path: Path) -> bool:
    """True if ``summary`` was computed from ``records_path`` as it is now.

    Summaries written before the digest existed count as current only if they are not older
    than the records file.
    """
    stored = summary.get("records_digest")
    if isinstance(stored, Mapping):
        # Size first: cheap, and most stale summaries differ in it.
        if stored.get("bytes") != (records_path.stat().st_size if records_path.exists() else 0):
            return False
        return bool(stored == records_digest(records_path))
    summary_path = records_path.with_name("summary.json")
    if not records_path.exists() or not summary_path.exists():
        return True
    return summary_path.stat().st_mtime_ns >= records_path.stat().st_mtime_ns
