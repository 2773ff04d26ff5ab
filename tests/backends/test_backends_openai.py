"""The ``openai`` backend against the protocol-faithful fake server started on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import io
import logging
import time

import numpy as np
import pytest
from PIL import Image

from medvision.backends import ChatRequest, GenerationConfig, ImagePart, Message, TextPart
from medvision.backends.openai_compat import (
    OpenAICompatBackend,
    build_payload,
    parse_completion,
    public_url,
    retry_after_s,
)
from medvision.backends.registry import create_backend
from medvision.testing.fake_openai import (
    FakeOpenAIServer,
    FakeRequest,
    Fault,
    FaultKind,
    echo_answer,
    fail_first_attempts,
)


def _png(h: int, w: int, value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _req(rid: str, text: str = "How long is it?", *images: bytes, **gen: object) -> ChatRequest:
    parts: tuple[TextPart | ImagePart, ...] = (TextPart(text), *(ImagePart(p) for p in images))
    return ChatRequest(rid, (Message("user", parts),), GenerationConfig(**gen))  # type: ignore[arg-type]


def _fast(url: str | list[str], **kw: object) -> OpenAICompatBackend:
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("max_retries", 2)
    return OpenAICompatBackend("fake-vlm", url, **kw)  # type: ignore[arg-type]


@pytest.fixture
def server():
    with FakeOpenAIServer() as srv:
        yield srv


def test_wire_format_keeps_part_order_images_and_settings(server: FakeOpenAIServer) -> None:
    a, b = _png(20, 30, 10), _png(12, 8, 200)
    msgs = (
        Message("system", (TextPart("You are an expert radiologist."),)),
        Message("user", (ImagePart(a), TextPart("first"), ImagePart(b), TextPart("second"))),
    )
    req = ChatRequest("x", msgs, GenerationConfig(max_new_tokens=77, temperature=0.0, seed=5))
    fmt = {"type": "json_schema", "json_schema": {"name": "ans", "schema": {"type": "object"}}}
    (resp,) = _fast(server.url, response_format=fmt).generate([req])
    assert resp.error is None
    (seen,) = server.requests
    body = seen.body
    assert body["model"] == "fake-vlm"
    assert (body["max_tokens"], body["temperature"], body["seed"]) == (77, 0.0, 5)
    assert body["response_format"] == fmt
    assert body["messages"][0] == {"role": "system", "content": "You are an expert radiologist."}
    parts = body["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["image_url", "text", "image_url", "text"]
    assert [p["text"] for p in parts if p["type"] == "text"] == ["first", "second"]
    urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert all(u.startswith("data:image/png;base64,") for u in urls)
    assert [base64.b64decode(u.split(",", 1)[1]) for u in urls] == [a, b]
    assert seen.image_sha256 == (hashlib.sha256(a).hexdigest(), hashlib.sha256(b).hexdigest())
    # Hints are for baselines only: nothing of them reaches the wire.
    hinted = ChatRequest("h", msgs, hints={"target": [1.0, 2.0]})
    assert "hints" not in build_payload(hinted, "m") and "target" not in str(
        build_payload(hinted, "m")
    )


def test_text_usage_latency_and_order(server: FakeOpenAIServer) -> None:
    server.answer = echo_answer
    server.latency_s = 0.05
    reqs = [_req(f"r{i}", f"question number {i}", _png(8, 8, i)) for i in range(10)]
    out = _fast(server.url, concurrency=4).generate(reqs)
    assert [r.request_id for r in out] == [f"r{i}" for i in range(10)]
    for i, r in enumerate(out):
        assert r.error is None and r.text == f"question number {i}"
        # The server counts words plus 64 tokens per image; the answer echoes 3 words.
        assert (r.prompt_tokens, r.completion_tokens) == (3 + 64, 3)
        assert r.latency_s >= 0.05


def test_concurrency_is_bounded_and_used(server: FakeOpenAIServer) -> None:
    server.latency_s = 0.1
    out = _fast(server.url, concurrency=5).generate([_req(f"r{i}") for i in range(20)])
    assert all(r.error is None for r in out)
    assert server.max_in_flight == 5


def test_max_tokens_cut_is_reported_as_text(server: FakeOpenAIServer) -> None:
    server.answer = "one two three four five"
    (r,) = _fast(server.url).generate([_req("a", max_new_tokens=2)])
    assert r.text == "one two" and r.completion_tokens == 2


def test_5xx_and_dropped_connections_are_retried_until_success(server: FakeOpenAIServer) -> None:
    server.faults = fail_first_attempts(2, Fault(FaultKind.HTTP_ERROR, status=503))
    out = _fast(server.url).generate([_req("a"), _req("b", "other")])
    assert [r.error for r in out] == [None, None]
    assert len(server.requests) == 6  # 2 failures + 1 success each
    server.requests.clear()
    server.faults = fail_first_attempts(1, Fault(FaultKind.DROP_CONNECTION))
    (r,) = _fast(server.url).generate([_req("c", "third")])
    assert r.error is None and len(server.requests) == 2


def test_retry_after_is_honoured(server: FakeOpenAIServer) -> None:
    server.faults = fail_first_attempts(
        1, Fault(FaultKind.HTTP_ERROR, status=429, retry_after="0.6")
    )
    start = time.perf_counter()
    (r,) = _fast(server.url, backoff_s=0.001).generate([_req("a")])
    assert r.error is None
    # The backoff alone would be ~1 ms; the header asked for 0.6 s.
    assert time.perf_counter() - start >= 0.6


def test_retries_give_up_with_the_last_reason(server: FakeOpenAIServer) -> None:
    server.faults = lambda _r: Fault(FaultKind.HTTP_ERROR, status=500, message="GPU on fire")
    (r,) = _fast(server.url, max_retries=3).generate([_req("a")])
    assert r.text == "" and "HTTP 500" in r.error and "GPU on fire" in r.error
    assert "gave up after 4 attempts" in r.error
    assert len(server.requests) == 4


def test_client_errors_are_not_retried(server: FakeOpenAIServer) -> None:
    (r,) = OpenAICompatBackend("no-such-model", server.url, max_retries=3).generate([_req("a")])
    assert "HTTP 404" in r.error and "does not exist" in r.error
    assert len(server.requests) == 0  # rejected before it counted as a completion
    server.faults = lambda _r: Fault(FaultKind.HTTP_ERROR, status=400, message="bad image")
    (r,) = _fast(server.url, max_retries=3).generate([_req("b")])
    assert "HTTP 400" in r.error and len(server.requests) == 1


@pytest.mark.parametrize(
    ("fault", "expect"),
    [
        (Fault(FaultKind.MALFORMED_JSON), "malformed JSON"),
        (Fault(FaultKind.EMPTY_CHOICES), "no choices"),
        (Fault(FaultKind.HUGE_ANSWER, size_bytes=3_000_000), "max_response_bytes"),
    ],
)
def test_bad_answers_fail_the_request_with_a_reason(
    server: FakeOpenAIServer, fault: Fault, expect: str
) -> None:
    server.faults = lambda r: fault if "bad" in r.text else None
    out = _fast(server.url, max_response_bytes=1_000_000).generate([_req("ok"), _req("b", "bad")])
    assert out[0].error is None and out[0].text
    assert out[1].text == "" and expect in out[1].error


def test_timeout_is_per_request_and_retried(server: FakeOpenAIServer) -> None:
    server.faults = lambda r: Fault(FaultKind.DELAY, delay_s=1.0) if "slow" in r.text else None
    start = time.perf_counter()
    out = _fast(server.url, timeout_s=0.3, max_retries=1).generate([_req("s", "slow"), _req("f")])
    assert out[1].error is None
    assert "timeout after 0.3 s" in out[0].error and "2 attempts" in out[0].error
    assert time.perf_counter() - start < 1.5  # two 0.3 s attempts, not the server's 1 s each


def test_server_down_fails_each_request() -> None:
    with FakeOpenAIServer() as srv:
        url = srv.url
    out = _fast(url, max_retries=1).generate([_req("a"), _req("b")])
    assert all(r.text == "" and "cannot connect" in r.error for r in out)


def test_several_base_urls_share_the_load() -> None:
    with FakeOpenAIServer(latency_s=0.05) as s1, FakeOpenAIServer(latency_s=0.05) as s2:
        out = _fast([s1.url, s2.url], concurrency=4).generate([_req(f"r{i}") for i in range(40)])
        assert all(r.error is None for r in out)
        assert len(s1.requests) + len(s2.requests) == 40
        assert min(len(s1.requests), len(s2.requests)) >= 15


def test_a_dead_base_url_is_avoided() -> None:
    with FakeOpenAIServer() as dead:
        dead_url = dead.url
    with FakeOpenAIServer() as live:
        backend = _fast([dead_url, live.url], concurrency=2, max_retries=2)
        out = backend.generate([_req(f"r{i}") for i in range(12)])
        assert all(r.error is None for r in out)
        assert len(live.requests) == 12


def test_api_key_comes_from_the_named_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVER_KEY", "sk-right")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAIServer(api_key="sk-right") as srv:
        (ok,) = _fast(srv.url, api_key_env="MY_SERVER_KEY").generate([_req("a")])
        (no,) = _fast(srv.url).generate([_req("b")])
    assert ok.error is None
    assert "HTTP 401" in no.error and "Incorrect API key" in no.error


def test_key_never_leaves_the_header(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    key = "sk-SECRET-4f9a1c77"
    monkeypatch.setenv("OPENAI_API_KEY", key)

    # A hostile server that echoes the key back in errors and in answers.
    def faults(r: FakeRequest) -> Fault | None:
        return (
            Fault(FaultKind.HTTP_ERROR, status=500, message=f"bad key {key}")
            if r.text == "e"
            else None
        )

    with (
        FakeOpenAIServer(api_key=key, faults=faults, answer=f"my key is {key}") as srv,
        caplog.at_level(logging.DEBUG),
    ):
        backend = _fast(srv.url, max_retries=1)
        out = backend.generate([_req("a", "e"), _req("b", "fine")])
    assert "HTTP 500" in out[0].error and "<redacted>" in out[0].error
    assert out[1].text == "my key is <redacted>"
    everything = repr(out) + repr(backend) + str(backend.settings()) + caplog.text
    assert key not in everything
    assert backend.settings()["api_key_set"] is True


def test_generate_works_inside_a_running_event_loop(server: FakeOpenAIServer) -> None:
    backend = _fast(server.url)

    async def main() -> list[str]:
        return [r.text for r in backend.generate([_req("a")])]

    assert asyncio.run(main()) == [server.answer]


def test_registry_creates_it_lazily(server: FakeOpenAIServer) -> None:
    backend = create_backend("openai", model="fake-vlm", base_url=server.url, concurrency=3)
    assert isinstance(backend, OpenAICompatBackend) and backend.concurrency == 3
    with pytest.raises(ValueError, match="http"):
        OpenAICompatBackend("m", "ftp://x")
    with pytest.raises(ValueError, match="secrets"):
        OpenAICompatBackend("m", server.url, extra_body={"api_key": "x"})


def test_retry_after_header_forms() -> None:
    assert retry_after_s({"retry-after": "7"}) == 7.0
    assert retry_after_s({"retry-after": "1.5"}) == 1.5
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after_s({"retry-after": date}, now=now) == pytest.approx(30, abs=1.01)
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({}) is None


def test_public_url_hides_credentials() -> None:
    assert public_url("https://u:pw@host:8443/v1?api_key=abc&x=1") == (
        "https://host:8443/v1?api_key=<redacted>&x=<redacted>"
    )


def test_parse_completion_variants() -> None:
    parts = b'{"choices":[{"message":{"content":[{"type":"text","text":"a"},{"text":"b"}]}}]}'
    assert parse_completion(parts).text == "ab"
    refusal = b'{"choices":[{"message":{"content":null,"refusal":"I cannot"}}]}'
    assert parse_completion(refusal).text == "I cannot"
    for bad, msg in [
        (b"[1]", "expected an object"),
        (b'{"choices":[{}]}', "no message"),
        (b'{"choices":[{"message":{"content":5}}]}', "expected text"),
        (b"\xff\xfe", "malformed JSON|not UTF-8"),
    ]:
        with pytest.raises(ValueError, match=msg):
            parse_completion(bad)
