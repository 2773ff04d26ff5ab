"""CLI commands that bring runs of other tools in; :func:`register` adds them to the app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import_app = typer.Typer(help="Bring runs made with other tools in.", no_args_is_help=True)


@import_app.command("lmms-eval")
def lmms_eval(
    log_dir: Annotated[
        Path, typer.Argument(help="lmms-eval --output_path (searched for *_samples_*.jsonl).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder to write.")],
    model: Annotated[
        str, typer.Option(help="Model name (default: the folder holding the logs).")
    ] = "",
    protocol: Annotated[
        str, typer.Option(help="paper-v1 | official | strict (how to parse and score).")
    ] = "official",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run folder.")] = False,
) -> None:
    """Import sample logs of the official MedVision lmms-eval tasks as a run folder."""
    import json

    from medvision.cli.common import console
    from medvision.reports import leaderboard, print_leaderboard
    from medvision.runs.lmms_import import import_lmms_eval
    from medvision.runs.spec import SUMMARY_NAME

    report = import_lmms_eval(log_dir, out, model=model, protocol=protocol, overwrite=overwrite)
    console.print(f"imported {report.records} records from {report.files} sample files into {out}")
    for task, n in sorted(report.by_task.items()):
        console.print(f"  {task}: {n}")
    if report.unknown_tasks:
        console.print(
            f"[yellow]not in the catalog (label ids kept as names):[/] "
            f"{', '.join(sorted(set(report.unknown_tasks)))}"
        )
    for where, reason in report.skipped[:10]:
        console.print(f"[yellow]skipped[/] {where}: {reason}")
    if len(report.skipped) > 10:
        console.print(f"[yellow]... and {len(report.skipped) - 10} more skipped lines[/]")
    summary = json.loads((out / SUMMARY_NAME).read_text())
    print_leaderboard(leaderboard({summary["run"]["model"]: summary}), console)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(import_app, name="import")
