"""Fine-tuning on MedVision: training data, chain-of-thought targets, rewards, trainers.

* :mod:`~medvision.training.export`: ``export_sft`` writes TRL, LLaMA-Factory and ms-swift
  data from a built dataset, with prompts from the evaluation renderer.
* :mod:`~medvision.training.targets`: the completion for each prompt style, including the
  MedVision-V0 chain of thought in the relative lower-left frame.
* :mod:`~medvision.training.sampler`: temperature task mixing (weights ``N^(1/T)``).
* :mod:`~medvision.training.rewards`: the V0 GRPO rewards with TRL's reward signature.
* :mod:`~medvision.training.sft` / :mod:`~medvision.training.grpo`: TRL trainers (extra
  ``train``; torch, transformers, trl and peft are imported only when they run).
"""

from medvision.training.export import ExportOptions, ExportReport, export_sft
from medvision.training.rewards import (
    REWARD_COLUMN,
    RewardTarget,
    make_reward,
    medvision_reward,
    score_completion,
)
from medvision.training.sampler import mixing_weights, temperature_mix
from medvision.training.targets import TargetError, cot_plan, render_target

__all__ = [
    "REWARD_COLUMN",
    "ExportOptions",
    "ExportReport",
    "RewardTarget",
    "TargetError",
    "cot_plan",
    "export_sft",
    "make_reward",
    "medvision_reward",
    "mixing_weights",
    "render_target",
    "score_completion",
    "temperature_mix",
]
