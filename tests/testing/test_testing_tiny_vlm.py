"""The tiny offline Qwen2-VL builder: loadable, deterministic, sized as documented."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from medvision.testing.tiny_vlm import (
    SPECIAL_TOKENS,
    build_tiny_qwen2_vl,
    load_processor,
)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def _messages(image: Any, text: str) -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [{"type": "image", "image": image}, {"type": "text", "text": text}],
        }
    ]


def test_folder_has_the_hf_files_and_vllm_compatible_sizes(tiny_dir: Path) -> None:
    names = {p.name for p in tiny_dir.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "chat_template.jinja",
        "generation_config.json",
    } <= names
    config = json.loads((tiny_dir / "config.json").read_text())
    text = config["text_config"]
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    assert head_dim >= 32  # vLLM CPU attention rejects smaller heads
    assert sum(text["rope_parameters"]["mrope_section"]) == head_dim // 2
    # The saved folder names the stock processor class, not the test subclass.
    for name in ("processor_config.json", "tokenizer_config.json"):
        data = json.loads((tiny_dir / name).read_text())
        assert data.get("processor_class", "Qwen2VLProcessor") == "Qwen2VLProcessor"
    assert sum(p.stat().st_size for p in tiny_dir.iterdir()) < 1_500_000


def test_tokenizer_specials_and_processor_image_expansion(tiny_dir: Path) -> None:
    from PIL import Image

    processor = load_processor(tiny_dir)
    tok = processor.tokenizer
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(
        range(len(SPECIAL_TOKENS))
    )
    assert tok.eos_token == "<|im_end|>"
    image = Image.fromarray(np.zeros((80, 100, 3), dtype=np.uint8))  # rows 80, cols 100
    inputs = processor.apply_chat_template(
        _messages(image, "box?"),
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
    )
    # smart resize: 80x100 -> 84x112 rows x cols -> grid (1, 6, 8) patches -> 48 / 2**2 = 12 tokens.
    assert inputs["image_grid_thw"].tolist() == [[1, 6, 8]]
    pad = tok.convert_tokens_to_ids("<|image_pad|>")
    assert int((inputs["input_ids"] == pad).sum()) == 12
    prompt = tok.decode(inputs["input_ids"][0])
    assert prompt.endswith("box?<|im_end|>\n<|im_start|>assistant\n")


def test_generate_is_deterministic_per_seed(tiny_dir: Path, tmp_path: Path) -> None:
    from PIL import Image
    from transformers import AutoModelForImageTextToText

    image = Image.fromarray(np.full((64, 64, 3), 127, dtype=np.uint8))

    def run(folder: Path) -> list[int]:
        processor = load_processor(folder)
        model = AutoModelForImageTextToText.from_pretrained(folder)
        inputs = processor.apply_chat_template(
            _messages(image, "size?"),
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
        )
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
        return [int(t) for t in out[0, inputs["input_ids"].shape[1] :]]

    first = run(tiny_dir)
    assert 1 <= len(first) <= 8
    same = build_tiny_qwen2_vl(tmp_path / "same", seed=0)
    other = build_tiny_qwen2_vl(tmp_path / "other", seed=1)
    assert run(same) == first
    w0 = (tiny_dir / "model.safetensors").read_bytes()
    assert (same / "model.safetensors").read_bytes() == w0
    assert (other / "model.safetensors").read_bytes() != w0


def test_building_does_not_touch_the_global_rng(tmp_path: Path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_qwen2_vl(tmp_path / "m", seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_chat_template_marks_assistant_tokens_for_completion_only_loss(tiny_dir: Path) -> None:
    processor = load_processor(tiny_dir)
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "angle?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "45 degrees"}]},
    ]
    out = processor.tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    mask = np.asarray(out["assistant_masks"])
    ids = np.asarray(out["input_ids"])
    assert 0 < mask.sum() < len(ids)
    assert processor.tokenizer.decode(ids[mask == 1]) == "45 degrees<|im_end|>"
