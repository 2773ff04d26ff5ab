"""CLI commands of the reports area; :func:`register` adds them to the ``medvision`` app.

* ``medvision compare RUN_A RUN_B``: paired comparison of two runs on their shared samples,
  every headline number with ``B - A`` and its paired bootstrap interval.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from medvision.metrics.headline import HEADLINE_KEYS
from medvision.metrics.paired import PairedResult
from medvision.reports.tables import format_value

__all__ = ["print_comparison", "register"]


def print_comparison(result: PairedResult, console: Console) -> None:
    """Print a paired comparison as a rich table (only numbers both runs have)."""
    table = Table(
        title=Text(
            f"{result.name_b} - {result.name_a} (paired, protocol {result.protocol}, "
            f"{next(iter(result.diff.values())).level:.0%} bootstrap)"
        )
    )
    for col in ("number", "A", "B", "B - A", "interval", "better"):
        table.add_column(col, justify="left" if col == "number" else "right")
    for k in HEADLINE_KEYS:
        d = result.diff[k]
        if d.n_valid == 0:
            continue
        table.add_row(
            Text(k),
            Text(format_value(result.a[k], 4)),
            Text(format_value(result.b[k], 4)),
            Text(format_value(d.estimate, 4)),
            Text(f"[{format_value(d.low, 4)}, {format_value(d.high, 4)}]"),
            Text(result.better(k)),
        )
    console.print(table)
    for fam, n in result.n_shared.items():
        w = result.wins.get(fam, {})
        f = result.failures.get(fam, {})
        console.print(
            Text(
                f"{fam}: {n} shared samples ({result.n_only_a[fam]} only in A, "
                f"{result.n_only_b[fam]} only in B); per sample B better {w.get('b_better', 0)}, "
                f"A better {w.get('a_better', 0)}, tie {w.get('tie', 0)}; parse failures "
                f"A {f.get('a', 0)}, B {f.get('b', 0)}"
            )
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""

    @app.command()
    def compare(
        run_a: Annotated[Path, typer.Argument(help="Baseline run folder (A).")],
        run_b: Annotated[Path, typer.Argument(help="Run folder compared against A (B).")],
        protocol: Annotated[
            str | None, typer.Option(help="paper-v1 | official | strict (default: A's).")
        ] = None,
        bootstrap: Annotated[int, typer.Option(help="Bootstrap replicates.")] = 1000,
        seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
        level: Annotated[float, typer.Option(help="Interval coverage.")] = 0.95,
        json_out: Annotated[
            Path | None, typer.Option("--json", help="Also write the comparison as JSON here.")
        ] = None,
    ) -> None:
        """Paired comparison of two runs on the same samples: B - A with bootstrap intervals."""
        from medvision.runs.report import compare_run_dirs

        console = Console()
        result = compare_run_dirs(
            run_a, run_b, protocol=protocol, bootstrap=bootstrap, seed=seed, level=level
        )
        print_comparison(result, console)
        if json_out is not None:
            json_out.write_text(json.dumps(result.to_dict(), indent=1))
            console.print(Text(f"wrote {json_out}"))
