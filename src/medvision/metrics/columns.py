"""Evaluated records as one column table (:func:`records_to_table`) and its column helpers.

The aggregators (:mod:`medvision.metrics.aggregate`), the headline numbers
(:mod:`medvision.metrics.headline`) and the comparison (:mod:`medvision.metrics.paired`) all
read this table: one row per record, identifying strings, the parsed values and targets as
NaN-padded float64 columns ``p0..p3`` / ``t0..t3``, and the image metadata nMAE needs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import chain
from operator import attrgetter
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from medvision.schema import Record, TaskFamily

__all__ = [
    "FloatArray",
    "IntArray",
    "as_table",
    "column_array",
    "family_rows",
    "records_to_table",
    "string_codes",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

_MAX_VALUES = 4
_SCHEMA: Final[pa.Schema] = pa.schema(
    [
        ("sample_id", pa.string()),
        ("dataset", pa.string()),
        ("case_id", pa.string()),
        ("family", pa.string()),
        ("plane", pa.int8()),
        ("label_name", pa.string()),
        ("label_kind", pa.string()),
        ("label_group", pa.string()),
        ("modality", pa.string()),
        ("metric_type", pa.string()),
        ("metric_key", pa.string()),
        ("model", pa.string()),
        ("protocol", pa.string()),
        ("status", pa.string()),
        ("finish_reason", pa.string()),
        ("n_parsed", pa.int16()),
        *((f"p{i}", pa.float64()) for i in range(_MAX_VALUES)),
        ("n_target", pa.int16()),
        *((f"t{i}", pa.float64()) for i in range(_MAX_VALUES)),
        ("box_img_ratio", pa.float64()),
        ("image_h", pa.int32()),
        ("image_w", pa.int32()),
        ("diag_mm", pa.float64()),
    ]
)


# ----------------------------------------------------------------------------------------------
# records -> columns


def _value_columns(
    seqs: Sequence[Sequence[float] | None], name: str, ids: Sequence[str], *, strict: bool
) -> tuple[NDArray[np.int16], FloatArray]:
    """Lengths (-1 for ``None``) and a NaN-padded ``(N, 4)`` float64 matrix of value tuples.

    With ``strict`` a sequence longer than four raises; otherwise it is stored as its length
    with NaN values (more values than any family takes can only be a failed parse).
    """
    n = len(seqs)
    # Arrow converts the Python tuples in C++ (None -> null list), far faster than a loop.
    arr = pa.array(seqs, type=pa.list_(pa.float64())) if n else pa.array([], pa.list_(pa.float64()))
    lengths = np.asarray(
        pc.fill_null(pc.list_value_length(arr), -1).to_numpy(zero_copy_only=False),
        dtype=np.int64,
    )
    too_long = np.flatnonzero(lengths > _MAX_VALUES)
    if strict and too_long.size:
        i = int(too_long[0])
        raise ValueError(
            f"record {ids[i]}: {name} has {int(lengths[i])} values; at most {_MAX_VALUES} expected"
        )
    mat = np.full((n, _MAX_VALUES), np.nan)
    if n:
        offsets = np.asarray(arr.offsets.to_numpy(), dtype=np.int64)[:-1]
        values = np.asarray(arr.values.to_numpy(zero_copy_only=False), dtype=np.float64)
        for j in range(_MAX_VALUES):
            rows = np.flatnonzero((lengths > j) & (lengths <= _MAX_VALUES))
            mat[rows, j] = values[offsets[rows] + j]
    return lengths.astype(np.int16), mat


_STR_FIELDS: Final[tuple[str, ...]] = (
    "sample_id",
    "dataset",
    "case_id",
    "family",
    "label_name",
    "label_kind",
    "label_group",
    "modality",
    "metric_type",
    "metric_key",
    "model",
    "protocol",
    "status",
    "finish_reason",
)
_ALL_FIELDS: Final[tuple[str, ...]] = (
    *_STR_FIELDS,
    "plane",
    "parsed",
    "target",
    "box_img_ratio",
    "image_hw",
    "seen_hw",
    "seen_spacing_mm_rc",
)


def records_to_table(records: Iterable[Record]) -> pa.Table:
    """Build the column table the aggregators read from evaluated records.

    Args:
        records: Evaluated records (any iterable; read once).

    Returns:
        A table with one row per record: identifying strings (``sample_id``, ``dataset``,
        ``case_id`` (the cluster of the bootstrap), ``family``, ``label_name``, ``label_kind``,
        ``label_group``, ``modality``,
        ``metric_type``, ``metric_key``, ``model``, ``protocol``, ``status``), ``plane``
        (int8), ``n_parsed`` (number of parsed values, -1 when ``parsed is None``),
        ``p0..p3`` (parsed values, NaN-padded), ``n_target`` and ``t0..t3`` (target,
        NaN-padded) and ``box_img_ratio`` (ground-truth box area over image area; NaN when
        the record has none), ``image_h`` and ``image_w`` (stored image size in pixels) and
        ``diag_mm``, the physical diagonal of the slice,
        ``sqrt((seen_h * seen_sr)**2 + (seen_w * seen_sc)**2)`` mm (the image the model saw
        covers the same field of view as the stored one, so this equals the diagonal from the
        native size and spacing). Units are those of each family (see :mod:`medvision.schema`).

    Raises:
        ValueError: If a record has more than four target values.
    """
    recs = records if isinstance(records, list) else list(records)
    n = len(recs)
    # One C-level attrgetter pass per column: the cheapest way to pull attributes of many
    # objects (cheaper than building one tuple per record and transposing).
    by_name = {f: list(map(attrgetter(f), recs)) for f in _ALL_FIELDS}
    cols: dict[str, Any] = {f: pa.array(by_name[f], type=pa.string()) for f in _STR_FIELDS}
    ids = by_name["sample_id"]
    cols["plane"] = pa.array(np.array(by_name["plane"], dtype=np.int8))
    n_parsed, p = _value_columns(by_name["parsed"], "parsed", ids, strict=False)
    n_target, t = _value_columns(by_name["target"], "target", ids, strict=True)
    cols["n_parsed"] = pa.array(n_parsed)
    cols["n_target"] = pa.array(n_target)
    for i in range(_MAX_VALUES):
        cols[f"p{i}"] = pa.array(p[:, i])
        cols[f"t{i}"] = pa.array(t[:, i])
    ratio = pa.array(by_name["box_img_ratio"], type=pa.float64())
    cols["box_img_ratio"] = pc.fill_null(ratio, math.nan) if n else ratio
    hw = np.fromiter(chain.from_iterable(by_name["image_hw"]), dtype=np.int32, count=2 * n).reshape(
        -1, 2
    )
    cols["image_h"] = pa.array(hw[:, 0])
    cols["image_w"] = pa.array(hw[:, 1])
    seen = np.fromiter(
        chain.from_iterable(by_name["seen_hw"]), dtype=np.float64, count=2 * n
    ).reshape(-1, 2)
    spacing = np.fromiter(
        chain.from_iterable(by_name["seen_spacing_mm_rc"]), dtype=np.float64, count=2 * n
    ).reshape(-1, 2)
    extent = seen * spacing  # (rows mm, cols mm) of the field of view
    cols["diag_mm"] = pa.array(np.sqrt(extent[:, 0] ** 2 + extent[:, 1] ** 2))
    return pa.table({name: cols[name] for name in _SCHEMA.names}, schema=_SCHEMA)


def as_table(data: Iterable[Record] | pa.Table) -> pa.Table:
    """Return ``data`` as the aggregation table (records are converted)."""
    if isinstance(data, pa.Table):
        missing = [n for n in _SCHEMA.names if n not in data.column_names]
        if missing:
            raise ValueError(f"table lacks the columns {missing}; build it with records_to_table")
        return data
    return records_to_table(data)


def family_rows(table: pa.Table, family: TaskFamily) -> pa.Table:
    """Rows of ``table`` of one task family (the table itself when every row is of it)."""
    mask = pc.equal(table["family"], family.value)
    if table.num_rows and pc.all(mask).as_py():
        return table  # already one family: skip copying every column
    rows = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool))
    if rows.size and int(rows[-1]) - int(rows[0]) + 1 == rows.size:
        # Runs write records family by family: a contiguous block is a zero-copy slice.
        return table.slice(int(rows[0]), int(rows.size))
    return table.filter(mask)


def column_array(table: pa.Table, name: str) -> NDArray[Any]:
    """Column ``name`` as a numpy array."""
    return np.asarray(table[name].to_numpy())


def string_codes(table: pa.Table, name: str) -> tuple[IntArray, list[str]]:
    """Dictionary-encode a string column: ``(codes, uniques)``."""
    col = table[name].combine_chunks() if table.num_rows else pa.array([], pa.string())
    enc = pc.dictionary_encode(col)
    codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return codes, [str(s) for s in enc.dictionary.to_pylist()]
