"""``medvision eval``: evaluate a backend on a built dataset (options, checks, progress)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from medvision.backends import GenerationConfig
from medvision.cli.common import (
    console,
    parse_families,
    parse_planes,
    print_summary,
    progress_bar,
)
from medvision.cli.config_opts import (
    ChatLayoutOpt,
    ImagePolicyOpt,
    MaxPixelsOpt,
    MinPixelsOpt,
    PromptStyleOpt,
    ProtocolOpt,
    resolve_config,
)


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
    rendering: Annotated[
        str | None,
        typer.Option(
            help="Image rendering: minmax | official | percentile (default: the protocol's; "
            "paper-v1 minmax, official and strict official)."
        ),
    ] = None,
    families: Annotated[str, typer.Option(help="Comma list: detection,tl,ad.")] = "detection,tl,ad",
    planes: Annotated[str, typer.Option(help="Letters among S, C, A.")] = "SCA",
    benchmark: Annotated[
        str | None,
        typer.Option(help="Named benchmark: paper-main | paper-plane-ood | paper-task-ood | all."),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            help="Samples per task configuration (dataset, task, family, plane, measurement "
            "type, T/L label), as lmms-eval's --limit per task; 0 = all.",
            show_default="1000",
        ),
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
        str | None,
        typer.Option(
            help="Weights dtype (hf, vllm): auto, bfloat16, float16, float32.", show_default="auto"
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help="Device (hf): auto (CUDA when present: accelerate's device map over the "
            "visible GPUs; else the CPU), cpu, cuda, cuda:N.",
            show_default="auto",
        ),
    ] = None,
    tensor_parallel_size: Annotated[
        int | None, typer.Option(help="GPUs to shard the model over (vllm).", show_default="1")
    ] = None,
    max_model_len: Annotated[
        int | None,
        typer.Option(help="Context length the engine reserves (vllm).", show_default="model's"),
    ] = None,
    gpu_memory_utilization: Annotated[
        float | None,
        typer.Option(help="Fraction of GPU memory for the engine (vllm).", show_default="0.9"),
    ] = None,
    limit_mm_per_prompt: Annotated[
        int | None, typer.Option(help="Images allowed per prompt (vllm).", show_default="1")
    ] = None,
    mm_processor_kwargs: Annotated[
        str | None,
        typer.Option(
            help='JSON object for the multimodal processor (vllm), e.g. \'{"max_pixels": '
            "1003520}'; --min/--max-pixels are merged in."
        ),
    ] = None,
    adapter: Annotated[
        Path | None, typer.Option(help="LoRA adapter folder on top of --model (hf, vllm).")
    ] = None,
    merge_adapter: Annotated[bool, typer.Option(help="Merge the LoRA adapter (hf).")] = False,
    generate_batch_size: Annotated[
        int | None,
        typer.Option(
            help="Samples per model.generate() call inside the hf backend.", show_default="1"
        ),
    ] = None,
    requests_per_call: Annotated[
        int,
        typer.Option(
            help="Requests handed to the backend per call, and records per durable append "
            "(raised to 4x --concurrency for openai)."
        ),
    ] = 32,
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
        "--generate-batch-size": ({"hf"}, generate_batch_size),
        "--tensor-parallel-size": ({"vllm"}, tensor_parallel_size),
        "--max-model-len": ({"vllm"}, max_model_len),
        "--gpu-memory-utilization": ({"vllm"}, gpu_memory_utilization),
        "--limit-mm-per-prompt": ({"vllm"}, limit_mm_per_prompt),
        "--mm-processor-kwargs": ({"vllm"}, mm_processor_kwargs),
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
            options |= {"device": device or "auto", "merge_adapter": merge_adapter}
            options["batch_size"] = generate_batch_size or 1
        else:
            options |= vllm_engine_options(
                tensor_parallel_size,
                max_model_len,
                gpu_memory_utilization,
                limit_mm_per_prompt,
                mm_processor_kwargs,
            )
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
            options["mm_processor_kwargs"] = {
                **options.get("mm_processor_kwargs", {}),
                **config.processor_kwargs(),
            }
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
        batch_size=requests_per_call,
        benchmark=benchmark,
        log_prompts=log_prompts,
        rendering=rendering,
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
    print_summary(spec.model_name, summary)
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


def register(app: typer.Typer) -> None:
    """Add ``eval`` to ``app``."""
    app.command("eval")(eval_cmd)


def vllm_engine_options(
    tensor_parallel_size: int | None,
    max_model_len: int | None,
    gpu_memory_utilization: float | None,
    limit_mm_per_prompt: int | None,
    mm_processor_kwargs: str | None,
) -> dict[str, Any]:
    """The vLLM engine arguments given on the command line (only those given).

    Raises:
        typer.BadParameter: A value out of range or ``--mm-processor-kwargs`` not a JSON object.
    """
    out: dict[str, Any] = {}
    if tensor_parallel_size is not None:
        if tensor_parallel_size < 1:
            raise typer.BadParameter("--tensor-parallel-size must be >= 1")
        out["tensor_parallel_size"] = tensor_parallel_size
    if max_model_len is not None:
        if max_model_len < 1:
            raise typer.BadParameter("--max-model-len must be >= 1")
        out["max_model_len"] = max_model_len
    if gpu_memory_utilization is not None:
        if not 0 < gpu_memory_utilization <= 1:
            raise typer.BadParameter("--gpu-memory-utilization must be in (0, 1]")
        out["gpu_memory_utilization"] = gpu_memory_utilization
    if limit_mm_per_prompt is not None:
        if limit_mm_per_prompt < 1:
            raise typer.BadParameter("--limit-mm-per-prompt must be >= 1")
        out["limit_images"] = limit_mm_per_prompt
    if mm_processor_kwargs is not None:
        try:
            kwargs = json.loads(mm_processor_kwargs)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"--mm-processor-kwargs is not JSON: {exc}") from exc
        if not isinstance(kwargs, dict):
            raise typer.BadParameter("--mm-processor-kwargs must be a JSON object")
        out["mm_processor_kwargs"] = kwargs
    return out
