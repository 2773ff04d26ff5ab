"""What a backend really ran with, for the run manifest (``run.json``).

The spec's :class:`~medvision.backends.GenerationConfig` is what the run *asked*; a backend
may send less (the OpenAI body) or get more (transformers merges the checkpoint's
``generation_config``, e.g. a ``repetition_penalty``). Backends that can say so expose
``generation_used(generation) -> dict``; :func:`backend_settings` puts it in the manifest's
``backend_settings["generation_used"]`` next to their ``settings()``.
"""

from __future__ import annotations

from typing import Any

from medvision.backends import Backend, GenerationConfig

__all__ = ["backend_settings"]


def backend_settings(backend: Backend, generation: GenerationConfig) -> dict[str, Any] | None:
    """A backend's settings with the generation settings it really uses.

    Args:
        backend: The backend of the run.
        generation: The run's requested generation settings.

    Returns:
        ``backend.settings()`` (when it has one) plus ``"generation_used"`` (when the
        backend has ``generation_used``); ``None`` when it has neither (the runner then
        records the spec's backend options).
    """
    settings = getattr(backend, "settings", None)
    used = getattr(backend, "generation_used", None)
    if not callable(settings) and not callable(used):
        return None
    out: dict[str, Any] = dict(settings()) if callable(settings) else {"name": backend.name}
    if callable(used):
        out["generation_used"] = used(generation)
    return out
