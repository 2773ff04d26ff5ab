"""Chat messages from a model family's layout row: the one place a request's turns are built.

The runner knows no model: it renders the prompt, then :func:`build_messages` lays it out as
the family's :class:`~medvision.tasks.model_families.ChatLayout` says (system turn, image
before or after the text, the repository-code text template). :func:`describe_messages` gives
the JSON form the golden request files hold (image bytes replaced by a placeholder).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from medvision.backends import ImagePart, Message, TextPart
from medvision.tasks.model_families import ChatLayout

__all__ = ["build_messages", "describe_messages"]


def build_messages(prompt: str, image_png: bytes, layout: ChatLayout) -> tuple[Message, ...]:
    """The turns of one request: an optional system turn, then one user turn.

    Args:
        prompt: The rendered task prompt (:func:`medvision.tasks.render_prompt`).
        image_png: The slice as PNG bytes (one image per request, as the official runs).
        layout: The family's chat layout.

    Returns:
        ``(system?, user)``; the user turn holds the text (``layout.user_text(prompt)``) and the
        image in the layout's order.
    """
    text = TextPart(layout.user_text(prompt))
    image = ImagePart(image_png)
    content = (image, text) if layout.image_placement == "before_text" else (text, image)
    user = Message(role="user", content=content)
    if layout.system_prompt is None:
        return (user,)
    return (Message(role="system", content=(TextPart(layout.system_prompt),)), user)


def describe_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """JSON-ready view of messages: text verbatim, each image as its PNG sha256.

    Args:
        messages: The turns of a request.

    Returns:
        ``[{"role": ..., "content": [{"type": "text", "text": ...} | {"type": "image",
        "png_sha256": ...}, ...]}, ...]``.
    """
    out: list[dict[str, Any]] = []
    for m in messages:
        parts: list[dict[str, Any]] = []
        for p in m.content:
            if isinstance(p, TextPart):
                parts.append({"type": "text", "text": p.text})
            else:
                parts.append({"type": "image", "png_sha256": hashlib.sha256(p.png).hexdigest()})
        out.append({"role": m.role, "content": parts})
    return out
