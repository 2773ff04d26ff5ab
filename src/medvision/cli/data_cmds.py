"""Data commands: ``medvision datasets download`` and ``medvision build-plan``.

:func:`register` adds them to the ``medvision`` app (``download`` joins the existing
``datasets`` group). Both are thin: they parse options and call the Python API the tests call
(:func:`medvision.catalog.download.download_dataset`,
:func:`medvision.builder.official.build_official_plan`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from medvision.cli.common import progress_bar

console = Console()


def download(
    name: Annotated[str, typer.Argument(help="Dataset name (or spec YAML path).")],
    dest: Annotated[Path, typer.Argument(help="Folder to download and extract into.")],
    only: Annotated[
        list[str] | None, typer.Option(help="Fetch only this file name (repeatable).")
    ] = None,
    extract: Annotated[bool, typer.Option(help="Extract zip/tar archives.")] = True,
) -> None:
    """Download an openly downloadable dataset (resumable, checksummed, safe extraction).

    Credentialed datasets (Synapse, grand-challenge, SKM-TEA, ToothFairy2) print the steps to
    get them and exit with status 2.
    """
    from medvision.catalog.download import (
        CredentialsRequired,
        DownloadError,
        ExtractionError,
        UnsafeArchiveError,
        download_dataset,
    )
    from medvision.catalog.registry import get_spec
    from medvision.catalog.spec import SpecError

    try:
        target: Any = get_spec(name)
    except SpecError:
        target = name  # a registry-only name
    with Progress(
        TextColumn(f"download {name}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=True,
    ) as progress:
        bar = progress.add_task("bytes", total=None)
        try:
            report = download_dataset(
                target,
                dest,
                extract=extract,
                only=tuple(only or ()),
                on_bytes=lambda n: progress.advance(bar, n),
            )
        except CredentialsRequired as exc:
            progress.stop()
            console.print(f"[bold yellow]{exc}[/]")
            raise typer.Exit(2) from exc
        except KeyError as exc:
            progress.stop()
            console.print(f"[bold red]{exc.args[0]}[/]")
            raise typer.Exit(2) from exc
        except (DownloadError, UnsafeArchiveError, ExtractionError) as exc:
            progress.stop()
            console.print(f"[bold red]{exc}[/]")
            raise typer.Exit(1) from exc
    for f in report.files:
        state = "already there" if f.skipped else "downloaded"
        check = f"{f.verified} verified" if f.verified else "no published checksum"
        console.print(f"  {f.path.name}: {state}, {check}")
    for archive, n in report.extracted.items():
        console.print(f"  extracted {n} files from {archive}")
    console.print(f"[bold]{len(report.files)}[/] file(s) for {report.dataset} in {dest}")
    if report.instructions:
        console.print(f"next: {report.instructions}")


def build_plan(
    plan: Annotated[Path, typer.Argument(help="Official benchmark_plan_*.json.gz file.")],
    data_dir: Annotated[
        Path, typer.Argument(help="Dataset folder the plan's relative paths start from.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output store folder.")],
    dataset: Annotated[
        str | None, typer.Option(help="Catalog name for label kinds and groups (optional).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes (0 = all cores).")] = 0,
    engine: Annotated[str, typer.Option(help="local (process pool) or ray (Ray Data).")] = "local",
    filters: Annotated[
        bool, typer.Option(help="Apply the official loader filters (single instance, 10 px).")
    ] = True,
    max_cases: Annotated[int | None, typer.Option(help="Only the first N cases per task.")] = None,
    keep_cases: Annotated[
        bool, typer.Option(help="Keep the per-case working files (cases/) after the build.")
    ] = False,
) -> None:
    """Build exactly the samples of an official plan (its boxes, measurements and splits)."""
    from medvision.builder.engine import BuildOptions
    from medvision.builder.official import build_official_plan
    from medvision.catalog.registry import get_spec
    from medvision.store.official_plan import PlanFormatError

    if engine not in ("local", "ray"):
        raise typer.BadParameter("--engine must be local or ray")
    options = BuildOptions(
        workers=workers,
        engine=engine,  # type: ignore[arg-type]
        max_cases=max_cases,
        keep_cases=keep_cases,
    )
    spec = get_spec(dataset) if dataset else None
    with progress_bar(console, f"build {plan.name}") as progress:
        bar = progress.add_task("cases", total=None)

        def tick(done: int, total: int, _result: object) -> None:
            progress.update(bar, completed=done, total=total)

        try:
            manifest = build_official_plan(
                plan,
                data_dir,
                out,
                options,
                apply_filters=filters,
                spec=spec,
                on_progress=tick,
            )
        except PlanFormatError as exc:
            progress.stop()
            console.print(f"[bold red]{exc}[/]")
            raise typer.Exit(1) from exc
    console.print(
        f"[bold]{manifest.n_samples}[/] samples, {manifest.n_images} images "
        f"(build {manifest.build_id}) in {out}"
    )
    for fam, n in sorted(manifest.counts.by_family.items()):
        console.print(f"  {fam}: {n}")
    print_skipped(manifest)


def print_skipped(manifest: Any) -> None:
    """Print the number of skipped cases by reason and the first few reasons in full."""
    if not manifest.skipped:
        console.print("0 cases skipped")
        return
    kinds = manifest.options.get("skipped_by_reason", {})
    summary = ", ".join(f"{k}: {v}" for k, v in kinds.items())
    console.print(f"[bold red]{len(manifest.skipped)} case(s) skipped[/] ({summary})")
    for s in manifest.skipped[:10]:
        console.print(f"  {s.case_id}: {s.reason}", markup=False, highlight=False)
    if len(manifest.skipped) > 10:
        console.print(f"  ... see {manifest.options.get('data_dir', '')} manifest.json 'skipped'")


def register(app: typer.Typer) -> None:
    """Add ``datasets download`` (to the ``datasets`` group) and ``build-plan`` to ``app``."""
    group = next(
        (g.typer_instance for g in app.registered_groups if g.name == "datasets"),
        None,
    )
    if group is None:  # pragma: no cover - app.py always defines the group
        group = typer.Typer(help="The dataset catalog.")
        app.add_typer(group, name="datasets")
    group.command("download")(download)
    app.command("build-plan")(build_plan)
