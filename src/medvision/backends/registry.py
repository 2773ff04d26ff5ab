"""The explicit list of backends, by name.

Add a backend by adding one factory to :data:`BACKENDS`. Factories of backends with heavy
dependencies (torch, transformers, vllm) import them inside the factory, so ``import medvision``
stays light (see ``_hf`` and ``_vllm`` below).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from medvision.backends.base import Backend
from medvision.backends.baselines import OracleBaseline, PriorBaseline, RandomBaseline

__all__ = ["BACKENDS", "BackendFactory", "UnknownBackendError", "create_backend"]

BackendFactory = Callable[..., Backend]


class UnknownBackendError(ValueError):
    """No backend is registered under the requested name."""


def _openai(model: str, **options: Any) -> Backend:
    from medvision.backends.openai_compat import OpenAICompatBackend  # lazy: httpx client

    return OpenAICompatBackend(model, **options)


def _hf(**options: Any) -> Backend:
    from medvision.backends.hf import HFBackend  # lazy: torch, transformers, peft

    return HFBackend(**options)


def _vllm(**options: Any) -> Backend:
    from medvision.backends.vllm import VLLMBackend  # lazy: vllm

    return VLLMBackend(**options)


BACKENDS: dict[str, BackendFactory] = {
    "random": RandomBaseline,
    "prior": PriorBaseline,
    "oracle": OracleBaseline,
    "openai": _openai,  # any OpenAI-compatible server (vLLM/SGLang/Ollama serve, hosted APIs)
    "hf": _hf,  # transformers image-text-to-text, in process
    "vllm": _vllm,  # vLLM offline engine (LLM.chat)
}


def create_backend(name: str, **options: Any) -> Backend:
    """Create the backend registered as ``name`` with keyword ``options``.

    Args:
        name: A key of :data:`BACKENDS` (``"random"``, ``"prior"``, ``"oracle"``, ...).
        **options: Passed to the factory (e.g. ``seed=0`` for ``"random"``).

    Returns:
        The backend.

    Raises:
        UnknownBackendError: If ``name`` is not registered (the message lists known names).
        TypeError: If the factory does not accept ``options`` (the message names the backend).
    """
    try:
        factory = BACKENDS[name]
    except KeyError:
        raise UnknownBackendError(
            f"unknown backend {name!r}; known backends: {', '.join(sorted(BACKENDS))}"
        ) from None
    try:
        return factory(**options)
    except TypeError as exc:
        raise TypeError(f"backend {name!r} rejected options {sorted(options)}: {exc}") from exc
