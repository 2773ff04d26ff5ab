"""A run's ``records.jsonl`` straight into the aggregation columns, without record objects.

:func:`medvision.metrics.summarize_run` works on one :class:`pyarrow.Table`
(:func:`medvision.metrics.records_to_table`). Building that table from
:class:`~medvision.schema.Record` objects means one ``json.loads`` and one dataclass per line
(a million records: 44 to 59 s and 4.4 GB resident on our shared 2-core machine,
``benchmarks/score.py --python-reader``). :func:`read_scoring_table` reads the file with
pyarrow's streaming JSON reader instead: only the fields scoring needs, with an explicit
schema (:data:`READ_SCHEMA`; every other field is skipped), block by block straight into
Arrow columns, each block turned into aggregation columns at once. The table equals
``records_to_table(dedupe(read_records(path))[0])`` cell for cell (same rows, same order,
same values), so every number computed from it is the same; a test keeps them equal.

The fast reader is strict and falls back to the Python reader
(:func:`medvision.runs.records.read_records`) whenever a file is not plainly in the current
format, so it never gives another number and a bad line still raises
:class:`~medvision.runs.records.RecordsError` naming the file and line:

* a line the JSON reader refuses: not JSON (garbage, a torn line), not an object, or a value
  of another type than the schema's. The strings ``"inf"``, ``"-inf"`` and ``"nan"`` that
  stand for a non-finite float (:mod:`medvision.metrics.jsonvalues`) in ``parsed``,
  ``target`` or the spacing are first read again as floats (:func:`_decoded`), as the Python
  reader reads them (in ``box_img_ratio``, never written non-finite, the Python path
  cannot convert them and stops; this reader reads them as floats too);
* a last line without its newline (the torn tail of a killed run, which the Python reader
  ignores);
* a number of rows other than the number of lines (the JSON reader skips a blank line and
  reads two objects on one line as two rows; the Python reader refuses both);
* a null or missing required field (the Python reader raises on a missing one);
* a size or spacing without exactly two values, or a target with more than four (the
  Python path raises its error).

``null`` elements of ``parsed``/``target`` (older files wrote a non-finite value as null) read
as NaN, as the Python reader reads them. Fields scoring does not read (``raw_output``,
``metrics``, ``reason``, ...) are not checked by the fast reader.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
from numpy.typing import NDArray

from medvision.metrics import records_to_table
from medvision.runs.records import dedupe, read_records

__all__ = ["READ_SCHEMA", "count_lines", "read_scoring_table", "scoring_table"]

_MAX_VALUES: Final = 4
_SCORING: Final[pa.Schema] = records_to_table([]).schema
"""The schema of :func:`records_to_table`'s table (read from it: one definition)."""
_OPTIONAL_STRINGS: Final[frozenset[str]] = frozenset({"finish_reason"})
# Every string column of the aggregation table is the record field of the same name.
_STRINGS: Final[tuple[str, ...]] = tuple(
    f.name for f in _SCORING if f.type == pa.string() and f.name not in _OPTIONAL_STRINGS
)
READ_SCHEMA: Final[pa.Schema] = pa.schema(
    [
        *((name, pa.string()) for name in _STRINGS),
        *((name, pa.string()) for name in sorted(_OPTIONAL_STRINGS)),
        ("plane", pa.int8()),
        ("parsed", pa.list_(pa.float64())),
        ("target", pa.list_(pa.float64())),
        ("box_img_ratio", pa.float64()),
        ("image_hw", pa.list_(pa.int32())),
        ("seen_hw", pa.list_(pa.float64())),
        ("seen_spacing_mm_rc", pa.list_(pa.float64())),
    ]
)
"""The fields of a record line that scoring reads, with their Arrow types."""

_REQUIRED: Final[tuple[str, ...]] = (
    *_STRINGS,
    "plane",
    "target",
    "image_hw",
    "seen_hw",
    "seen_spacing_mm_rc",
)
_BLOCK_BYTES: Final = 1 << 22  # 4 MiB blocks: every core busy, few blocks to convert


def _ends_with_newline(path: Path) -> bool:
    size = path.stat().st_size
    if size == 0:
        return True
    with path.open("rb") as fh:
        fh.seek(size - 1)
        return fh.read(1) == b"\n"


def count_lines(path: Path) -> int:
    """Number of newline characters in a file (read in 1 MiB blocks)."""
    n = 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            n += chunk.count(b"\n")
    return n


def _list_matrix(
    col: pa.ChunkedArray, *, width: int
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Lengths (-1 for null) and a NaN-padded ``(N, width)`` float64 matrix of a list column.

    Null elements become NaN; lists longer than ``width`` keep their length and NaN values.
    """
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    n = len(arr)
    lengths = np.asarray(
        pc.fill_null(pc.list_value_length(arr), -1).to_numpy(zero_copy_only=False),
        dtype=np.int64,
    )
    mat = np.full((n, width), np.nan)
    if n:
        offsets = np.asarray(arr.offsets.to_numpy(), dtype=np.int64)[:-1]
        values = np.asarray(
            pc.fill_null(arr.values.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False),
            dtype=np.float64,
        )
        for j in range(width):
            rows = np.flatnonzero((lengths > j) & (lengths <= width))
            mat[rows, j] = values[offsets[rows] + j]
    return lengths, mat


def _dedupe_rows(ids: pa.ChunkedArray) -> NDArray[np.int64] | None:
    """Row indices that keep the last record of each sample id, in order of first appearance.

    ``None`` when every id is unique (all rows, in file order).
    """
    codes_arr = pc.dictionary_encode(ids.combine_chunks())
    n_unique = len(codes_arr.dictionary)
    if n_unique == len(ids):
        return None
    # dictionary_encode numbers the ids in order of first appearance, as dedupe orders them.
    codes = np.asarray(codes_arr.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    last = np.full(n_unique, -1, dtype=np.int64)
    np.maximum.at(last, codes, np.arange(codes.size, dtype=np.int64))
    return last


def _to_scoring(raw: pa.Table) -> pa.Table | None:
    """The aggregation table of :func:`records_to_table` from a :data:`READ_SCHEMA` table.

    ``None`` when a required field is null, a size/spacing does not hold two values or a
    target holds more than four (the Python path raises its own error for that one).
    """
    if any(raw[name].null_count for name in _REQUIRED):
        return None
    n = raw.num_rows
    pairs: dict[str, NDArray[np.float64]] = {}
    for name in ("image_hw", "seen_hw", "seen_spacing_mm_rc"):
        lengths, mat = _list_matrix(raw[name], width=2)
        if n and bool((lengths != 2).any()):
            return None
        if n and name != "seen_spacing_mm_rc" and bool(np.isnan(mat).any()):
            return None  # a null size: the Python reader cannot convert it either
        pairs[name] = mat
    cols: dict[str, pa.Array | pa.ChunkedArray] = {
        name: raw[name] for name in (*_STRINGS, *_OPTIONAL_STRINGS, "plane")
    }
    n_parsed, p = _list_matrix(raw["parsed"], width=_MAX_VALUES)
    n_target, t = _list_matrix(raw["target"], width=_MAX_VALUES)
    if n and bool((n_target > _MAX_VALUES).any()):
        return None
    cols["n_parsed"] = pa.array(n_parsed.astype(np.int16))
    cols["n_target"] = pa.array(n_target.astype(np.int16))
    for i in range(_MAX_VALUES):
        cols[f"p{i}"] = pa.array(p[:, i])
        cols[f"t{i}"] = pa.array(t[:, i])
    cols["box_img_ratio"] = pc.fill_null(raw["box_img_ratio"], np.nan)
    hw = pairs["image_hw"].astype(np.int32)
    cols["image_h"] = pa.array(hw[:, 0])
    cols["image_w"] = pa.array(hw[:, 1])
    extent = pairs["seen_hw"] * pairs["seen_spacing_mm_rc"]  # field of view (rows, cols) mm
    cols["diag_mm"] = pa.array(np.sqrt(extent[:, 0] ** 2 + extent[:, 1] ** 2))
    if any(name not in cols for name in _SCORING.names):
        return None  # a column this reader does not build yet: the Python path builds it
    return pa.table({name: cols[name] for name in _SCORING.names}, schema=_SCORING)


_PARSE_OPTIONS: Final = pj.ParseOptions(
    explicit_schema=READ_SCHEMA, unexpected_field_behavior="ignore", newlines_in_values=False
)
_PIECE_BYTES: Final = 1 << 26  # 64 MiB pieces of the file for the decoding reader
_NONFINITE_TOKENS: Final[tuple[tuple[bytes, bytes], ...]] = (
    (b'"-inf"', b"-Infinity"),
    (b'"inf"', b"Infinity"),
    (b'"nan"', b"NaN"),
)


def _streamed(path: Path) -> Iterator[pa.Table]:
    """The file's lines as :data:`READ_SCHEMA` tables, block by block (streaming reader)."""
    reader = pj.open_json(
        path, read_options=pj.ReadOptions(block_size=_BLOCK_BYTES), parse_options=_PARSE_OPTIONS
    )
    for batch in reader:
        yield pa.Table.from_batches([batch])


def _decoded(path: Path) -> Iterator[pa.Table]:
    """As :func:`_streamed`, with the strings ``"inf"``, ``"-inf"``, ``"nan"`` read as floats.

    Each 64 MiB piece of whole lines has those JSON string tokens replaced by the literals
    ``Infinity``, ``-Infinity`` and ``NaN``, which the JSON reader takes as floats. In a
    float field that is what the Python reader does; in a string field the reader refuses
    the number, and the same bytes ending a longer string (an escaped quote, then ``inf``)
    become an invalid escape the reader refuses: both fall back to the Python reader.
    """
    rest = b""
    with path.open("rb") as fh:
        while chunk := fh.read(_PIECE_BYTES):
            buf = rest + chunk if rest else chunk
            cut = buf.rfind(b"\n") + 1
            piece, rest = buf[:cut], buf[cut:]
            if not piece:
                continue
            for token, literal in _NONFINITE_TOKENS:
                piece = piece.replace(token, literal)
            yield pj.read_json(
                pa.BufferReader(piece),
                read_options=pj.ReadOptions(block_size=_BLOCK_BYTES),
                parse_options=_PARSE_OPTIONS,
            )


def _convert_all(raws: Iterator[pa.Table]) -> list[pa.Table] | None:
    """Aggregation columns of every raw table, or ``None`` as soon as one is refused."""
    parts = []
    for raw in raws:
        part = _to_scoring(raw)
        if part is None:
            return None
        parts.append(part)
    return parts


def _read_columns(path: Path, lines: int | Callable[[], int] | None) -> pa.Table | None:
    """The file's aggregation table (every line, no dedupe), or ``None`` if refused.

    Block by block: each block of lines read by the streaming JSON reader is turned into
    aggregation columns at once, so the raw fields of the whole file are never held.
    """
    if not _ends_with_newline(path):
        return None  # a torn tail: the Python reader drops it
    parts: list[pa.Table] | None = []
    if path.stat().st_size:
        try:
            parts = _convert_all(_streamed(path))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            try:  # non-finite floats written as strings? read them as numbers
                parts = _convert_all(_decoded(path))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return None
    if parts is None:
        return None
    rows = sum(part.num_rows for part in parts)
    expected = lines() if callable(lines) else count_lines(path) if lines is None else lines
    if rows != expected:
        return None  # a blank line, or two objects on one line
    if not parts:
        return _SCORING.empty_table()
    # One chunk a column, as records_to_table builds them: the aggregation runs about twice as
    # fast on it as on hundreds of small chunks. Column by column, each block's copy freed as
    # soon as its column is joined, so the whole table is never held twice.
    joined = pa.concat_tables(parts)
    parts.clear()
    schema = joined.schema
    columns = {name: joined[name] for name in schema.names}
    del joined
    table = pa.table(
        {name: columns.pop(name).combine_chunks() for name in schema.names}, schema=schema
    )
    # Hand the parser's freed blocks back to the system before the aggregation allocates.
    pa.default_memory_pool().release_unused()
    return table


def read_scoring_table(
    path: str | Path, *, lines: int | Callable[[], int] | None = None
) -> tuple[pa.Table, int] | None:
    """The aggregation table of a records file by the fast reader, or ``None`` if it refuses.

    One row per sample id is kept (the last written, in order of first appearance), as
    :func:`medvision.runs.records.dedupe` keeps it.

    Args:
        path: A ``records.jsonl`` (it must exist).
        lines: The file's number of newline characters when the caller counts them
            (:func:`medvision.runs.integrity.records_digest_lines`), or a function returning
            it, called once the file is read (a count made alongside, in a thread); when
            ``None`` they are counted here, in a thread while the file is parsed.

    Returns:
        ``(table, duplicates dropped)``, the table as :func:`records_to_table` builds it
        (one chunk a column); or ``None`` when the file is not plainly in
        the current format (see the module docstring): read it with :func:`scoring_table`,
        which falls back.
    """
    if lines is None:
        # Count the lines in a thread while the reader parses (it releases the GIL).
        with ThreadPoolExecutor(max_workers=1) as pool:
            counted = pool.submit(count_lines, Path(path))
            table = _read_columns(Path(path), counted.result)
    else:
        table = _read_columns(Path(path), lines)
    if table is None:
        return None
    keep = _dedupe_rows(table["sample_id"]) if table.num_rows else None
    if keep is None:
        return table, 0
    return table.take(pa.array(keep)), table.num_rows - int(keep.size)


def scoring_table(
    path: str | Path, *, lines: int | Callable[[], int] | None = None
) -> tuple[pa.Table, int]:
    """The aggregation table of a records file: the fast reader, else the Python reader.

    Args:
        path: A ``records.jsonl``; a missing file is an empty run.
        lines: As for :func:`read_scoring_table`.

    Returns:
        ``(table, duplicates dropped)``, equal to
        ``records_to_table(dedupe(read_records(path))[0])`` and its duplicate count.

    Raises:
        RecordsError: A complete line is not a record (names the file and line).
        ValueError: A record with more than four target values.
    """
    p = Path(path)
    if p.exists():
        fast = read_scoring_table(p, lines=lines)
        if fast is not None:
            return fast
    records, duplicates = dedupe(read_records(p))
    return records_to_table(records), duplicates
