"""Option parsing and the progress bar that several ``medvision`` command modules share."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = [
    "FAMILIES",
    "PLANE_CODES",
    "console",
    "parse_families",
    "parse_planes",
    "print_summary",
    "progress_bar",
]

# Piped output (logs, CI) gets a width that fits the leaderboard instead of rich's 80 columns.
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 130)

#: Task family names accepted by ``--families`` (``medvision.schema.TaskFamily`` values).
FAMILIES = ("detection", "tl", "ad")
#: Plane letter of ``--planes`` -> slicing axis of the RAS+ volume (sagittal, coronal, axial).
PLANE_CODES = {"S": 0, "C": 1, "A": 2}


def parse_planes(codes: str) -> tuple[int, ...]:
    """Plane axes of a ``--planes`` value such as ``"SCA"`` or ``"A,C"``.

    Raises:
        typer.BadParameter: If a letter is not among S, C, A.
    """
    try:
        return tuple(PLANE_CODES[c] for c in codes.upper().replace(",", ""))
    except KeyError as exc:
        raise typer.BadParameter(f"planes are letters among S, C, A; got {codes!r}") from exc


def parse_families(names: str) -> tuple[str, ...]:
    """Task families of a comma-separated ``--families`` value (blanks dropped).

    Raises:
        typer.BadParameter: If a name is not a known family.
    """
    out = tuple(n.strip() for n in names.split(",") if n.strip())
    bad = [n for n in out if n not in FAMILIES]
    if bad:
        raise typer.BadParameter(f"unknown task families {bad}; known: {', '.join(FAMILIES)}")
    return out


def progress_bar(console: Console, text: str = "[bold]{task.description}") -> Progress:
    """A bar with done/total and elapsed time, kept on screen when it ends.

    Args:
        console: Where it draws.
        text: The label column (a rich format string; default: the task's description).
    """
    return Progress(
        TextColumn(text),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def print_summary(name: str, summary: dict[str, Any]) -> None:
    """Print one run's leaderboard row(s) to the console."""
    from medvision.reports import leaderboard, print_leaderboard

    print_leaderboard(leaderboard({name: summary}), console)
