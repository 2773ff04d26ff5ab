"""An SFT output folder is a full VLM again: evaluated with its images, GRPO starts from it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medvision.backends import ChatRequest, GenerationConfig, ImagePart, Message, TextPart
from medvision.training.grpo import GrpoSettings, make_grpo_trainer
from medvision.training.sft import SftSettings, finish_run, train_sft


def _request() -> ChatRequest:
    buf = io.BytesIO()
    Image.fromarray(np.full((80, 100), 90, dtype=np.uint8)).save(buf, format="PNG")
    msg = Message("user", (TextPart("Estimate the box."), ImagePart(buf.getvalue())))
    return ChatRequest("r0", (msg,), GenerationConfig(max_new_tokens=2))


@pytest.fixture(scope="module")
def sft_output(tiny_vlm: Path, trl_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sft_run")
    train_sft(
        SftSettings(
            model=str(tiny_vlm),
            data=str(trl_export),
            output_dir=str(out),
            batch_size=2,
            max_steps=1,
            limit=2,
            save_steps=100,
            use_cpu=True,
        )
    )
    return out


@pytest.mark.slow
def test_sft_output_is_evaluated_with_its_images(tiny_vlm: Path, sft_output: Path) -> None:
    from medvision.backends.hf import HFBackend

    for name in ("processor_config.json", "tokenizer_config.json"):
        recorded = json.loads((sft_output / name).read_text()).get("processor_class")
        assert recorded in (None, "Qwen2VLProcessor")  # a class transformers knows
    counts = {}
    for model in (tiny_vlm, sft_output):
        backend = HFBackend(model)
        assert backend.processor.image_processor is not None
        (response,) = backend.generate([_request()])
        assert response.error is None
        counts[model] = response.prompt_tokens
        backend.close()
    # Same prompt and image, same tokens: the 100x80 image costs 12 image tokens here.
    assert counts[sft_output] == counts[tiny_vlm]
    assert counts[tiny_vlm] is not None and counts[tiny_vlm] > 12


@pytest.mark.slow
def test_grpo_starts_from_an_sft_output(sft_output: Path, cot_export: Path, tmp_path: Path) -> None:
    settings = GrpoSettings(
        model=str(sft_output),
        data=str(cot_export),
        output_dir=str(tmp_path),
        max_steps=2,
        batch_size=4,
        num_generations=4,
        max_completion_length=8,
        logging_steps=1,
        save_steps=100,
        limit=4,
        use_cpu=True,
    )
    trainer = make_grpo_trainer(settings)
    trainer.train()
    assert trainer.state.global_step == 2
    finish_run(trainer, str(tmp_path), merge=False)
    # The GRPO adapter sits on the SFT output, which the hf backend merges first.
    adapter = json.loads((tmp_path / "adapter_config.json").read_text())
    assert Path(adapter["base_model_name_or_path"]) == sft_output

    from medvision.backends.hf import HFBackend

    backend = HFBackend(tmp_path)
    (response,) = backend.generate([_request()])
    assert response.error is None and response.prompt_tokens == _base_prompt_tokens(sft_output)
    backend.close()


def _base_prompt_tokens(model: Path) -> int | None:
    from medvision.backends.hf import HFBackend

    backend = HFBackend(model)
    (response,) = backend.generate([_request()])
    backend.close()
    return response.prompt_tokens
