"""What happened to each sample of a run: answered, backend error, parse failure.

A record whose status is ``backend_error`` holds no answer of the model (a dead server, a bad
key, a timeout): it says nothing about the model, so it is left out of every model metric and
counted apart. :func:`outcome_counts` gives the ``summary["outcomes"]`` block every summary
and leaderboard shows:

* ``total``: records in the run;
* ``answered``: ``total - backend_error`` (the records the metrics are computed on);
* ``backend_error``: records without an answer;
* ``parse_failure``: answered records whose status is not ``ok`` (every kind);
* ``truncated``: parse failures whose answer was cut at the token limit
  (``finish_reason == "length"``), a sub-count of ``parse_failure``;
* ``refused``: parse failures with status ``refusal``, a sub-count of ``parse_failure``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from medvision.schema import Record

__all__ = ["BACKEND_ERROR", "OUTCOME_KEYS", "answered_rows", "outcome_counts"]

#: The record status of a sample the backend gave no answer for.
BACKEND_ERROR = "backend_error"
#: Keys of ``summary["outcomes"]``, in display order.
OUTCOME_KEYS = ("total", "answered", "backend_error", "parse_failure", "truncated", "refused")


def _is(column: pa.ChunkedArray | pa.Array, value: str) -> NDArray[np.bool_]:
    """``column == value`` as booleans (a null is not equal)."""
    eq = pc.fill_null(pc.equal(column, value), False)
    return np.asarray(eq.to_numpy(zero_copy_only=False), dtype=np.bool_)


def outcome_counts(data: pa.Table | Iterable[Record]) -> dict[str, int]:
    """The ``summary["outcomes"]`` block of a run's records (see the module docstring).

    Args:
        data: Records, or a table from :func:`medvision.metrics.records_to_table`.

    Returns:
        ``{"total", "answered", "backend_error", "parse_failure", "truncated", "refused"}``.
    """
    if isinstance(data, pa.Table):
        status = data["status"]
        finish = data["finish_reason"] if "finish_reason" in data.column_names else None
    else:
        records = list(data)
        status = pa.array([r.status for r in records], type=pa.string())
        finish = pa.array([r.finish_reason for r in records], type=pa.string())
    error = _is(status, BACKEND_ERROR)
    failed = ~error & ~_is(status, "ok")
    length = _is(finish, "length") if finish is not None else np.zeros_like(error)
    return {
        "total": int(error.size),
        "answered": int((~error).sum()),
        "backend_error": int(error.sum()),
        "parse_failure": int(failed.sum()),
        "truncated": int((failed & length).sum()),
        "refused": int((failed & _is(status, "refusal")).sum()),
    }


def answered_rows(table: pa.Table) -> pa.Table:
    """The rows of ``table`` that hold an answer (status other than ``backend_error``)."""
    if not table.num_rows:
        return table
    mask = pc.not_equal(table["status"], BACKEND_ERROR)
    if pc.all(mask).as_py():
        return table  # no backend error: no copy of every column
    return table.filter(mask)


def outcomes_line(outcomes: Mapping[str, Any] | None) -> str:
    """``"answered 90 / backend errors 10 / parse failures 3"`` (empty if ``None``)."""
    if not outcomes:
        return ""
    return (
        f"answered {outcomes.get('answered', 0)} / backend errors "
        f"{outcomes.get('backend_error', 0)} / parse failures {outcomes.get('parse_failure', 0)}"
    )
