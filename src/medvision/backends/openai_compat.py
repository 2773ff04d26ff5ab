"""Backend for any OpenAI-compatible chat-completions server (vLLM, SGLang, Ollama, hosted APIs).

One ``POST {base_url}/chat/completions`` per request, sent with ``httpx.AsyncClient``:

* **Bounded concurrency**: at most ``concurrency`` requests are in flight (one semaphore over
  every base URL); the synchronous :meth:`OpenAICompatBackend.generate` runs an asyncio loop
  over the whole batch, so a batch of ``4 * concurrency`` keeps the server busy.
* **Load spreading**: with several base URLs each attempt goes to the endpoint with the fewest
  requests in flight (ties in round-robin order); an endpoint that refused a connection is
  avoided for ``endpoint_cooldown_s`` while another is up.
* **Retries**: on HTTP 408/409/429/5xx, timeouts and broken connections, with exponential
  backoff (full jitter) and at least the server's ``Retry-After``; other 4xx, malformed JSON,
  empty ``choices`` and oversized answers fail at once. A failed request is that request's
  ``ChatResponse(error=...)``: the batch never raises.
* **Timeouts**: ``timeout_s`` bounds each attempt end to end (connect, wait, read).
* **Size guard**: a body over ``max_response_bytes`` is cut off while streaming and fails.
* **Secrets**: the API key is read from the environment variable named by ``api_key_env``
  (default ``OPENAI_API_KEY``); it is sent only as the ``Authorization`` header, never logged,
  never part of :meth:`OpenAICompatBackend.settings`, and scrubbed from error texts (a server
  may echo what it was sent).

Images travel as ``data:image/png;base64,...`` ``image_url`` parts, in the order the message
gives them (the runner puts the text first, as the official vLLM adapters do).

Structured outputs: a request's own ``response_schema`` is sent as ``response_format={"type":
"json_schema", "json_schema": {"name", "schema", "strict": true}}`` (OpenAI, vLLM and SGLang
servers accept it) and overrides the run-level ``response_format``, so one run can hold several
task families, each constrained to its own schema.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import random
import ssl
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx

from medvision.backends.base import (
    REDACTED,
    ChatRequest,
    ChatResponse,
    GenerationConfig,
    is_secret_name,
    public_url,
)
from medvision.backends.openai_wire import (
    Completion,
    build_payload,
    error_detail,
    image_data_url,
    json_schema_format,
    parse_completion,
    retry_after_s,
    to_openai_messages,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "OpenAICompatBackend",
    "build_payload",
    "image_data_url",
    "json_schema_format",
    "parse_completion",
    "public_url",
    "retry_after_s",
    "to_openai_messages",
]

log = logging.getLogger("medvision.backends.openai")

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
#: Statuses worth another attempt: request timeout, conflict, rate limit, server errors.
RETRY_STATUSES = frozenset({408, 409, 429})
#: Statuses that say the key, the URL or the model is wrong (every request would get them).
FATAL_STATUSES = frozenset({401, 403, 404})
_T = TypeVar("_T")
#: Most connections per httpx client (see :meth:`OpenAICompatBackend.agenerate`).
LANE_WIDTH = 8


class _RetryableError(Exception):
    """An attempt failed in a way another attempt may not (the reason is safe to record)."""

    def __init__(self, reason: str, retry_after: float | None = None, fatal: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.fatal = fatal  # when every retry fails: the backend is unusable (refused)


class _FatalError(Exception):
    """An attempt failed in a way a retry would repeat (bad request, malformed answer)."""

    def __init__(self, reason: str, fatal: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fatal = fatal  # 401/403/404: the key, URL or model is wrong, not this request


@dataclass
class _Lane:
    """One httpx client and the requests it carries now."""

    client: httpx.AsyncClient
    in_flight: int = 0


@dataclass
class _Endpoint:
    """One base URL and its load (mutated only on the batch's event loop).

    ``url`` has no query string: a base URL's query parameters (``?key=...``) travel as
    ``params`` on every request, never inside the path.
    """

    url: str
    params: tuple[tuple[str, str], ...] = ()
    in_flight: int = 0
    down_until: float = 0.0


def split_base_url(url: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``(url without query or fragment, trailing "/" dropped; its query parameters)``."""
    parts = urlsplit(url)
    base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
    return base, tuple(parse_qsl(parts.query, keep_blank_values=True))


class OpenAICompatBackend:
    """Chat completions over HTTP against one or more OpenAI-compatible servers.

    Args:
        model: Model name the servers serve (the ``model`` field of every request).
        base_url: One base URL ending in ``/v1`` or several (load is spread over them).
        concurrency: Most requests in flight at once, over all base URLs.
        timeout_s: Limit of one attempt, end to end, in seconds.
        max_retries: Retries after the first attempt (retryable failures only).
        backoff_s: First backoff in seconds; doubles per retry, with full jitter.
        max_backoff_s: Cap of the exponential backoff in seconds.
        max_retry_after_s: Cap on a server's ``Retry-After`` wait in seconds.
        api_key_env: Name of the environment variable holding the API key (unset or empty:
            no ``Authorization`` header, as local servers expect).
        response_format: ``response_format`` sent with every request (JSON schema decoding)
            that has no ``response_schema`` of its own.
        extra_body: Extra top-level request fields (no secrets: they are recorded).
        max_response_bytes: Largest accepted response body in bytes.
        endpoint_cooldown_s: How long an endpoint that refused a connection is avoided.
        send_seed: Send the generation seed.
        transport: An httpx transport (tests); ``None`` for the network.
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | Sequence[str] = DEFAULT_BASE_URL,
        *,
        concurrency: int = 16,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        max_retry_after_s: float = 120.0,
        api_key_env: str = "OPENAI_API_KEY",
        response_format: Mapping[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        max_response_bytes: int = 2 * 1024 * 1024,
        endpoint_cooldown_s: float = 5.0,
        send_seed: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls or not all(isinstance(u, str) and u for u in urls):
            raise ValueError(f"base_url must be a URL or a non-empty list of URLs, found {urls!r}")
        for u in urls:
            if urlsplit(u).scheme not in ("http", "https"):
                raise ValueError(f"base_url must start with http:// or https://, found {u!r}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, found {concurrency}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, found {timeout_s}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, found {max_retries}")
        if max_response_bytes < 1024:
            raise ValueError(f"max_response_bytes must be >= 1024, found {max_response_bytes}")
        if extra_body and any(is_secret_name(k) for k in extra_body):
            raise ValueError(
                "extra_body must not carry secrets (they would be recorded); "
                f"found {sorted(k for k in extra_body if is_secret_name(k))}"
            )
        self.model = model
        self.base_urls = tuple(u.rstrip("/") for u in urls)
        self.concurrency = concurrency
        self.timeout_s = float(timeout_s)
        self.max_retries = max_retries
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.max_retry_after_s = float(max_retry_after_s)
        self.api_key_env = api_key_env
        self.response_format = dict(response_format) if response_format else None
        self.extra_body = dict(extra_body) if extra_body else None
        self.max_response_bytes = max_response_bytes
        self.endpoint_cooldown_s = float(endpoint_cooldown_s)
        self.send_seed = send_seed
        self._transport = transport
        # Read once; kept private and out of repr/settings. Empty means "no key".
        self.__api_key = os.environ.get(api_key_env, "") if api_key_env else ""
        self._endpoints = [_Endpoint(*split_base_url(u)) for u in self.base_urls]
        # Query values of the base URLs are secrets as much as the key (signed URLs).
        self._secrets = sorted(
            {
                v
                for e in self._endpoints
                for k, v in e.params
                if len(v) >= 8 or (len(v) >= 3 and is_secret_name(k))
            },
            key=len,
            reverse=True,
        )
        self._rr = itertools.count()
        self._rng = random.Random()
        self._ssl: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        return (
            f"OpenAICompatBackend(model={self.model!r}, "
            f"base_urls={[public_url(u) for u in self.base_urls]}, "
            f"concurrency={self.concurrency})"
        )

    def settings(self) -> dict[str, Any]:
        """Backend settings for the run manifest: no key, URLs without credentials."""
        return {
            "name": self.name,
            "model": self.model,
            "base_urls": [public_url(u) for u in self.base_urls],
            "concurrency": self.concurrency,
            "timeout_s": self.timeout_s,
            "max_retries": self.max_retries,
            "backoff_s": self.backoff_s,
            "max_backoff_s": self.max_backoff_s,
            "max_retry_after_s": self.max_retry_after_s,
            "api_key_env": self.api_key_env,
            "api_key_set": bool(self.__api_key),
            "response_format": self.response_format,
            "extra_body": self.extra_body,
            "max_response_bytes": self.max_response_bytes,
            "send_seed": self.send_seed,
        }

    def generation_used(self, generation: GenerationConfig) -> dict[str, Any]:
        """The decoding fields each request body carries for ``generation``.

        The server applies its own defaults to everything else (for vLLM, the model's
        ``generation_config`` unless it was started with ``--generation-config vllm``).
        """
        probe = ChatRequest(request_id="", messages=(), generation=generation)
        body = build_payload(
            probe, self.model, extra_body=self.extra_body, send_seed=self.send_seed
        )
        return {k: v for k, v in body.items() if k not in ("model", "messages")}

    # -- public API ---------------------------------------------------------------------------

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Answer every request (same length and order); failures become error responses."""
        if not requests:
            return []
        return _run_sync(lambda: self.agenerate(requests))

    def preflight(self) -> None:
        """Check every base URL once before the first sample (list models, else a 1-token ask).

        Raises:
            BackendUnavailable: A dead server, a base URL with no OpenAI API under it (a
                missing ``/v1``), a model the server does not serve, or a refused key; the
                message is one line naming the fix. Transient answers (429, 5xx) pass: the
                per-sample retries deal with them.
        """
        from medvision.backends.openai_preflight import check_endpoint

        async def check_all() -> None:
            async with self._client() as client:
                for e in self._endpoints:
                    await check_endpoint(
                        client,
                        url=e.url,
                        params=e.params,
                        where=public_url(e.url),
                        model=self.model,
                        api_key_env=self.api_key_env,
                        key_set=bool(self.__api_key),
                        timeout_s=self.timeout_s,
                        scrub=self._scrub,
                    )

        _run_sync(check_all)

    async def agenerate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Async form of :meth:`generate` (one client per call, bound to the running loop)."""
        semaphore = asyncio.Semaphore(self.concurrency)
        # One httpx client degrades badly past ~16 concurrent requests (its pool, measured
        # in benchmarks/eval.py: ~0.2 of ideal throughput at 64), so requests are spread
        # over clients of at most LANE_WIDTH connections each.
        n_lanes = -(-self.concurrency // LANE_WIDTH)
        width = -(-self.concurrency // n_lanes)
        limits = httpx.Limits(max_connections=width, max_keepalive_connections=width)
        clients = [self._client(limits=limits) for _ in range(n_lanes)]
        lanes = [_Lane(c) for c in clients]
        try:
            return list(await asyncio.gather(*(self._one(lanes, semaphore, r) for r in requests)))
        finally:
            for c in clients:
                await c.aclose()

    def close(self) -> None:
        """Nothing to release: each :meth:`generate` call owns and closes its client."""

    # -- internals ------------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        # Built once: loading the CA bundle costs ~20 ms per client otherwise.
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        return self._ssl

    def _scrub(self, text: str) -> str:
        if self.__api_key:
            text = text.replace(self.__api_key, REDACTED)
        for value in self._secrets:
            text = text.replace(value, REDACTED)
        return text

    def _client(self, **kwargs: Any) -> httpx.AsyncClient:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.__api_key:
            headers["Authorization"] = f"Bearer {self.__api_key}"
        return httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(self.timeout_s),
            transport=self._transport,
            verify=self._ssl_context(),
            trust_env=False,  # a proxy from the environment must not see the key
            **kwargs,
        )

    def _pick(self) -> _Endpoint:
        now = time.monotonic()
        up = [e for e in self._endpoints if e.down_until <= now]
        pool = up or sorted(self._endpoints, key=lambda e: e.down_until)[:1]
        turn = next(self._rr)
        n = len(self._endpoints)
        # Fewest in flight first; ties broken by rotating from this turn's position.
        return min(pool, key=lambda e: (e.in_flight, (self._endpoints.index(e) - turn) % n))

    def _delay(self, retry: int, retry_after: float | None) -> float:
        backoff = self._rng.uniform(0, min(self.max_backoff_s, self.backoff_s * 2**retry))
        if retry_after is not None:
            return max(backoff, min(retry_after, self.max_retry_after_s))
        return backoff

    async def _one(
        self, lanes: list[_Lane], semaphore: asyncio.Semaphore, request: ChatRequest
    ) -> ChatResponse:
        start = time.perf_counter()
        try:
            body = json.dumps(
                build_payload(
                    request,
                    self.model,
                    response_format=self.response_format,
                    extra_body=self.extra_body,
                    send_seed=self.send_seed,
                ),
                ensure_ascii=False,
            ).encode("utf-8")
        except (TypeError, ValueError) as exc:
            return self._failed(request, f"cannot encode request: {exc}", start)
        reason = ""
        wait_hint: float | None = None
        fatal = False
        for attempt in range(self.max_retries + 1):
            async with semaphore:
                endpoint = self._pick()  # after the wait, so it sees the current load
                lane = min(lanes, key=lambda x: x.in_flight)
                endpoint.in_flight += 1
                lane.in_flight += 1
                try:
                    done = await self._attempt(lane.client, endpoint, body)
                except _RetryableError as exc:
                    reason, wait_hint, fatal = exc.reason, exc.retry_after, exc.fatal
                except _FatalError as exc:
                    return self._failed(request, exc.reason, start, exc.fatal)
                else:
                    return ChatResponse(
                        request_id=request.request_id,
                        text=self._scrub(done.text),
                        latency_s=time.perf_counter() - start,
                        prompt_tokens=done.prompt_tokens,
                        completion_tokens=done.completion_tokens,
                        finish_reason=done.finish_reason or None,
                    )
                finally:
                    endpoint.in_flight -= 1
                    lane.in_flight -= 1
            if attempt == self.max_retries:
                break
            delay = self._delay(attempt, wait_hint)
            log.warning(
                "request %s: %s; retry %d/%d in %.2f s",
                request.request_id,
                self._scrub(reason),
                attempt + 1,
                self.max_retries,
                delay,
            )
            # The semaphore is released while waiting, so other requests keep the slot busy.
            await asyncio.sleep(delay)
        return self._failed(
            request, f"{reason} (gave up after {self.max_retries + 1} attempts)", start, fatal
        )

    def _failed(
        self, request: ChatRequest, reason: str, start: float, fatal: bool = False
    ) -> ChatResponse:
        reason = self._scrub(reason)
        log.warning("request %s failed: %s", request.request_id, reason)
        return ChatResponse(
            request_id=request.request_id,
            text="",
            error=reason,
            latency_s=time.perf_counter() - start,
            error_fatal=fatal,
        )

    async def _attempt(
        self, client: httpx.AsyncClient, endpoint: _Endpoint, body: bytes
    ) -> Completion:
        url = f"{endpoint.url}/chat/completions"
        where = public_url(url)
        try:
            async with asyncio.timeout(self.timeout_s):
                async with client.stream(
                    "POST", url, content=body, params=endpoint.params
                ) as response:
                    data = await self._read_capped(response, where)
        except TimeoutError:
            raise _RetryableError(f"timeout after {self.timeout_s:g} s from {where}") from None
        except httpx.TimeoutException as exc:
            raise _RetryableError(
                f"timeout ({type(exc).__name__}) after {self.timeout_s:g} s from {where}"
            ) from None
        except httpx.ConnectError as exc:
            endpoint.down_until = time.monotonic() + self.endpoint_cooldown_s
            raise _RetryableError(f"cannot connect to {where}: {exc}", fatal=True) from None
        except httpx.TransportError as exc:
            raise _RetryableError(
                f"connection error with {where}: {type(exc).__name__}: {exc}"
            ) from None
        status = response.status_code
        if status != 200:
            detail = error_detail(data)
            reason = f"HTTP {status} from {where}: {detail}"
            if status in RETRY_STATUSES or status >= 500:
                raise _RetryableError(reason, retry_after_s(response.headers))
            raise _FatalError(reason, fatal=status in FATAL_STATUSES)
        try:
            return parse_completion(data)
        except ValueError as exc:
            raise _FatalError(f"{exc} (from {where})") from None

    async def _read_capped(self, response: httpx.Response, where: str) -> bytes:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_response_bytes:
            raise _FatalError(
                f"response of {int(declared)} bytes from {where} exceeds "
                f"max_response_bytes={self.max_response_bytes}"
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_response_bytes:
                raise _FatalError(
                    f"response from {where} exceeds max_response_bytes="
                    f"{self.max_response_bytes} (cut off at {size} bytes)"
                )
            chunks.append(chunk)
        return b"".join(chunks)


def _run_sync(make: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to the end from sync code, even under a running loop (a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    # Called from inside a running loop: run ours in a helper thread.
    box: list[_T] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            box.append(asyncio.run(make()))
        except BaseException as exc:  # re-raised in the caller's thread below
            errors.append(exc)

    thread = threading.Thread(target=work, name="medvision-openai")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return box[0]
