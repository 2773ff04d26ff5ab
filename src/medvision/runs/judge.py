"""Answer extraction by an LLM judge (``--parser judge``), after the paper's v2 re-parse.

The paper's v2 tables parse answers with an LLM judge (paper-results 3.2: it "finds the answer
anywhere in the response, the quoted span is checked against the response, and the numbers are
re-extracted"). The official judge script, prompt and model are **not published**
(official-versions section 10: only the consumers ``--parsed_dirname llm-parsed_gemma-4-31b``
and ``--resps_key LLM_filtered_resps`` ship), so this judge is ours and carries no official
name: the prompt is :data:`JUDGE_PROMPT_VERSION`, and a run judged this way says so in
``summary["run"]["parser"]`` and ``judge.json``.

How one record is judged:

1. The judge (any OpenAI-compatible server, :class:`~medvision.backends.openai_compat.
   OpenAICompatBackend`) gets the model's raw output and the task family's answer shape, and
   replies with one JSON object ``{"quote": "<span of the response stating the final answer>"}``
   or ``{"quote": null}``.
2. The quote must occur in the raw output (whitespace runs compared as one space); otherwise
   the record is a parse failure (``no_answer``, reason "judge quote not in the response").
3. The numbers are re-extracted from the quote with the run protocol's own parser
   (:func:`medvision.runs.scoring.parse_answer`; under ``official`` the quote is read as an
   ``<answer>`` block), so the judge never supplies a number itself.

Judge answers are cached in ``judge-cache.jsonl`` (same format and durability as the run's
``cache.jsonl``, keyed by record, judge model, judge-prompt hash and judge settings), so a
killed or failed judge pass resumes where it stopped. The judge's raw reply is kept in each
record (:attr:`~medvision.schema.Record.judge_output`). If any judge request still fails, the
pass stops with a :class:`~medvision.runs.spec.RunError` and leaves the records unchanged: a
record is never scored with a mix of parsers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from medvision.backends import Backend, ChatRequest, GenerationConfig, Message, TextPart
from medvision.metrics import get_protocol, sample_metrics, summarize_run, to_jsonable
from medvision.metrics.jsonvalues import write_json
from medvision.parsing import ParsedAnswer, ParseStatus
from medvision.runs.cache import CachedAnswer, append_cache, cache_key, read_cache
from medvision.runs.integrity import records_digest
from medvision.runs.records import RECORDS_NAME, read_records, repair_tail, write_records_atomic
from medvision.runs.scoring import parse_answer
from medvision.runs.spec import SUMMARY_NAME, RunError, redact
from medvision.schema import Record, TaskFamily
from medvision.tasks import prompt_hash

__all__ = [
    "JUDGE_CACHE_NAME",
    "JUDGE_MANIFEST_NAME",
    "JUDGE_PROMPT_VERSION",
    "JudgeSpec",
    "judge_prompt",
    "judge_run",
    "parse_judged",
]

JUDGE_CACHE_NAME = "judge-cache.jsonl"
JUDGE_MANIFEST_NAME = "judge.json"
#: Version of :func:`judge_prompt` (ours; the official judge prompt is not published).
JUDGE_PROMPT_VERSION = "medvision-judge-v1"

_SHAPES = {
    TaskFamily.DETECTION: (
        "four numbers: the relative coordinates x0, y0 of the lower-left corner and x1, y1 of "
        "the upper-right corner of a bounding box"
    ),
    TaskFamily.TUMOR_LESION_SIZE: (
        "two numbers: the major and the minor axis length of a lesion, in millimeters"
    ),
    TaskFamily.ANGLE_DISTANCE: "one number: a distance in millimeters or an angle in degrees",
}


def judge_prompt(raw_output: str, family: str) -> str:
    """The judge's user message for one model response (ours, :data:`JUDGE_PROMPT_VERSION`).

    Args:
        raw_output: The model's full response.
        family: Task family value (``"detection"``, ``"tl"``, ``"ad"``).

    Returns:
        The prompt text.
    """
    shape = _SHAPES[TaskFamily(family)]
    return (
        "You extract answers. A vision-language model answered a medical image measurement "
        f"question whose answer is {shape}.\n"
        "Find the model's final answer in its response below. Reply with one JSON object and "
        'nothing else: {"quote": "<the exact span of the response that states the final '
        'answer>"}. Copy the span character for character; do not compute, convert, round or '
        'correct anything. If the response states no final answer, reply {"quote": null}.\n'
        f"Response:\n<<<\n{raw_output}\n>>>"
    )


_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_SPACE = re.compile(r"\s+")


def _quote(judge_text: str) -> tuple[str | None, str]:
    """``(quote, problem)``: the judge's quote, or ``None`` and why there is none."""
    match = _JSON_OBJECT.search(judge_text)
    if match is None:
        return None, "judge reply holds no JSON object"
    try:
        data = json.loads(match.group(0))
    except ValueError:
        return None, "judge reply is not valid JSON"
    if not isinstance(data, dict) or "quote" not in data:
        return None, 'judge reply has no "quote" field'
    quote = data["quote"]
    if quote is None or (isinstance(quote, str) and not quote.strip()):
        return None, "judge found no final answer"
    if not isinstance(quote, str):
        return None, f'judge "quote" is a {type(quote).__name__}, not text'
    return quote, ""


def parse_judged(
    raw_output: str,
    judge_text: str,
    family: str,
    protocol: str,
    seen_hw: tuple[int, int],
    metric_type: str = "",
) -> ParsedAnswer:
    """Turn a judge reply into the record's parsed answer (no network; deterministic).

    Args:
        raw_output: The model's response.
        judge_text: The judge's raw reply.
        family: Task family value.
        protocol: The protocol whose parser re-extracts the numbers from the quote.
        seen_hw: Size of the image the model saw (the ``strict`` parser reads pixel boxes).
        metric_type: A/D metric type.

    Returns:
        The parse; a failure when the judge gives no quote or a quote not in the response.
    """
    quote, problem = _quote(judge_text)
    if quote is None:
        return ParsedAnswer.failure(ParseStatus.NO_ANSWER, problem)
    if _SPACE.sub(" ", quote.strip()) not in _SPACE.sub(" ", raw_output):
        return ParsedAnswer.failure(ParseStatus.NO_ANSWER, "judge quote not in the response")
    text = quote
    if protocol == "official" and "<answer>" not in quote:
        text = f"<answer>{quote}</answer>"  # the quote *is* the answer block
    parsed = parse_answer(text, family, protocol, seen_hw, metric_type)
    reason = f"judge: {parsed.reason}" if parsed.reason else "judge"
    return replace(parsed, reason=reason)


@dataclass(frozen=True)
class JudgeSpec:
    """The judge of a run.

    Attributes:
        model: Served model name of the judge.
        base_url: OpenAI-compatible base URLs ending in ``/v1``.
        api_key_env: Environment variable holding the judge server's key.
        concurrency: Judge requests in flight.
        timeout_s: Seconds per judge request attempt.
        max_new_tokens: The judge's generation limit.
        batch_size: Judge requests per durable cache append.
        backend_options: Further :class:`OpenAICompatBackend` options.
    """

    model: str
    base_url: tuple[str, ...]
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    timeout_s: float = 120.0
    max_new_tokens: int = 512
    batch_size: int = 64
    backend_options: dict[str, Any] = field(default_factory=dict)

    def settings_hash(self) -> str:
        """Hash of what changes a judge reply (model, prompt version, decoding)."""
        text = json.dumps(
            {
                "prompt": JUDGE_PROMPT_VERSION,
                "max_new_tokens": self.max_new_tokens,
                "options": self.backend_options,
            },
            sort_keys=True,
            default=str,
        )
        return prompt_hash(text)

    def create_backend(self) -> Backend:
        """The OpenAI-compatible client of the judge."""
        from medvision.backends.openai_compat import OpenAICompatBackend

        return OpenAICompatBackend(
            model=self.model,
            base_url=list(self.base_url),
            concurrency=self.concurrency,
            timeout_s=self.timeout_s,
            api_key_env=self.api_key_env,
            **self.backend_options,
        )


def _key(r: Record, spec: JudgeSpec, settings: str) -> str:
    return cache_key(
        r.sample_id, spec.model, prompt_hash(judge_prompt(r.raw_output, r.family)), settings, ""
    )


def judge_run(
    run_dir: str | Path,
    spec: JudgeSpec,
    *,
    backend: Backend | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Re-parse every answered record of a run with the judge; rewrite records and summary.

    Args:
        run_dir: A run folder (``records.jsonl``).
        spec: The judge.
        backend: A ready judge backend (tests); by default :meth:`JudgeSpec.create_backend`,
            created only if some record needs asking.
        on_progress: Called as ``(judged, total)`` after each batch.

    Returns:
        The new summary (``summary["run"]["parser"] == "judge"``).

    Raises:
        RunError: No records, or judge requests that still failed (records unchanged; run
            again to resume from ``judge-cache.jsonl``).
    """
    out = Path(run_dir)
    records = read_records(out / RECORDS_NAME)
    if not records:
        raise RunError(f"{out / RECORDS_NAME} holds no records to judge")
    cache_path = out / JUDGE_CACHE_NAME
    repair_tail(cache_path)
    cache = read_cache(cache_path)
    settings = spec.settings_hash()
    answered = [r for r in records if r.status != ParseStatus.BACKEND_ERROR.value]
    ask = [r for r in answered if _key(r, spec, settings) not in cache]
    done = len(answered) - len(ask)
    if on_progress is not None:
        on_progress(done, len(answered))
    errors: list[str] = []
    if ask:
        own = backend is None
        client = spec.create_backend() if backend is None else backend
        try:
            for start in range(0, len(ask), spec.batch_size):
                batch = ask[start : start + spec.batch_size]
                responses = client.generate([_request(r, spec) for r in batch])
                new = []
                for r, resp in zip(batch, responses, strict=True):
                    if resp.error is not None:
                        errors.append(f"{r.sample_id}: {resp.error}")
                        continue
                    key = _key(r, spec, settings)
                    entry = CachedAnswer.of(
                        key,
                        resp,
                        sample_id=r.sample_id,
                        model=spec.model,
                        prompt_hash=prompt_hash(judge_prompt(r.raw_output, r.family)),
                        settings_hash=settings,
                        image_key="",
                    )
                    cache[key] = entry
                    new.append(entry)
                append_cache(cache_path, new)
                done += len(batch)
                if on_progress is not None:
                    on_progress(done, len(answered))
        finally:
            if own:
                client.close()
    if errors:
        raise RunError(
            f"judge {spec.model!r}: {len(errors)} of {len(ask)} requests failed (first: "
            f"{errors[0]}); records left unchanged, run again to resume"
        )
    return _rewrite(out, records, cache, spec, settings)


def _request(r: Record, spec: JudgeSpec) -> ChatRequest:
    message = Message(role="user", content=(TextPart(judge_prompt(r.raw_output, r.family)),))
    return ChatRequest(
        request_id=r.sample_id,
        messages=(message,),
        generation=GenerationConfig(max_new_tokens=spec.max_new_tokens, temperature=0.0),
    )


def _rewrite(
    out: Path,
    records: Sequence[Record],
    cache: dict[str, CachedAnswer],
    spec: JudgeSpec,
    settings: str,
) -> dict[str, Any]:
    protocol = records[0].protocol
    proto = get_protocol(protocol)
    judged: list[Record] = []
    for r in records:
        if r.status == ParseStatus.BACKEND_ERROR.value:
            judged.append(r)
            continue
        judge_text = cache[_key(r, spec, settings)].text
        p = parse_judged(r.raw_output, judge_text, r.family, protocol, r.seen_hw, r.metric_type)
        metrics = sample_metrics(r.family, p.values, r.target, proto)
        reason = p.reason
        if not p.ok and r.finish_reason == "length":
            reason = f"{reason} (the answer was cut at the token limit)"
        judged.append(
            replace(
                r,
                parsed=p.values,
                status=p.status.value,
                reason=reason,
                metrics=metrics,
                judge_output=judge_text,
            )
        )
    write_records_atomic(out / RECORDS_NAME, judged)
    manifest = {
        "parser": "judge",
        "judge_model": spec.model,
        "judge_prompt": JUDGE_PROMPT_VERSION,
        "settings_hash": settings,
        "judge_settings": redact({**asdict(spec), "base_url": list(spec.base_url)}),
    }
    (out / JUDGE_MANIFEST_NAME).write_text(json.dumps(manifest, indent=1))
    summary = dict(to_jsonable(summarize_run(judged, proto)))
    old = out / SUMMARY_NAME
    run_block = json.loads(old.read_text()).get("run", {}) if old.exists() else {}
    summary["run"] = {
        **run_block,
        "protocol": protocol,
        "n_records": len(judged),
        "parser": "judge",
        "judge": {"model": spec.model, "prompt": JUDGE_PROMPT_VERSION},
    }
    # As every other summary: tied to the records it was computed from, so an edit of the
    # records (even one that keeps their size and time) makes it stale.
    summary["records_digest"] = records_digest(out / RECORDS_NAME)
    write_json(old, summary)  # strict JSON: an infinite MAE is written "inf"
    return summary
