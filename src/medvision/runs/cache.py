"""The response cache of a run: ``cache.jsonl``, one backend answer per line.

A cached answer is keyed by :func:`cache_key` = (sample id, model, prompt hash, settings hash,
image key): the same question to the same model with the same generation settings is never
asked twice, even when the run spec changes around it (another protocol, another limit, a new
prompt style for some families only). Only answers with text are cached; a backend error is
asked again on the next run that needs it.

Lines are appended with :func:`medvision.runs.records.append_lines` (one ``write`` plus
``fsync``), **before** the records that use them, so a run killed between the two appends
finds the answer here on resume instead of asking again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from medvision.backends.base import ChatResponse
from medvision.runs.records import RecordsError, append_lines

__all__ = ["CACHE_NAME", "CachedAnswer", "append_cache", "cache_key", "read_cache"]

CACHE_NAME = "cache.jsonl"


def cache_key(
    sample_id: str, model: str, prompt_hash: str, settings_hash: str, image_key: str
) -> str:
    """The cache key of one question (32 hex characters of a sha256)."""
    text = "\x1f".join((sample_id, model, prompt_hash, settings_hash, image_key))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class CachedAnswer:
    """One backend answer with the parts of its key spelled out.

    Attributes:
        key: :func:`cache_key` of the fields below.
        sample_id: Sample asked about.
        model: Model name.
        prompt_hash: Hash of the prompt text.
        settings_hash: Hash of the generation and backend settings that change answers.
        image_key: Content key of the stored slice the image sent was rendered from (the
            rendering rule is part of ``settings_hash``).
        text: The model's text.
        latency_s: Backend latency in seconds.
        prompt_tokens: Prompt tokens if the backend reported them.
        completion_tokens: Generated tokens if the backend reported them.
        finish_reason: Why generation stopped, if the backend reported it.
    """

    key: str
    sample_id: str
    model: str
    prompt_hash: str
    settings_hash: str
    image_key: str
    text: str
    latency_s: float
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None

    @classmethod
    def of(cls, key: str, response: ChatResponse, **identity: str) -> CachedAnswer:
        """Cache ``response`` under ``key``; ``identity`` names the key's parts."""
        return cls(
            key=key,
            text=response.text,
            latency_s=response.latency_s,
            prompt_tokens=response.prompt_tokens,
            completion_tokens=response.completion_tokens,
            finish_reason=response.finish_reason,
            **identity,
        )

    def response(self) -> ChatResponse:
        """The backend answer this entry holds, as a fresh :class:`ChatResponse`."""
        return ChatResponse(
            request_id=self.sample_id,
            text=self.text,
            latency_s=self.latency_s,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            finish_reason=self.finish_reason,
        )


def append_cache(path: Path, answers: Iterable[CachedAnswer]) -> None:
    """Append answers durably (one write, then fsync)."""
    append_lines(
        path,
        (json.dumps(asdict(a), ensure_ascii=False, separators=(",", ":")) for a in answers),
    )


def read_cache(path: Path) -> dict[str, CachedAnswer]:
    """Every complete cached answer by key (a torn last line is ignored; later lines win).

    Raises:
        RecordsError: If a complete line is not a cached answer (names file and line).
    """
    out: dict[str, CachedAnswer] = {}
    if not path.exists():
        return out
    with path.open("r", encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.endswith("\n"):
                break  # torn tail of a killed run
            try:
                answer = CachedAnswer(**json.loads(line))
            except (ValueError, TypeError) as exc:
                raise RecordsError(
                    f"{path}:{number}: not a cached answer ({exc}); delete that line (its "
                    "sample is asked again) or rerun with --overwrite"
                ) from exc
            out[answer.key] = answer
    return out
