"""An export works with plain TRL, from any working directory (absolute image paths)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from medvision.tasks.config import CONFIG_FILE, EvalConfig, read_run_config
from medvision.training.export import ExportOptions, export_sft


@pytest.mark.slow
def test_plain_trl_sft_trainer_reads_the_export_from_another_directory(
    mini_store: Path, tiny_vlm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets
    from trl import SFTConfig, SFTTrainer

    from medvision.backends.hf import load_processor

    export = tmp_path / "export"
    export_sft(mini_store, export, ExportOptions(config=EvalConfig(image_policy="native"), limit=4))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # nothing is resolved against the export folder

    # The TRL documentation's recipe for image datasets: load the JSON lines, decode images.
    rows = datasets.load_dataset(
        "json", data_files=str(export / "train.jsonl"), split="train", cache_dir=str(tmp_path)
    )
    rows = rows.cast_column("images", datasets.List(datasets.Image()))
    assert rows[0]["images"][0].size[0] > 0
    trainer = SFTTrainer(
        model=str(tiny_vlm),
        train_dataset=rows.select_columns(["prompt", "completion", "images"]),
        processing_class=load_processor(tiny_vlm),
        args=SFTConfig(
            output_dir=str(tmp_path / "out"),
            max_steps=2,
            per_device_train_batch_size=2,
            report_to="none",
            use_cpu=True,
            max_length=None,
            logging_steps=1,
        ),
    )
    out = trainer.train()
    assert out.global_step == 2 and math.isfinite(out.training_loss)
    # Completion-only loss: TRL masks the prompt of prompt-completion rows.
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    labelled = int((batch["labels"] != -100).sum())
    assert 0 < labelled < batch["input_ids"].numel() // 4


@pytest.mark.slow
def test_medvision_train_carries_the_configuration_into_the_run_folder(
    mini_store: Path, tiny_vlm: Path, tmp_path: Path
) -> None:
    from medvision.training.sft import SftSettings, train_sft

    export = tmp_path / "export"
    # `auto` resolved from the model name; the run folder keeps the policy it resolved to.
    export_sft(mini_store, export, ExportOptions(model="Qwen/Qwen2-VL-2B-Instruct", limit=2))
    out = tmp_path / "run"
    train_sft(
        SftSettings(
            model=str(tiny_vlm),
            data=str(export),
            output_dir=str(out),
            max_steps=1,
            batch_size=2,
            grad_accum=1,
            limit=2,
            use_cpu=True,
            merge=True,
        )
    )
    # The defaults, auto resolved.
    expected = EvalConfig(image_policy="qwen2-vl", chat_layout="qwen2-vl")
    assert read_run_config(out) == expected
    assert read_run_config(out / "merged") == expected
    assert json.loads((out / CONFIG_FILE).read_text())["export"] == str(export.resolve())
