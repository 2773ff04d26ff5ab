"""The only orchestrator: RunSpec -> select samples -> render -> backend -> parse -> score.

A run directory holds:

* ``run.json``, the run manifest: spec, package and Python versions, dataset build id,
  selection rule, settings hash and the backend's settings with secrets removed;
* ``cache.jsonl``, every backend answer keyed by (sample id, model, prompt hash, settings
  hash, image key) (:mod:`medvision.runs.cache`);
* ``records.jsonl``, one record per selected sample (appended batch by batch, after the
  cache lines they use);
* ``summary.json``, which states the protocol that produced it.

Running a spec into a folder that holds a run resumes it: samples with a record are not sent
again, and samples whose answer is cached (a run killed between the two appends) are scored
from the cache. A changed prompt style, image policy, generation setting, model or selection
re-asks only the samples whose cache key changed. A different protocol, split or dataset build
is a different run and is refused (use ``overwrite`` or another folder).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import platform
import random
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import medvision
from medvision.backends import (
    Backend,
    ChatRequest,
    ChatResponse,
    GenerationConfig,
    ImagePart,
    Message,
    TextPart,
    create_backend,
    fit_priors,
)
from medvision.backends.base import REDACTED, is_secret_name, public_url
from medvision.backends.registry import BACKENDS
from medvision.metrics import get_protocol, sample_metrics, summarize_run, to_jsonable
from medvision.parsing import ParsedAnswer, ParseStatus, parse_last_k, parse_robust
from medvision.runs.cache import CACHE_NAME, CachedAnswer, append_cache, cache_key, read_cache
from medvision.runs.records import (
    RECORDS_NAME,
    append_records,
    read_records,
    repair_tail,
    write_records_atomic,
)
from medvision.schema import Record, Sample, TaskFamily
from medvision.store import BuiltDataset, open_dataset
from medvision.tasks import PromptStyle, get_policy, prompt_hash, render_prompt
from medvision.tasks.prompts import response_schema

RUN_NAME = "run.json"
SUMMARY_NAME = "summary.json"
DEFAULT_STYLE = {"paper-v1": "paper-v1", "official": "official", "strict": "official"}
#: Samples per task configuration when the spec gives no limit: the official scripts pass
#: ``--limit 1000`` to every task (reference official-eval-protocol.md section 6.2).
DEFAULT_LIMIT = 1000
#: Backend options that change how answers are fetched, never what they are: left out of the
#: settings hash, so changing them keeps every cached answer.
EXECUTION_OPTIONS = frozenset(
    {
        "base_url",
        "concurrency",
        "timeout_s",
        "max_retries",
        "backoff_s",
        "max_backoff_s",
        "max_retry_after_s",
        "api_key_env",
        "max_response_bytes",
        "endpoint_cooldown_s",
        "transport",
    }
)
#: Backend option read by the runner, not the backend: with the ``json`` prompt style, each
#: request carries its family's JSON schema (``ChatRequest.response_schema``) for constrained
#: decoding. It changes answers, so it is part of the settings hash (when true).
STRUCTURED_OUTPUTS = "structured_outputs"


class RunError(RuntimeError):
    """A run cannot start or resume (the message says why and what to do)."""


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run (and so its records).

    Attributes:
        dataset_dir: Built dataset folder.
        backend: Backend name (``random``, ``prior``, ``oracle``, ...).
        model: Model name recorded in every record (defaults to the backend name).
        protocol: ``paper-v1``, ``official`` or ``strict``.
        prompt_style: Prompt style; ``None`` picks the protocol's own.
        image_policy: How the model resizes images (so the stated pixel size is right).
        families: Task families to evaluate.
        planes: Planes to evaluate (0 sagittal, 1 coronal, 2 axial).
        split: Split to evaluate.
        limit: Samples per task configuration (dataset, family, plane, measurement type);
            ``None`` for the protocol default (:data:`DEFAULT_LIMIT`, as the official
            scripts), ``0`` for all. ``paper-v1``/``official`` take the first N in dataset
            order; ``strict`` a seeded subsample stratified by label (see
            :func:`select_samples`).
        seed: Seed of sampling and of stochastic baselines.
        generation: Generation settings sent to the backend.
        backend_options: Options passed to the backend factory (no secrets: keys come from
            the environment; run.json redacts secret-looking names anyway), except
            ``structured_outputs`` (:data:`STRUCTURED_OUTPUTS`), which the runner reads: with
            the ``json`` prompt style each request then carries its family's JSON schema.
        batch_size: Requests per backend call (and per durable append); raised to four
            times a backend's ``concurrency`` so an async backend keeps its slots busy.
    """

    dataset_dir: str
    backend: str
    model: str = ""
    protocol: str = "paper-v1"
    prompt_style: str | None = None
    image_policy: str = "native"
    families: tuple[str, ...] = ("detection", "tl", "ad")
    planes: tuple[int, ...] = (0, 1, 2)
    split: str = "test"
    limit: int | None = None
    seed: int = 0
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    backend_options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 32

    @property
    def style(self) -> PromptStyle:
        """The prompt style in effect."""
        return PromptStyle(self.prompt_style or DEFAULT_STYLE[self.protocol])

    @property
    def model_name(self) -> str:
        """The model name in effect."""
        return self.model or self.backend

    @property
    def limit_per_config(self) -> int | None:
        """The limit in effect: ``None`` means every sample."""
        if self.limit is None:
            return DEFAULT_LIMIT
        if self.limit < 0:
            raise ValueError(f"limit must be >= 0 (0 = all), found {self.limit}")
        return self.limit or None

    def fingerprint(self) -> str:
        """Hash of the fields that change records (a change triggers reconciliation)."""
        d = asdict(self)
        d.pop("batch_size")
        d["backend_options"] = _answer_options(self.backend_options)
        return _hash(d)

    def settings_hash(self) -> str:
        """Hash of everything but the prompt that changes a backend's answer.

        Generation settings, backend name, image policy and the backend options that are not
        :data:`EXECUTION_OPTIONS` (a response format, a LoRA adapter, oracle noise...).
        """
        return _hash(
            {
                "generation": asdict(self.generation),
                "backend": self.backend,
                "image_policy": self.image_policy,
                "backend_options": _answer_options(self.backend_options),
                "seed": self.seed,
            }
        )


def _hash(obj: object) -> str:
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _answer_options(options: dict[str, Any]) -> dict[str, Any]:
    # structured_outputs=False is the same run as no option at all (same hashes, same cache).
    return {
        k: v
        for k, v in options.items()
        if k not in EXECUTION_OPTIONS and not (k == STRUCTURED_OUTPUTS and not v)
    }


def redact(value: Any) -> Any:
    """A copy of options with secrets removed, for run manifests and reports.

    Values under secret-looking names (:func:`~medvision.backends.base.is_secret_name`) become
    ``"<redacted>"``, and URLs lose their ``user:password@`` part and secret query values.
    """
    if isinstance(value, dict):
        return {
            k: REDACTED if is_secret_name(str(k)) and v not in (None, "", False) else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return public_url(value)
    return value


def config_key(sample: Sample) -> tuple[str, str, str, int, str, int]:
    """The task configuration a sample belongs to, as the official lmms-eval task names it.

    ``{dataset}_{type}_{TaskNN}_{plane}``: dataset, task, family and plane; distances and
    angles are separate tasks (Ceph), and each T/L target label is its own official task.
    Returns ``(dataset, task_id, family, plane, metric type, T/L label id or -1)``.
    """
    tl_label = sample.label_id if sample.family is TaskFamily.TUMOR_LESION_SIZE else None
    return (
        sample.dataset,
        sample.task_id,
        sample.family.value,
        int(sample.plane),
        sample.metric_type,
        -1 if tl_label is None else tl_label,
    )


def select_samples(samples: Sequence[Sample], spec: RunSpec) -> list[Sample]:
    """Filter by family and plane, then apply the per-configuration limit.

    ``paper-v1`` and ``official`` keep the first N of each configuration in dataset order
    (lmms-eval ``--limit``). ``strict`` draws a seeded subsample stratified by label (label
    name and measurement key): every label gets one sample first when N allows, the rest is
    shared in proportion to label sizes (largest remainders), and each label's samples are
    drawn at random with a seed made of ``spec.seed`` and the configuration.

    Args:
        samples: Samples in dataset order.
        spec: The run spec.

    Returns:
        The samples to evaluate, in dataset order.
    """
    fams = set(spec.families)
    planes = set(spec.planes)
    kept = [s for s in samples if s.family.value in fams and int(s.plane) in planes]
    limit = spec.limit_per_config
    if limit is None:
        return kept
    groups: dict[tuple[str, str, str, int, str, int], list[Sample]] = defaultdict(list)
    for s in kept:
        groups[config_key(s)].append(s)
    chosen: set[str] = set()
    for key, members in groups.items():
        if spec.protocol == "strict":
            rng = random.Random(f"{spec.seed}|{'|'.join(map(str, key))}")
            picked = _stratified(members, limit, rng)
        else:
            picked = members[:limit]
        chosen.update(s.sample_id for s in picked)
    return [s for s in kept if s.sample_id in chosen]


def _stratified(members: Sequence[Sample], n: int, rng: random.Random) -> list[Sample]:
    """``min(n, len(members))`` samples, stratified by (label name, metric key)."""
    if n >= len(members):
        return list(members)
    strata: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for s in members:
        strata[(s.label_name, s.metric_key)].append(s)
    keys = sorted(strata)
    if n < len(keys):
        return [rng.choice(strata[k]) for k in sorted(rng.sample(keys, n))]
    # One each, then the rest in proportion to what each stratum has left.
    spare = {k: len(strata[k]) - 1 for k in keys}
    rest = n - len(keys)
    total = sum(spare.values())
    ideal = {k: rest * spare[k] / total if total else 0.0 for k in keys}
    quota = {k: 1 + math.floor(ideal[k]) for k in keys}
    left = n - sum(quota.values())
    order = sorted(keys, key=lambda k: (-(ideal[k] - math.floor(ideal[k])), rng.random()))
    for k in order[:left]:
        quota[k] += 1
    return [s for k in keys for s in rng.sample(strata[k], quota[k])]


def prior_key(sample: Sample) -> str:
    """Key of the train-set prior a ``prior`` baseline answers for this sample."""
    return f"{sample.dataset}|{sample.family.value}|{sample.label_name}|{sample.metric_key}"


def _train_statistics(
    ds: BuiltDataset, statistic: Literal["mean", "median"] = "mean"
) -> tuple[dict[str, list[float]], dict[str, tuple[float, float]]]:
    """Mean (or median) target and (min, max) range per prior key over the train split."""
    train = ds.samples(split="train")
    items = [(prior_key(s), list(s.target)) for s in train]
    priors = fit_priors(items, statistic)
    ranges: dict[str, tuple[float, float]] = {}
    for key, values in items:
        lo, hi = ranges.get(key, (math.inf, -math.inf))
        ranges[key] = (min(lo, *values), max(hi, *values))
    return priors, ranges


def parse_answer(
    text: str, family_name: str, protocol: str, seen_hw: tuple[int, int], metric_type: str = ""
) -> ParsedAnswer:
    """Parse a model answer as the protocol says (official last-k, or our robust parser)."""
    family = TaskFamily(family_name)
    if protocol == "strict":
        return parse_robust(text, family, image_hw=seen_hw, metric_type=metric_type)
    if protocol == "official":
        return parse_last_k(text, family.n_values, version="official")
    return parse_last_k(text, family.n_values, version="paper-v1")


class Runner:
    """Evaluates one :class:`RunSpec` into a run directory (resumable, cached)."""

    def __init__(self, spec: RunSpec, out_dir: str | Path, *, overwrite: bool = False) -> None:
        self.spec = spec
        self.out = Path(out_dir)
        self.protocol = get_protocol(spec.protocol)
        self.policy = get_policy(spec.image_policy)
        self.dataset = open_dataset(spec.dataset_dir)
        self._structured = bool(spec.backend_options.get(STRUCTURED_OUTPUTS, False))
        if self._structured and spec.style is not PromptStyle.JSON:
            raise RunError(
                f"backend option {STRUCTURED_OUTPUTS}=true needs prompt style 'json' (the "
                f"schemas are those of the json answers); found {spec.style.value!r}"
            )
        self._settings_hash = spec.settings_hash()
        self._prompts: dict[str, str] = {}
        self._changed = False
        self._prepare_dir(overwrite)

    @property
    def records_path(self) -> Path:
        """``records.jsonl`` of this run."""
        return self.out / RECORDS_NAME

    @property
    def cache_path(self) -> Path:
        """``cache.jsonl`` of this run."""
        return self.out / CACHE_NAME

    def _manifest(self, backend_settings: dict[str, Any] | None) -> dict[str, Any]:
        spec = self.spec
        return {
            "fingerprint": spec.fingerprint(),
            "spec": redact(to_jsonable(asdict(spec))),
            "medvision_version": medvision.__version__,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "dataset_build_id": self.dataset.manifest.build_id,
            "protocol": self.protocol.switches(),
            "prompt_style": spec.style.value,
            "selection": {
                "rule": "stratified-by-label" if spec.protocol == "strict" else "first-n",
                "limit_per_config": spec.limit_per_config,
                "config_key": [
                    "dataset",
                    "task_id",
                    "family",
                    "plane",
                    "metric_type",
                    "tl_label_id",
                ],
                "seed": spec.seed,
            },
            "settings_hash": self._settings_hash,
            "backend_settings": redact(
                backend_settings
                if backend_settings is not None
                else {"name": spec.backend, **spec.backend_options}
            ),
        }

    def _write_manifest(self, meta: dict[str, Any]) -> None:
        tmp = self.out / (RUN_NAME + ".tmp")
        tmp.write_text(json.dumps(meta, indent=1, default=str))
        tmp.replace(self.out / RUN_NAME)

    def _prepare_dir(self, overwrite: bool) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        run_file = self.out / RUN_NAME
        meta = self._manifest(None)
        if overwrite:
            for name in (RECORDS_NAME, SUMMARY_NAME, CACHE_NAME):
                (self.out / name).unlink(missing_ok=True)
        elif run_file.exists():
            old = json.loads(run_file.read_text())
            old_spec = old.get("spec", {})
            same_run = (
                old_spec.get("protocol") == self.spec.protocol
                and old_spec.get("split") == self.spec.split
                and old.get("dataset_build_id") == meta["dataset_build_id"]
            )
            if not same_run:
                raise RunError(
                    f"{self.out} holds a different run (protocol, split or dataset changed: "
                    f"found {old_spec.get('protocol')}/{old_spec.get('split')}/"
                    f"{old.get('dataset_build_id')}, expected {self.spec.protocol}/"
                    f"{self.spec.split}/{meta['dataset_build_id']}); "
                    "pass a new output folder or --overwrite"
                )
            self._changed = old.get("fingerprint") != meta["fingerprint"]
            if self._changed and self.records_path.exists() and not self.cache_path.exists():
                raise RunError(
                    f"{self.out} was made without a response cache and its spec changed; "
                    "pass a new output folder or --overwrite"
                )
        # A changed spec keeps the old manifest until its records are rebuilt (in run()): a
        # run stopped before that must not leave old records under the new spec's name.
        if not self._changed:
            self._write_manifest(meta)

    def run(
        self,
        *,
        backend: Backend | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        retry_errors: bool = False,
    ) -> dict[str, Any]:
        """Evaluate every selected sample not yet recorded; write and return the summary.

        Args:
            backend: A ready backend (tests); by default created from the spec, and only if
                some sample needs asking.
            on_progress: Called as ``(done, total)`` after each batch.
            retry_errors: Ask again the samples whose record is a backend error.
        """
        spec = self.spec
        samples = select_samples(self.dataset.samples(split=spec.split), spec)  # type: ignore[arg-type]
        repair_tail(self.records_path)
        repair_tail(self.cache_path)
        cache = read_cache(self.cache_path)
        if self._changed:
            self._rebuild_from_cache(samples, cache)
            self._write_manifest(self._manifest(None))
            self._changed = False
        elif retry_errors:
            kept = [
                r
                for r in read_records(self.records_path)
                if r.status != ParseStatus.BACKEND_ERROR.value
            ]
            write_records_atomic(self.records_path, kept)
        done = {r.sample_id for r in read_records(self.records_path)}
        todo = [s for s in samples if s.sample_id not in done]
        total, finished = len(samples), len(samples) - len(todo)
        if on_progress is not None:
            on_progress(finished, total)
        # Answers cached by a run killed between its cache and records appends.
        hits = [s for s in todo if self._key(s) in cache]
        if hits:
            append_records(
                self.records_path, [self._record_from_cache(s, cache[self._key(s)]) for s in hits]
            )
            finished += len(hits)
            if on_progress is not None:
                on_progress(finished, total)
        ask = [s for s in todo if self._key(s) not in cache]
        if not ask:
            return self.summarize()
        own = backend is None
        if backend is None:
            backend = self._create_backend()
        settings = getattr(backend, "settings", None)
        self._write_manifest(self._manifest(settings() if callable(settings) else None))
        ranges = _train_statistics(self.dataset)[1] if spec.backend == "random" else {}
        concurrency = getattr(backend, "concurrency", 1)
        batch_size = max(spec.batch_size, 4 * concurrency if isinstance(concurrency, int) else 1)
        try:
            for start in range(0, len(ask), batch_size):
                batch = ask[start : start + batch_size]
                requests = [self._request(s, ranges) for s in batch]
                responses = backend.generate(requests)
                if len(responses) != len(batch):
                    raise RunError(
                        f"backend {spec.backend!r} returned {len(responses)} responses "
                        f"for {len(batch)} requests"
                    )
                answers = [
                    self._cached(s, r) for s, r in zip(batch, responses, strict=True) if not r.error
                ]
                # Cache first: a kill between the two appends loses no answer.
                append_cache(self.cache_path, answers)
                append_records(
                    self.records_path,
                    [self._record(s, r) for s, r in zip(batch, responses, strict=True)],
                )
                finished += len(batch)
                if on_progress is not None:
                    on_progress(finished, total)
        finally:
            if own:
                backend.close()
        return self.summarize()

    def _create_backend(self) -> Backend:
        spec = self.spec
        options = dict(spec.backend_options)
        options.pop(STRUCTURED_OUTPUTS, None)  # the runner's: it goes into each request
        if spec.backend == "prior":
            # "statistic" is the runner's option: which train-set statistic the prior answers.
            statistic = options.pop("statistic", "mean")
            options.setdefault("priors", _train_statistics(self.dataset, statistic)[0])
        if spec.backend in ("random", "oracle"):
            options.setdefault("seed", spec.seed)
        factory = BACKENDS.get(spec.backend)
        if factory is not None and "model" in _parameters(factory):
            # Served-model backends (openai) take the run's model name unless told otherwise.
            options.setdefault("model", spec.model_name)
        return create_backend(spec.backend, **options)

    def _rebuild_from_cache(
        self, samples: Sequence[Sample], cache: dict[str, CachedAnswer]
    ) -> None:
        """The spec changed: keep exactly the records whose answer is cached under the new key."""
        records = [
            self._record_from_cache(s, cache[self._key(s)])
            for s in samples
            if self._key(s) in cache
        ]
        write_records_atomic(self.records_path, records)

    def summarize(self) -> dict[str, Any]:
        """Recompute the summary from the records on disk and write ``summary.json``."""
        records = read_records(self.records_path)
        summary = summarize_run(records, self.protocol)
        cache = read_cache(self.cache_path)
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "answers_with_usage": 0}
        for r in records:
            hit = cache.get(
                cache_key(r.sample_id, r.model, r.prompt_hash, self._settings_hash, r.image_key)
            )
            if hit is not None and hit.prompt_tokens is not None:
                usage["prompt_tokens"] += hit.prompt_tokens
                usage["completion_tokens"] += hit.completion_tokens or 0
                usage["answers_with_usage"] += 1
        latencies = [r.latency_s for r in records if r.status != ParseStatus.BACKEND_ERROR.value]
        summary["run"] = {
            "model": self.spec.model_name,
            "backend": self.spec.backend,
            "protocol": self.spec.protocol,
            "prompt_style": self.spec.style.value,
            "image_policy": self.spec.image_policy,
            "selection": "stratified-by-label" if self.spec.protocol == "strict" else "first-n",
            "limit_per_config": self.spec.limit_per_config,
            "dataset_build_id": self.dataset.manifest.build_id,
            "settings_hash": self._settings_hash,
            "n_records": len(records),
            "n_backend_errors": sum(r.status == ParseStatus.BACKEND_ERROR.value for r in records),
            "usage": usage,
            "mean_latency_s": sum(latencies) / len(latencies) if latencies else None,
        }
        summary = dict(to_jsonable(summary))
        tmp = self.out / (SUMMARY_NAME + ".tmp")
        tmp.write_text(json.dumps(summary, indent=1))
        tmp.replace(self.out / SUMMARY_NAME)
        return summary

    # -- per sample -----------------------------------------------------------------------

    def _prompt(self, s: Sample) -> str:
        text = self._prompts.get(s.sample_id)
        if text is None:
            seen_hw = self.policy.seen_hw(s.image_hw)
            spacing = self.policy.seen_spacing(s.spacing_mm_rc, s.image_hw)
            text = render_prompt(s, self.spec.style, seen_hw=seen_hw, seen_spacing_mm_rc=spacing)
            self._prompts[s.sample_id] = text
        return text

    def _key(self, s: Sample) -> str:
        return cache_key(
            s.sample_id,
            self.spec.model_name,
            prompt_hash(self._prompt(s)),
            self._settings_hash,
            s.image_key,
        )

    def _cached(self, s: Sample, r: ChatResponse) -> CachedAnswer:
        return CachedAnswer.of(
            self._key(s),
            r,
            sample_id=s.sample_id,
            model=self.spec.model_name,
            prompt_hash=prompt_hash(self._prompt(s)),
            settings_hash=self._settings_hash,
            image_key=s.image_key,
        )

    def _record_from_cache(self, s: Sample, answer: CachedAnswer) -> Record:
        return self._record(s, answer.response())

    def _request(self, s: Sample, ranges: dict[str, tuple[float, float]]) -> ChatRequest:
        seen_hw = self.policy.seen_hw(s.image_hw)
        key = prior_key(s)
        hints: dict[str, Any] = {
            "family": s.family.value,
            "target": list(s.target),
            "image_hw": list(s.image_hw),
            "seen_hw": list(seen_hw),
            "prior_key": key,
            "answer_tags": self.spec.style is not PromptStyle.PAPER_V1,
        }
        if key in ranges:
            hints["value_range"] = list(ranges[key])
        # Official vLLM adapters put the text before the image (reference section 2.6).
        message = Message(
            role="user",
            content=(TextPart(self._prompt(s)), ImagePart(self.dataset.image(s.image_key))),
        )
        return ChatRequest(
            request_id=s.sample_id,
            messages=(message,),
            generation=self.spec.generation,
            hints=hints,
            response_schema=response_schema(s.family) if self._structured else None,
        )

    def _record(self, s: Sample, r: ChatResponse) -> Record:
        seen_hw = self.policy.seen_hw(s.image_hw)
        if r.error is not None:
            parsed = ParsedAnswer(None, ParseStatus.BACKEND_ERROR, r.error)
        else:
            parsed = parse_answer(
                r.text, s.family.value, self.spec.protocol, seen_hw, s.metric_type
            )
        metrics = sample_metrics(s.family.value, parsed.values, s.target, self.protocol)
        reason = parsed.reason
        if not parsed.ok and r.finish_reason == "length":
            # A failure explained by truncation, not by the model's reading.
            reason = f"{reason} (the answer was cut at the token limit)"
        return Record(
            sample_id=s.sample_id,
            dataset=s.dataset,
            case_id=s.case_id,
            family=s.family.value,
            plane=int(s.plane),
            slice_index=s.slice_index,
            label_id=s.label_id,
            label_name=s.label_name,
            label_kind=s.label_kind,
            label_group=s.label_group,
            modality=s.modality,
            metric_type=s.metric_type,
            metric_key=s.metric_key,
            image_key=s.image_key,
            image_hw=s.image_hw,
            seen_hw=seen_hw,
            seen_spacing_mm_rc=self.policy.seen_spacing(s.spacing_mm_rc, s.image_hw),
            box_img_ratio=s.extras.get("box_img_ratio"),
            target=s.target,
            model=self.spec.model_name,
            backend=self.spec.backend,
            protocol=self.spec.protocol,
            prompt_hash=prompt_hash(self._prompt(s)),
            raw_output=r.text,
            parsed=parsed.values,
            status=parsed.status.value,
            reason=reason,
            metrics=metrics,
            latency_s=r.latency_s,
            prompt_tokens=r.prompt_tokens,
            completion_tokens=r.completion_tokens,
            finish_reason=r.finish_reason,
        )


def _parameters(factory: Callable[..., Any]) -> set[str]:
    try:
        return set(inspect.signature(factory).parameters)
    except (TypeError, ValueError):  # builtins without a signature
        return set()


def rescore(
    run_dir: str | Path, *, protocol: str | None = None, reparse: bool = False
) -> dict[str, Any]:
    """Recompute every per-sample metric and the summary from a run's records alone.

    Args:
        run_dir: A run directory.
        protocol: Score under another protocol (implies re-parsing the raw outputs).
        reparse: Re-parse the raw outputs even under the same protocol.

    Returns:
        The summary. Under the run's own protocol, ``summary.json`` and ``records.jsonl`` are
        rewritten (the ``run`` block of the summary is kept); under another protocol the
        results go to ``summary-<protocol>.json`` and ``records-<protocol>.jsonl``.
    """
    out = Path(run_dir)
    records = read_records(out / RECORDS_NAME)
    if not records:
        raise RunError(f"{out / RECORDS_NAME} holds no records")
    name = protocol or records[0].protocol
    proto = get_protocol(name)
    again = reparse or name != records[0].protocol
    rescored: list[Record] = []
    for r in records:
        values: tuple[float, ...] | None = r.parsed
        status, reason = r.status, r.reason
        if again and r.status != ParseStatus.BACKEND_ERROR.value:
            p = parse_answer(r.raw_output, r.family, name, r.seen_hw, r.metric_type)
            values, status, reason = p.values, p.status.value, p.reason
        metrics = sample_metrics(r.family, values, r.target, proto)
        rescored.append(
            Record(
                **{
                    **asdict(r),
                    "parsed": values,
                    "status": status,
                    "reason": reason,
                    "metrics": metrics,
                    "protocol": name,
                }
            )
        )
    summary = dict(to_jsonable(summarize_run(rescored, proto)))
    same = name == records[0].protocol
    old_summary = out / SUMMARY_NAME
    run_block = json.loads(old_summary.read_text()).get("run", {}) if old_summary.exists() else {}
    summary["run"] = {**run_block, "protocol": name, "n_records": len(rescored)}
    if same:
        summary["run"]["rescored"] = "reparsed" if again else "recomputed"
        # The records must say what the summary says (reports read both).
        write_records_atomic(out / RECORDS_NAME, rescored)
        target = old_summary
    else:
        summary["run"]["rescored_from"] = records[0].protocol
        write_records_atomic(out / f"records-{name}.jsonl", rescored)
        target = out / f"summary-{name}.json"
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(summary, indent=1))
    tmp.replace(target)
    return summary
