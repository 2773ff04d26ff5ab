"""The OpenAI chat-completions wire format: request bodies, answers, errors, Retry-After.

Pure functions (no network), used by :mod:`medvision.backends.openai_compat`, which
re-exports them.
"""

from __future__ import annotations

import base64
import email.utils
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medvision.backends.base import ChatRequest, Message, TextPart, content_parts

__all__ = [
    "Completion",
    "build_payload",
    "error_detail",
    "image_data_url",
    "json_schema_format",
    "parse_completion",
    "retry_after_s",
    "to_openai_messages",
]


def image_data_url(data: bytes) -> str:
    """A ``data:`` URL of image bytes (PNG, or JPEG when the bytes say so)."""
    mime = "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _content(message: Message) -> str | list[dict[str, Any]]:
    """Plain text stays a string (every server accepts it); images make a parts list."""
    if all(isinstance(p, TextPart) for p in message.content):
        return message.text
    return content_parts(
        message, lambda png, _i: {"type": "image_url", "image_url": {"url": image_data_url(png)}}
    )


def to_openai_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Chat messages in the OpenAI wire format, parts in the order given."""
    return [{"role": m.role, "content": _content(m)} for m in messages]


_SCHEMA_NAME = re.compile(r"[^A-Za-z0-9_-]+")


def json_schema_format(schema: Mapping[str, Any], name: str | None = None) -> dict[str, Any]:
    """The ``response_format`` that constrains an answer to a JSON schema (strict mode).

    Args:
        schema: The JSON schema.
        name: Schema name; defaults to the schema's ``title`` (else ``"answer"``). Characters
            outside ``[A-Za-z0-9_-]`` become ``_`` and it is cut to 64, as OpenAI requires.

    Returns:
        ``{"type": "json_schema", "json_schema": {"name", "schema", "strict": True}}``.
    """
    raw = name if name is not None else str(schema.get("title") or "answer")
    clean = _SCHEMA_NAME.sub("_", raw)[:64] or "answer"
    return {
        "type": "json_schema",
        "json_schema": {"name": clean, "schema": dict(schema), "strict": True},
    }


def build_payload(
    request: ChatRequest,
    model: str,
    *,
    response_format: Mapping[str, Any] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    send_seed: bool = True,
) -> dict[str, Any]:
    """The JSON body of one chat-completions request.

    Args:
        request: The request (``hints`` are ignored: they are for baselines only).
        model: Model name the server serves.
        response_format: Passed through as ``response_format`` (e.g. ``{"type":
            "json_schema", "json_schema": {"name": ..., "schema": ...}}``); a request's own
            ``response_schema`` overrides it (see :func:`json_schema_format`).
        extra_body: Extra top-level fields (e.g. vLLM ``structured_outputs``), applied last.
        send_seed: Send ``seed`` (some hosted APIs reject it).

    Returns:
        The body as a dict.
    """
    gen = request.generation
    body: dict[str, Any] = {
        "model": model,
        "messages": to_openai_messages(request.messages),
        "max_tokens": gen.max_new_tokens,
        "temperature": gen.temperature,
        "top_p": gen.top_p,
        "n": 1,
        "stream": False,
    }
    if send_seed:
        body["seed"] = gen.seed
    if request.response_schema is not None:
        body["response_format"] = json_schema_format(request.response_schema)
    elif response_format is not None:
        body["response_format"] = dict(response_format)
    if extra_body:
        body.update(extra_body)
    return body


@dataclass(frozen=True)
class Completion:
    """The useful part of a chat-completions answer.

    Attributes:
        text: The first choice's message content (refusal text if content is null).
        finish_reason: ``"stop"``, ``"length"``, ... or ``""`` if absent.
        prompt_tokens: ``usage.prompt_tokens`` or ``None``.
        completion_tokens: ``usage.completion_tokens`` or ``None``.
    """

    text: str
    finish_reason: str
    prompt_tokens: int | None
    completion_tokens: int | None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_completion(body: bytes) -> Completion:
    """Read a chat-completions response body.

    Raises:
        ValueError: Not JSON, not an object, no choices, or a choice without a message (the
            message says which).
    """
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        snippet = body[:80].decode("utf-8", "replace")
        raise ValueError(f"malformed JSON in response ({exc.msg}): {snippet!r}") from None
    except UnicodeDecodeError:
        raise ValueError("response body is not UTF-8 text") from None
    if not isinstance(data, dict):
        raise ValueError(f"response is a JSON {type(data).__name__}, expected an object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ValueError(f"response has no choices (choices={choices!r})")
    first = choices[0]
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        raise ValueError("response choice has no message object")
    content = message.get("content")
    if isinstance(content, list):  # some servers return content parts
        content = "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
        )
    if content is None:
        content = message.get("refusal") or ""
    if not isinstance(content, str):
        raise ValueError(f"message content is a {type(content).__name__}, expected text")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    assert isinstance(usage, dict)
    return Completion(
        text=content,
        finish_reason=str(first.get("finish_reason") or ""),
        prompt_tokens=_int_or_none(usage.get("prompt_tokens")),
        completion_tokens=_int_or_none(usage.get("completion_tokens")),
    )


def retry_after_s(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or HTTP date), or ``None``."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_detail(data: bytes) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the first 200 characters."""
    try:
        obj = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        obj = None
    if isinstance(obj, dict):
        err = obj.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])[:300]
        if isinstance(err, str):
            return err[:300]
        if isinstance(obj.get("message"), str):
            return str(obj["message"])[:300]
    return data[:200].decode("utf-8", "replace") or "(empty body)"
