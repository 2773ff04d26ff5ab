"""CLI commands of this area; :func:`register` adds them to the ``medvision`` app."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app`` (none yet)."""
