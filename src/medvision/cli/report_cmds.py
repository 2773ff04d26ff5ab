"""CLI commands of the reports area; :func:`register` adds them to the ``medvision`` app.

* ``medvision compare RUN_A RUN_B``: paired comparison of two runs on their shared samples,
  every headline number with ``B - A``, its paired (cluster) bootstrap interval and p-value;
  one primary number per task family, Holm's correction over the rest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from medvision.metrics.bootstrap import METHODS
from medvision.metrics.headline import HEADLINE_KEYS
from medvision.metrics.paired import PairedResult
from medvision.reports.tables import format_value

__all__ = ["print_comparison", "register"]


def print_comparison(result: PairedResult, console: Console) -> None:
    """Print a paired comparison as a rich table (only numbers both runs have).

    Primary numbers (one per family) come first, then the secondary ones with their
    Holm-adjusted p-values; a closing note says which numbers were corrected and how.
    """
    level = next(iter(result.diff.values())).level
    unit = "cases/subjects" if result.method == "cluster" else "slices"
    table = Table(
        title=Text(
            f"{result.name_b} - {result.name_a} (paired, protocol {result.protocol}, "
            f"{level:.0%} {result.method} bootstrap over {unit})"
        )
    )
    table.add_column("number", justify="left", no_wrap=True)
    for col in ("A", "B", "B - A", "interval", "p", "p Holm", "better"):
        table.add_column(col, justify="right", overflow="fold")
    ordered = [*result.primary, *(k for k in HEADLINE_KEYS if k not in result.primary)]
    for i, k in enumerate(ordered):
        if i == len(result.primary) and result.primary:
            table.add_section()
        d = result.diff[k]
        if d.n_valid == 0 or k not in result.p_values:
            continue
        primary = k in result.primary
        table.add_row(
            Text(f"{k} *" if primary else k, style="bold" if primary else ""),
            Text(format_value(result.a[k], 4)),
            Text(format_value(result.b[k], 4)),
            Text(format_value(d.estimate, 4)),
            Text(f"[{format_value(d.low, 4)},\u00a0{format_value(d.high, 4)}]"),
            Text(format_value(result.p_values[k], 3)),
            Text("\u2014" if primary else format_value(result.p_holm.get(k), 3)),
            Text(result.better(k)),
        )
    console.print(table)
    alpha = result.alpha
    console.print(
        Text(
            f"* Primary numbers ({', '.join(result.primary) or 'none'}; one per task family) are "
            f"tested alone: better is set when the {level:.0%} interval excludes 0. The other "
            f"{len(result.corrected)} numbers are corrected together with Holm's step-down "
            f"procedure at family-wise alpha {alpha:.2g}: better is set only when the Holm "
            "p-value is below alpha; their intervals are shown unadjusted. p: two-sided, "
            "normal approximation with the paired bootstrap standard error."
        )
    )
    for fam, n in result.n_shared.items():
        w = result.wins.get(fam, {})
        f = result.failures.get(fam, {})
        console.print(
            Text(
                f"{fam}: {n} shared samples from {result.n_clusters.get(fam, '?')} "
                f"{'clusters' if result.method == 'cluster' else 'slices'} "
                f"({result.n_only_a[fam]} only in A, "
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
        bootstrap_method: Annotated[
            str, typer.Option(help="cluster (cases/subjects, default) | slice.")
        ] = "cluster",
        json_out: Annotated[
            Path | None, typer.Option("--json", help="Also write the comparison as JSON here.")
        ] = None,
    ) -> None:
        """Paired comparison of two runs on the same samples: B - A with bootstrap intervals.

        One primary number per task family (detection IoU, T/L MRE, A/D MRE) is tested at
        1 - LEVEL; every other number is Holm-corrected.
        """
        from medvision.runs.report import compare_run_dirs

        if bootstrap_method not in METHODS:
            raise typer.BadParameter(
                f"unknown bootstrap method {bootstrap_method!r}; expected one of {list(METHODS)}"
            )
        console = Console()
        result = compare_run_dirs(
            run_a,
            run_b,
            protocol=protocol,
            bootstrap=bootstrap,
            seed=seed,
            level=level,
            method="slice" if bootstrap_method == "slice" else "cluster",
        )
        print_comparison(result, console)
        if json_out is not None:
            json_out.write_text(json.dumps(result.to_dict(), indent=1))
            console.print(Text(f"wrote {json_out}"))
