"""Failures of a run by kind, for the leaderboards and the HTML report.

Kinds (the ``summary["outcomes"]`` contract of :func:`medvision.metrics.summarize_run`):

* ``parse_failure``: answered records whose status is not ``ok`` (every kind of unreadable
  answer, truncated and refused included);
* ``truncated``: parse failures whose answer was cut at the token limit
  (``finish_reason == "length"``), a sub-count of ``parse_failure``;
* ``refused``: parse failures with status ``refusal``, a sub-count of ``parse_failure``;
* ``backend_error``: records without any answer (server down, timeout); not model failures.

:func:`failure_counts` reads ``summary["outcomes"]`` when the run recorded it; older summaries
fall back to the records (every kind) or, without records, to ``status_counts`` (truncation
is then unknown and shown as ``None``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from medvision.schema import Record

__all__ = ["FAILURE_KINDS", "failure_counts", "failure_text"]

FAILURE_KINDS: Final[tuple[tuple[str, str], ...]] = (
    ("parse_failure", "parse failures"),
    ("truncated", "truncated"),
    ("refused", "refused"),
    ("backend_error", "backend errors"),
)
"""``(key, label)`` of every failure kind, in display order."""

_BACKEND: Final = "backend_error"


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def failure_counts(
    summary: Mapping[str, Any], records: Iterable[Record] | None = None
) -> dict[str, int | None]:
    """Failures of one run by kind (``None`` where the run's files cannot tell).

    Args:
        summary: The run's summary (``summarize_run`` output, possibly with ``outcomes``).
        records: The run's records, used when the summary has no ``outcomes`` block.

    Returns:
        ``{kind: count}`` for every key of :data:`FAILURE_KINDS`.
    """
    outcomes = summary.get("outcomes")
    if isinstance(outcomes, Mapping):
        return {k: _int(outcomes.get(k)) for k, _ in FAILURE_KINDS}
    if records is not None:
        out = dict.fromkeys((k for k, _ in FAILURE_KINDS), 0)
        for r in records:
            if r.status == _BACKEND:
                out["backend_error"] = (out["backend_error"] or 0) + 1
            elif r.status != "ok":
                out["parse_failure"] = (out["parse_failure"] or 0) + 1
                if r.finish_reason == "length":
                    out["truncated"] = (out["truncated"] or 0) + 1
                if r.status == "refusal":
                    out["refused"] = (out["refused"] or 0) + 1
        return dict(out)
    counts = summary.get("status_counts") or {}
    return {
        "parse_failure": sum(
            int(v) for k, v in counts.items() if k not in ("ok", _BACKEND) and _int(v) is not None
        ),
        "truncated": None,
        "refused": int(counts.get("refusal", 0)),
        "backend_error": int(counts.get(_BACKEND, 0)),
    }


def failure_text(counts: Mapping[str, int | None]) -> str:
    """``"parse failures 3 (truncated 1, refused 0); backend errors 0"`` (``n/a`` if unknown)."""

    def f(k: str) -> str:
        v = counts.get(k)
        return "n/a" if v is None else str(v)

    return (
        f"parse failures {f('parse_failure')} (truncated {f('truncated')}, refused "
        f"{f('refused')}); backend errors {f('backend_error')}"
    )
