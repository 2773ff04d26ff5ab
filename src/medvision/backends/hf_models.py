"""Load an image-text-to-text model from a model folder or a chain of LoRA adapter folders.

A fine-tuning run started from another run's output (GRPO on an SFT adapter) saves an
adapter whose base is that output, itself an adapter: ``adapter -> adapter -> model``.
:func:`load_image_text_model` follows the chain down to the real model and merges each
adapter into the weights on the way up, so every delta of the chain is applied exactly once.

transformers and peft are imported lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["MAX_ADAPTER_CHAIN", "is_adapter_folder", "load_image_text_model"]

#: Most adapter folders followed down to a model (a loop of configs would never end).
MAX_ADAPTER_CHAIN = 8
_ADAPTER_CONFIG = "adapter_config.json"


def is_adapter_folder(model: str | Path) -> bool:
    """Whether ``model`` is a folder holding a PEFT adapter (``adapter_config.json``)."""
    return (Path(model) / _ADAPTER_CONFIG).is_file()


def load_image_text_model(model: str | Path, **kwargs: Any) -> Any:
    """``AutoModelForImageTextToText`` of a model, or of an adapter chain merged in order.

    Args:
        model: Model folder or hub id, or a PEFT adapter folder (its base may itself be one).
        **kwargs: Passed to the base model's ``from_pretrained`` (dtype, device map...).

    Returns:
        The model; when ``model`` is an adapter folder, its base with every adapter of the
        chain merged (``merge_and_unload``), and ``name_or_path`` set to ``model`` so
        an adapter trained on top records this folder as its base.

    Raises:
        ValueError: An adapter config names no base model, or the chain is longer than
            :data:`MAX_ADAPTER_CHAIN` (a loop).
    """
    from medvision.backends.hf import adapter_base_model

    chain: list[str] = []
    base = str(model)
    while is_adapter_folder(base):
        if len(chain) >= MAX_ADAPTER_CHAIN:
            raise ValueError(
                f"{model}: more than {MAX_ADAPTER_CHAIN} adapter folders in a row "
                f"({' -> '.join(chain)}); is an adapter config naming itself?"
            )
        chain.append(base)
        base = adapter_base_model(base)
    from transformers import AutoModelForImageTextToText

    net: Any = AutoModelForImageTextToText.from_pretrained(base, **kwargs)
    if not chain:
        return net
    from peft import PeftModel

    for adapter in reversed(chain):  # the adapter nearest the model first
        net = PeftModel.from_pretrained(net, adapter).merge_and_unload()
    # PEFT records ``model.name_or_path`` as the base of an adapter trained on top.
    net.config.name_or_path = str(model)
    net.name_or_path = str(model)
    return net
