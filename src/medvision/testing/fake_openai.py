"""A small OpenAI-compatible chat-completions server on 127.0.0.1, for tests and benchmarks.

Standard library only (``http.server`` with one thread per connection, HTTP/1.1 keep-alive).
It is faithful to the parts of the protocol a client relies on:

* ``POST /v1/chat/completions``: validates the body the way vLLM/OpenAI do (JSON object,
  known ``model``, non-empty ``messages`` with roles system|user|assistant, content a string or
  ``text``/``image_url`` parts, ``image_url`` a base64 ``data:image/...`` URL holding a PNG or
  JPEG, ``max_tokens`` >= 1, ``temperature`` in [0, 2], a ``response_format`` of type text,
  json_object or json_schema with a valid ``name`` and an object ``schema``) and answers
  ``chat.completion`` objects with ``choices``, ``finish_reason`` (``length`` when the answer
  is cut at ``max_tokens`` words) and ``usage``. Errors are ``{"error": {"message", "type",
  "code"}}`` with 400, 401 or 404.
* ``GET /v1/models``: the served model.
* Optional ``api_key``: requests without ``Authorization: Bearer <key>`` get 401 (on both
  routes, as hosted APIs do).
* Unknown routes get a 404 whose message echoes the request target, query string included
  (as careless servers do), and every request target is kept in :attr:`FakeOpenAIServer.paths`.

For tests it adds a fixed ``latency_s`` per request, an ``answer`` (text or a function of the
request), and **fault injection**: ``faults(request) -> Fault | None`` decides per request
whether to answer with an HTTP error (with ``Retry-After``), malformed JSON, empty
``choices``, a delay, a huge answer or a dropped connection. Every request is recorded in
:attr:`FakeOpenAIServer.requests` (without headers, so a key never lands there).

Run one by hand: ``python -m medvision.testing.fake_openai --port 8000 --latency 0.2``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "DEFAULT_ANSWER",
    "FakeOpenAIServer",
    "FakeRequest",
    "Fault",
    "FaultKind",
    "echo_answer",
    "fail_first_attempts",
    "main",
]

#: Default answer: four numbers, so every task family's last-k parser finds enough.
DEFAULT_ANSWER = "<answer>0.25, 0.25, 0.75, 0.75</answer>"
_DATA_URL = re.compile(r"^data:image/(png|jpeg|jpg|webp);base64,(.*)$", re.DOTALL)
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF")
#: Tokens a vision encoder would charge per image in the fake usage count.
IMAGE_TOKENS = 64


class FaultKind(StrEnum):
    """What a faulty answer looks like."""

    HTTP_ERROR = "http_error"
    """An OpenAI-style error body with ``status`` (and ``Retry-After`` if given)."""
    MALFORMED_JSON = "malformed_json"
    """Status 200 with a body that is not JSON."""
    EMPTY_CHOICES = "empty_choices"
    """Status 200, a completion object with ``choices: []``."""
    DELAY = "delay"
    """Sleep ``delay_s`` more before answering normally (to trip client timeouts)."""
    HUGE_ANSWER = "huge_answer"
    """A normal completion whose content is ``size_bytes`` long."""
    DROP_CONNECTION = "drop_connection"
    """Close the connection without any answer."""


@dataclass(frozen=True)
class Fault:
    """One injected fault (see :class:`FaultKind` for which fields each kind uses).

    Attributes:
        kind: What happens.
        status: HTTP status for ``HTTP_ERROR``.
        retry_after: ``Retry-After`` header value (seconds or HTTP date) or ``None``.
        delay_s: Extra latency in seconds for ``DELAY``.
        size_bytes: Content length for ``HUGE_ANSWER``.
        message: Error message for ``HTTP_ERROR``.
    """

    kind: FaultKind
    status: int = 500
    retry_after: str | None = None
    delay_s: float = 0.0
    size_bytes: int = 0
    message: str = "injected fault"


@dataclass(frozen=True)
class FakeRequest:
    """A chat-completions request as the server saw it (headers are not kept).

    Attributes:
        index: Arrival order, from 0.
        body: The parsed JSON body.
        text: The text parts of every message, joined with newlines.
        image_sha256: sha256 hex of each decoded image, in order.
        attempt: How many times this exact body has arrived (1 on the first).
    """

    index: int
    body: dict[str, Any]
    text: str
    image_sha256: tuple[str, ...]
    attempt: int


AnswerFn = Callable[[FakeRequest], str]
FaultFn = Callable[[FakeRequest], Fault | None]


def echo_answer(request: FakeRequest) -> str:
    """Answer with the request's text (handy to see what was sent)."""
    return request.text


def fail_first_attempts(n: int, fault: Fault) -> FaultFn:
    """A fault rule: the first ``n`` attempts of every distinct request get ``fault``."""

    def rule(request: FakeRequest) -> Fault | None:
        return fault if request.attempt <= n else None

    return rule


class _BadRequest(Exception):
    def __init__(self, status: int, message: str, code: str, kind: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.kind = status, message, code, kind


def _parse_messages(body: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """Validate ``messages`` and return (joined text, image hashes)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest(400, "'messages' must be a non-empty list", "invalid_value", "invalid")
    texts: list[str] = []
    images: list[str] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("system", "user", "assistant"):
            raise _BadRequest(400, f"messages[{i}]: bad role", "invalid_value", "invalid")
        content = msg.get("content")
        if isinstance(content, str):
            texts.append(content)
            continue
        if not isinstance(content, list):
            raise _BadRequest(400, f"messages[{i}].content: bad type", "invalid_type", "invalid")
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind == "image_url":
                images.append(_image_hash(part.get("image_url"), f"messages[{i}].content[{j}]"))
            else:
                raise _BadRequest(
                    400, f"messages[{i}].content[{j}]: unsupported part", "invalid_value", "invalid"
                )
    return "\n".join(texts), tuple(images)


_SCHEMA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _check_response_format(fmt: Any) -> None:
    """Validate ``response_format`` as OpenAI does (absent, text, json_object or json_schema)."""
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in ("text", "json_object"):
        return
    if kind != "json_schema":
        raise _BadRequest(400, "response_format: unknown type", "invalid_value", "invalid")
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict) or not _SCHEMA_NAME.match(str(spec.get("name", ""))):
        raise _BadRequest(
            400, "response_format.json_schema.name must match [A-Za-z0-9_-]{1,64}", "invalid", "inv"
        )
    if not isinstance(spec.get("schema"), dict):
        raise _BadRequest(
            400, "response_format.json_schema.schema must be an object", "invalid", "inv"
        )
    if not isinstance(spec.get("strict", False), bool):
        raise _BadRequest(
            400, "response_format.json_schema.strict must be a boolean", "invalid", "inv"
        )


def _image_hash(image_url: Any, where: str) -> str:
    url = image_url.get("url") if isinstance(image_url, dict) else None
    match = _DATA_URL.match(url) if isinstance(url, str) else None
    if match is None:
        raise _BadRequest(400, f"{where}: expected a base64 data:image URL", "invalid_url", "inv")
    try:
        data = base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        raise _BadRequest(400, f"{where}: invalid base64", "invalid_image", "invalid") from None
    if not data.startswith(_MAGIC):
        raise _BadRequest(400, f"{where}: not a PNG/JPEG/WebP image", "invalid_image", "invalid")
    return hashlib.sha256(data).hexdigest()


class FakeOpenAIServer:
    """A chat-completions server on ``host:port`` running in background threads.

    Args:
        model: The served model name (others get 404).
        latency_s: Seconds every completion takes.
        answer: Answer text, or a function of the request.
        faults: Per-request fault rule (``None``: never).
        api_key: Key required as ``Bearer`` token, or ``None`` for no check.
        host: Interface to bind (loopback by default).
        port: Port (0 picks a free one; see :attr:`port`).

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        *,
        model: str = "fake-vlm",
        latency_s: float = 0.0,
        answer: str | AnswerFn = DEFAULT_ANSWER,
        faults: FaultFn | None = None,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.model = model
        self.latency_s = latency_s
        self.answer = answer
        self.faults = faults
        self._api_key = api_key
        self.requests: list[FakeRequest] = []
        #: Request targets (path and query) in arrival order, every route.
        self.paths: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._host = host
        self._httpd = _Server((host, port), _make_handler(self))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL clients use, e.g. ``http://127.0.0.1:8123/v1``."""
        return f"http://{self._host}:{self.port}/v1"

    def start(self) -> FakeOpenAIServer:
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() waits up to one poll interval
            name="fake-openai",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- called from handler threads --------------------------------------------------------

    def _authorised(self, header: str | None) -> bool:
        return self._api_key is None or header == f"Bearer {self._api_key}"

    def _record(self, body: dict[str, Any], text: str, images: tuple[str, ...]) -> FakeRequest:
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with self._lock:
            self._seen[digest] += 1
            req = FakeRequest(len(self.requests), body, text, images, self._seen[digest])
            self.requests.append(req)
        return req

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def completion(self, req: FakeRequest, text: str) -> dict[str, Any]:
        """The ``chat.completion`` object answering ``req`` with ``text``."""
        max_tokens = req.body.get("max_tokens") or req.body.get("max_completion_tokens")
        words = text.split(" ")
        finish = "stop"
        if isinstance(max_tokens, int) and len(words) > max_tokens:
            text, finish = " ".join(words[:max_tokens]), "length"
        return {
            "id": f"chatcmpl-fake-{req.index}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": len(req.text.split()) + IMAGE_TOKENS * len(req.image_sha256),
                "completion_tokens": len(text.split()),
                "total_tokens": len(req.text.split())
                + IMAGE_TOKENS * len(req.image_sha256)
                + len(text.split()),
            },
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # 64+ clients connect at once in the concurrency benchmark; the default backlog (5)
    # would drop SYNs and add 1 s retransmits.
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that hangs up (size guard, timeout) is expected in tests."""


def _make_handler(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "fake-openai/1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes; without NODELAY, Nagle plus the
            # client's delayed ACK adds ~40 ms to every keep-alive request.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: tests capture logs and must not see request lines."""

        def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)

        def _error(
            self, status: int, message: str, code: str, kind: str, headers: dict[str, str] | None
        ) -> None:
            body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
            self._send(status, json.dumps(body).encode(), headers)

        def _route(self) -> str:
            # The query string is not part of the route (a base URL's ?key=... travels there).
            return self.path.partition("?")[0].rstrip("/")

        def do_GET(self) -> None:
            if self._route() != "/v1/models":
                # Echoes the path, query included, as careless servers do.
                self._error(404, f"no route {self.path}", "not_found", "not_found", None)
                return
            if not server._authorised(self.headers.get("Authorization")):
                self._error(
                    401, "Incorrect API key provided", "invalid_api_key", "auth_error", None
                )
                return
            server.paths.append(self.path)
            data = {"object": "list", "data": [{"id": server.model, "object": "model"}]}
            self._send(200, json.dumps(data).encode())

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            server.paths.append(self.path)
            if self._route() != "/v1/chat/completions":
                self._error(404, f"no route {self.path}", "not_found", "not_found", None)
                return
            if not server._authorised(self.headers.get("Authorization")):
                self._error(
                    401, "Incorrect API key provided", "invalid_api_key", "auth_error", None
                )
                return
            server._enter()
            try:
                self._complete(raw)
            finally:
                server._leave()

        def _complete(self, raw: bytes) -> None:
            try:
                body = json.loads(raw)
                if not isinstance(body, dict):
                    raise _BadRequest(400, "body must be a JSON object", "invalid", "invalid")
                if body.get("model") != server.model:
                    raise _BadRequest(
                        404,
                        f"The model `{body.get('model')}` does not exist.",
                        "model_not_found",
                        "NotFoundError",
                    )
                max_tokens = body.get("max_tokens", 16)
                if not isinstance(max_tokens, int) or max_tokens < 1:
                    raise _BadRequest(400, "max_tokens must be >= 1", "invalid_value", "invalid")
                temp = body.get("temperature", 1.0)
                if not isinstance(temp, int | float) or not 0 <= temp <= 2:
                    raise _BadRequest(400, "temperature must be in [0, 2]", "invalid", "invalid")
                _check_response_format(body.get("response_format"))
                text, images = _parse_messages(body)
            except json.JSONDecodeError:
                self._error(400, "body is not valid JSON", "invalid_json", "invalid", None)
                return
            except _BadRequest as bad:
                self._error(bad.status, bad.message, bad.code, bad.kind, None)
                return
            req = server._record(body, text, images)
            fault = server.faults(req) if server.faults is not None else None
            time.sleep(server.latency_s + (fault.delay_s if fault is not None else 0.0))
            if fault is not None and fault.kind is not FaultKind.DELAY:
                self._fault(req, fault)
                return
            answer = server.answer(req) if callable(server.answer) else server.answer
            self._send(200, json.dumps(server.completion(req, answer)).encode())

        def _fault(self, req: FakeRequest, fault: Fault) -> None:
            if fault.kind is FaultKind.HTTP_ERROR:
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
                self._error(fault.status, fault.message, "injected", "server_error", headers)
            elif fault.kind is FaultKind.MALFORMED_JSON:
                self._send(200, b'{"id": "chatcmpl-broken", "choices": [{"mess')
            elif fault.kind is FaultKind.EMPTY_CHOICES:
                data = server.completion(req, "")
                data["choices"] = []
                self._send(200, json.dumps(data).encode())
            elif fault.kind is FaultKind.HUGE_ANSWER:
                data = server.completion(req, "9" * fault.size_bytes)
                data["choices"][0]["message"]["content"] = "9" * fault.size_bytes
                self._send(200, json.dumps(data).encode())
            elif fault.kind is FaultKind.DROP_CONNECTION:
                self.close_connection = True
                self.connection.close()

    return Handler


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted (``python -m medvision.testing.fake_openai --help``)."""
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible chat server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default="fake-vlm")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--answer", default=DEFAULT_ANSWER)
    args = parser.parse_args(argv)
    server = FakeOpenAIServer(
        model=args.model,
        latency_s=args.latency,
        answer=args.answer,
        host=args.host,
        port=args.port,
    )
    print(f"fake OpenAI server for model {args.model!r} at {server.url}", flush=True)
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
