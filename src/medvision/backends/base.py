"""The backend protocol: chat requests with text and PNG images in, text out.

Backends know nothing of datasets, tasks or metrics. A request carries the chat messages, the
generation settings and, for the built-in baselines only, ``hints``: the answer key the runner
fills in (task family, ground truth, image sizes, prior key). **Real model backends must ignore
``hints``**; only :mod:`medvision.backends.baselines` read them, so a baseline's reply goes
through exactly the parse and score path a model's reply takes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, Protocol, get_args, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "HINT_ANSWER_TAGS",
    "HINT_FAMILY",
    "HINT_IMAGE_HW",
    "HINT_PRIOR_KEY",
    "HINT_SEEN_HW",
    "HINT_TARGET",
    "HINT_VALUE_RANGE",
    "REDACTED",
    "Backend",
    "BackendUnavailable",
    "ChatRequest",
    "ChatResponse",
    "GenerationConfig",
    "HintError",
    "ImagePart",
    "Message",
    "Role",
    "TextPart",
    "answer_each",
    "content_parts",
    "hint",
    "is_secret_name",
    "isolate_failures",
    "public_url",
]

Role = Literal["system", "user", "assistant"]

#: Task family value: ``"detection"``, ``"tl"`` or ``"ad"`` (``TaskFamily`` values).
HINT_FAMILY = "family"
#: Ground truth in official units (detection ``[x0, y0, x1, y1]`` relative, lower-left origin).
HINT_TARGET = "target"
#: Stored image size ``(rows, cols)`` in pixels (the official random box uses this size).
HINT_IMAGE_HW = "image_hw"
#: Size ``(rows, cols)`` of the image the model sees after its own resize.
HINT_SEEN_HW = "seen_hw"
#: Key of the prior answer vector, e.g. ``"mini|detection|white matter"``.
HINT_PRIOR_KEY = "prior_key"
#: ``(low, high)`` range of plausible values for T/L (mm) and A/D (mm or degrees) answers.
HINT_VALUE_RANGE = "value_range"
#: Wrap the answer in ``<answer> </answer>`` tags (the 1.2.1 ``official`` prompts ask for it).
HINT_ANSWER_TAGS = "answer_tags"


class HintError(ValueError):
    """A baseline needs a hint the request does not carry, or the hint is malformed."""


@dataclass(frozen=True)
class TextPart:
    """A piece of text in a message."""

    text: str


@dataclass(frozen=True)
class ImagePart:
    """An image in a message, as PNG file bytes (the backend decides how to send it)."""

    png: bytes


@dataclass(frozen=True)
class Message:
    """One chat turn.

    Attributes:
        role: ``"system"``, ``"user"`` or ``"assistant"``.
        content: Text and image parts in order.
    """

    role: Role
    content: tuple[TextPart | ImagePart, ...]

    def __post_init__(self) -> None:
        if self.role not in get_args(Role):
            raise ValueError(f"message role must be one of {get_args(Role)}, found {self.role!r}")
        for part in self.content:
            if not isinstance(part, TextPart | ImagePart):
                raise TypeError(
                    f"message content must be TextPart or ImagePart, found {type(part).__name__}"
                )

    @property
    def text(self) -> str:
        """The text parts joined with no separator."""
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def images(self) -> tuple[bytes, ...]:
        """The PNG bytes of the image parts, in order."""
        return tuple(p.png for p in self.content if isinstance(p, ImagePart))


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings (0 temperature = greedy, as the official runs).

    Attributes:
        max_new_tokens: Most tokens to generate.
        temperature: Sampling temperature (0 = greedy).
        top_p: Nucleus sampling mass in (0, 1].
        seed: Sampling seed, for backends that accept one.
    """

    max_new_tokens: int = 1024
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, found {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, found {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], found {self.top_p}")


@dataclass(frozen=True)
class ChatRequest:
    """One generation request.

    Attributes:
        request_id: Caller's identifier, echoed in the response (the runner uses a stable id
            per sample, which also seeds the random baselines).
        messages: The conversation.
        generation: Decoding settings.
        hints: Answer key for the baseline backends only (see the module docstring and the
            ``HINT_*`` names); real model backends ignore it. Not part of the hash.
        response_schema: JSON schema this answer must follow (structured outputs), e.g.
            :func:`medvision.tasks.prompts.response_schema` of the sample's family, or
            ``None`` for free text. It overrides a backend's run-level schema: ``openai``
            sends it as a ``json_schema`` ``response_format``, ``vllm`` as
            ``StructuredOutputsParams(json=...)``; ``hf`` and the baselines ignore it (no
            constrained decoding there). Not part of the hash.
    """

    request_id: str
    messages: tuple[Message, ...]
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    hints: Mapping[str, Any] = field(default_factory=dict, hash=False)
    response_schema: Mapping[str, Any] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class ChatResponse:
    """The reply to one request.

    Attributes:
        request_id: The request's id.
        text: Generated text (``""`` when ``error`` is set).
        error: Why no text was produced, or ``None``.
        latency_s: Wall time spent on this request in seconds.
        prompt_tokens: Prompt length in tokens, if the backend reports it.
        completion_tokens: Generated tokens, if the backend reports it.
        finish_reason: Why generation stopped (``"stop"``, ``"length"``, ...), if reported.
        error_fatal: The error says the backend itself is unusable and a retry would repeat
            it (HTTP 401/403/404, a refused connection): the runner stops a run after a few
            of these in a row instead of recording every sample as failed.
    """

    request_id: str
    text: str
    error: str | None = None
    latency_s: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    error_fatal: bool = False


class BackendUnavailable(RuntimeError):
    """A backend cannot serve the run at all (dead server, wrong URL or model, bad key).

    Raised by a backend's optional ``preflight()`` before the first sample; the message is
    one line that names the fix.
    """


@runtime_checkable
class Backend(Protocol):
    """Anything that turns chat requests into text.

    ``generate`` takes a batch and returns one response per request, in the same order. A
    failure of one request (bad input, server error, timeout) is that request's
    ``ChatResponse(error=...)``; it never raises for the batch.
    """

    name: str

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Answer every request; same length and order as ``requests``."""
        ...

    def close(self) -> None:
        """Release resources (servers, GPU memory); calling it twice is harmless."""
        ...


def hint(request: ChatRequest, name: str) -> Any:
    """Return ``request.hints[name]``; enum values are unwrapped to their ``.value``.

    Raises:
        HintError: If the hint is absent (the message names the hint and the request).
    """
    if name not in request.hints:
        raise HintError(
            f"request {request.request_id}: missing hint {name!r} "
            f"(present: {sorted(request.hints)})"
        )
    value = request.hints[name]
    return value.value if isinstance(value, Enum) else value


def answer_each(
    requests: Sequence[ChatRequest], answer: Callable[[ChatRequest], str]
) -> list[ChatResponse]:
    """Run ``answer`` on each request, turning an exception into that request's error response.

    Args:
        requests: The batch.
        answer: Computes the reply text of one request.

    Returns:
        One response per request, in order, with per-request latency.
    """
    out: list[ChatResponse] = []
    for request in requests:
        start = time.perf_counter()
        try:
            text = answer(request)
        # One bad request must not sink the batch; the error text is the record's reason.
        except Exception as exc:
            out.append(
                ChatResponse(
                    request_id=request.request_id,
                    text="",
                    error=f"{type(exc).__name__}: {exc}",
                    latency_s=time.perf_counter() - start,
                )
            )
        else:
            out.append(
                ChatResponse(
                    request_id=request.request_id,
                    text=text,
                    latency_s=time.perf_counter() - start,
                )
            )
    return out


def isolate_failures(
    chunk: Sequence[ChatRequest], call: Callable[[list[ChatRequest]], list[ChatResponse]]
) -> list[ChatResponse]:
    """Answer a batch with ``call``; if it raises, retry each request alone.

    A request that still fails alone gets an error response (latency of its own try), so one
    bad input (unreadable image, too long a prompt, failed forward pass) fails alone.

    Args:
        chunk: The batch (may be empty).
        call: Answers a whole batch, one response per request, in order.

    Returns:
        One response per request, in order.
    """
    if not chunk:
        return []
    batch = list(chunk)
    start = time.perf_counter()
    try:
        return call(batch)
    # One request's failure must not sink the run; the error text is the record's reason.
    except Exception as exc:
        if len(batch) > 1:
            return [r for q in batch for r in isolate_failures([q], call)]
        return [
            ChatResponse(
                request_id=batch[0].request_id,
                text="",
                error=f"{type(exc).__name__}: {exc}",
                latency_s=time.perf_counter() - start,
            )
        ]


def content_parts(
    message: Message, image: Callable[[bytes, int], dict[str, Any]]
) -> list[dict[str, Any]]:
    """The typed content parts of a message, in order, for a chat-template / wire format.

    Args:
        message: The message.
        image: Builds the part of one image from its PNG bytes and its part index.

    Returns:
        ``{"type": "text", "text": ...}`` for text parts, ``image(png, index)`` for images.
    """
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(message.content):
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        else:
            parts.append(image(part.png, index))
    return parts


REDACTED = "<redacted>"
_SECRET_WORDS = frozenset(
    {
        "key",
        "apikey",
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "authorization",
        "auth",
        "bearer",
        "sig",
        "signature",
        "code",
        "credential",
        "credentials",
    }
)


def is_secret_name(name: str) -> bool:
    """True if an option or query name looks like it holds a secret.

    Whole words only: ``api_key``, ``X-Api-Key``, ``access_token``, ``sig`` (signed URLs),
    ``signature``, ``code`` (OAuth), ``client_secret`` and ``password`` are secrets, while
    ``max_new_tokens`` or ``skip_special_tokens`` (settings) are not; ``*_env`` names only say
    which environment variable holds a key.

    Example:
        >>> [is_secret_name(n) for n in ("api_key", "sig", "max_tokens", "api_key_env")]
        [True, True, False, False]
    """
    low = name.lower()
    return bool(set(re.split(r"[^a-z0-9]+", low)) & _SECRET_WORDS) and not low.endswith("_env")


def public_url(url: str) -> str:
    """``url`` without ``user:password@``, fragment, and with every query value redacted.

    Query names stay (they say which parameters were sent); their values never reach a
    manifest, record, log or report, whatever their name (a signed URL's ``sig``, an
    ``api-version`` alike).

    Example:
        >>> public_url("https://u:p@host:8443/v1?key=abc&api-version=1#x")
        'https://host:8443/v1?key=<redacted>&api-version=<redacted>'
    """
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    query = "&".join(
        f"{k}={REDACTED}" if sep else k
        for k, sep, _v in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
