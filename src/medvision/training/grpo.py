"""GRPO with the MedVision-V0 rewards through TRL's ``GRPOTrainer`` (extra ``train``).

Reads the same ``trl`` export as SFT (:func:`medvision.training.export.export_sft`); only the
prompt, the image and the ``medvision`` ground-truth column are used, so the model is rewarded
on exactly the evaluation prompt. V0 ran RFT on the CoT prompts with the CoT targets removed
(paper-results §6.2): export with ``--cot`` for that.

Rewards (:mod:`medvision.training.rewards`): the training reward is :func:`make_reward`
``("score")`` (``r_format + r_process * r_answer``; detection ``r_format + r_answer``); the
format, answer and process components are passed too with weight 0, so TRL logs each of them
(``rewards/medvision_format_reward/mean`` ...) without changing the objective.

V0's own settings (verl, full fine-tuning on 4 GPUs: 8 rollouts, lr 3e-6, KL 0.01) are
``num_generations=8``, ``beta=0.01``; the defaults here are for LoRA on one GPU (lr 1e-5).
Generation runs through ``transformers`` by default; ``use_vllm`` switches TRL to vLLM
(colocate mode) where vLLM is installed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from medvision.training.rewards import (
    REWARD_COLUMN,
    Composition,
    FormatVariant,
    RewardFunc,
    RhoName,
    make_reward,
)
from medvision.training.sft import (
    LoraScope,
    finish_run,
    last_checkpoint,
    run_config_kwargs,
    training_inputs,
)

__all__ = [
    "GrpoResult",
    "GrpoSettings",
    "make_grpo_trainer",
    "medvision_reward_funcs",
    "train_grpo",
]


@dataclass(frozen=True)
class GrpoSettings:
    """One GRPO run.

    Attributes:
        model: Policy to start from (base or an SFT output; a LoRA folder works through PEFT).
        data: A ``trl`` export folder.
        output_dir: Checkpoints and the final adapter (or model) + processor.
        epochs: Epochs over the prompts (ignored when ``max_steps > 0``).
        max_steps: Optimiser steps; ``-1`` = by epochs.
        learning_rate: Learning rate.
        batch_size: Per-device batch of completions; ``batch_size * grad_accum`` must be a
            multiple of ``num_generations``.
        grad_accum: Gradient accumulation steps.
        num_generations: Completions per prompt (the GRPO group).
        max_completion_length: Token limit of a completion.
        temperature: Sampling temperature of the rollouts.
        beta: KL coefficient (V0: 0.01).
        lora: Train LoRA adapters (``False`` = full fine-tuning).
        lora_r: LoRA rank.
        lora_alpha: LoRA alpha.
        lora_dropout: LoRA dropout.
        lora_scope: ``language`` (default) or ``all``.
        qlora: 4-bit base (CUDA + bitsandbytes).
        format_variant: ``soft`` or ``binary`` format reward.
        composition: ``multiplicative`` or ``additive``.
        rho: Error-to-reward map.
        use_vllm: Generate with vLLM (colocate).
        gradient_checkpointing: Trade compute for memory.
        logging_steps: Log every N steps.
        save_steps: Checkpoint every N steps.
        seed: Seed.
        resume: Resume from the newest checkpoint in ``output_dir``.
        limit: Use only the first N rows.
        use_cpu: Force CPU.
    """

    model: str
    data: str
    output_dir: str
    epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float = 1e-5
    batch_size: int = 8
    grad_accum: int = 1
    num_generations: int = 8
    max_completion_length: int = 1024
    temperature: float = 1.0
    beta: float = 0.01
    lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_scope: LoraScope = "language"
    qlora: bool = False
    format_variant: FormatVariant = "soft"
    composition: Composition = "multiplicative"
    rho: RhoName = "exp_decay"
    use_vllm: bool = False
    gradient_checkpointing: bool = False
    logging_steps: int = 10
    save_steps: int = 50
    seed: int = 0
    resume: bool = True
    limit: int | None = None
    use_cpu: bool = False

    def __post_init__(self) -> None:
        if self.num_generations < 2:
            raise ValueError("GRPO needs num_generations >= 2 (advantages are group-relative)")
        if (self.batch_size * self.grad_accum) % self.num_generations:
            raise ValueError(
                f"batch_size * grad_accum ({self.batch_size} * {self.grad_accum}) must be a "
                f"multiple of num_generations ({self.num_generations})"
            )


@dataclass(frozen=True)
class GrpoResult:
    """What a finished GRPO run left behind.

    Attributes:
        output_dir: Adapter (or model) + processor.
        global_step: Optimiser steps done.
        resumed_from: Checkpoint resumed, if any.
        log_history: The trainer's logs (``reward``, ``rewards/<name>/mean``, ...).
    """

    output_dir: str
    global_step: int
    resumed_from: str | None
    log_history: list[dict[str, Any]] = field(default_factory=list)


def medvision_reward_funcs(
    settings: GrpoSettings, *, on_call: Callable[[int], None] | None = None
) -> tuple[list[RewardFunc], list[float]]:
    """The reward functions and weights: the score (weight 1) and its parts (weight 0)."""
    kw: dict[str, Any] = {
        "format_variant": settings.format_variant,
        "composition": settings.composition,
        "rho_name": settings.rho,
    }
    funcs = [
        make_reward("score", on_call=on_call, **kw),
        make_reward("format", **kw),
        make_reward("answer", **kw),
        make_reward("process", **kw),
    ]
    return funcs, [1.0, 0.0, 0.0, 0.0]


def make_grpo_trainer(
    settings: GrpoSettings,
    *,
    callbacks: list[Any] | None = None,
    on_reward_call: Callable[[int], None] | None = None,
) -> Any:
    """Build (not run) the ``GRPOTrainer`` of a run.

    Args:
        settings: The run.
        callbacks: Extra trainer callbacks.
        on_reward_call: Called with the batch size each time the training reward runs.

    Returns:
        The trainer.
    """
    from trl.trainer.grpo_config import GRPOConfig
    from trl.trainer.grpo_trainer import GRPOTrainer

    dataset, model, processor, peft_config = training_inputs(
        settings, ("prompt", "images", REWARD_COLUMN)
    )
    funcs, weights = medvision_reward_funcs(settings, on_call=on_reward_call)
    args = GRPOConfig(
        **run_config_kwargs(settings),
        num_generations=settings.num_generations,
        max_completion_length=settings.max_completion_length,
        temperature=settings.temperature,
        beta=settings.beta,
        reward_weights=weights,
        use_vllm=settings.use_vllm,
        vllm_mode="colocate",
    )
    return GRPOTrainer(
        model=model,
        reward_funcs=list[Any](funcs),
        args=args,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=peft_config,
        callbacks=callbacks,
    )


def train_grpo(settings: GrpoSettings, *, callbacks: list[Any] | None = None) -> GrpoResult:
    """Run GRPO end to end (resuming when asked) and save adapter + processor.

    Args:
        settings: The run.
        callbacks: Extra trainer callbacks.

    Returns:
        The result.
    """
    trainer = make_grpo_trainer(settings, callbacks=callbacks)
    resume = last_checkpoint(settings.output_dir) if settings.resume else None
    trainer.train(resume_from_checkpoint=resume)
    finish_run(trainer, settings.output_dir, merge=False)
    return GrpoResult(
        output_dir=settings.output_dir,
        global_step=int(trainer.state.global_step),
        resumed_from=resume,
        log_history=list(trainer.state.log_history),
    )
