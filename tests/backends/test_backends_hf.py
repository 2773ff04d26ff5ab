"""The ``hf`` backend end to end on a tiny random Qwen2-VL built on the spot (no download)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medvision.backends import ChatRequest, GenerationConfig, ImagePart, Message, TextPart
from medvision.backends.hf import HFBackend, adapter_base_model, load_processor, to_hf_messages
from medvision.backends.registry import create_backend
from medvision.runs.records import read_records
from medvision.runs.runner import Runner, RunSpec
from medvision.testing.tiny_vlm import build_tiny_qwen2_vl


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("tiny_hf") / "model", seed=0)


def _png(h: int, w: int, value: int = 90) -> bytes:
    buf = io.BytesIO()
    img = np.full((h, w), value, dtype=np.uint8)
    img[h // 4 : h // 2, w // 3 : w // 2] = 250  # a bright "lesion"
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _request(
    rid: str, h: int, w: int, text: str = "Estimate the box.", max_new: int = 10
) -> ChatRequest:
    msg = Message("user", (TextPart(text), ImagePart(_png(h, w))))
    return ChatRequest(rid, (msg,), GenerationConfig(max_new_tokens=max_new))


def test_to_hf_messages_keeps_part_order_and_decodes_png() -> None:
    req = _request("a", 40, 60)
    (msg,) = to_hf_messages(req)
    assert msg["role"] == "user"
    assert [p["type"] for p in msg["content"]] == ["text", "image"]
    image = msg["content"][1]["image"]
    assert image.size == (60, 40) and image.mode == "RGB"  # PIL size is (W, H)


def test_generate_returns_text_tokens_and_latency_per_request(tiny_dir: Path) -> None:
    backend = HFBackend(tiny_dir)
    requests = [
        _request("r0", 60, 80),
        _request("r1", 100, 70, "Estimate the major axis."),
        _request("r2", 56, 56, max_new=3),
    ]
    out = backend.generate(requests)
    backend.close()
    assert [r.request_id for r in out] == ["r0", "r1", "r2"]
    for req, resp in zip(requests, out, strict=True):
        assert resp.error is None
        assert isinstance(resp.text, str) and resp.text
        assert resp.latency_s > 0
        assert 1 <= resp.completion_tokens <= req.generation.max_new_tokens  # type: ignore[operator]
    # Prompt length, counted independently with the processor on one conversation.
    processor = load_processor(tiny_dir)
    ids = processor.apply_chat_template(
        to_hf_messages(requests[1]),
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
    )["input_ids"]
    assert out[1].prompt_tokens == ids.shape[1]
    # Images of different sizes cost different numbers of image tokens.
    assert out[0].prompt_tokens != out[1].prompt_tokens


def test_greedy_matches_plain_generate_and_batching_changes_nothing(tiny_dir: Path) -> None:
    from transformers import AutoModelForImageTextToText

    requests = [_request(f"q{i}", 50 + 17 * i, 90 - 11 * i) for i in range(3)]
    single = HFBackend(tiny_dir, batch_size=1).generate(requests)
    batched = HFBackend(tiny_dir, batch_size=3).generate(requests)
    assert [r.text for r in single] == [r.text for r in batched]
    assert [r.completion_tokens for r in single] == [r.completion_tokens for r in batched]
    # Independent reference: the model's own greedy generate on the first request.
    processor = load_processor(tiny_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_dir)
    inputs = processor.apply_chat_template(
        to_hf_messages(requests[0]),
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
    )
    ref = model.generate(**inputs, max_new_tokens=10, do_sample=False)
    text = processor.tokenizer.decode(
        ref[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True
    )
    assert single[0].text == text


def test_a_bad_image_fails_alone_in_a_batch(tiny_dir: Path) -> None:
    bad = ChatRequest(
        "bad",
        (Message("user", (TextPart("x"), ImagePart(b"not a png"))),),
        GenerationConfig(max_new_tokens=4),
    )
    out = HFBackend(tiny_dir, batch_size=4).generate([_request("ok", 64, 64, max_new=4), bad])
    assert out[0].error is None and out[0].text
    assert out[1].text == "" and out[1].error is not None
    assert "request bad" in out[1].error and "PNG" in out[1].error


def test_options_are_validated_and_registry_builds_hf(tiny_dir: Path) -> None:
    with pytest.raises(ValueError, match="dtype"):
        HFBackend(tiny_dir, dtype="float8")
    with pytest.raises(ValueError, match="batch_size"):
        HFBackend(tiny_dir, batch_size=0)
    backend = create_backend("hf", model=str(tiny_dir), dtype="float32")
    assert backend.name == "hf"
    backend.close()
    backend.close()  # harmless twice
    with pytest.raises(RuntimeError, match="after close"):
        backend.generate([_request("z", 32, 32)])


@pytest.fixture(scope="module")
def adapter_dir(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny_dir)
    torch.manual_seed(1)
    # init_lora_weights=False: random A and B, so the adapter visibly changes the outputs.
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, config)
    out = tmp_path_factory.mktemp("adapter") / "lora"
    peft_model.save_pretrained(out)
    return out


def test_peft_adapter_folder_loads_its_base_and_merges(tiny_dir: Path, adapter_dir: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    assert Path(adapter_base_model(adapter_dir)).resolve() == tiny_dir.resolve()
    requests = [_request("a0", 64, 96, max_new=8), _request("a1", 80, 60, max_new=8)]
    base_out = HFBackend(tiny_dir).generate(requests)
    lora = HFBackend(adapter_dir)
    assert (
        lora.adapter == str(adapter_dir) and Path(lora.base_model).resolve() == tiny_dir.resolve()
    )
    lora_out = lora.generate(requests)
    merged = HFBackend(adapter_dir, merge_adapter=True)
    assert not isinstance(merged.model, PeftModel)
    merged_out = merged.generate(requests)
    explicit = HFBackend(tiny_dir, adapter=adapter_dir).generate(requests)
    assert [r.text for r in lora_out] != [r.text for r in base_out]
    assert [r.text for r in merged_out] == [r.text for r in lora_out]
    assert [r.text for r in explicit] == [r.text for r in lora_out]
    # Independent reference: PEFT's own loading path.
    model = PeftModel.from_pretrained(
        AutoModelForImageTextToText.from_pretrained(tiny_dir), str(adapter_dir)
    ).eval()
    processor = load_processor(tiny_dir)
    inputs = processor.apply_chat_template(
        to_hf_messages(requests[0]),
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
    )
    ref = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert (
        processor.tokenizer.decode(ref[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        == lora_out[0].text
    )


def test_broken_adapter_config_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 4}))
    with pytest.raises(ValueError, match="base_model_name_or_path"):
        HFBackend(tmp_path)


def test_runner_with_hf_backend_counts_parse_failures(
    tiny_dir: Path, mini_store: Path, tmp_path: Path
) -> None:
    spec = RunSpec(
        dataset_dir=str(mini_store),
        backend="hf",
        model="tiny-qwen2-vl",
        protocol="official",
        image_policy="qwen2-vl",
        limit=1,
        generation=GenerationConfig(max_new_tokens=12),
        backend_options={"model": str(tiny_dir), "dtype": "float32"},
        batch_size=4,
    )
    summary = Runner(spec, tmp_path / "run").run()
    records = read_records(tmp_path / "run" / "records.jsonl")
    assert len(records) == summary["num_records"] >= 3
    assert {r.family for r in records} == {"detection", "tl", "ad"}
    assert all(r.backend == "hf" and r.latency_s > 0 for r in records)
    assert all(r.status != "backend_error" for r in records)
    failed = [r for r in records if r.status != "ok"]
    # A random model does not write "<answer>" blocks: the official parser fails it.
    assert len(failed) >= 1
    assert sum(summary["status_counts"].values()) == len(records)
    assert summary["status_counts"].get("ok", 0) == len(records) - len(failed)


@pytest.mark.parametrize("hw", [(80, 100), (240, 240), (37, 150), (512, 300)])
def test_qwen_policy_predicts_the_size_the_processor_gives(
    tiny_dir: Path, hw: tuple[int, int]
) -> None:
    from medvision.tasks.image_policy import ImagePolicy
    from medvision.testing.tiny_vlm import TINY_MAX_PIXELS, TINY_MIN_PIXELS

    processor = load_processor(tiny_dir)
    image = Image.fromarray(np.zeros(hw, dtype=np.uint8)).convert("RGB")
    grid = processor.image_processor(images=[image], return_tensors="pt")["image_grid_thw"][
        0
    ].tolist()
    seen_by_model = (grid[1] * 14, grid[2] * 14)  # (rows, cols) in pixels
    policy = ImagePolicy(
        name="tiny", kind="qwen_smart", min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS
    )
    assert policy.seen_hw(hw) == seen_by_model


def test_model_generation_config_sends_only_the_token_limit() -> None:
    # The official Lingshu adapter passes no sampling arguments: the checkpoint decides.
    backend = object.__new__(HFBackend)
    request = ChatRequest("r", (), GenerationConfig(max_new_tokens=7, temperature=0.0))
    backend.model_generation_config = True
    assert backend._generation_kwargs(request) == {"max_new_tokens": 7}
    backend.model_generation_config = False
    assert backend._generation_kwargs(request)["do_sample"] is False


def test_a_folder_whose_processor_has_no_image_processor_is_refused(
    tiny_dir: Path, tmp_path: Path
) -> None:
    from medvision.backends.hf import ProcessorError

    text_only = tmp_path / "text_only"
    load_processor(tiny_dir).tokenizer.save_pretrained(text_only)
    config = text_only / "tokenizer_config.json"
    data = json.loads(config.read_text())
    data["processor_class"] = "NotARealProcessor"  # AutoProcessor then returns the tokenizer
    config.write_text(json.dumps(data))
    with pytest.raises(ProcessorError, match="no image processor"):
        load_processor(text_only)


def test_processor_saved_under_the_private_class_name_still_loads_with_images(
    tiny_dir: Path, tmp_path: Path
) -> None:
    from medvision.backends.hf import save_processor

    legacy = tmp_path / "legacy"
    processor = load_processor(tiny_dir)
    processor.save_pretrained(legacy)  # what `medvision train` saved before the fix
    assert "_ImageOnly" in (legacy / "processor_config.json").read_text()
    assert load_processor(legacy).image_processor is not None
    fixed = tmp_path / "fixed"
    save_processor(processor, fixed)
    assert "_ImageOnly" not in (fixed / "processor_config.json").read_text()
    assert load_processor(fixed).image_processor is not None
