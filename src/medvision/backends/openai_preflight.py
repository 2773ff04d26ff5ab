"""One check per OpenAI-compatible endpoint before a run sends its first sample.

A dead server, a base URL without ``/v1``, a model name the server does not serve or a
refused key would otherwise give a whole run of ``backend_error`` records. The check:

1. ``GET {base}/models``: a refused connection or a timeout fails; 401/403 fails (the key);
   a 200 listing models fails when the run's model is not among them;
2. when ``/models`` is not answered usefully (404, 405, a body that is not a model list), a
   chat completion of one token with a text-only message: 401/403 fail (the key), 404 fails
   (no API at this URL, or no such model: the message quotes the server);
3. 429 and 5xx never fail the check: the per-sample retries deal with a busy server.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

from medvision.backends.base import BackendUnavailable

__all__ = ["check_endpoint"]


def _detail(response: httpx.Response, scrub: Callable[[str], str]) -> str:
    """The server's error message (``error.message``), else the first 200 characters."""
    text = response.text
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        err = obj.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            text = err["message"]
        elif isinstance(err, str):
            text = err
        elif isinstance(obj.get("message"), str):
            text = obj["message"]
        elif isinstance(obj.get("detail"), str):
            text = obj["detail"]
    return scrub(" ".join(text.split())[:200]) or "(empty body)"


def _served(response: httpx.Response) -> list[str] | None:
    """Model ids of a ``/models`` answer, or ``None`` if it is not a model list."""
    try:
        obj = response.json()
    except ValueError:
        return None
    data = obj.get("data") if isinstance(obj, dict) else None
    if not isinstance(data, list):
        return None
    return [str(m["id"]) for m in data if isinstance(m, dict) and "id" in m]


def _key_refused(status: int, where: str, detail: str, api_key_env: str, key_set: bool) -> str:
    have = f"${api_key_env} is set" if key_set else f"${api_key_env} is empty or unset"
    return (
        f"{where} refused the API key (HTTP {status}: {detail}); {have}: export a valid key "
        "there or name another variable with --api-key-env"
    )


async def check_endpoint(
    client: httpx.AsyncClient,
    *,
    url: str,
    params: tuple[tuple[str, str], ...],
    where: str,
    model: str,
    api_key_env: str,
    key_set: bool,
    timeout_s: float,
    scrub: Callable[[str], str],
) -> None:
    """Check that ``url`` serves ``model`` to this client (see the module docstring).

    Args:
        client: An httpx client carrying the ``Authorization`` header (if any).
        url: Base URL without query (``http://host:8000/v1``).
        params: The base URL's query parameters, sent with each request.
        where: ``url`` as it may be shown (no credentials, no query values).
        model: The model the run asks.
        api_key_env: Environment variable the key came from (for the message).
        key_set: Whether a key is sent.
        timeout_s: Timeout of each request (for the message).
        scrub: Removes secrets from server text.

    Raises:
        BackendUnavailable: With one line naming the fix.
    """
    try:
        listed = await client.get(f"{url}/models", params=params)
        if listed.status_code in (401, 403):
            detail = _detail(listed, scrub)
            raise BackendUnavailable(
                _key_refused(listed.status_code, where, detail, api_key_env, key_set)
            )
        served = _served(listed) if listed.status_code == 200 else None
        if served is not None:
            if model in served:
                return
            shown = ", ".join(served[:8]) + (" ..." if len(served) > 8 else "")
            raise BackendUnavailable(
                f"model {model!r} is not served at {where} (it serves: {shown or 'nothing'}); "
                "pass one of those names as --model"
            )
        body = {
            "model": model,
            "messages": [{"role": "user", "content": "Reply with 1."}],
            "max_tokens": 1,
            "temperature": 0.0,
        }
        probe = await client.post(f"{url}/chat/completions", params=params, json=body)
    except httpx.ConnectError as exc:
        raise BackendUnavailable(
            f"cannot connect to {where} ({scrub(str(exc))}): is the server running, and is "
            "--base-url right?"
        ) from None
    except httpx.TimeoutException:
        raise BackendUnavailable(
            f"no answer from {where} within {timeout_s:g} s: is the server up (a large model "
            "can take minutes to load), or raise --timeout"
        ) from None
    except httpx.TransportError as exc:
        raise BackendUnavailable(
            f"connection error with {where}: {type(exc).__name__}: {scrub(str(exc))}"
        ) from None
    status = probe.status_code
    if status in (401, 403):
        raise BackendUnavailable(
            _key_refused(status, where, _detail(probe, scrub), api_key_env, key_set)
        )
    if status == 404:
        raise BackendUnavailable(
            f"HTTP 404 from {where}/chat/completions ({_detail(probe, scrub)}): check that "
            f"--base-url is the API root (it usually ends in /v1) and that the server serves "
            f"the model {model!r}"
        )
