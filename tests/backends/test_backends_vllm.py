"""The ``vllm`` backend with vLLM mocked (vLLM is not installed here): message conversion,
sampling parameters, LoRA and structured-output wiring, batching and error isolation.

The fake ``vllm`` module records what the backend passes to ``LLM(...)``, ``LLM.chat(...)``,
``SamplingParams(...)``, ``StructuredOutputsParams(...)`` and ``LoRARequest(...)``; the
signatures used are those of the vLLM docs (offline ``LLM.chat`` with a list of
conversations, ``structured_outputs=`` since v0.12). No real engine runs here.
"""

from __future__ import annotations

import base64
import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from medvision.backends import ChatRequest, GenerationConfig, ImagePart, Message, TextPart
from medvision.backends.registry import create_backend
from medvision.backends.vllm import VLLMBackend, sampling_params_kwargs, to_openai_messages

PNG = b"\x89PNG\r\n\x1a\nfake-bytes"


@dataclass
class _Completion:
    text: str
    token_ids: list[int]


@dataclass
class _Output:
    prompt_token_ids: list[int]
    outputs: list[_Completion]


@dataclass
class _Calls:
    llm_kwargs: list[dict[str, Any]] = field(default_factory=list)
    chats: list[dict[str, Any]] = field(default_factory=list)
    lora: list[tuple[Any, ...]] = field(default_factory=list)


@pytest.fixture()
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> _Calls:
    calls = _Calls()

    class SamplingParams:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs

    class StructuredOutputsParams:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs

    class LoRARequest:
        def __init__(self, *args: Any) -> None:
            calls.lora.append(args)
            self.args = args

    class LLM:
        def __init__(self, **kwargs: Any) -> None:
            calls.llm_kwargs.append(kwargs)

        def chat(
            self, messages: list[Any], sampling_params: Any = None, **kwargs: Any
        ) -> list[_Output]:
            calls.chats.append({"messages": messages, "sampling_params": sampling_params, **kwargs})
            outs = []
            for conv in messages:
                text = conv[0]["content"][0].get("text", "")
                if "EXPLODE" in text:
                    raise RuntimeError("engine rejected the prompt")
                outs.append(
                    _Output(list(range(len(text))), [_Completion(f"echo:{text}", [1, 2, 3])])
                )
            return outs

    vllm = types.ModuleType("vllm")
    vllm.LLM = LLM  # type: ignore[attr-defined]
    vllm.SamplingParams = SamplingParams  # type: ignore[attr-defined]
    sp = types.ModuleType("vllm.sampling_params")
    sp.StructuredOutputsParams = StructuredOutputsParams  # type: ignore[attr-defined]
    lora = types.ModuleType("vllm.lora")
    lora_req = types.ModuleType("vllm.lora.request")
    lora_req.LoRARequest = LoRARequest  # type: ignore[attr-defined]
    for name, mod in {
        "vllm": vllm,
        "vllm.sampling_params": sp,
        "vllm.lora": lora,
        "vllm.lora.request": lora_req,
    }.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return calls


def _req(rid: str, text: str, **gen: Any) -> ChatRequest:
    return ChatRequest(
        rid,
        (Message("user", (TextPart(text), ImagePart(PNG))),),
        GenerationConfig(**gen),
        hints={"target": [1.0]},
    )


def test_messages_are_openai_parts_with_png_data_urls_in_order() -> None:
    req = ChatRequest(
        "m",
        (
            Message("system", (TextPart("You are an expert radiologist."),)),
            Message("user", (ImagePart(PNG), TextPart("How long?"))),
        ),
    )
    msgs = to_openai_messages(req)
    assert msgs[0] == {
        "role": "system",
        "content": [{"type": "text", "text": "You are an expert radiologist."}],
    }
    image, text = msgs[1]["content"]
    assert text == {"type": "text", "text": "How long?"}
    url = image["image_url"]["url"]
    assert image["type"] == "image_url" and url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == PNG
    assert "target" not in json.dumps(msgs)  # hints never reach the model


def test_sampling_kwargs_follow_the_generation_config() -> None:
    greedy = sampling_params_kwargs(GenerationConfig(max_new_tokens=64))
    assert greedy == {"max_tokens": 64, "temperature": 0.0, "top_p": 1.0, "seed": 0}
    sampled = sampling_params_kwargs(
        GenerationConfig(max_new_tokens=8, temperature=0.7, top_p=0.9, seed=5), {"type": "object"}
    )
    assert sampled == {
        "max_tokens": 8,
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 5,
        "json_schema": {"type": "object"},
    }


def test_engine_options_and_one_batched_chat_call(fake_vllm: _Calls) -> None:
    backend = VLLMBackend(
        "Qwen/Qwen2.5-VL-7B-Instruct",
        dtype="bfloat16",
        tensor_parallel_size=2,
        max_model_len=8192,
        mm_processor_kwargs={"max_pixels": 1280 * 28 * 28},
    )
    (kw,) = fake_vllm.llm_kwargs
    assert kw["model"] == "Qwen/Qwen2.5-VL-7B-Instruct" and kw["dtype"] == "bfloat16"
    assert kw["tensor_parallel_size"] == 2 and kw["max_model_len"] == 8192
    assert kw["limit_mm_per_prompt"] == {"image": 1}
    assert kw["mm_processor_kwargs"] == {"max_pixels": 1003520}
    assert "enable_lora" not in kw and kw["trust_remote_code"] is False
    out = backend.generate(
        [_req("a", "first", max_new_tokens=16), _req("b", "second", temperature=0.5, seed=3)]
    )
    assert len(fake_vllm.chats) == 1  # the whole batch in one LLM.chat
    call = fake_vllm.chats[0]
    assert len(call["messages"]) == 2 and call["use_tqdm"] is False and "lora_request" not in call
    p0, p1 = call["sampling_params"]
    assert p0.kwargs == {"max_tokens": 16, "temperature": 0.0, "top_p": 1.0, "seed": 0}
    assert p1.kwargs["temperature"] == 0.5 and p1.kwargs["seed"] == 3
    assert [r.text for r in out] == ["echo:first", "echo:second"]
    assert [r.prompt_tokens for r in out] == [5, 6] and [r.completion_tokens for r in out] == [3, 3]
    assert all(r.error is None and r.latency_s >= 0 for r in out)
    backend.close()
    backend.close()


def test_json_schema_becomes_structured_outputs(fake_vllm: _Calls) -> None:
    schema = {"type": "object", "properties": {"value": {"type": "number"}}, "required": ["value"]}
    backend = VLLMBackend("m", json_schema=schema)
    backend.generate([_req("a", "q")])
    (params,) = fake_vllm.chats[0]["sampling_params"]
    structured = params.kwargs["structured_outputs"]
    assert structured.kwargs == {"json": schema}
    assert "json_schema" not in params.kwargs


def test_a_failing_request_is_isolated(fake_vllm: _Calls) -> None:
    backend = VLLMBackend("m")
    out = backend.generate([_req("a", "fine"), _req("b", "EXPLODE now"), _req("c", "also fine")])
    assert [r.request_id for r in out] == ["a", "b", "c"]
    assert out[0].text == "echo:fine" and out[2].text == "echo:also fine"
    assert out[1].text == "" and out[1].error is not None and "engine rejected" in out[1].error
    assert len(fake_vllm.chats) == 1 + 3  # the batch, then one by one


def test_adapter_folder_is_served_with_lora_on_its_base(fake_vllm: _Calls, tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "base/model", "r": 8})
    )
    backend = VLLMBackend(tmp_path, max_lora_rank=16)
    kw = fake_vllm.llm_kwargs[0]
    assert kw["model"] == "base/model" and kw["enable_lora"] is True and kw["max_lora_rank"] == 16
    assert fake_vllm.lora == [("medvision-adapter", 1, str(tmp_path))]
    backend.generate([_req("a", "q")])
    assert fake_vllm.chats[0]["lora_request"].args[2] == str(tmp_path)
    with pytest.raises(ValueError, match="merge_adapter"):
        VLLMBackend(tmp_path, merge_adapter=True)


def test_registry_builds_vllm_and_missing_vllm_is_a_clear_error(
    fake_vllm: _Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = create_backend("vllm", model="m", seed=7)
    assert backend.name == "vllm" and fake_vllm.llm_kwargs[-1]["seed"] == 7
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(ImportError, match="pip install vllm"):
        VLLMBackend("m")
