"""The ``hf`` backend: Hugging Face transformers image-text-to-text models, in process.

Loads any model ``AutoModelForImageTextToText`` knows (Qwen2/2.5/3-VL, Gemma 3 / MedGemma,
InternVL-HF, LLaVA-OneVision-HF, Llama-3.2-Vision, ...) with its ``AutoProcessor``, renders each
request through the processor's chat template and decodes greedily by default (temperature 0,
as the official runs). Batch size 1 by default: batched HF generation needs left padding and is
where score drift across batch sizes has been reported (reference ``ecosystem.md`` 1.1, 2.3).

Fine-tuned checkpoints work with no glue: pass a folder holding a PEFT adapter
(``adapter_config.json``) as ``model`` and the base model named in its
``base_model_name_or_path`` is loaded, then the adapter (``PeftModel.from_pretrained``);
``merge_adapter=True`` merges it into the weights (``merge_and_unload``) for faster decoding.
A separate ``adapter=`` folder on top of a base ``model`` works the same way.

Structured outputs: a request's ``response_schema`` is ignored here (no constrained decoding
in plain ``generate``); the answer is parsed as free text like any other. Use the ``vllm`` or
``openai`` backend where answers must follow the schema.

torch, transformers and peft are imported lazily, inside the functions that need them.
"""

from __future__ import annotations

import inspect
import io
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from medvision.backends.base import (
    ChatRequest,
    ChatResponse,
    GenerationConfig,
    content_parts,
    isolate_failures,
)
from medvision.backends.hf_processor import (
    ProcessorError,
    load_processor,
    save_processor,
)

__all__ = [
    "HFBackend",
    "ProcessorError",
    "adapter_base_model",
    "finish_reason",
    "load_processor",
    "save_processor",
    "to_hf_messages",
]

DType = Literal["auto", "float32", "bfloat16", "float16"]
_DTYPES: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")
ADAPTER_CONFIG = "adapter_config.json"


# --------------------------------------------------------------------------------------------
# messages


def _png_to_pil(png: bytes, where: str) -> Any:
    """Decode PNG bytes to an RGB PIL image (the processors expect 3 channels)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(png)) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{where}: image is not a readable PNG ({exc})") from exc


def to_hf_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """Convert a request to the transformers chat format, images decoded to PIL.

    Parts keep their order (the official adapters put the text before the image; the runner
    decides). A text-only turn is still a list of typed parts, as multimodal templates expect.

    Args:
        request: The request (its ``hints`` are ignored).

    Returns:
        ``[{"role": ..., "content": [{"type": "text", "text": ...} | {"type": "image",
        "image": PIL.Image}]}]``.

    Raises:
        ValueError: If an image is not a readable PNG (the message names the request).
    """
    out: list[dict[str, Any]] = []
    for m_index, message in enumerate(request.messages):

        def image(png: bytes, p_index: int, m_index: int = m_index) -> dict[str, Any]:
            where = f"request {request.request_id} message {m_index} part {p_index}"
            return {"type": "image", "image": _png_to_pil(png, where)}

        out.append({"role": message.role, "content": content_parts(message, image)})
    return out


def finish_reason(n_generated: int, stopped: bool, max_new_tokens: int) -> str:
    """Why one ``generate`` row ended, in the OpenAI / vLLM words.

    Args:
        n_generated: Tokens generated for the row (up to and including its end-of-sequence).
        stopped: Whether an end-of-sequence token ended the row.
        max_new_tokens: The call's token limit.

    Returns:
        ``"stop"`` when the model ended the answer itself, ``"length"`` when it was cut at
        ``max_new_tokens`` without one.

    Example:
        >>> finish_reason(8, False, 8), finish_reason(3, True, 8)
        ('length', 'stop')
    """
    return "length" if not stopped and n_generated >= max_new_tokens else "stop"


# --------------------------------------------------------------------------------------------
# model loading


def adapter_base_model(adapter_dir: str | Path) -> str:
    """The base model a PEFT adapter folder was trained on.

    Args:
        adapter_dir: Folder holding ``adapter_config.json``.

    Returns:
        Its ``base_model_name_or_path`` (a folder or hub id).

    Raises:
        ValueError: If the file is missing, unreadable or names no base model.
    """
    path = Path(adapter_dir) / ADAPTER_CONFIG
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the adapter config ({exc})") from exc
    base = data.get("base_model_name_or_path") if isinstance(data, dict) else None
    if not isinstance(base, str) or not base:
        raise ValueError(f"{path}: expected a 'base_model_name_or_path' string; found {base!r}")
    return base


def resolve_adapter(model: str | Path, adapter: str | Path | None) -> tuple[str, Path | None]:
    """The base model to load and the LoRA adapter folder to apply, if any.

    Args:
        model: Model folder or hub id, or a PEFT adapter folder (holds ``adapter_config.json``).
        adapter: An explicit adapter folder on top of ``model``, or ``None``.

    Returns:
        ``(base, adapter_dir)``: ``model`` and ``adapter`` as given, or, when ``model`` itself
        is an adapter folder and no ``adapter`` is given, its base model and that folder.

    Raises:
        ValueError: If ``model`` is an adapter folder whose config names no base model.
    """
    if adapter is not None:
        return str(model), Path(adapter)
    if (Path(model) / ADAPTER_CONFIG).is_file():
        return adapter_base_model(model), Path(model)
    return str(model), None


def _has_processor_files(folder: Path) -> bool:
    return any(
        (folder / name).is_file()
        for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json")
    )


def _torch_dtype(dtype: str) -> Any:
    import torch

    if dtype == "auto":
        return "auto"
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


class HFBackend:
    """transformers ``generate`` on image-text-to-text models.

    Args:
        model: Model folder or hub id, or a PEFT adapter folder (``adapter_config.json``), in
            which case its base model is loaded and the adapter applied.
        adapter: A PEFT adapter folder applied on top of ``model`` (alternative to passing
            the adapter folder as ``model``).
        merge_adapter: Merge the adapter into the weights after loading.
        dtype: ``"auto"`` (the checkpoint's dtype), ``"float32"``, ``"bfloat16"`` or
            ``"float16"``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"`` (accelerate's
            ``device_map="auto"``, which spreads a large model over the visible GPUs).
        batch_size: Requests per ``generate`` call (left padding). 1 by default.
        processor_kwargs: Passed to the processor's ``from_pretrained`` (e.g. Qwen
            ``min_pixels``/``max_pixels``; keep them equal to the run's image policy).
        model_kwargs: Passed to the model's ``from_pretrained`` (e.g.
            ``attn_implementation``).
        trust_remote_code: Allow the checkpoint's own Python code (off by default).
        model_generation_config: Pass ``generate()`` only ``max_new_tokens``, so the
            checkpoint's ``generation_config`` decides the decoding (the official Lingshu
            adapter, official-eval-protocol section 7); the request's temperature is ignored.

    Raises:
        ValueError: If ``dtype`` or ``batch_size`` is invalid or an adapter folder is broken.
    """

    name = "hf"

    def __init__(
        self,
        model: str | Path,
        *,
        adapter: str | Path | None = None,
        merge_adapter: bool = False,
        dtype: DType | str = "auto",
        device: str = "cpu",
        batch_size: int = 1,
        processor_kwargs: Mapping[str, Any] | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        trust_remote_code: bool = False,
        model_generation_config: bool = False,
    ) -> None:
        self.model_generation_config = model_generation_config
        if dtype not in _DTYPES:
            raise ValueError(f"hf backend: dtype must be one of {_DTYPES}; found {dtype!r}")
        if batch_size < 1:
            raise ValueError(f"hf backend: batch_size must be >= 1; found {batch_size}")
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.model_id = str(model)
        base, adapter_dir = resolve_adapter(model, adapter)
        self.adapter = str(adapter_dir) if adapter_dir is not None else None
        self.base_model = base
        self.merged = bool(adapter_dir is not None and merge_adapter)

        # Processor: the adapter folder's own copy when training saved one, else the base's.
        proc_source = (
            adapter_dir if adapter_dir is not None and _has_processor_files(adapter_dir) else base
        )
        self.processor_kwargs = dict(processor_kwargs or {})
        self.processor = load_processor(
            proc_source, trust_remote_code=trust_remote_code, **self.processor_kwargs
        )
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        tokenizer.padding_side = "left"  # decoder-only batching: pad on the left
        self._tokenizer = tokenizer
        # transformers >= 5 takes call-time processor options in ``processor_kwargs``.
        takes_dict = (
            "processor_kwargs" in inspect.signature(self.processor.apply_chat_template).parameters
        )
        self._padding_kwargs: dict[str, Any] = (
            {"processor_kwargs": {"padding": True}} if takes_dict else {"padding": True}
        )
        self.model = self._load_model(base, dtype, dict(model_kwargs or {}), trust_remote_code)
        if adapter_dir is not None:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, str(adapter_dir))
            if merge_adapter:
                self.model = self.model.merge_and_unload()
        self.model.eval()
        self._closed = False

    def _load_model(
        self, base: str, dtype: str, kwargs: dict[str, Any], trust_remote_code: bool
    ) -> Any:
        from medvision.backends.hf_models import load_image_text_model

        kwargs.setdefault("dtype", _torch_dtype(dtype))
        if self.device == "auto":
            kwargs.setdefault("device_map", "auto")
        # A base that is itself an adapter (GRPO trained on an SFT output) is merged first.
        model: Any = load_image_text_model(base, trust_remote_code=trust_remote_code, **kwargs)
        if self.device != "auto":
            model = model.to(self.device)
        return model

    # ----------------------------------------------------------------------------------------

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Answer every request (same order); a failing request gets an error response.

        Requests are grouped in chunks of ``batch_size`` with equal generation settings; if a
        batched call fails, its requests are retried one by one so one bad input fails alone.
        """
        if self._closed:
            raise RuntimeError("hf backend: generate() called after close()")
        out: list[ChatResponse] = []
        for start in range(0, len(requests), self.batch_size):
            chunk = list(requests[start : start + self.batch_size])
            if len({q.generation for q in chunk}) > 1:
                for q in chunk:
                    out.extend(isolate_failures([q], self._generate_batch))
            else:
                out.extend(isolate_failures(chunk, self._generate_batch))
        return out

    def _generation_kwargs(self, request: ChatRequest) -> dict[str, Any]:
        g = request.generation
        kwargs: dict[str, Any] = {"max_new_tokens": g.max_new_tokens}
        if self.model_generation_config:
            return kwargs  # the checkpoint's generation_config decides the rest
        if g.temperature > 0:
            kwargs.update(do_sample=True, temperature=g.temperature, top_p=g.top_p)
        else:
            # Greedy whatever the checkpoint's generation_config suggests.
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs

    def _generate_batch(self, chunk: list[ChatRequest]) -> list[ChatResponse]:
        import torch

        start = time.perf_counter()
        conversations = [to_hf_messages(q) for q in chunk]
        inputs = self.processor.apply_chat_template(
            conversations,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            **self._padding_kwargs,
        )
        inputs = inputs.to(self.model.device)
        kwargs = self._generation_kwargs(chunk[0])
        if kwargs.get("do_sample") or self.model_generation_config:
            # The checkpoint's generation_config may sample: seed it too.
            torch.manual_seed(chunk[0].generation.seed)
        with torch.inference_mode():
            output = self.model.generate(**inputs, **kwargs)
        prompt_len = int(inputs["input_ids"].shape[1])
        new_tokens = output[:, prompt_len:]
        texts = self._tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        elapsed = time.perf_counter() - start
        limit = int(kwargs["max_new_tokens"])
        out: list[ChatResponse] = []
        for q, text, n_prompt, row in zip(chunk, texts, prompt_tokens, new_tokens, strict=True):
            n_generated, stopped = self._count_generated(row)
            out.append(
                ChatResponse(
                    request_id=q.request_id,
                    text=text,
                    # Amortised: the batch's wall time shared equally by its requests.
                    latency_s=elapsed / len(chunk),
                    prompt_tokens=int(n_prompt),
                    completion_tokens=n_generated,
                    finish_reason=finish_reason(n_generated, stopped, limit),
                )
            )
        return out

    def _count_generated(self, row: Any) -> tuple[int, bool]:
        """Generated tokens up to and including the first end-of-sequence token.

        Returns:
            ``(n_tokens, stopped)``: ``stopped`` is whether an end-of-sequence token ended it.
        """
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        ids = [int(t) for t in row.tolist()]
        for i, t in enumerate(ids):
            if t in eos_ids:
                return i + 1, True
        # No eos: the row never finished, so generate pads nothing in it and every position is
        # a generated token (a random model may well generate the pad id itself); the batch
        # only stops with an unfinished row at max_new_tokens.
        return len(ids), False

    def settings(self) -> dict[str, Any]:
        """Backend settings for the run manifest (model, adapter, device, processor options)."""
        return {
            "name": self.name,
            "model": self.model_id,
            "base_model": self.base_model,
            "adapter": self.adapter,
            "merged": self.merged,
            "device": self.device,
            "dtype": self.dtype,
            "batch_size": self.batch_size,
            "processor_kwargs": dict(self.processor_kwargs),
            "model_generation_config": self.model_generation_config,
        }

    def generation_used(self, generation: GenerationConfig) -> dict[str, Any]:
        """The decoding settings ``generate`` really runs with for ``generation``.

        transformers merges the call's keywords over the checkpoint's ``generation_config``,
        so settings the run never asked for (e.g. a ``repetition_penalty`` shipped with the
        model) still apply; this returns that merge (values ``None`` left out).

        Args:
            generation: The run's generation settings.

        Returns:
            The checkpoint's generation config (as a dict) updated with the call's keywords.
        """
        probe = ChatRequest(request_id="", messages=(), generation=generation)
        kwargs = self._generation_kwargs(probe)
        config = self.model.generation_config if self.model is not None else None
        base: dict[str, Any] = config.to_diff_dict() if config is not None else {}
        merged = {**base, **kwargs}
        return {
            k: v
            for k, v in sorted(merged.items())
            if v is not None and not k.startswith("_") and k != "transformers_version"
        }

    def close(self) -> None:
        """Drop the model and free accelerator memory; calling it twice is harmless."""
        if self._closed:
            return
        self._closed = True
        self.model = None
        import gc

        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # torch went away: nothing to free
            pass
