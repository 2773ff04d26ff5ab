"""Result types shared by every answer parser.

A parser never raises on model text: an answer it cannot use is a :class:`ParsedAnswer` with
``values=None``, a :class:`ParseStatus` and a human-readable ``reason``, so failures are data
that every report can count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["ParseStatus", "ParsedAnswer"]


class ParseStatus(StrEnum):
    """Outcome of parsing one model answer.

    The values are exactly :data:`medvision.schema.ParseStatusName`, the strings stored in
    :attr:`medvision.schema.Record.status`.
    """

    OK = "ok"
    """Values were extracted and passed the parser's checks."""
    NO_ANSWER = "no_answer"
    """No number in the answer scope (or, under the official 1.2.1 rule, no ``<answer>`` tag)."""
    TOO_FEW_NUMBERS = "too_few_numbers"
    """Some numbers, but fewer than the task's ``k``."""
    OUT_OF_RANGE = "out_of_range"
    """Numbers found but impossible for the task (negative length, angle > 180, box outside)."""
    REFUSAL = "refusal"
    """The model declined to answer and gave too few numbers."""
    BACKEND_ERROR = "backend_error"
    """The backend returned no text (set by the run orchestrator, never by a parser)."""


@dataclass(frozen=True)
class ParsedAnswer:
    """One parsed answer.

    Attributes:
        values: The answer in the task's official units (detection ``(x0, y0, x1, y1)``
            relative, origin lower-left; T/L ``(major_mm, minor_mm)``; A/D ``(value,)`` in mm or
            degrees), or ``None`` when parsing failed.
        status: :attr:`ParseStatus.OK` exactly when ``values`` is not ``None``.
        reason: Why the status is not OK, or a note on an OK parse (e.g. a unit conversion).
    """

    values: tuple[float, ...] | None
    status: ParseStatus
    reason: str = ""

    def __post_init__(self) -> None:
        # The pairing is the invariant every consumer relies on (scores read values iff ok).
        if (self.values is None) == (self.status is ParseStatus.OK):
            raise ValueError(
                f"ParsedAnswer needs values exactly when status is OK; found values="
                f"{self.values!r} with status={self.status.value!r}"
            )

    @property
    def ok(self) -> bool:
        """Whether values were extracted (status OK)."""
        return self.status is ParseStatus.OK

    @classmethod
    def success(cls, values: tuple[float, ...], reason: str = "") -> ParsedAnswer:
        """Build an OK answer.

        Args:
            values: The parsed numbers in official units.
            reason: Optional note (kept in the record).

        Returns:
            A ParsedAnswer with status OK.
        """
        return cls(tuple(float(v) for v in values), ParseStatus.OK, reason)

    @classmethod
    def failure(cls, status: ParseStatus, reason: str) -> ParsedAnswer:
        """Build a failed answer.

        Args:
            status: Any status except OK.
            reason: Human-readable explanation (names what was expected and found).

        Returns:
            A ParsedAnswer with ``values=None``.
        """
        return cls(None, status, reason)

    @property
    def all_finite(self) -> bool:
        """Whether the answer is OK and every value is finite."""
        return self.values is not None and all(math.isfinite(v) for v in self.values)
