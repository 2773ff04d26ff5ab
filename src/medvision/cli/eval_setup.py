"""What ``medvision eval`` derives from the model: image policy, chat layout, token limit.

Model backends (``openai``, ``hf``, ``vllm``) default to ``--image-policy auto``: the model's
family row (by name, else a local folder's ``config.json``) gives the image policy, so the
pixel size a prompt states is the size of the image the model sees. When no family fits, the
run stops before its first request with one line naming ``--image-policy``. Baselines see no
image and keep ``native``.
"""

from __future__ import annotations

from dataclasses import dataclass

from medvision.tasks.model_families import (
    AUTO,
    ChatLayout,
    layout_for_model,
    resolve_image_policy,
)

__all__ = [
    "MODEL_BACKENDS",
    "OFFICIAL_MAX_NEW_TOKENS",
    "ModelSettings",
    "model_settings",
]

#: Backends that send images to a real model.
MODEL_BACKENDS = frozenset({"openai", "hf", "vllm"})
#: ``max_new_tokens`` of the 1.2.1 code for every model (official-versions section 8).
OFFICIAL_MAX_NEW_TOKENS = 4096
#: ``max_new_tokens`` of the c221615 vLLM adapters, for models whose row states none.
DEFAULT_MAX_NEW_TOKENS = 1024


@dataclass(frozen=True)
class ModelSettings:
    """The model-dependent settings of one run.

    Attributes:
        image_policy: A registered image-policy name (``auto`` resolved).
        chat_layout: The chat layout (``auto`` resolved; ``generic`` for baselines).
        max_new_tokens: The generation limit in effect.
        model_generation_config: The layout leaves decoding to the checkpoint (hf only).
    """

    image_policy: str
    chat_layout: ChatLayout
    max_new_tokens: int
    model_generation_config: bool


def model_settings(
    backend: str,
    model: str,
    protocol: str,
    *,
    image_policy: str | None,
    chat_layout: str | None,
    max_new_tokens: int | None,
) -> ModelSettings:
    """Resolve the run's image policy, chat layout and token limit.

    Args:
        backend: Backend name.
        model: ``--model`` (served name, hub id or local folder).
        protocol: The run's protocol.
        image_policy: ``--image-policy`` (``None``: ``auto`` for model backends, ``native``
            for baselines).
        chat_layout: ``--chat-layout`` (``None`` = ``auto``; baselines get ``generic``).
        max_new_tokens: ``--max-new-tokens`` (``None``: 4096 under ``official``, else the
            layout's own limit, else 1024).

    Returns:
        The settings.

    Raises:
        ModelFamilyError: ``auto`` and no family fits (one line naming ``--image-policy``),
            or an unknown chat layout.
    """
    is_model = backend in MODEL_BACKENDS
    if image_policy is None:
        image_policy = AUTO if is_model else "native"
    if image_policy == AUTO:
        policy = resolve_image_policy(AUTO, model or backend, protocol)
    else:
        policy = resolve_image_policy(image_policy, model, protocol)
    layout = layout_for_model(chat_layout if is_model else "generic", model)
    if max_new_tokens is None:
        if protocol == "official":
            max_new_tokens = OFFICIAL_MAX_NEW_TOKENS
        else:
            max_new_tokens = layout.max_new_tokens or DEFAULT_MAX_NEW_TOKENS
    return ModelSettings(
        image_policy=policy,
        chat_layout=layout,
        max_new_tokens=max_new_tokens,
        model_generation_config=layout.use_model_generation_config and protocol == "paper-v1",
    )
