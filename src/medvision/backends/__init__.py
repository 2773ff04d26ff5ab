"""Backends: chat messages and PNG images in, text out (no knowledge of datasets or tasks).

:class:`Backend` is the protocol; :mod:`~medvision.backends.baselines` holds the random, prior
and oracle baselines; :func:`create_backend` builds one by name from :data:`BACKENDS`.
"""

from medvision.backends.base import (
    Backend,
    BackendUnavailable,
    ChatRequest,
    ChatResponse,
    GenerationConfig,
    HintError,
    ImagePart,
    Message,
    TextPart,
)
from medvision.backends.baselines import (
    OracleBaseline,
    PriorBaseline,
    RandomBaseline,
    fit_priors,
    format_answer,
    random_boxes_rel,
)
from medvision.backends.registry import BACKENDS, UnknownBackendError, create_backend

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendUnavailable",
    "ChatRequest",
    "ChatResponse",
    "GenerationConfig",
    "HintError",
    "ImagePart",
    "Message",
    "OracleBaseline",
    "PriorBaseline",
    "RandomBaseline",
    "TextPart",
    "UnknownBackendError",
    "create_backend",
    "fit_priors",
    "format_answer",
    "random_boxes_rel",
]
