"""The ``medvision`` command: thin wrappers over the Python API the tests also call."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from medvision.cli.common import console, print_summary, progress_bar

app = typer.Typer(
    name="medvision",
    help="Build, evaluate, score and report the MedVision quantitative medical-imaging benchmark.",
    no_args_is_help=True,
    add_completion=False,
    # Plain click help: rich's option tables cut long flag names at 80 columns.
    rich_markup_mode=None,
)
datasets_app = typer.Typer(help="The dataset catalog.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")


@datasets_app.command("list")
def datasets_list() -> None:
    """List the datasets of the built-in catalog."""
    from medvision.catalog.registry import catalog

    table = Table("name", "modality", "tasks", "families", "source", "licence")
    for spec in catalog().values():
        fams = sorted(
            {
                f
                for t in spec.tasks
                for f, on in (("detection", t.detection), ("tl", t.tl), ("ad", t.measurements))
                if on
            }
        )
        mods = sorted({t.modality for t in spec.tasks})
        table.add_row(
            spec.name,
            ", ".join(mods),
            str(len(spec.tasks)),
            ", ".join(fams),
            spec.source.kind,
            spec.licence[:40],
        )
    console.print(table)


@datasets_app.command("info")
def datasets_info(
    name: Annotated[str, typer.Argument(help="Dataset name or spec YAML path.")],
) -> None:
    """Show one dataset spec in full (YAML-like JSON)."""
    from medvision.catalog.registry import get_spec

    console.print_json(get_spec(name).model_dump_json())


@app.command()
def mini(
    out: Annotated[Path, typer.Argument(help="Folder for the generated source files.")],
    cases: Annotated[int, typer.Option(help="Number of cases.")] = 8,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 0,
) -> None:
    """Generate the source files of the embedded `mini` dataset (offline, deterministic)."""
    from medvision.mini.generate import generate_mini

    generate_mini(out, n_cases=cases, seed=seed)
    console.print(f"wrote {cases} mini cases to {out}")


_ANNOTATION_HELP = (
    "T/L ground-truth version: official-1.0.0 (the paper's leaderboard targets), "
    "official-1.4.0 (current official rules) or precise (sub-pixel fit)."
)


def _annotation(name: str) -> Any:
    """``--annotation`` checked against the known ground-truth versions."""
    from medvision.annotate.tl_versions import check_annotation

    try:
        return check_annotation(name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


@app.command()
def build(
    data_dir: Annotated[Path, typer.Argument(help="Folder with the dataset's source files.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output store folder.")],
    dataset: Annotated[str, typer.Option(help="Catalog name of the dataset.")] = "mini",
    spec: Annotated[
        Path | None, typer.Option(help="Your own dataset spec YAML (instead of --dataset).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes (0 = all cores).")] = 0,
    max_cases: Annotated[int | None, typer.Option(help="Only the first N cases per task.")] = None,
    engine: Annotated[
        str, typer.Option(help="local (process pool) or ray (Ray Data; RAY_ADDRESS or local).")
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join with --engine ray (HOST:PORT of the head)."),
    ] = None,
    split_from: Annotated[
        Path | None,
        typer.Option(
            help="Official benchmark_plan_*.json.gz whose train/test cases give the split."
        ),
    ] = None,
    on_unknown_label: Annotated[
        str, typer.Option(help="skip (default) or ignore cases whose mask has unknown label ids.")
    ] = "skip",
    annotation: Annotated[str, typer.Option(help=_ANNOTATION_HELP)] = "official-1.4.0",
    keep_cases: Annotated[
        bool, typer.Option(help="Keep the per-case working files (cases/) after the build.")
    ] = False,
) -> None:
    """Build a dataset's images, masks and landmarks into MedVision samples (resumable)."""
    from medvision.builder.engine import BuildOptions
    from medvision.catalog.registry import get_spec

    if engine not in ("local", "ray"):
        raise typer.BadParameter("--engine must be local or ray")
    if ray_address is not None:
        if engine != "ray":
            raise typer.BadParameter("--ray-address needs --engine ray")
        # Ray's own convention: ray.init() and every Ray client join the cluster in RAY_ADDRESS.
        os.environ["RAY_ADDRESS"] = ray_address
    if on_unknown_label not in ("skip", "ignore"):
        raise typer.BadParameter("--on-unknown-label must be skip or ignore")
    ds_spec = get_spec(str(spec) if spec else dataset)
    options = BuildOptions(
        workers=workers,
        max_cases=max_cases,
        engine=engine,  # type: ignore[arg-type]
        split_from=str(split_from) if split_from else None,
        on_unknown_label=on_unknown_label,  # type: ignore[arg-type]
        annotation=_annotation(annotation),
        keep_cases=keep_cases,
    )
    manifest = _build_with_progress(ds_spec, data_dir, out, options)
    _print_manifest(manifest)


def _build_with_progress(spec: Any, data_dir: Path, out: Path, options: Any) -> Any:
    from medvision.builder.engine import build_dataset

    with progress_bar(console) as progress:
        task = progress.add_task(f"build {spec.name}", total=None)

        def tick(done: int, total: int, _result: object) -> None:
            progress.update(task, completed=done, total=total)

        return build_dataset(spec, data_dir, out, options, on_progress=tick)


def _print_manifest(manifest: Any) -> None:
    from medvision.cli.data_cmds import print_skipped

    console.print(
        f"[bold]{manifest.n_samples}[/] samples, {manifest.n_images} images "
        f"(build {manifest.build_id})"
    )
    for fam, n in sorted(manifest.counts.by_family.items()):
        console.print(f"  {fam}: {n}")
    print_skipped(manifest)


@app.command()
def score(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    protocol: Annotated[str | None, typer.Option(help="Re-score under another protocol.")] = None,
    reparse: Annotated[bool, typer.Option(help="Re-parse the raw outputs.")] = False,
) -> None:
    """Recompute the summary from a run's records alone.

    Under the run's own protocol the records are read straight into columns and left as they
    are; --reparse or --protocol re-parses the answers and writes the records again.
    """
    from medvision.runs.runner import rescore

    summary = rescore(run_dir, protocol=protocol, reparse=reparse)
    print_summary(run_dir.name, summary)
    dropped = summary.get("run", {}).get("duplicates_dropped")
    if dropped:
        console.print(f"dropped {dropped} duplicate records (one record per sample id counts)")


@app.command()
def report(
    runs: Annotated[list[Path], typer.Argument(help="Run folders.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder.")] = Path("report"),
    bootstrap: Annotated[
        int, typer.Option(help="Bootstrap resamples for the 95% intervals (0 = off).")
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap and random-baseline seed.")] = 0,
    formats: Annotated[
        str, typer.Option("--format", help="Comma list among md, csv, json, html.")
    ] = "md,csv,json,html",
    max_gallery: Annotated[int, typer.Option(help="Samples shown in the HTML gallery.")] = 24,
    random_draws: Annotated[
        int, typer.Option(help="Random boxes per sample in the box-size analysis.")
    ] = 100,
    bootstrap_method: Annotated[
        str, typer.Option(help="cluster (cases/subjects, default) | slice.")
    ] = "cluster",
) -> None:
    """Leaderboard (terminal, Markdown, CSV, JSON), analysis and a self-contained HTML report."""
    from medvision.runs.report import write_reports

    if bootstrap_method not in ("cluster", "slice"):
        raise typer.BadParameter(f"unknown bootstrap method {bootstrap_method!r}")

    chosen = tuple(f.strip() for f in formats.split(",") if f.strip())
    rows = write_reports(
        runs,
        out,
        console=console,
        bootstrap=bootstrap,
        seed=seed,
        formats=chosen,
        max_gallery=max_gallery,
        random_draws=random_draws,
        bootstrap_method="slice" if bootstrap_method == "slice" else "cluster",
    )
    console.print(
        f"wrote {', '.join(sorted(p.name for p in out.iterdir()))} to {out} ({len(rows)} runs)"
    )


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Working folder.")] = Path(
        "medvision-demo"
    ),
    cases: Annotated[int, typer.Option(help="Mini cases to generate.")] = 12,
    limit: Annotated[int, typer.Option(help="Samples per task configuration.")] = 200,
    workers: Annotated[int, typer.Option(help="Build workers (0 = all cores).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    annotation: Annotated[str, typer.Option(help=_ANNOTATION_HELP)] = "official-1.4.0",
) -> None:
    """Build the embedded mini dataset, evaluate the baselines, print a leaderboard and report."""
    from medvision.runs.demo import run_demo

    t0 = time.perf_counter()
    result = run_demo(
        out,
        cases=cases,
        limit=limit,
        workers=workers,
        seed=seed,
        console=console,
        annotation=_annotation(annotation),
    )
    console.print(
        f"\nreport: {result['report']}\nrecords: {', '.join(result['runs'])}\n"
        f"demo finished in {time.perf_counter() - t0:.1f} s"
    )


def _register_areas() -> None:
    """Commands that live with their area (data, backends, reports, training)."""
    from medvision.cli import (
        backend_cmds,
        benchmark_cmds,
        data_cmds,
        eval_cmds,
        import_cmds,
        judge_cmds,
        report_cmds,
        train_cmds,
    )

    areas = (eval_cmds, data_cmds, backend_cmds, report_cmds, train_cmds, import_cmds, judge_cmds)
    for module in (*areas, benchmark_cmds):
        module.register(app)


_register_areas()


def main() -> None:
    """Entry point of the ``medvision`` console script.

    Errors about the user's input (a missing file, a bad spec, a run folder holding another
    run) print one clear line and exit with status 1 instead of a traceback.
    """
    from medvision.backends.registry import UnknownBackendError
    from medvision.builder.engine import BuildOptionsMismatch
    from medvision.catalog.spec import SpecError
    from medvision.cli.eval_checks import missing_extra
    from medvision.runs.records import RecordsError
    from medvision.runs.runner import RunError
    from medvision.volumes import VolumeError

    try:
        app()
    except ModuleNotFoundError as exc:
        line = missing_extra(exc)
        if line is None:
            raise
        console.print(f"[bold red]error:[/] {escape(line)}", highlight=False)
        raise SystemExit(1) from None
    except (
        RecordsError,
        FileNotFoundError,
        NotADirectoryError,
        KeyError,
        SpecError,
        RunError,
        VolumeError,
        UnknownBackendError,
        BuildOptionsMismatch,
    ) as exc:
        # escape: "[hf]" in a pip line or a path must not be read as rich markup.
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise SystemExit(1) from None


if __name__ == "__main__":  # pragma: no cover
    main()
