"""Opt-in: the ``openai`` backend against a real vLLM server you started yourself.

A manual check, not a test: a vLLM CPU server needs ~3.5 GB and ~70 s to start (see
reference/tiny-vlm-offline.md section 3), too much for CI. Start one, e.g.::

    VLLM_CPU_KVCACHE_SPACE=1 python -m vllm.entrypoints.openai.api_server --model DIR \
        --host 127.0.0.1 --port 8000 --max-model-len 512 --dtype float32

then run ``python scripts/check_real_vllm.py http://127.0.0.1:8000/v1 DIR``.
"""

from __future__ import annotations

import io
import sys

import numpy as np
from PIL import Image

from medvision.backends import ChatRequest, GenerationConfig, ImagePart, Message, TextPart
from medvision.backends.openai_compat import OpenAICompatBackend


def check(url: str, model: str) -> None:
    """Send three image requests and check the answers and token counts."""
    buf = io.BytesIO()
    Image.fromarray(np.full((56, 56), 128, np.uint8)).save(buf, format="PNG")
    msg = Message("user", (TextPart("Give the bounding box."), ImagePart(buf.getvalue())))
    requests = [
        ChatRequest(f"r{i}", (msg,), GenerationConfig(max_new_tokens=8, seed=i)) for i in range(3)
    ]
    out = OpenAICompatBackend(model, url, concurrency=3, timeout_s=120).generate(requests)
    for r in out:
        assert r.error is None, r.error
        assert r.prompt_tokens is not None and r.prompt_tokens > 10  # text + image tokens
        assert r.completion_tokens is not None and 1 <= r.completion_tokens <= 8
    # Greedy decoding of the same request gives the same text.
    assert out[0].text == out[1].text == out[2].text
    print(f"ok: {len(out)} answers from {url}")


if __name__ == "__main__":
    check(sys.argv[1], sys.argv[2])
