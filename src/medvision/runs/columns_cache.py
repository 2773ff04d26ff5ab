"""A run's scoring columns kept beside its records: ``records.columns.arrow``.

Scoring reads a run's ``records.jsonl`` into the aggregation table
(:func:`medvision.runs.records_arrow.read_scoring_table`). Even with pyarrow's JSON reader the
parse costs about 4.4 CPU seconds for a million records (900 MB, about 200 MB/s a core), more
than the aggregation itself. So the table read from a records file is kept beside it, as an
Arrow IPC file (lz4, about 100 MB a million records), tagged with the digest
(:func:`medvision.runs.integrity.records_digest`: sha256 and size) of the records file it was
read from. It is a cache, never a source:

* it is used only when the digest of the records file, computed now, equals its tag, and its
  schema and format version are the current ones; otherwise ``records.jsonl`` is read and the
  file written again. A resumed run (appended records), a rescore that rewrote the records, or
  a hand edit all change the digest;
* it is written atomically (a temporary file renamed over it), and only when the records file
  did not change while it was read (same inode, size and modification time before and after);
* a file that cannot be written (a read-only run folder) or read (damaged, another version) is
  ignored: the records are read.

The digest is computed in a thread while the cached table is read and, through
:func:`with_scoring_table`, while the caller computes on it: hashing (1 to 1.5 GB/s here) and the
aggregation run side by side, and the result is used only if the digest matches.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import pyarrow as pa
import pyarrow.ipc as ipc

from medvision.metrics import records_to_table
from medvision.runs import records_arrow
from medvision.runs.integrity import records_digest, records_digest_lines

__all__ = [
    "COLUMNS_FORMAT",
    "ScoringTable",
    "columns_path",
    "file_state",
    "scoring_table",
    "with_scoring_table",
    "write_columns",
]

T = TypeVar("T")

COLUMNS_FORMAT: Final = "1"
"""Format version of the column file; a file of another version is not read."""
_SCHEMA: Final[pa.Schema] = records_to_table([]).schema
_FORMAT_KEY: Final = b"medvision.columns_format"
_DIGEST_KEY: Final = b"medvision.records_digest"
_DUPLICATES_KEY: Final = b"medvision.duplicates_dropped"
_FileState = tuple[int, int, int]


@dataclass(frozen=True)
class ScoringTable:
    """The aggregation table of a records file and where it came from.

    Attributes:
        table: One row per sample id, as :func:`medvision.metrics.records_to_table` builds it
            from ``dedupe(read_records(path))``.
        duplicates: Records dropped because a later one has the same sample id.
        digest: :func:`medvision.runs.integrity.records_digest` of the records file read.
        cached: ``True`` when the table came from the column file.
    """

    table: pa.Table
    duplicates: int
    digest: dict[str, Any]
    cached: bool


def columns_path(records: Path) -> Path:
    """The column file of a records file: ``records.jsonl`` -> ``records.columns.arrow``."""
    return records.with_name(f"{records.stem}.columns.arrow")


def file_state(path: Path) -> _FileState | None:
    """``(inode, size, mtime_ns)`` of a file, ``None`` if it is missing."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _read_columns(records: Path) -> tuple[pa.Table, int, dict[str, Any]] | None:
    """The column file's table, duplicate count and digest tag; ``None`` if unusable."""
    path = columns_path(records)
    if not path.exists():
        return None
    try:
        with ipc.open_file(path) as reader:
            meta = reader.schema.metadata or {}
            if meta.get(_FORMAT_KEY) != COLUMNS_FORMAT.encode():
                return None
            if not reader.schema.remove_metadata().equals(_SCHEMA):
                return None
            table = reader.read_all()
        digest = json.loads(meta[_DIGEST_KEY])
        duplicates = int(meta[_DUPLICATES_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return None  # damaged or foreign: the records are read instead
    table = table.replace_schema_metadata(None)
    if any(table[name].num_chunks != 1 for name in table.column_names):
        table = table.combine_chunks()  # one chunk a column, as the aggregation expects
    return table, duplicates, digest


def write_columns(
    records: Path,
    table: pa.Table,
    duplicates: int,
    digest: dict[str, Any],
    *,
    unchanged_since: _FileState | None,
) -> bool:
    """Write the column file of ``records`` (atomically); ``False`` if it was not written.

    Args:
        records: The records file the table was read from.
        table: Its aggregation table (the schema of :func:`records_to_table`).
        duplicates: Duplicate records dropped when it was read.
        digest: The records file's digest the table was read with.
        unchanged_since: :func:`file_state` of the records file taken before it was read;
            nothing is written if the file is no longer in that state (it changed while it
            was read, so the table might not be the digest's) or was missing.

    A folder that cannot be written is not an error (the records stay the source).
    """
    if not table.schema.remove_metadata().equals(_SCHEMA):
        raise ValueError(f"not an aggregation table: {table.schema}")
    if unchanged_since is None or file_state(records) != unchanged_since:
        return False
    path = columns_path(records)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    meta = {
        _FORMAT_KEY: COLUMNS_FORMAT.encode(),
        _DIGEST_KEY: json.dumps(digest).encode(),
        _DUPLICATES_KEY: str(duplicates).encode(),
    }
    schema = _SCHEMA.with_metadata(meta)
    try:
        options = ipc.IpcWriteOptions(compression="lz4")
        with ipc.new_file(tmp, schema, options=options) as writer:
            writer.write_table(table.replace_schema_metadata(meta))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        return False
    return True


def with_scoring_table(
    records: Path,
    compute: Callable[[pa.Table, int], T],
    *,
    write_cache: bool = True,
    fallback: bool = True,
) -> tuple[ScoringTable, T] | None:
    """Compute on the aggregation table of ``records``, from the column file when it is current.

    The digest of ``records`` is computed in a thread while the column file is read and
    ``compute`` runs on its table; the result is returned only if the digest equals the
    file's tag. Otherwise the records are read (pyarrow's JSON reader; the Python reader for
    a file it refuses), ``compute`` runs on that table, and the column file is written
    (unless ``write_cache`` is false).

    Args:
        records: A ``records.jsonl`` (it must exist).
        compute: Called with ``(table, duplicates dropped)``.
        write_cache: Write the column file after reading the records.
        fallback: Read a file the fast JSON reader refuses with the Python reader; when
            false, such a file gives ``None`` (the caller reads the records as objects).

    Returns:
        The table with its provenance, and ``compute``'s result; ``None`` only without
        ``fallback``.

    Raises:
        RecordsError: A complete line is not a record (names the file and line).
    """
    before = file_state(records)
    cached = _read_columns(records)
    if cached is not None and cached[2].get("bytes") != (before[1] if before else -1):
        cached = None  # a column file of another size cannot match: do not even try it
    with ThreadPoolExecutor(max_workers=1) as pool:
        if cached is not None:
            digest_only: Future[dict[str, Any]] = pool.submit(records_digest, records)
            table, duplicates, tag = cached
            try:
                result, error = compute(table, duplicates), None
            except Exception as exc:  # raised below, but only if the file is current
                error = exc
            digest = digest_only.result()
            if digest == tag:
                if error is not None:
                    raise error
                return ScoringTable(table, duplicates, digest, cached=True), result
        # Hash and count lines in one pass: the JSON reader checks its rows against the count.
        digest_lines = pool.submit(records_digest_lines, records)
        read = records_arrow.scoring_table if fallback else records_arrow.read_scoring_table
        got = read(records, lines=lambda: digest_lines.result()[1])
        digest = digest_lines.result()[0]
    if got is None:
        return None
    table, duplicates = got
    result = compute(table, duplicates)
    if write_cache:
        write_columns(records, table, duplicates, digest, unchanged_since=before)
    return ScoringTable(table, duplicates, digest, cached=False), result


def scoring_table(records: Path, *, write_cache: bool = True) -> ScoringTable:
    """The aggregation table of ``records`` (see :func:`with_scoring_table`).

    A missing records file is an empty run (an empty table, digest of no file).
    """
    if not records.exists():
        return ScoringTable(_SCHEMA.empty_table(), 0, records_digest(records), cached=False)
    got = with_scoring_table(records, lambda table, _: None, write_cache=write_cache)
    assert got is not None  # with the Python reader as fallback there is always a table
    return got[0]
