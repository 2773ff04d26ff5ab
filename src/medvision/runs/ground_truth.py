"""Which ground truth a run scores against, and the warning when it is not the paper's.

The build's ground-truth version (manifest field ``annotation``,
:mod:`medvision.annotate.tl_versions`) sets the tumour/lesion targets. ``paper-v1`` reproduces
the paper's leaderboard, whose targets are ``official-1.0.0``: on any other build a
``paper-v1`` run still runs, but says once that its T/L numbers are not the paper's.
"""

from __future__ import annotations

import warnings

from medvision.annotate.tl_versions import PAPER_ANNOTATION

__all__ = ["GroundTruthWarning", "ground_truth_note", "warn_ground_truth"]


class GroundTruthWarning(UserWarning):
    """A run's protocol expects another ground-truth version than its build has."""


def ground_truth_note(protocol: str, annotation: str | None) -> str | None:
    """The one-line warning for ``protocol`` on a build of ``annotation``, or ``None``.

    Args:
        protocol: Protocol preset name of the run.
        annotation: The build manifest's ``annotation`` (``None``: not recorded).

    Returns:
        The message when ``protocol`` is ``paper-v1`` and the build is not
        ``official-1.0.0``; else ``None``.
    """
    if protocol != "paper-v1" or annotation == PAPER_ANNOTATION:
        return None
    found = annotation or "not recorded (an older or official-plan build)"
    return (
        f"protocol paper-v1 on a build whose T/L ground truth is {found}: the paper's "
        f"leaderboard used {PAPER_ANNOTATION}; T/L numbers are not comparable with it "
        f"(rebuild with --annotation {PAPER_ANNOTATION})"
    )


def warn_ground_truth(protocol: str, annotation: str | None) -> str | None:
    """Emit :func:`ground_truth_note` as a :class:`GroundTruthWarning`; return it (or ``None``)."""
    note = ground_truth_note(protocol, annotation)
    if note is not None:
        warnings.warn(note, GroundTruthWarning, stacklevel=3)
    return note
