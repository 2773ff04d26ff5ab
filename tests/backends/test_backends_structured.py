"""Per-request structured outputs: ``ChatRequest.response_schema`` on the wire (openai, against
the fake server) and as grouped ``StructuredOutputsParams`` (vllm, with vLLM mocked)."""

from __future__ import annotations

import io
import json
import sys
import types
from typing import Any

import numpy as np
import pytest
from PIL import Image

from medvision.backends import ChatRequest, GenerationConfig, ImagePart, Message, TextPart
from medvision.backends.openai_compat import (
    OpenAICompatBackend,
    build_payload,
    json_schema_format,
)
from medvision.tasks.prompts import response_schema
from medvision.testing.fake_openai import FakeOpenAIServer, FakeRequest

FAMILIES = ("detection", "tl", "ad")


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8), 120, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _req(rid: str, schema: dict[str, Any] | None = None, **gen: Any) -> ChatRequest:
    msg = Message("user", (TextPart(f"question {rid}"), ImagePart(_png())))
    return ChatRequest(rid, (msg,), GenerationConfig(**gen), response_schema=schema)


def test_json_schema_format_is_strict_and_named_from_the_title() -> None:
    schema = response_schema("tl")
    fmt = json_schema_format(schema)
    assert fmt == {
        "type": "json_schema",
        "json_schema": {"name": "medvision_tl_answer", "schema": schema, "strict": True},
    }
    # OpenAI names allow [A-Za-z0-9_-]{1,64} only.
    assert json_schema_format({}, name="a b.c/" + "x" * 80)["json_schema"]["name"] == (
        "a_b_c_" + "x" * 58
    )
    assert json_schema_format({"type": "object"})["json_schema"]["name"] == "answer"


def test_request_schema_overrides_the_run_level_response_format() -> None:
    run_level = {"type": "json_object"}
    own = build_payload(_req("a", response_schema("ad")), "m", response_format=run_level)
    assert own["response_format"] == json_schema_format(response_schema("ad"))
    plain = build_payload(_req("b"), "m", response_format=run_level)
    assert plain["response_format"] == run_level
    assert "response_format" not in build_payload(_req("c"), "m")


def test_each_request_carries_its_own_schema_to_the_server() -> None:
    def answer(req: FakeRequest) -> str:
        # Answer from the schema the server received, as a constrained decoder would.
        fmt = req.body["response_format"]
        if fmt["type"] != "json_schema":
            return "free text"
        props = fmt["json_schema"]["schema"]["properties"]
        return json.dumps({k: [0.1, 0.2, 0.6, 0.7] if k == "box" else 3.0 for k in props})

    requests = [_req(f, response_schema(f)) for f in FAMILIES] + [_req("free")]
    with FakeOpenAIServer(answer=answer) as srv:
        backend = OpenAICompatBackend(
            "fake-vlm", srv.url, response_format={"type": "json_object"}, max_retries=0
        )
        out = backend.generate(requests)
        sent = {r.text.split()[1]: r.body for r in srv.requests}
    by_id = {r.request_id: r for r in out}
    for fam in FAMILIES:
        assert sent[fam]["response_format"] == json_schema_format(response_schema(fam))
        assert by_id[fam].error is None
        assert set(json.loads(by_id[fam].text)) == set(response_schema(fam)["properties"])
    # The request without a schema keeps the run-level format.
    assert sent["free"]["response_format"] == {"type": "json_object"}
    assert by_id["free"].text == "free text"


def test_fake_server_rejects_a_malformed_json_schema_format() -> None:
    bad = {"type": "json_schema", "json_schema": {"name": "has space", "schema": {}}}
    with FakeOpenAIServer() as srv:
        backend = OpenAICompatBackend("fake-vlm", srv.url, response_format=bad, max_retries=0)
        (resp,) = backend.generate([_req("x")])
    assert resp.error is not None and "HTTP 400" in resp.error and "name" in resp.error


# -- vllm, mocked ---------------------------------------------------------------------------


class _Params:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


@pytest.fixture()
def chats(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    class _Out:
        def __init__(self, text: str) -> None:
            self.prompt_token_ids = [1]
            self.outputs = [types.SimpleNamespace(text=text, token_ids=[1])]

    class LLM:
        def __init__(self, **kwargs: Any) -> None:
            pass

        def chat(self, messages: list[Any], sampling_params: Any = None, **kw: Any) -> list[Any]:
            calls.append({"messages": messages, "sampling_params": sampling_params})
            return [_Out("{}") for _ in messages]

    vllm = types.ModuleType("vllm")
    vllm.LLM = LLM  # type: ignore[attr-defined]
    vllm.SamplingParams = type("SamplingParams", (_Params,), {})  # type: ignore[attr-defined]
    sp = types.ModuleType("vllm.sampling_params")
    sp.StructuredOutputsParams = type("StructuredOutputsParams", (_Params,), {})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sp)
    return calls


def test_vllm_groups_requests_by_schema_in_one_chat_call(chats: list[dict[str, Any]]) -> None:
    from medvision.backends.vllm import VLLMBackend

    run_schema = {"type": "object", "title": "run_level"}
    backend = VLLMBackend("m", json_schema=run_schema)
    families = ["detection", "tl", "detection", "ad", "tl", "detection"]
    requests = [_req(f"{i}", response_schema(f)) for i, f in enumerate(families)]
    requests += [_req("free"), _req("hot", response_schema("ad"), temperature=0.7)]
    out = backend.generate(requests)
    assert len(out) == len(requests) and all(r.error is None for r in out)
    assert len(chats) == 1  # mixing families keeps the whole batch in one call
    params = chats[0]["sampling_params"]
    assert len(params) == len(requests)
    for q, p in zip(requests, params, strict=True):
        expected = q.response_schema if q.response_schema is not None else run_schema
        assert p.kwargs["structured_outputs"].kwargs == {"json": expected}
        assert p.kwargs["temperature"] == q.generation.temperature
    # One params object per (generation, schema) group, shared by the group's requests.
    assert len({id(p) for p in params}) == 5
    assert params[0] is params[2] is params[5] and params[1] is params[4]
    assert params[3] is not params[7]  # same schema, other generation settings
