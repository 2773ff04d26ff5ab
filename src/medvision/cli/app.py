"""The ``medvision`` command: thin wrappers over the Python API the tests also call."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from medvision.backends import GenerationConfig
from medvision.cli.common import parse_families, parse_planes, progress_bar
from medvision.cli.config_opts import (
    ChatLayoutOpt,
    ImagePolicyOpt,
    MaxPixelsOpt,
    MinPixelsOpt,
    PromptStyleOpt,
    ProtocolOpt,
    resolve_config,
)

app = typer.Typer(
    name="medvision",
    help="Build, evaluate, score and report the MedVision quantitative medical-imaging benchmark.",
    no_args_is_help=True,
    add_completion=False,
)
datasets_app = typer.Typer(help="The dataset catalog.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
# Piped output (logs, CI) gets a width that fits the leaderboard instead of rich's 80 columns.
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 130)


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
    render: Annotated[str, typer.Option(help="minmax (official v1) or percentile.")] = "minmax",
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

    if render not in ("minmax", "percentile"):
        raise typer.BadParameter("--render must be minmax or percentile")
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
        render=render,  # type: ignore[arg-type]
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


@app.command("eval")
def eval_cmd(
    dataset_dir: Annotated[Path, typer.Argument(help="Built dataset folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (resumes if it exists).")],
    backend: Annotated[
        str, typer.Option(help="random | prior | oracle | openai | hf | vllm")
    ] = "oracle",
    model: Annotated[
        str,
        typer.Option(
            help="Model: the served name (openai), a hub id or local folder, or a LoRA "
            "adapter folder (hf, vllm); the name recorded for baselines."
        ),
    ] = "",
    protocol: ProtocolOpt = None,
    prompt_style: PromptStyleOpt = None,
    image_policy: ImagePolicyOpt = None,
    min_pixels: MinPixelsOpt = None,
    max_pixels: MaxPixelsOpt = None,
    chat_layout: ChatLayoutOpt = None,
    families: Annotated[str, typer.Option(help="Comma list: detection,tl,ad.")] = "detection,tl,ad",
    planes: Annotated[str, typer.Option(help="Letters among S, C, A.")] = "SCA",
    benchmark: Annotated[
        str | None,
        typer.Option(help="Named benchmark: paper-main | paper-plane-ood | paper-task-ood | all."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="Samples per task configuration (default 1000; 0 = all).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    noise: Annotated[float | None, typer.Option(help="Oracle noise (relative).")] = None,
    prior_statistic: Annotated[
        str | None, typer.Option(help="Train-set statistic the prior answers: mean or median.")
    ] = None,
    max_new_tokens: Annotated[
        int | None,
        typer.Option(
            help="Generation limit (default: 4096 under official, else the model family's, "
            "else 1024)."
        ),
    ] = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (0 = greedy).")] = 0.0,
    base_url: Annotated[
        list[str] | None,
        typer.Option("--base-url", help="OpenAI-compatible base URL ending in /v1; repeatable."),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="Requests in flight (openai; 16).")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds per request attempt (openai; 120).")
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(help="Environment variable holding the API key (openai; OPENAI_API_KEY)."),
    ] = None,
    response_format: Annotated[
        Path | None, typer.Option(help="JSON file with an OpenAI response_format (openai).")
    ] = None,
    dtype: Annotated[
        str | None, typer.Option(help="Weights dtype (hf, vllm): auto, bfloat16, ...")
    ] = None,
    device: Annotated[str | None, typer.Option(help="Device (hf): cpu, cuda, cuda:0, ...")] = None,
    adapter: Annotated[
        Path | None, typer.Option(help="LoRA adapter folder on top of --model (hf, vllm).")
    ] = None,
    merge_adapter: Annotated[bool, typer.Option(help="Merge the LoRA adapter (hf).")] = False,
    backend_batch_size: Annotated[
        int | None, typer.Option(help="Generation batch size inside the backend (hf; 1).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Requests per backend call and append.")] = 32,
    structured_outputs: Annotated[
        bool,
        typer.Option(
            help="With --prompt-style json, constrain each answer to its task family's JSON "
            "schema (openai, vllm; hf ignores it)."
        ),
    ] = False,
    retry_errors: Annotated[
        bool, typer.Option(help="Re-ask samples whose record is a backend error.")
    ] = False,
    max_retries: Annotated[
        int | None, typer.Option(help="Retries per request after the first try (openai; 4).")
    ] = None,
    max_retry_wait: Annotated[
        float | None,
        typer.Option(help="Longest wait before a retry, Retry-After included (openai; 120 s)."),
    ] = None,
    stop_after_errors: Annotated[
        int, typer.Option(help="Stop after N fatal backend errors in a row (0 = never).")
    ] = 5,
    allow_errors: Annotated[
        bool, typer.Option(help="Exit 0 even if some samples end as backend errors.")
    ] = False,
    rescore_changed: Annotated[
        bool,
        typer.Option(help="Resume over a store rebuilt at the same path: drop stale records."),
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Discard existing records.")] = False,
    parser: Annotated[
        str, typer.Option(help="protocol (the protocol's own parser) or judge (an LLM judge).")
    ] = "protocol",
    judge_model: Annotated[
        str | None, typer.Option(help="Served model name of the judge (--parser judge).")
    ] = None,
    judge_base_url: Annotated[
        list[str] | None,
        typer.Option(help="OpenAI-compatible base URL of the judge, ending in /v1; repeatable."),
    ] = None,
    log_prompts: Annotated[
        bool, typer.Option(help="Keep each prompt's text in its record (demo: +59% records size).")
    ] = True,
) -> None:
    """Evaluate a backend on a built dataset; writes records.jsonl and summary.json.

    Protocol, prompt style and image policy (with --min-pixels/--max-pixels) default to those
    of `medvision export sft`; for a model folder made by `medvision train`, to the
    configuration it was trained with (a warning names any flag that departs from it).

    Exit status: 0 done; 1 could not run or stopped (one error line); 2 bad option; 3 done
    but some samples got no answer (backend errors; see --retry-errors, --allow-errors).
    """
    from medvision.cli.eval_checks import check_model_arg, finish_eval
    from medvision.cli.eval_setup import model_settings
    from medvision.cli.judge_cmds import check_parser, judge_spec
    from medvision.runs.runner import RunSpec

    # Options that belong to one backend family are refused elsewhere rather than ignored.
    owned: dict[str, tuple[set[str], object]] = {
        "--noise": ({"oracle"}, noise),
        "--prior-statistic": ({"prior"}, prior_statistic),
        "--base-url": ({"openai"}, base_url),
        "--concurrency": ({"openai"}, concurrency),
        "--timeout": ({"openai"}, timeout),
        "--api-key-env": ({"openai"}, api_key_env),
        "--response-format": ({"openai"}, response_format),
        "--dtype": ({"hf", "vllm"}, dtype),
        "--adapter": ({"hf", "vllm"}, adapter),
        "--device": ({"hf"}, device),
        "--merge-adapter": ({"hf"}, merge_adapter or None),
        "--backend-batch-size": ({"hf"}, backend_batch_size),
        "--max-retries": ({"openai"}, max_retries),
        "--max-retry-wait": ({"openai"}, max_retry_wait),
    }
    for flag, (backends, value) in owned.items():
        if value is not None and backend not in backends:
            raise typer.BadParameter(
                f"{flag} applies to the {'/'.join(sorted(backends))} backend, not {backend!r}"
            )
    options: dict[str, Any] = {}
    if backend == "oracle":
        options["noise"] = noise or 0.0
    elif backend == "prior" and prior_statistic is not None:
        if prior_statistic not in ("mean", "median"):
            raise typer.BadParameter("--prior-statistic must be mean or median")
        options["statistic"] = prior_statistic
    elif backend == "openai":
        if not model:
            raise typer.BadParameter("--model (the served model name) is required for openai")
        options = {
            "model": model,
            "base_url": base_url or ["http://127.0.0.1:8000/v1"],
            "concurrency": concurrency or 16,
            "timeout_s": timeout or 120.0,
            "api_key_env": api_key_env or "OPENAI_API_KEY",
        }
        if response_format is not None:
            options["response_format"] = json.loads(response_format.read_text())
        if max_retries is not None:
            if max_retries < 0:
                raise typer.BadParameter("--max-retries must be >= 0")
            options["max_retries"] = max_retries
        if max_retry_wait is not None:
            if max_retry_wait < 0:
                raise typer.BadParameter("--max-retry-wait must be >= 0 seconds")
            # Caps a server's Retry-After and the exponential backoff alike.
            options["max_retry_after_s"] = max_retry_wait
            options["max_backoff_s"] = min(30.0, max_retry_wait)
    elif backend in ("hf", "vllm"):
        if not model:
            raise typer.BadParameter(
                f"--model (hub id, folder or adapter) is required for {backend}"
            )
        check_model_arg(model)
        if adapter is not None:
            check_model_arg(str(adapter), "--adapter")
        options = {"model": model, "dtype": dtype or "auto"}
        if adapter is not None:
            options["adapter"] = str(adapter)
        if backend == "hf":
            options |= {"device": device or "cpu", "merge_adapter": merge_adapter}
            options["batch_size"] = backend_batch_size or 1
    if structured_outputs:
        options["structured_outputs"] = True
    judge = judge_spec(parser, judge_model, judge_base_url)
    check_parser(out, judge, overwrite)
    config = resolve_config(
        protocol=protocol,
        prompt_style=prompt_style,
        image_policy=image_policy,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        chat_layout=chat_layout,
        model_dirs=(model, adapter) if backend in ("hf", "vllm") else (),
        console=console,
    )
    try:
        policy = config.policy(model, backend)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    settings = model_settings(
        backend,
        model,
        config.protocol,
        image_policy=policy.name,
        chat_layout=config.chat_layout,
        max_new_tokens=max_new_tokens,
    )
    if settings.model_generation_config and backend == "hf":
        options["model_generation_config"] = True
    if config.processor_kwargs():
        if backend == "hf":
            options["processor_kwargs"] = config.processor_kwargs()
        elif backend == "vllm":
            options["mm_processor_kwargs"] = config.processor_kwargs()
        elif backend == "openai":
            console.print(
                "[bold yellow]warning:[/] --min-pixels/--max-pixels set the prompt's sizes only; "
                "start the server with the same processor bounds"
            )
    spec = RunSpec(
        dataset_dir=str(dataset_dir),
        backend=backend,
        model=model,
        protocol=config.protocol,
        prompt_style=config.prompt_style,
        image_policy=settings.image_policy,
        chat_layout=settings.chat_layout.name,
        families=parse_families(families),
        planes=parse_planes(planes),
        limit=limit,
        seed=seed,
        generation=GenerationConfig(
            max_new_tokens=settings.max_new_tokens, temperature=temperature, seed=seed
        ),
        backend_options=options,
        batch_size=batch_size,
        benchmark=benchmark,
        log_prompts=log_prompts,
    )
    summary = _eval_with_progress(
        spec,
        out,
        overwrite,
        retry_errors,
        run_options={"stop_after_errors": stop_after_errors},
        rescore_changed=rescore_changed,
    )
    if judge is not None:
        from medvision.cli.judge_cmds import judge_with_progress

        summary = judge_with_progress(out, judge, console)
    _print_summary(spec.model_name, summary)
    finish_eval(summary, allow_errors, console)


def _eval_with_progress(
    spec: Any,
    out: Path,
    overwrite: bool,
    retry_errors: bool = False,
    *,
    run_options: dict[str, Any] | None = None,
    rescore_changed: bool = False,
) -> dict[str, Any]:
    import warnings

    from medvision.runs.runner import Runner

    with warnings.catch_warnings():
        # The runner's ground-truth warning is printed once, as one line.
        warnings.simplefilter("ignore")
        runner = Runner(spec, out, overwrite=overwrite, rescore_changed=rescore_changed)
    if runner.ground_truth_note is not None:
        console.print(f"[yellow]warning:[/yellow] {runner.ground_truth_note}", highlight=False)
    with progress_bar(console) as progress:
        task = progress.add_task(f"eval {spec.model_name}", total=None)

        def tick(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return runner.run(on_progress=tick, retry_errors=retry_errors, **(run_options or {}))


def _print_summary(name: str, summary: dict[str, Any]) -> None:
    from medvision.reports import leaderboard, print_leaderboard

    print_leaderboard(leaderboard({name: summary}), console)


@app.command()
def score(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    protocol: Annotated[str | None, typer.Option(help="Re-score under another protocol.")] = None,
    reparse: Annotated[bool, typer.Option(help="Re-parse the raw outputs.")] = False,
) -> None:
    """Recompute every metric and the summary from a run's records alone."""
    from medvision.runs.runner import rescore

    summary = rescore(run_dir, protocol=protocol, reparse=reparse)
    _print_summary(run_dir.name, summary)
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
) -> None:
    """Leaderboard (terminal, Markdown, CSV, JSON), analysis and a self-contained HTML report."""
    from medvision.runs.report import write_reports

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
        import_cmds,
        judge_cmds,
        report_cmds,
        train_cmds,
    )

    areas = (data_cmds, backend_cmds, report_cmds, train_cmds, import_cmds, judge_cmds)
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
