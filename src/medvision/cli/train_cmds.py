"""``medvision export sft`` and ``medvision train sft|grpo``: fine-tuning data and trainers.

Thin wrappers over :mod:`medvision.training`; the trainers need the ``train`` extra (torch,
transformers, trl, peft; bitsandbytes for ``--qlora``), imported only when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from medvision.cli.common import parse_families, parse_planes
from medvision.cli.config_opts import (
    ChatLayoutOpt,
    ImagePolicyOpt,
    MaxPixelsOpt,
    MinPixelsOpt,
    PromptStyleOpt,
    ProtocolOpt,
    resolve_config,
)

console = Console()

export_app = typer.Typer(help="Export a built dataset for other tools.", no_args_is_help=True)
train_app = typer.Typer(
    help="Fine-tune a VLM on a `medvision export sft --format trl` folder (extra: train).",
    no_args_is_help=True,
)


@export_app.command("sft")
def export_sft_cmd(
    dataset_dir: Annotated[Path, typer.Argument(help="Built dataset folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Export folder.")],
    format: Annotated[str, typer.Option("--format", help="trl | llamafactory | swift")] = "trl",
    model: Annotated[
        str,
        typer.Option(
            help="The model you will train (name, hub id or folder): --image-policy auto "
            "picks its family's policy, as `medvision eval --model` does."
        ),
    ] = "",
    protocol: ProtocolOpt = None,
    prompt_style: PromptStyleOpt = None,
    image_policy: ImagePolicyOpt = None,
    min_pixels: MinPixelsOpt = None,
    max_pixels: MaxPixelsOpt = None,
    chat_layout: ChatLayoutOpt = None,
    cot: Annotated[
        bool, typer.Option("--cot", help="Chain-of-thought prompts and targets.")
    ] = False,
    split: Annotated[str, typer.Option(help="Split to export.")] = "train",
    families: Annotated[str, typer.Option(help="Comma list: detection,tl,ad.")] = "detection,tl,ad",
    planes: Annotated[str, typer.Option(help="Letters among S, C, A.")] = "SCA",
    limit: Annotated[int | None, typer.Option(help="Rows to write.")] = None,
    temperature: Annotated[
        float | None, typer.Option(help="Task-mixing temperature T (weights N^(1/T); V0: 5).")
    ] = None,
    image_position: Annotated[
        str | None,
        typer.Option(help="after or before the text (default: where the chat layout puts it)."),
    ] = None,
    ad_decimals: Annotated[
        int | None,
        typer.Option(help="Round A/D targets to N decimals (default: the value in full)."),
    ] = None,
    image_root: Annotated[
        str | None,
        typer.Option(
            help="Prefix of the rows' image paths (default: this export folder, absolute; "
            "'' for paths relative to it)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the shuffle and the mixture.")] = 0,
) -> None:
    """Write SFT / GRPO data (evaluation prompts and images) for TRL, LLaMA-Factory or ms-swift.

    Protocol, prompt style and image policy default to those of `medvision eval`, so a
    model is trained on the questions and images it is evaluated on; export.json records them.
    """
    from medvision.training.export import ExportOptions, export_sft

    if cot and prompt_style not in (None, "cot"):
        raise typer.BadParameter(f"--cot conflicts with --prompt-style {prompt_style}")
    if split not in ("train", "test"):
        raise typer.BadParameter("--split must be train or test")
    config = resolve_config(
        protocol=protocol,
        prompt_style="cot" if cot else prompt_style,
        image_policy=image_policy,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        chat_layout=chat_layout,
    )
    try:
        options = ExportOptions(
            format=format,  # type: ignore[arg-type]
            config=config,
            model=model,
            split=split,  # type: ignore[arg-type]
            families=parse_families(families),
            planes=parse_planes(planes),
            limit=limit,
            temperature=temperature,
            seed=seed,
            image_position=image_position,  # type: ignore[arg-type]
            ad_decimals=ad_decimals,
            image_root=image_root,
        )
    except (ValueError, KeyError) as exc:
        raise typer.BadParameter(str(exc.args[0] if exc.args else exc)) from exc
    report = export_sft(dataset_dir, out, options)
    fams = ", ".join(f"{k} {v}" for k, v in sorted(report.rows_by_family.items()))
    console.print(
        f"wrote {report.n_rows} rows ({fams}), {report.n_images} images to "
        f"{out / report.rows_file} [{report.format}, protocol {config.protocol}, style "
        f"{options.style.value}, image policy {options.image_policy().name}, chat layout "
        f"{options.layout().name}]"
    )
    if split == "test":
        console.print(
            "[bold yellow]warning:[/] exported the test split: `medvision train` refuses it"
        )
    if report.mixing_weights:
        weights = ", ".join(f"{k} {v:.1%}" for k, v in sorted(report.mixing_weights.items()))
        console.print(
            f"task mixing T={temperature}: {weights}; {report.n_unique_samples} unique "
            f"samples, {report.n_repeated_rows} repeated rows"
        )
    if report.n_skipped:
        console.print(f"[bold red]{report.n_skipped} sample(s) skipped:[/] {report.skipped}")
        for reason in report.skipped_examples[:5]:
            console.print(f"  {reason}")


@export_app.command("hf")
def export_hf_cmd(
    dataset_dir: Annotated[Path, typer.Argument(help="Built dataset folder.")],
    out: Annotated[Path, typer.Argument(help="Folder to write (Hub-ready).")],
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty folder's data.")] = False,
) -> None:
    """Write a Hub-ready HF dataset: Parquet with the images embedded, a dataset card.

    `datasets.load_dataset(OUT)` loads it with an `image` column (PIL); publish it with
    `datasets.load_dataset(OUT).push_to_hub("user/name")` (needs the network).
    """
    from medvision.store import open_dataset
    from medvision.store.hf import export_hf

    try:
        shards = export_hf(open_dataset(dataset_dir), out, overwrite=overwrite)
    except FileExistsError as exc:
        raise typer.BadParameter(str(exc)) from exc
    n = sum(len(v) for v in shards.values())
    console.print(f"wrote {n} Parquet shard(s) ({', '.join(shards)}) and README.md to {out}")


# Options ``train sft`` and ``train grpo`` share (same flag, type and help; defaults per command).
_Data = Annotated[Path, typer.Option(help="`medvision export sft --format trl` folder.")]
_Epochs = Annotated[float, typer.Option(help="Epochs.")]
_MaxSteps = Annotated[int, typer.Option(help="Optimiser steps (-1: by epochs).")]
_LearningRate = Annotated[float, typer.Option(help="Learning rate.")]
_GradAccum = Annotated[int, typer.Option(help="Gradient accumulation.")]
_LoraRank = Annotated[int, typer.Option(help="LoRA rank.")]
_LoraAlpha = Annotated[int, typer.Option(help="LoRA alpha.")]
_LoraScope = Annotated[str, typer.Option(help="language (default) or all.")]
_Full = Annotated[bool, typer.Option("--full", help="Full fine-tuning instead of LoRA.")]
_QLora = Annotated[bool, typer.Option("--qlora", help="4-bit NF4 base (CUDA + bitsandbytes).")]
_GradientCheckpointing = Annotated[bool, typer.Option(help="Gradient checkpointing.")]
_SaveSteps = Annotated[int, typer.Option(help="Checkpoint every N steps.")]
_LoggingSteps = Annotated[int, typer.Option(help="Log every N steps.")]
_Resume = Annotated[bool, typer.Option(help="Resume from the newest checkpoint.")]
_Limit = Annotated[int | None, typer.Option(help="Use the first N rows only.")]
_Seed = Annotated[int, typer.Option(help="Seed.")]
_Cpu = Annotated[bool, typer.Option("--cpu", help="Force CPU.")]


def _check_data(data: Path) -> None:
    """Refuse, in one line, data that is not a train-split export."""
    from medvision.training.export import check_train_split

    try:
        check_train_split(data)
    except (FileNotFoundError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--data") from exc


def _common_lora(
    lora_r: int, lora_alpha: int, lora_scope: str, no_lora: bool, qlora: bool
) -> dict[str, Any]:
    if lora_scope not in ("language", "all"):
        raise typer.BadParameter("--lora-scope must be language or all")
    return {
        "lora": not no_lora,
        "lora_r": lora_r,
        "lora_alpha": lora_alpha,
        "lora_scope": lora_scope,
        "qlora": qlora,
    }


def _refuse_qlora(qlora: bool, cpu: bool) -> None:
    """One line and exit 2 when ``--qlora`` cannot run here (checked before loading data)."""
    from medvision.training.sft import check_qlora

    try:
        check_qlora(qlora, use_cpu=cpu)
    except RuntimeError as exc:
        console.print(f"[bold red]{exc}[/]")
        raise typer.Exit(2) from exc


@train_app.command("sft")
def train_sft_cmd(
    model: Annotated[str, typer.Option(help="Base model folder or hub id.")],
    data: _Data,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Run folder (resumes if it holds checkpoints).")
    ],
    epochs: _Epochs = 1.0,
    max_steps: _MaxSteps = -1,
    lr: _LearningRate = 2e-4,
    batch_size: Annotated[int, typer.Option(help="Per-device batch.")] = 1,
    grad_accum: _GradAccum = 8,
    lora_r: _LoraRank = 16,
    lora_alpha: _LoraAlpha = 16,
    lora_scope: _LoraScope = "language",
    no_lora: _Full = False,
    qlora: _QLora = False,
    gradient_checkpointing: _GradientCheckpointing = False,
    save_steps: _SaveSteps = 50,
    logging_steps: _LoggingSteps = 10,
    resume: _Resume = True,
    merge: Annotated[bool, typer.Option(help="Also save the merged model to OUT/merged.")] = False,
    limit: _Limit = None,
    seed: _Seed = 0,
    cpu: _Cpu = False,
) -> None:
    """Supervised fine-tuning (TRL SFTTrainer, LoRA/QLoRA, loss on the completion only).

    The export's configuration (export.json) is copied into OUT, so `medvision eval --backend
    hf --model OUT` asks the questions the model was trained on. Test-split exports are refused.
    """
    from medvision.training.sft import SftSettings, train_sft

    _refuse_qlora(qlora, cpu)
    _check_data(data)

    settings = SftSettings(
        model=model,
        data=str(data),
        output_dir=str(out),
        epochs=epochs,
        max_steps=max_steps,
        learning_rate=lr,
        batch_size=batch_size,
        grad_accum=grad_accum,
        gradient_checkpointing=gradient_checkpointing,
        save_steps=save_steps,
        logging_steps=logging_steps,
        resume=resume,
        merge=merge,
        limit=limit,
        seed=seed,
        use_cpu=cpu,
        **_common_lora(lora_r, lora_alpha, lora_scope, no_lora, qlora),
    )
    result = train_sft(settings)
    if result.resumed_from:
        console.print(f"resumed from {result.resumed_from}")
    console.print(
        f"sft done: {result.global_step} steps, mean train loss {result.train_loss:.4f}; "
        f"model in {result.output_dir}"
        + (f", merged in {result.merged_dir}" if result.merged_dir else "")
    )


@train_app.command("grpo")
def train_grpo_cmd(
    model: Annotated[str, typer.Option(help="Policy to start from (base or SFT output).")],
    data: _Data,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder.")],
    epochs: _Epochs = 1.0,
    max_steps: _MaxSteps = -1,
    lr: _LearningRate = 1e-5,
    batch_size: Annotated[int, typer.Option(help="Per-device completions per step.")] = 8,
    grad_accum: _GradAccum = 1,
    num_generations: Annotated[int, typer.Option(help="Completions per prompt.")] = 8,
    max_completion_length: Annotated[int, typer.Option(help="Completion token limit.")] = 1024,
    temperature: Annotated[float, typer.Option(help="Rollout temperature.")] = 1.0,
    beta: Annotated[float, typer.Option(help="KL coefficient.")] = 0.01,
    format_reward: Annotated[str, typer.Option(help="soft | binary")] = "soft",
    composition: Annotated[str, typer.Option(help="multiplicative | additive")] = "multiplicative",
    rho: Annotated[
        str, typer.Option(help="exp_decay | scaled_sigmoid | gaussian_proxy")
    ] = "exp_decay",
    lora_r: _LoraRank = 16,
    lora_alpha: _LoraAlpha = 16,
    lora_scope: _LoraScope = "language",
    no_lora: _Full = False,
    qlora: _QLora = False,
    use_vllm: Annotated[bool, typer.Option("--vllm", help="Generate rollouts with vLLM.")] = False,
    gradient_checkpointing: _GradientCheckpointing = False,
    save_steps: _SaveSteps = 50,
    logging_steps: _LoggingSteps = 10,
    resume: _Resume = True,
    limit: _Limit = None,
    seed: _Seed = 0,
    cpu: _Cpu = False,
) -> None:
    """GRPO with the MedVision-V0 rewards (format, process, answer) through TRL's GRPOTrainer."""
    from medvision.training.grpo import GrpoSettings, train_grpo

    _refuse_qlora(qlora, cpu)
    _check_data(data)

    for name, value, allowed in (
        ("--format-reward", format_reward, ("soft", "binary")),
        ("--composition", composition, ("multiplicative", "additive")),
        ("--rho", rho, ("exp_decay", "scaled_sigmoid", "gaussian_proxy")),
    ):
        if value not in allowed:
            raise typer.BadParameter(f"{name} must be one of {allowed}; got {value!r}")
    try:
        settings = GrpoSettings(
            model=model,
            data=str(data),
            output_dir=str(out),
            epochs=epochs,
            max_steps=max_steps,
            learning_rate=lr,
            batch_size=batch_size,
            grad_accum=grad_accum,
            num_generations=num_generations,
            max_completion_length=max_completion_length,
            temperature=temperature,
            beta=beta,
            format_variant=format_reward,  # type: ignore[arg-type]
            composition=composition,  # type: ignore[arg-type]
            rho=rho,  # type: ignore[arg-type]
            use_vllm=use_vllm,
            gradient_checkpointing=gradient_checkpointing,
            save_steps=save_steps,
            logging_steps=logging_steps,
            resume=resume,
            limit=limit,
            seed=seed,
            use_cpu=cpu,
            **_common_lora(lora_r, lora_alpha, lora_scope, no_lora, qlora),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    result = train_grpo(settings)
    rewards = [h["reward"] for h in result.log_history if "reward" in h]
    last = f", last logged reward {rewards[-1]:.4f}" if rewards else ""
    console.print(f"grpo done: {result.global_step} steps{last}; model in {result.output_dir}")


def register(app: typer.Typer) -> None:
    """Add ``export sft`` and ``train sft|grpo`` to the ``medvision`` app."""
    app.add_typer(export_app, name="export")
    app.add_typer(train_app, name="train")
