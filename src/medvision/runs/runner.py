"""The run orchestrator: RunSpec -> select samples -> render -> backend -> parse -> score.

A run directory holds:

* ``run.json``, the run manifest: spec, package and Python versions, dataset build id,
  selection rule, rendering rule of the images, settings hash and the backend's settings
  with secrets removed;
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

Rails that refuse rather than miscount (docs/evaluation.md): one writer per folder
(:mod:`medvision.runs.lock`); the backend's ``preflight()`` before the first sample and a stop
after ``stop_after_errors`` fatal errors in a row; records that no longer describe the store
refuse a resume (:mod:`medvision.runs.integrity`); summaries count one record per sample of
the current selection, backend errors apart (``summary["outcomes"]``).
"""

import inspect
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from medvision.backends import (
    Backend,
    BackendUnavailable,
    ChatRequest,
    ChatResponse,
    create_backend,
)
from medvision.backends.registry import BACKENDS
from medvision.metrics import get_protocol, records_to_table, summarize_run, to_jsonable
from medvision.metrics.jsonvalues import write_json
from medvision.parsing import ParseStatus
from medvision.runs import provenance
from medvision.runs.benchmark import benchmark_manifest
from medvision.runs.cache import CACHE_NAME, CachedAnswer, append_cache, cache_key, read_cache
from medvision.runs.columns_cache import file_state, write_columns
from medvision.runs.ground_truth import warn_ground_truth
from medvision.runs.inputs import check_spec, open_store
from medvision.runs.integrity import (
    Staleness,
    drop_stale,
    records_digest,
    selection_digest,
    stale_records,
)
from medvision.runs.lock import RunLock
from medvision.runs.messages import build_messages
from medvision.runs.records import (
    RECORDS_NAME,
    append_records,
    dedupe,
    read_records,
    repair_tail,
    write_records_atomic,
)
from medvision.runs.scoring import parse_answer, record_of, rescore
from medvision.runs.selection import (
    config_key,
    prior_key,
    select_samples,
    train_statistics,
)
from medvision.runs.spec import (
    DEFAULT_LIMIT,
    DEFAULT_STYLE,
    EXECUTION_OPTIONS,
    RANDOM_MIN_SIDE,
    RUN_NAME,
    STRUCTURED_OUTPUTS,
    SUMMARY_NAME,
    RunError,
    RunSpec,
    redact,
    run_manifest,
)
from medvision.schema import Record, Sample
from medvision.tasks import PromptStyle, prompt_hash, render_prompt
from medvision.tasks.image_policy import get_policy
from medvision.tasks.model_families import layout_for_model, resolve_image_policy
from medvision.tasks.prompts import response_schema
from medvision.volumes.render import RENDERINGS

# Re-exported: the run API has lived here since 0.1.0.
__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_STYLE",
    "EXECUTION_OPTIONS",
    "RUN_NAME",
    "STRUCTURED_OUTPUTS",
    "SUMMARY_NAME",
    "RunError",
    "RunSpec",
    "Runner",
    "config_key",
    "parse_answer",
    "prior_key",
    "redact",
    "rescore",
    "select_samples",
]


#: Fatal backend errors in a row (bad key, wrong URL or model, refused connection) that stop
#: a run: more would only record the same failure for every sample.
STOP_AFTER_ERRORS = 5


class Runner:
    """Evaluates one :class:`RunSpec` into a run directory (resumable, cached).

    Args:
        spec: The run.
        out_dir: Run folder (created; resumed if it holds this run).
        overwrite: Discard the folder's records, summary and cache first.
        rescore_changed: The store changed under a run (rebuilt at the same path): drop the
            records of samples no longer selected, re-score or re-ask those whose data
            changed, instead of refusing to resume.

    Raises:
        RunError: Unknown names in the spec, a folder that is not a built store, a folder
            holding another run or written by another process now.
    """

    def __init__(
        self,
        spec: RunSpec,
        out_dir: str | Path,
        *,
        overwrite: bool = False,
        rescore_changed: bool = False,
    ) -> None:
        self.spec = spec
        self.out = Path(out_dir)
        self.protocol = get_protocol(spec.protocol)
        check_spec(spec)
        self.policy = get_policy(
            resolve_image_policy(spec.image_policy, spec.model_name, spec.protocol)
        )
        self.layout = layout_for_model(spec.chat_layout, spec.model_name)
        self.dataset = open_store(spec.dataset_dir)
        self.rescore_changed = rescore_changed
        self.rendering = spec.rendering_rule
        if self.rendering not in RENDERINGS:
            raise RunError(
                f"unknown rendering {self.rendering!r}; expected one of {list(RENDERINGS)}"
            )
        self._structured = bool(spec.backend_options.get(STRUCTURED_OUTPUTS, False))
        if self._structured and spec.style is not PromptStyle.JSON:
            raise RunError(
                f"backend option {STRUCTURED_OUTPUTS}=true needs prompt style 'json' (the "
                f"schemas are those of the json answers); found {spec.style.value!r}"
            )
        self._settings_hash = spec.settings_hash()
        self.annotation = self.dataset.manifest.annotation
        #: The paper-v1-on-another-ground-truth warning (emitted once, here), or ``None``.
        self.ground_truth_note = warn_ground_truth(spec.protocol, self.annotation)
        self._prompts: dict[str, str] = {}
        self._changed = False
        self._selected: list[Sample] | None = None
        self._split: list[Sample] | None = None
        self._benchmark: dict[str, Any] | None = None
        if spec.benchmark is not None:  # checked (and warned about) once, before any request
            self._split = self.dataset.samples(split=spec.split)  # type: ignore[arg-type]
            self._benchmark = benchmark_manifest(self._split, spec)
        self._lock = RunLock(self.out)
        with self._lock:
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
        manifest = run_manifest(
            self.spec,
            build_id=self.dataset.manifest.build_id,
            annotation=self.annotation,
            selection_digest=selection_digest(self.samples()),
            protocol=self.protocol.switches(),
            backend_settings=backend_settings,
        )
        return {**manifest, "benchmark": self._benchmark, "rendering": self.rendering}

    def _write_manifest(self, meta: dict[str, Any]) -> None:
        write_json(self.out / RUN_NAME, meta, default=str)

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
                and (
                    old.get("dataset_build_id") == meta["dataset_build_id"] or self.rescore_changed
                )
            )
            if not same_run:
                raise RunError(
                    f"{self.out} holds a different run (protocol, split or dataset changed: "
                    f"found {old_spec.get('protocol')}/{old_spec.get('split')}/"
                    f"{old.get('dataset_build_id')}, expected {self.spec.protocol}/"
                    f"{self.spec.split}/{meta['dataset_build_id']}); "
                    "pass a new output folder or --overwrite (or, for a store rebuilt at the "
                    "same path, --rescore-changed)"
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

    def samples(self) -> list[Sample]:
        """The samples this run evaluates (the selection over the store as it is now)."""
        if self._selected is None:
            split = self._split
            if split is None:
                split = self.dataset.samples(split=self.spec.split)  # type: ignore[arg-type]
            self._selected = select_samples(split, self.spec)
        return self._selected

    def run(
        self,
        *,
        backend: Backend | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        retry_errors: bool = False,
        stop_after_errors: int = STOP_AFTER_ERRORS,
    ) -> dict[str, Any]:
        """Evaluate every selected sample not yet recorded; write and return the summary.

        Args:
            backend: A ready backend (tests); by default created from the spec, and only if
                some sample needs asking.
            on_progress: Called as ``(done, total)`` after each batch.
            retry_errors: Ask again the samples whose record is a backend error.
            stop_after_errors: Stop after this many fatal backend errors in a row (0: never).

        Raises:
            RunError: Another process writes this folder; the records no longer describe
                the store (without ``rescore_changed``); the backend's preflight failed; or
                ``stop_after_errors`` fatal errors came in a row (the summary is written
                first, the records are kept, and ``retry_errors`` asks them again).
        """
        with self._lock:
            return self._run(backend, on_progress, retry_errors, stop_after_errors)

    def _run(
        self,
        backend: Backend | None,
        on_progress: Callable[[int, int], None] | None,
        retry_errors: bool,
        stop_after_errors: int,
    ) -> dict[str, Any]:
        spec = self.spec
        samples = self.samples()
        repair_tail(self.records_path)
        repair_tail(self.cache_path)
        cache = read_cache(self.cache_path)
        if not self._changed:
            drop_stale(self.records_path, samples, allow=self.rescore_changed)
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
        try:
            self._preflight(backend)
        except BaseException:
            if own:
                backend.close()
            raise
        self._write_manifest(self._manifest(provenance.backend_settings(backend, spec.generation)))
        ranges = train_statistics(self.dataset)[1] if spec.backend == "random" else {}
        concurrency = getattr(backend, "concurrency", 1)
        batch_size = max(spec.batch_size, 4 * concurrency if isinstance(concurrency, int) else 1)
        in_a_row = 0
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
                for r in responses:
                    in_a_row = in_a_row + 1 if r.error is not None and r.error_fatal else 0
                if stop_after_errors and in_a_row >= stop_after_errors:
                    last = next(r.error for r in reversed(responses) if r.error)
                    self.summarize()
                    raise RunError(
                        f"stopped after {in_a_row} backend errors in a row that a retry cannot "
                        f"fix ({total - finished} samples not asked); last: {last}. Fix the "
                        "backend, then resume with --retry-errors"
                    )
        finally:
            if own:
                backend.close()
        return self.summarize()

    def _preflight(self, backend: Backend) -> None:
        """Run the backend's own check (if it has one) before the first sample."""
        check = getattr(backend, "preflight", None)
        if not callable(check):
            return
        try:
            check()
        except BackendUnavailable as exc:
            raise RunError(f"backend {self.spec.backend!r} is not usable: {exc}") from None

    def _create_backend(self) -> Backend:
        spec = self.spec
        options = dict(spec.backend_options)
        options.pop(STRUCTURED_OUTPUTS, None)  # the runner's: it goes into each request
        if spec.backend == "prior":
            # "statistic" is the runner's option: which train-set statistic the prior answers.
            statistic = options.pop("statistic", "mean")
            options.setdefault("priors", train_statistics(self.dataset, statistic)[0])
        if spec.backend in ("random", "oracle"):
            options.setdefault("seed", spec.seed)
        if spec.backend == "random":
            options.setdefault("min_side", RANDOM_MIN_SIDE[spec.protocol])
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
        """Recompute the summary from the records on disk and write ``summary.json``.

        One record per sample id counts (duplicates are dropped and counted in
        ``run.duplicates_dropped``), and only records of the current selection whose data
        still match the store (others are counted in ``run.stale_dropped``). The summary
        stores the digest of the records file it was made from (``records_digest``).
        """
        with self._lock:
            return self._summarize()

    def _summarize(self) -> dict[str, Any]:
        before = file_state(self.records_path)
        every, duplicates = dedupe(read_records(self.records_path))
        stale: Staleness = stale_records(every, self.samples())
        records = [r for r in every if r.sample_id not in stale.ids]
        # The table of every record is kept as the run's column file, so `score` and `report`
        # need not parse records.jsonl again (runs/columns_cache.py).
        table = records_to_table(every)
        fresh = pa.array([r.sample_id not in stale.ids for r in every], type=pa.bool_())
        summary = summarize_run(table.filter(fresh), self.protocol)
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
            "benchmark": self.spec.benchmark,
            "rendering": self.rendering,
            "selection": "stratified-by-label" if self.spec.protocol == "strict" else "first-n",
            "limit_per_config": self.spec.limit_per_config,
            "dataset_build_id": self.dataset.manifest.build_id,
            "annotation": self.annotation,
            "settings_hash": self._settings_hash,
            "n_records": len(records),
            "n_backend_errors": sum(r.status == ParseStatus.BACKEND_ERROR.value for r in records),
            "duplicates_dropped": duplicates,
            "stale_dropped": len(stale.ids),
            "selection_digest": selection_digest(self.samples()),
            "usage": usage,
            "mean_latency_s": sum(latencies) / len(latencies) if latencies else None,
        }
        summary["records_digest"] = records_digest(self.records_path)
        write_columns(
            self.records_path, table, duplicates, summary["records_digest"], unchanged_since=before
        )
        summary = dict(to_jsonable(summary))
        write_json(self.out / SUMMARY_NAME, summary)
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
        # The family's layout row decides the turns (reference sections 2.6 and 7); the image
        # is rendered by the run's rendering rule.
        image = self.dataset.image(s, self.rendering)
        messages = build_messages(self._prompt(s), image, self.layout)
        return ChatRequest(
            request_id=s.sample_id,
            messages=messages,
            generation=self.spec.generation,
            hints=hints,
            response_schema=response_schema(s.family) if self._structured else None,
        )

    def _record(self, s: Sample, r: ChatResponse) -> Record:
        return record_of(
            s,
            r,
            spec=self.spec,
            policy=self.policy,
            protocol=self.protocol,
            prompt_hash=prompt_hash(self._prompt(s)),
            annotation=s.annotation or self.annotation,
            prompt=self._prompt(s) if self.spec.log_prompts else None,
            rendering=self.rendering,
        )


def _parameters(factory: Callable[..., Any]) -> set[str]:
    try:
        return set(inspect.signature(factory).parameters)
    except (TypeError, ValueError):  # builtins without a signature
        return set()
