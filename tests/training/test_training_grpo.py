"""GRPO on the tiny local VLM (CPU): two steps with the medvision rewards called and logged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medvision.training.grpo import GrpoSettings, make_grpo_trainer
from medvision.training.rewards import RewardTarget, score_completion


@pytest.mark.slow
def test_grpo_runs_two_steps_with_medvision_rewards(
    tiny_vlm: Path, cot_export: Path, tmp_path: Path
) -> None:
    calls: list[int] = []
    settings = GrpoSettings(
        model=str(tiny_vlm),
        data=str(cot_export),
        output_dir=str(tmp_path),
        max_steps=2,
        batch_size=4,
        num_generations=4,
        max_completion_length=12,
        logging_steps=1,
        save_steps=100,
        limit=8,
        use_cpu=True,
    )
    trainer = make_grpo_trainer(settings, on_reward_call=calls.append)
    seen: list[tuple[str, str]] = []
    score = trainer.reward_funcs[0]

    def spy(completions: list[object], **kw: object) -> list[float | None]:
        texts = [c if isinstance(c, str) else c[0]["content"] for c in completions]  # type: ignore[index]
        seen.extend(zip(texts, kw["medvision"], strict=True))  # type: ignore[call-overload]
        return score(completions=completions, **kw)

    spy.__name__ = "medvision_reward"
    trainer.reward_funcs[0] = spy
    trainer.train()

    assert trainer.state.global_step == 2
    assert calls == [4, 4]  # one call per step, one reward per completion
    logs = [h for h in trainer.state.log_history if "reward" in h]
    assert len(logs) == 2
    for name in ("medvision_reward", "medvision_format_reward", "medvision_answer_reward"):
        assert all(f"rewards/{name}/mean" in h for h in logs)
    # The logged mean reward is the mean of our scores of the completions it generated.
    ours = [score_completion(str(t), RewardTarget.from_json(str(m))).score for t, m in seen]
    assert len(ours) == 8
    logged = [h["rewards/medvision_reward/mean"] for h in logs]
    assert abs(sum(logged) / 2 - sum(ours) / 8) < 1e-6
    assert json.loads((cot_export / "export.json").read_text())["resolved"]["prompt_style"] == "cot"
