"""SFT on the tiny local VLM (CPU): loss down on a fixed batch, completion-only, resume, eval."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from medvision.training.sft import SftSettings, lora_target_regex, make_sft_trainer, train_sft


def _settings(model: Path, data: Path, out: Path, **kw: object) -> SftSettings:
    base: dict[str, object] = dict(
        model=str(model),
        data=str(data),
        output_dir=str(out),
        batch_size=2,
        grad_accum=1,
        learning_rate=1e-2,
        warmup_ratio=0.0,
        max_grad_norm=1.0,
        lora_r=8,
        logging_steps=1,
        save_steps=100,
        use_cpu=True,
    )
    base.update(kw)
    return SftSettings(**base)  # type: ignore[arg-type]


def test_lora_regex_scopes() -> None:
    lm = lora_target_regex("language")
    assert re.fullmatch(lm, "model.language_model.layers.3.self_attn.q_proj")
    assert not re.fullmatch(lm, "model.visual.blocks.0.mlp.gate_proj")
    assert not re.fullmatch(lm, "lm_head")
    assert re.fullmatch(lora_target_regex("all"), "model.visual.blocks.0.attn.qkv")


@pytest.mark.slow
def test_sft_loss_goes_down_on_a_fixed_batch(
    tiny_vlm: Path, trl_export: Path, tmp_path: Path
) -> None:
    import torch

    trainer = make_sft_trainer(_settings(tiny_vlm, trl_export, tmp_path, max_steps=5, limit=4))
    names = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n and "visual" not in n for n in names)

    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    # completion-only: labelled tokens are exactly the completion tokens plus <|im_end|>
    completions = [
        trainer.train_dataset[i]["completion"][0]["content"][0]["text"] for i in range(2)
    ]
    tok = trainer.processing_class.tokenizer
    n_completion = sum(
        len(tok(c + "<|im_end|>", add_special_tokens=False)["input_ids"]) for c in completions
    )
    labelled = int((batch["labels"] != -100).sum())
    assert n_completion - 2 <= labelled <= n_completion + 2 < batch["input_ids"].numel() // 4

    def fixed_loss() -> float:
        trainer.model.eval()
        with torch.no_grad():
            return float(trainer.model(**batch).loss)

    before = fixed_loss()
    trainer.train()
    after = fixed_loss()
    assert after < before - 0.05, (before, after)


@pytest.mark.slow
def test_resume_save_and_eval_with_hf_backend(
    tiny_vlm: Path, trl_export: Path, mini_store: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    first = train_sft(_settings(tiny_vlm, trl_export, out, max_steps=2, save_steps=2, limit=4))
    assert first.global_step == 2 and first.resumed_from is None
    assert (out / "checkpoint-2").is_dir()
    second = train_sft(
        _settings(tiny_vlm, trl_export, out, max_steps=3, save_steps=2, limit=4, merge=True)
    )
    assert second.resumed_from is not None and second.resumed_from.endswith("checkpoint-2")
    assert second.global_step == 3
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert Path(adapter["base_model_name_or_path"]) == tiny_vlm
    assert (out / "chat_template.jinja").is_file() or (out / "tokenizer_config.json").is_file()
    assert second.merged_dir is not None and (Path(second.merged_dir) / "config.json").is_file()

    # The fine-tuned folder evaluates through the hf backend with no glue.
    from medvision.backends import GenerationConfig
    from medvision.runs.runner import Runner, RunSpec

    spec = RunSpec(
        dataset_dir=str(mini_store),
        backend="hf",
        model="tiny-sft",
        protocol="official",
        families=("tl",),
        limit=1,
        generation=GenerationConfig(max_new_tokens=8),
        backend_options={"model": str(out)},
    )
    summary = Runner(spec, tmp_path / "eval").run()
    records = (tmp_path / "eval" / "records.jsonl").read_text().splitlines()
    assert len(records) == summary["run"]["n_records"] >= 1
    assert all(json.loads(r)["status"] != "backend_error" for r in records)
