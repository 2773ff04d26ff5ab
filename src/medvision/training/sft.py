"""Supervised fine-tuning with TRL's ``SFTTrainer`` and PEFT LoRA / QLoRA (extra ``train``).

Reads a ``trl`` export (:func:`medvision.training.export.export_sft`): TRL's conversational
prompt-completion rows, so the loss covers the **completion tokens only** (the official SFT put
it on the prompt too; official-eval-protocol §8.5). Built for Qwen2-VL / Qwen2.5-VL-style
models (``AutoModelForImageTextToText`` + their processor); other VLMs whose processor takes
``images=`` and a chat template work the same way.

Defaults follow the official QLoRA recipe (official-eval-protocol §8.2) where it applies: LoRA
``r = alpha = 16``, dropout 0.05, lr 2e-4 with a linear schedule and 3 % warm-up,
``max_grad_norm = 0.3``; 4-bit NF4 with double quantisation and bf16 compute for ``qlora``
(CUDA + bitsandbytes only). Unlike the official ``target_modules="all-linear"``, LoRA targets
the **language model only** by default (``lora_scope="language"``): the attention and MLP
projections outside the vision tower, which keeps adapters servable by vLLM and leaves the ViT
frozen (LLaMA-Factory's default too). ``lora_scope="all"`` adds the vision tower's linears.

Every heavy import (torch, transformers, trl, peft, datasets, bitsandbytes) happens inside the
functions, so ``import medvision.training`` needs only the core dependencies.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from medvision.tasks.config import AUTO_POLICY, CONFIG_FILE, write_run_config
from medvision.training.export import export_config, read_export_manifest, read_trl_rows

if TYPE_CHECKING:  # grpo imports this module; the type is only needed by mypy
    from medvision.training.grpo import GrpoSettings

__all__ = [
    "LORA_PROJECTIONS",
    "LoraScope",
    "SftResult",
    "SftSettings",
    "build_lora_config",
    "check_qlora",
    "checkpointing_kwargs",
    "cuda_available",
    "finish_run",
    "last_checkpoint",
    "load_model_and_processor",
    "lora_target_regex",
    "make_sft_trainer",
    "rows_to_dataset",
    "run_config_kwargs",
    "train_sft",
    "training_inputs",
]

LoraScope = Literal["language", "all"]

LORA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""Linear layers of a Qwen2-style decoder that LoRA adapts."""
# Module-name fragments of vision towers and projectors across HF VLMs (Qwen2/2.5-VL
# ``visual``, LLaVA-style ``vision_tower`` / ``multi_modal_projector``, Idefics/SmolVLM
# ``vision_model``). Qwen2.5-VL's ViT blocks also have gate/up/down_proj (peft #2615).
_VISION_PARTS = ("visual", "vision_tower", "vision_model", "multi_modal_projector")
_VISION_LINEARS = ("qkv", "proj", "fc1", "fc2", "mlp.0", "mlp.2")


def lora_target_regex(scope: LoraScope = "language") -> str:
    """PEFT ``target_modules`` regex (full match on module names) for a LoRA scope.

    Args:
        scope: ``language``: the decoder projections outside any vision module;
            ``all``: those plus the vision tower's and merger's linears.

    Returns:
        A regular expression string.

    Example:
        >>> import re
        >>> rx = lora_target_regex("language")
        >>> bool(re.fullmatch(rx, "model.language_model.layers.0.mlp.up_proj"))
        True
        >>> bool(re.fullmatch(rx, "model.visual.blocks.0.mlp.up_proj"))
        False
    """
    projections = "|".join(LORA_PROJECTIONS)
    if scope == "language":
        vision = "|".join(_VISION_PARTS)
        return rf"^(?!.*(?:{vision})).*\.(?:{projections})$"
    if scope == "all":
        names = "|".join((*LORA_PROJECTIONS, *(v.replace(".", r"\.") for v in _VISION_LINEARS)))
        return rf"^.*\.(?:{names})$"
    raise ValueError(f"lora scope must be 'language' or 'all'; found {scope!r}")


@dataclass(frozen=True)
class SftSettings:
    """One SFT run.

    Attributes:
        model: Base model folder or hub id.
        data: A ``trl`` export folder.
        output_dir: Checkpoints, the final adapter (or model) and the processor go here.
        epochs: Training epochs (ignored when ``max_steps > 0``).
        max_steps: Optimiser steps; ``-1`` = by epochs.
        learning_rate: Peak learning rate.
        batch_size: Per-device batch.
        grad_accum: Gradient accumulation steps.
        warmup_ratio: Linear warm-up fraction.
        max_grad_norm: Gradient clipping.
        lora: Train LoRA adapters (``False`` = full fine-tuning).
        lora_r: LoRA rank.
        lora_alpha: LoRA alpha.
        lora_dropout: LoRA dropout.
        lora_scope: ``language`` (default) or ``all``.
        qlora: Load the base in 4-bit NF4 (CUDA + bitsandbytes).
        gradient_checkpointing: Trade compute for memory (non-reentrant).
        logging_steps: Log every N steps.
        save_steps: Checkpoint every N steps.
        save_total_limit: Checkpoints kept.
        seed: Seed.
        resume: Resume from the newest ``checkpoint-*`` in ``output_dir`` when there is one.
        limit: Use only the first N rows of the export.
        merge: After training, also write the merged model to ``output_dir/merged``.
        use_cpu: Force CPU (automatic when no CUDA device exists).
    """

    model: str
    data: str
    output_dir: str
    epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float = 2e-4
    batch_size: int = 1
    grad_accum: int = 8
    warmup_ratio: float = 0.03
    max_grad_norm: float = 0.3
    lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_scope: LoraScope = "language"
    qlora: bool = False
    gradient_checkpointing: bool = False
    logging_steps: int = 10
    save_steps: int = 50
    save_total_limit: int | None = 3
    seed: int = 0
    resume: bool = True
    limit: int | None = None
    merge: bool = False
    use_cpu: bool = False

    def __post_init__(self) -> None:
        if self.qlora and not self.lora:
            raise ValueError("qlora needs lora=True (4-bit weights cannot be trained directly)")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("batch_size and grad_accum must be >= 1")


@dataclass(frozen=True)
class SftResult:
    """What a finished SFT run left behind.

    Attributes:
        output_dir: The run folder: adapter (or full model) + processor, loadable by the
            ``hf`` backend as ``--model output_dir``.
        merged_dir: The merged model folder, when ``merge`` was asked.
        global_step: Optimiser steps done (counting resumed ones).
        resumed_from: The checkpoint resumed, if any.
        train_loss: Mean training loss reported by the trainer.
        log_history: The trainer's log records.
    """

    output_dir: str
    merged_dir: str | None
    global_step: int
    resumed_from: str | None
    train_loss: float
    log_history: list[dict[str, Any]] = field(default_factory=list)


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (False when torch is missing)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def check_qlora(qlora: bool, *, use_cpu: bool = False) -> None:
    """Refuse ``--qlora`` where it cannot run, before any data or model is loaded.

    Raises:
        RuntimeError: ``qlora`` without a CUDA device (or with ``use_cpu``), or without
            bitsandbytes; the one-line message names the fix.
    """
    if not qlora:
        return
    if use_cpu or not cuda_available():
        raise RuntimeError(
            "--qlora (4-bit) needs a CUDA GPU and bitsandbytes; "
            + ("--cpu was given" if use_cpu else "no CUDA device here")
            + ": train plain LoRA on this machine (drop --qlora)"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise RuntimeError('--qlora needs bitsandbytes: pip install "medvision-bench[train]"')


def last_checkpoint(output_dir: str | os.PathLike[str]) -> str | None:
    """The newest ``checkpoint-<step>`` folder of a run, or ``None``."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    steps = [
        (int(p.name.split("-", 1)[1]), p)
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith("checkpoint-") and p.name.split("-", 1)[1].isdigit()
    ]
    return str(max(steps)[1]) if steps else None


def build_lora_config(
    *, r: int, alpha: int, dropout: float, scope: LoraScope, task_type: str = "CAUSAL_LM"
) -> Any:
    """A PEFT ``LoraConfig`` targeting :func:`lora_target_regex` of ``scope``."""
    from peft import LoraConfig

    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=lora_target_regex(scope),
        bias="none",
        task_type=task_type,
    )


def load_model_and_processor(
    model: str,
    *,
    qlora: bool = False,
    use_cpu: bool = False,
    processor_kwargs: dict[str, Any] | None = None,
) -> tuple[Any, Any]:
    """Load a VLM for training: bf16 on CUDA (4-bit NF4 with ``qlora``), float32 on CPU.

    ``model`` may be a model folder or an earlier run's output (a LoRA adapter folder, see
    :func:`~medvision.backends.hf_models.load_image_text_model`); the processor comes from
    that folder when it holds one. ``processor_kwargs`` (e.g. the configuration's
    ``min_pixels``/``max_pixels``) go to the processor, so training resizes images as the
    prompts state.

    Raises:
        RuntimeError: If ``qlora`` is asked without a CUDA device or without bitsandbytes.
    """
    import torch

    from medvision.backends.hf import load_processor
    from medvision.backends.hf_models import is_adapter_folder, load_image_text_model

    on_gpu = cuda_available() and not use_cpu
    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if on_gpu else torch.float32}
    check_qlora(qlora, use_cpu=use_cpu)
    if qlora:
        from transformers import BitsAndBytesConfig

        bnb_config: Any = BitsAndBytesConfig  # untyped in transformers
        kwargs["quantization_config"] = bnb_config(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_quant_storage=torch.bfloat16,
        )
    if qlora and is_adapter_folder(model):
        raise RuntimeError(
            f"{model} is a LoRA adapter folder: QLoRA cannot merge it into 4-bit weights; "
            "train the first run with --merge and pass its merged/ folder"
        )
    # An earlier run's adapter folder is merged into its base: training starts from it.
    net = load_image_text_model(model, **kwargs)
    if qlora:
        from peft import prepare_model_for_kbit_training

        prepare: Any = prepare_model_for_kbit_training  # untyped in peft
        net = prepare(net)
    own = any(
        (Path(model) / n).is_file() for n in ("processor_config.json", "preprocessor_config.json")
    )
    kwargs = dict(processor_kwargs or {})
    if is_adapter_folder(model) and not own:
        from medvision.backends.hf import adapter_base_model

        return net, load_processor(adapter_base_model(model), **kwargs)
    return net, load_processor(model, **kwargs)


def rows_to_dataset(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> Any:
    """A ``datasets.Dataset`` of the given columns with ``images`` decoded to PIL on access."""
    import datasets

    kept = [{c: r[c] for c in columns} for r in rows]
    ds = datasets.Dataset.from_list(kept)
    list_type = getattr(datasets, "List", None) or datasets.Sequence
    return ds.cast_column("images", list_type(datasets.Image()))


def checkpointing_kwargs(enabled: bool) -> dict[str, Any]:
    """Gradient checkpointing kwargs (non-reentrant); empty when off (no v5 rename warning)."""
    if not enabled:
        return {}
    return {
        "gradient_checkpointing": True,
        "gradient_checkpointing_kwargs": {"use_reentrant": False},
    }


def training_inputs(
    settings: SftSettings | GrpoSettings, columns: tuple[str, ...]
) -> tuple[Any, Any, Any, Any]:
    """The data, model, processor and LoRA config of a run (SFT and GRPO alike).

    Args:
        settings: The run.
        columns: Export columns the trainer reads (must include ``images``).

    Returns:
        ``(dataset, model, processor, peft_config)``; ``peft_config`` is ``None`` for full
        fine-tuning.

    The export's configuration (:class:`~medvision.tasks.config.EvalConfig`) is copied into
    the run folder (``medvision_config.json``), so ``medvision eval --model RUN_DIR`` shows the
    model what it was trained on.

    Raises:
        ValueError: If the export (after ``limit``) holds no rows, or was made from the test
            split.
    """
    check_qlora(settings.qlora, use_cpu=settings.use_cpu)  # before any data is read
    rows = read_trl_rows(settings.data)
    config = export_config(settings.data)
    manifest = read_export_manifest(settings.data)
    resolved = manifest.get("resolved", {}).get("image_policy")
    if config.image_policy == AUTO_POLICY and resolved:
        # The run folder's name matches no model family: keep the policy `auto` resolved to.
        config = replace(config, image_policy=str(resolved).split(":", 1)[0])
    layout = manifest.get("resolved", {}).get("chat_layout")
    if config.chat_layout == AUTO_POLICY and layout:
        config = replace(config, chat_layout=str(layout))
    write_run_config(
        settings.output_dir,
        config,
        export=str(Path(settings.data).resolve()),
        dataset_build_id=manifest.get("dataset_build_id"),
        resolved=manifest.get("resolved", {}),
    )
    if settings.limit is not None:
        rows = rows[: settings.limit]
    if not rows:
        raise ValueError(f"{settings.data}: the export holds no rows")
    dataset = rows_to_dataset(rows, columns)
    model, processor = load_model_and_processor(
        settings.model,
        qlora=settings.qlora,
        use_cpu=settings.use_cpu,
        processor_kwargs=config.processor_kwargs(),
    )
    peft_config = (
        build_lora_config(
            r=settings.lora_r,
            alpha=settings.lora_alpha,
            dropout=settings.lora_dropout,
            scope=settings.lora_scope,
        )
        if settings.lora
        else None
    )
    return dataset, model, processor, peft_config


def run_config_kwargs(settings: SftSettings | GrpoSettings) -> dict[str, Any]:
    """Trainer-config keywords SFT and GRPO share: schedule, logging, device, checkpointing."""
    on_gpu = cuda_available() and not settings.use_cpu
    return {
        "output_dir": settings.output_dir,
        "num_train_epochs": settings.epochs,
        "max_steps": settings.max_steps,
        "per_device_train_batch_size": settings.batch_size,
        "gradient_accumulation_steps": settings.grad_accum,
        "learning_rate": settings.learning_rate,
        "logging_steps": settings.logging_steps,
        "save_steps": settings.save_steps,
        "seed": settings.seed,
        "report_to": "none",
        **checkpointing_kwargs(settings.gradient_checkpointing),
        "bf16": on_gpu,
        "use_cpu": not on_gpu,
    }


def make_sft_trainer(settings: SftSettings, *, callbacks: list[Any] | None = None) -> Any:
    """Build (not run) the ``SFTTrainer`` of a run: model, processor, LoRA, data, config.

    Args:
        settings: The run.
        callbacks: Extra ``transformers.TrainerCallback`` objects.

    Returns:
        The trainer (``trainer.train()`` runs it).
    """
    from trl.trainer.sft_config import SFTConfig
    from trl.trainer.sft_trainer import SFTTrainer

    dataset, model, processor, peft_config = training_inputs(
        settings, ("prompt", "completion", "images")
    )
    args = SFTConfig(
        **run_config_kwargs(settings),
        lr_scheduler_type="linear",
        warmup_steps=settings.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio
        max_grad_norm=settings.max_grad_norm,
        save_total_limit=settings.save_total_limit,
        # Never truncate: a cut would drop image tokens and break the vision inputs.
        max_length=None,
        completion_only_loss=True,
    )
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=peft_config,
        callbacks=callbacks,
    )


def finish_run(trainer: Any, output_dir: str, *, merge: bool) -> str | None:
    """Save the final adapter (or model) and the processor; optionally the merged model.

    Returns:
        The merged model folder, or ``None``.
    """
    from medvision.backends.hf_processor import save_processor

    trainer.save_model(output_dir)
    processor = trainer.processing_class
    # Under the stock class name: AutoProcessor must rebuild it (never a bare tokenizer).
    save_processor(processor, output_dir)
    if not merge:
        return None
    model = trainer.model
    if not hasattr(model, "merge_and_unload"):
        return None  # full fine-tuning: output_dir already holds the model
    merged_dir = str(Path(output_dir) / "merged")
    merged = model.merge_and_unload()
    merged.save_pretrained(merged_dir)
    save_processor(processor, merged_dir)
    config = Path(output_dir) / CONFIG_FILE
    if config.is_file():  # the merged model was trained on the same configuration
        shutil.copyfile(config, Path(merged_dir) / CONFIG_FILE)
    return merged_dir


def train_sft(settings: SftSettings, *, callbacks: list[Any] | None = None) -> SftResult:
    """Run SFT end to end (resuming from the newest checkpoint when asked) and save.

    Args:
        settings: The run.
        callbacks: Extra trainer callbacks.

    Returns:
        The result; ``output_dir`` then holds the adapter and the processor.
    """
    trainer = make_sft_trainer(settings, callbacks=callbacks)
    resume = last_checkpoint(settings.output_dir) if settings.resume else None
    output = trainer.train(resume_from_checkpoint=resume)
    merged = finish_run(trainer, settings.output_dir, merge=settings.merge)
    return SftResult(
        output_dir=settings.output_dir,
        merged_dir=merged,
        global_step=int(trainer.state.global_step),
        resumed_from=resume,
        train_loss=float(output.training_loss),
        log_history=list(trainer.state.log_history),
    )
