"""What defines a run: the spec, its hashes, the run folder's file names, and redaction.

The run manifest (``run.json``) stores the spec with secrets removed (:func:`redact`); two
hashes decide what a changed spec re-asks: :meth:`RunSpec.fingerprint` (records change) and
:meth:`RunSpec.settings_hash` (a backend's answer changes).
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

import medvision
from medvision.backends import GenerationConfig
from medvision.backends.base import REDACTED, is_secret_name, public_url
from medvision.metrics import to_jsonable
from medvision.metrics.protocols import get_protocol
from medvision.tasks import PromptStyle

RUN_NAME = "run.json"
SUMMARY_NAME = "summary.json"
DEFAULT_STYLE = {"paper-v1": "paper-v1", "official": "official", "strict": "official"}
#: Smallest side in pixels of the random baseline's boxes: 1 in c221615, 3 in 1.2.1
#: (reference official-versions.md section 5).
RANDOM_MIN_SIDE = {"paper-v1": 1, "official": 3, "strict": 3}
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
        chat_layout: Chat layout of the requests (:data:`~medvision.tasks.model_families.
            CHAT_LAYOUTS`: system prompt, image placement, text template), ``"auto"`` for the
            model family's row, or ``"generic"`` (text then image, no system: the official
            vLLM adapters). A layout whose turns differ from ``generic``'s is part of both
            hashes; one with the generic turns leaves them as they were before layouts
            existed, so older runs resume unchanged.
        benchmark: Named benchmark (``paper-main``, ``paper-plane-ood``, ``paper-task-ood``,
            ``all``; :mod:`medvision.catalog.benchmarks`): only its task configurations are
            evaluated (within ``families`` and ``planes``); ``None`` evaluates every one.
        log_prompts: Keep each sample's rendered prompt text in its record (``prompt``);
            the records then show exactly what the model was asked.
        rendering: Rendering rule of the images (``minmax``, ``official``, ``percentile``;
            :mod:`medvision.volumes.render`); ``None`` takes the protocol's own
            (:attr:`medvision.metrics.protocols.Protocol.rendering`).
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
    chat_layout: str = "generic"
    benchmark: str | None = None
    log_prompts: bool = True
    rendering: str | None = None

    @property
    def rendering_rule(self) -> str:
        """The rendering rule in effect (the spec's, else the protocol's)."""
        return self.rendering or get_protocol(self.protocol).rendering

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
        layout = _layout_identity(self.chat_layout)
        if layout is None:
            d.pop("chat_layout")
        else:
            d["chat_layout"] = layout
        if d["benchmark"] is None:  # runs made before benchmarks existed keep their hash
            d.pop("benchmark")
        if d["log_prompts"]:  # the default: runs made before prompts were logged keep theirs
            d.pop("log_prompts")
        d["backend_options"] = _answer_options(self.backend_options)
        return _hash(d)

    def settings_hash(self) -> str:
        """Hash of everything but the prompt that changes a backend's answer.

        Generation settings, backend name, image policy, the rendering rule of the images, a
        non-generic chat layout and the backend options that are not
        :data:`EXECUTION_OPTIONS` (a response format, a LoRA adapter, oracle noise...).
        """
        settings: dict[str, Any] = {
            "generation": asdict(self.generation),
            "backend": self.backend,
            "image_policy": self.image_policy,
            "backend_options": _answer_options(self.backend_options),
            "seed": self.seed,
        }
        if self.rendering_rule != "minmax":
            # Min-max images are those every run saw before rendering became a protocol
            # setting (default builds): their hashes stay as they were.
            settings["rendering"] = self.rendering_rule
        layout = _layout_identity(self.chat_layout)
        if layout is not None:
            settings["chat_layout"] = layout
        if self.backend == "random" and "min_side" not in self.backend_options:
            side = RANDOM_MIN_SIDE.get(self.protocol, 1)
            if side != 1:
                # The protocol's minimum box side (3 px under official/strict) changes the draws;
                # boxes cached before it existed (1 px everywhere) keep their paper-v1 hash only.
                settings["random_min_side"] = side
        return _hash(settings)


def _layout_identity(name: str) -> dict[str, Any] | str | None:
    """What of a chat layout changes answers: ``None`` when the turns equal ``generic``'s.

    The layout's *content* (system prompt, image placement, text template) is hashed, not its
    name, so a family whose turns are the generic ones (the vLLM families) keeps the hashes of
    runs made before layouts existed; ``auto`` stays a name (it depends on the model).
    """
    from medvision.tasks.model_families import AUTO, GENERIC_LAYOUT, get_layout

    if name == AUTO:
        return name
    layout = get_layout(name)

    def turns(x: Any) -> dict[str, Any]:
        return {
            "system_prompt": x.system_prompt,
            "image_placement": x.image_placement,
            "text_template": x.text_template,
        }

    same = turns(layout) == turns(GENERIC_LAYOUT)
    return None if same else turns(layout)


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


def run_manifest(
    spec: RunSpec,
    *,
    build_id: str,
    annotation: str | None,
    selection_digest: str,
    protocol: dict[str, Any],
    backend_settings: dict[str, Any] | None,
) -> dict[str, Any]:
    """The run manifest (``run.json``): spec, versions, data identity, hashes, settings.

    Args:
        spec: The run spec (stored with secrets redacted).
        build_id: The dataset's build id.
        annotation: The build's ground-truth version (``None`` for older builds).
        selection_digest: Digest of the selected samples' data
            (:func:`medvision.runs.integrity.selection_digest`).
        protocol: The protocol's switches.
        backend_settings: The backend's own settings (secrets removed), or ``None`` for the
            spec's backend options.
    """
    return {
        "fingerprint": spec.fingerprint(),
        "spec": redact(to_jsonable(asdict(spec))),
        "medvision_version": medvision.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "dataset_build_id": build_id,
        "annotation": annotation,
        "selection_digest": selection_digest,
        "protocol": protocol,
        "prompt_style": spec.style.value,
        "selection": {
            "rule": "stratified-by-label" if spec.protocol == "strict" else "first-n",
            "limit_per_config": spec.limit_per_config,
            "config_key": ["dataset", "task_id", "family", "plane", "metric_type", "tl_label_id"],
            "seed": spec.seed,
        },
        "settings_hash": spec.settings_hash(),
        "backend_settings": redact(
            backend_settings
            if backend_settings is not None
            else {"name": spec.backend, **spec.backend_options}
        ),
    }
