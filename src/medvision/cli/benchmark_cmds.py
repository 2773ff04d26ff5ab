"""CLI commands of named benchmarks; :func:`register` adds them to the ``medvision`` app.

* ``medvision benchmarks list``: every benchmark with its size per family.
* ``medvision benchmarks show NAME [--json] [--dataset-dir DS]``: its task configurations
  (dataset, official task, family, plane, target); with a built dataset also each
  configuration's test-sample count and whether the build has it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from medvision.catalog.benchmarks import Benchmark, benchmark_names, config_counts, get_benchmark

__all__ = ["benchmark_rows", "register"]

_TARGET_WIDTH = 48


def benchmark_rows(
    bench: Benchmark, dataset_dir: Path | None = None, prompt_style: str = "paper-v1"
) -> list[dict[str, Any]]:
    """One JSON-ready dict per configuration of ``bench``.

    Keys: ``dataset``, ``official_task``, ``official_name``, ``family``
    (``detection|tl|ad``), ``plane`` (``S|C|A``), ``target``, ``task_id`` (ours),
    ``label_id``, ``metric_type``, ``labels``, ``unverified`` (notes; empty when every fact is
    verified), ``prompt_verified`` and ``prompt_notes`` (whether the prompt text under
    ``prompt_style`` is the paper's as far as the reference quotes it;
    :func:`medvision.tasks.prompt_check.prompt_check`); with ``dataset_dir`` also
    ``test_samples`` (int) and ``present`` (bool).
    """
    from medvision.catalog.registry import catalog
    from medvision.tasks.prompt_check import prompt_check

    specs = catalog()
    counts = None
    if dataset_dir is not None:
        from medvision.store import open_dataset

        counts = config_counts(open_dataset(dataset_dir).table(split="test"))
    rows: list[dict[str, Any]] = []
    for c in bench.configs:
        row: dict[str, Any] = {
            "dataset": c.dataset,
            "official_task": c.official_task,
            "official_name": c.official_name,
            "family": c.family,
            "plane": c.plane,
            "target": c.target,
            "task_id": c.task_id,
            "label_id": c.label_id,
            "metric_type": c.metric_type,
            "labels": list(c.labels),
            "unverified": list(c.unverified),
        }
        check = prompt_check(specs[c.dataset], c.task_id, prompt_style)
        row["prompt_verified"] = check.verified
        row["prompt_notes"] = list(check.reasons)
        if counts is not None:
            n = counts.get(c.key, 0)
            row["test_samples"] = n
            row["present"] = n > 0
        rows.append(row)
    return rows


def _short(text: str) -> str:
    return text if len(text) <= _TARGET_WIDTH else text[: _TARGET_WIDTH - 3] + "..."


def _print_show(bench: Benchmark, rows: list[dict[str, Any]], console: Console) -> None:
    with_counts = bool(rows) and "present" in rows[0]
    table = Table(title=Text(f"{bench.name}: {len(rows)} task configurations"))
    cols = ["dataset", "task", "family", "plane", "target"]
    if with_counts:
        cols += ["test samples", "present"]
    cols += ["prompt", "unverified"]
    for col in cols:
        table.add_column(col, justify="right" if col == "test samples" else "left")
    for r in rows:
        cells = [r["dataset"], r["official_task"], r["family"], r["plane"], _short(r["target"])]
        if with_counts:
            cells += [str(r["test_samples"]), "yes" if r["present"] else "no"]
        cells.append("verified" if r["prompt_verified"] else "unverified")
        n = len(r["unverified"])
        cells.append(f"{n} note{'s' * (n != 1)}" if n else "")
        table.add_row(*(Text(c) for c in cells))
    console.print(table)
    console.print(Text(f"{bench.description}\nsource: {bench.source}"))
    if with_counts:
        have = sum(r["present"] for r in rows)
        total = sum(r["test_samples"] for r in rows)
        console.print(
            Text(f"build has {have} of {len(rows)} configurations ({total} test samples)")
        )
    if any(r["unverified"] for r in rows) or not all(r["prompt_verified"] for r in rows):
        console.print(
            Text(
                "prompt: whether the prompt text is the paper's as far as the reference quotes "
                "it; unverified: facts the reference does not settle; --json lists each note"
            )
        )


def register(app: typer.Typer) -> None:
    """Add the ``benchmarks`` command group to ``app``."""
    bench_app = typer.Typer(help="Named benchmarks: the official task lists.", no_args_is_help=True)
    app.add_typer(bench_app, name="benchmarks")

    @bench_app.command("list")
    def benchmarks_list() -> None:
        """List every named benchmark with its configurations per family."""
        console = Console()
        table = Table(title=Text("benchmarks"))
        for col in ("name", "detection", "tl", "ad", "planes", "description"):
            table.add_column(col)
        for name in benchmark_names():
            b = get_benchmark(name)
            fams = Counter(c.family for c in b.configs)
            planes = "".join(p for p in "SCA" if any(c.plane == p for c in b.configs))
            table.add_row(
                *(
                    Text(x)
                    for x in (
                        name,
                        str(fams["detection"]),
                        str(fams["tl"]),
                        str(fams["ad"]),
                        planes,
                        _short(b.description),
                    )
                )
            )
        console.print(table)

    @bench_app.command("show")
    def benchmarks_show(
        name: Annotated[str, typer.Argument(help="Benchmark name (see benchmarks list).")],
        as_json: Annotated[
            bool, typer.Option("--json", help="Print a JSON array of configurations.")
        ] = False,
        dataset_dir: Annotated[
            Path | None,
            typer.Option(help="Built dataset: add test-sample counts and presence."),
        ] = None,
        prompt_style: Annotated[
            str, typer.Option(help="Prompt style whose text is checked: paper-v1 | official.")
        ] = "paper-v1",
    ) -> None:
        """Print a benchmark's task configurations (and their presence in a build)."""
        bench = get_benchmark(name)
        rows = benchmark_rows(bench, dataset_dir, prompt_style)
        if as_json:
            typer.echo(json.dumps(rows, indent=1))
            return
        _print_show(bench, rows, Console(width=160))
