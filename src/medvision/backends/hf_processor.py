"""Load and save the processor of a Hugging Face VLM, without torchvision if need be.

Without torchvision (no CPU wheel matches our CPU torch), transformers cannot build the stock
Qwen2/2.5-VL processor: it insists on a video processor. The image-only subclass of
"workaround A" (``reference/tiny-vlm-offline.md``) loads instead, but its private class name
must never reach a saved folder: ``AutoProcessor`` looks the class up by that name, fails,
and silently returns a bare tokenizer, so a fine-tuned model would be evaluated (and GRPO
trained) without its images. :func:`save_processor` writes the stock name;
:func:`load_processor` repairs folders saved before that, and refuses a processor without an
image processor instead of returning a tokenizer.

transformers is imported lazily.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "ProcessorError",
    "load_processor",
    "save_processor",
]

#: Files of a saved processor that record its class name.
_CLASS_FILES = ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json")
#: Our image-only subclass's name (never written by :func:`save_processor`).
_PRIVATE_NAME = "_ImageOnlyQwen2VLProcessor"
_QWEN_PROCESSORS = ("Qwen2VLProcessor", "Qwen2_5_VLProcessor", _PRIVATE_NAME)


class ProcessorError(ValueError):
    """A model folder's processor cannot prepare images (it would evaluate text only)."""


@cache
def _image_only_processor_class() -> type[Any]:
    """``Qwen2VLProcessor`` without the video attribute, so it loads without torchvision.

    ``ProcessorMixin.get_attributes()`` reads the ``__init__`` signature, so dropping
    ``video_processor`` from it removes the attribute ("workaround A" of
    ``reference/tiny-vlm-offline.md``).
    """
    from transformers import Qwen2VLProcessor

    class _ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
        def __init__(
            self,
            image_processor: Any = None,
            tokenizer: Any = None,
            chat_template: str | None = None,
            **kwargs: Any,
        ) -> None:
            super().__init__(  # type: ignore[no-untyped-call]
                image_processor=image_processor,
                tokenizer=tokenizer,
                chat_template=chat_template,
                **kwargs,
            )

    return _ImageOnlyQwen2VLProcessor


def _recorded_classes(folder: Path) -> set[str]:
    """The ``processor_class`` names a saved processor folder records."""
    names: set[str] = set()
    for name in _CLASS_FILES:
        path = folder / name
        if path.is_file():
            try:
                value = json.loads(path.read_text()).get("processor_class")
            except (OSError, ValueError):
                continue
            if isinstance(value, str):
                names.add(value)
    return names


def _is_qwen2_vl_folder(model_dir: str | Path) -> bool:
    """A Qwen2/2.5-VL model folder (``config.json``) or a processor saved from one."""
    folder = Path(model_dir)
    config = folder / "config.json"
    if config.is_file():
        model_type = json.loads(config.read_text()).get("model_type", "")
        if model_type in ("qwen2_vl", "qwen2_5_vl"):
            return True
    return bool(_recorded_classes(folder) & set(_QWEN_PROCESSORS))


def load_processor(model_dir: str | Path, **kwargs: Any) -> Any:
    """Load the processor of a VLM, without torchvision if need be; never a bare tokenizer.

    Tries ``AutoProcessor.from_pretrained`` (the normal path; it works for every model where
    torchvision imports). If that fails because a Qwen2/2.5-VL video processor cannot be built
    (no torchvision, or none saved in the folder), or the folder records our private
    image-only class name (saved by an older ``medvision train``), loads the image-only
    Qwen2-VL processor. Any other error propagates.

    Args:
        model_dir: Model folder (or hub id, where a hub is reachable).
        **kwargs: Passed to ``from_pretrained`` (e.g. ``min_pixels``/``max_pixels``).

    Returns:
        A processor with ``apply_chat_template``, ``tokenizer`` and ``image_processor``.

    Raises:
        ProcessorError: What loads has no image processor (e.g. ``AutoProcessor`` fell back
            to a tokenizer): the model would be evaluated without its images.
    """
    from transformers import AutoProcessor

    folder = Path(model_dir)
    if _PRIVATE_NAME in _recorded_classes(folder):
        processor: Any = _image_only_processor_class().from_pretrained(str(model_dir), **kwargs)
    else:
        try:
            processor = AutoProcessor.from_pretrained(str(model_dir), **kwargs)  # type: ignore[no-untyped-call]
        except (OSError, ImportError, AttributeError, ValueError) as exc:
            text = str(exc).lower()
            if not (("video" in text or "torchvision" in text) and _is_qwen2_vl_folder(model_dir)):
                raise
            processor = _image_only_processor_class().from_pretrained(str(model_dir), **kwargs)
    if getattr(processor, "image_processor", None) is None:
        raise ProcessorError(
            f"{model_dir}: the processor that loads is a {type(processor).__name__} with no "
            "image processor, so images would be dropped from every prompt; the folder needs "
            "the model's processor files (processor_config.json or preprocessor_config.json "
            "naming a processor class transformers knows)"
        )
    return processor


def save_processor(processor: Any, folder: str | Path) -> None:
    """Save a processor so that :func:`load_processor` and ``AutoProcessor`` rebuild it.

    The image-only subclass is saved under the stock ``Qwen2VLProcessor`` name.

    Args:
        processor: A loaded processor.
        folder: Target folder (created).
    """
    out = Path(folder)
    processor.save_pretrained(str(out))
    for name in _CLASS_FILES:
        path = out / name
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        if data.get("processor_class") == _PRIVATE_NAME:
            data["processor_class"] = "Qwen2VLProcessor"
            path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
