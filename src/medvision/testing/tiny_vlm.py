"""A tiny randomly initialised Qwen2-VL built offline, for backend and training tests.

:func:`build_tiny_qwen2_vl` writes a complete Hugging Face model folder with no download: a
byte-level BPE tokenizer trained on the spot, a Qwen2-VL chat template, a ``Qwen2VLConfig`` at
toy size with random weights (seeded), a generation config (greedy) and the Qwen2-VL image
processor. ``AutoModelForImageTextToText.from_pretrained(folder)`` loads the model, and
:func:`load_processor` (:func:`medvision.backends.hf.load_processor`, re-exported) loads the
processor: ``AutoProcessor`` where torchvision works, else the image-only subclass of
"workaround A" (``reference/tiny-vlm-offline.md``): the stock
``Qwen2VLProcessor`` insists on a video processor, and that needs torchvision, which has no CPU
wheel matching our CPU torch.

Sizes, chosen so the folder also serves under vLLM (text ``head_dim`` must be >= 32 there):
text hidden 64, 2 layers, 2 attention heads of dim 32, 1 KV head, ``mrope_section=[4, 6, 6]``
(sums to ``head_dim / 2``); vision width 32, 1 block, patch 14 px, spatial merge 2, temporal
patch 2. Images are resized to between :data:`TINY_MIN_PIXELS` and :data:`TINY_MAX_PIXELS`
pixels (multiples of 28 px per side), so a 100x80 image becomes 84x112 and costs 12 image tokens.
About 0.3 M parameters; the folder is under 1.5 MB; building it takes ~1 s after imports.

The generated text is gibberish (random weights); tests compare token ids, never text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medvision.backends.hf_processor import (
    _image_only_processor_class,
    load_processor,
    save_processor,
)

__all__ = [
    "SPECIAL_TOKENS",
    "TINY_MAX_PIXELS",
    "TINY_MIN_PIXELS",
    "TINY_QWEN2_VL_CHAT_TEMPLATE",
    "build_tiny_qwen2_vl",
    "load_processor",
]

#: Qwen2-VL special tokens; they get ids 0..6 in this order.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
#: Fewest pixels (rows * cols) of the image the tiny model sees: 56 x 56.
TINY_MIN_PIXELS = 56 * 56
#: Most pixels (rows * cols) of the image the tiny model sees: 112 x 112.
TINY_MAX_PIXELS = 112 * 112

#: Qwen2-VL chat template. Each image part emits one ``<|vision_start|><|image_pad|>
#: <|vision_end|>``, which the processor expands to ``grid_thw.prod() // merge**2`` pads.
#: Assistant turns sit in their own branch inside ``{% generation %}`` so TRL's
#: ``assistant_only_loss=True`` can mask them (the tag must not sit inside an ``{% if %}``).
TINY_QWEN2_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>"
    "{% endgeneration %}\n"
    "{% else %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Text the BPE tokenizer is trained on: the words, digits and punctuation of MedVision prompts
# and answers, so prompts tokenize into a modest number of ids.
_CORPUS = (
    "Task: Given the input medical image: a 2D axial slice from a 3D MRI or CT scan, "
    "return the bounding box coordinates of the tumour, lesion, organ in the image. "
    "The image size is 256 x 256 pixels and the pixel spacing is 0.75 x 0.75 mm. "
    "Format requirement: [x_min, y_min, x_max, y_max] relative, lower-left origin. "
    "major axis 12.5 mm, minor axis 3.25 mm; the angle is 45.0 degrees; distance 7 mm. "
    '<answer>0.1, 0.2, 0.3, 0.4</answer> {"box": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]} '
    "Let me think step by step. The answer is none."
)


def _train_tokenizer() -> Any:
    """Train the byte-level BPE and wrap it as a Qwen2 tokenizer (eos ``<|im_end|>``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast  # type: ignore[attr-defined]

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    raw.train_from_iterator([_CORPUS] * 20, trainer=trainer)
    return Qwen2TokenizerFast(
        tokenizer_object=raw,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        chat_template=TINY_QWEN2_VL_CHAT_TEMPLATE,
    )


def _tiny_config(vocab_size: int, token_ids: dict[str, int]) -> Any:
    """The toy Qwen2-VL config (sizes in the module docstring)."""
    from transformers import Qwen2VLConfig

    return Qwen2VLConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,  # head_dim 32: the smallest vLLM's CPU attention takes
            "num_key_value_heads": 1,
            "max_position_embeddings": 2048,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [4, 6, 6],  # must sum to head_dim / 2
            },
            "bos_token_id": None,
            "eos_token_id": token_ids["<|im_end|>"],
            "pad_token_id": token_ids["<|endoftext|>"],
            "tie_word_embeddings": False,
        },
        vision_config={
            "depth": 1,
            "embed_dim": 32,
            "hidden_size": 64,  # = text hidden size (the merger projects into it)
            "mlp_ratio": 2,
            "num_heads": 2,
            "in_channels": 3,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=token_ids["<|image_pad|>"],
        video_token_id=token_ids["<|video_pad|>"],
        vision_start_token_id=token_ids["<|vision_start|>"],
        vision_end_token_id=token_ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def build_tiny_qwen2_vl(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny random Qwen2-VL (model, tokenizer, processor) to ``out_dir``, offline.

    The folder loads with ``AutoModelForImageTextToText.from_pretrained`` and
    :func:`load_processor` (``AutoProcessor`` where torchvision imports), and works with
    ``processor.apply_chat_template(..., tokenize=True, return_dict=True)``, ``generate``,
    TRL ``SFTTrainer``/PEFT LoRA and (with a video processor added, see the reference note)
    vLLM. Files: ``config.json``, ``model.safetensors``, ``generation_config.json``,
    ``tokenizer.json``, ``tokenizer_config.json``, ``chat_template.jinja``,
    ``processor_config.json`` / ``preprocessor_config.json``.

    Args:
        out_dir: Folder to write (created with parents; existing files are overwritten).
        seed: Seed of the random weights; the same seed gives the same weights and outputs.

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.
    """
    import torch
    from transformers import GenerationConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer()
    token_ids = {t: int(tokenizer.convert_tokens_to_ids(t)) for t in SPECIAL_TOKENS}
    config = _tiny_config(len(tokenizer), token_ids)

    # Seed a private generator state so building does not disturb the caller's RNG stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2VLForConditionalGeneration(config).eval()  # type: ignore[no-untyped-call]
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        do_sample=False,
        eos_token_id=token_ids["<|im_end|>"],
        pad_token_id=token_ids["<|endoftext|>"],
        bos_token_id=None,
    )
    model.save_pretrained(out)

    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=TINY_MIN_PIXELS,
        max_pixels=TINY_MAX_PIXELS,
        patch_size=14,
        temporal_patch_size=2,
        merge_size=2,
    )
    processor = _image_only_processor_class()(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=TINY_QWEN2_VL_CHAT_TEMPLATE,
    )
    # The subclass name must not leak into the folder: stock loaders look classes up by name.
    save_processor(processor, out)
    return out
