"""Fine-tuning data from a built dataset: TRL, LLaMA-Factory and ms-swift files.

``export_sft`` turns samples into (prompt, completion, image) rows. What the model is shown
is one :class:`~medvision.tasks.config.EvalConfig` (protocol, prompt style, image policy and
its pixel bounds) with the same defaults as ``medvision eval``, recorded in ``export.json``:
the prompt is :func:`medvision.tasks.render_prompt` (the renderer evaluation uses) with the
image size and pixel spacing of the image the model sees under that policy, the image is
:func:`medvision.store.model_image.model_image` (the one evaluation sends); the completion is
:func:`medvision.training.targets.render_target` for the same style, so a model is trained on
exactly the question it is later evaluated on. (The official SFT code trained detection on
another wording than it evaluated, and its CoT training stated the image size while its CoT
evaluation did not; official-eval-protocol §8.6–8.7.)

The turns follow the chat layout evaluation uses for the model
(:meth:`~medvision.tasks.config.EvalConfig.layout`, :mod:`medvision.runs.messages`): the
family's system prompt, if any, then one user turn with the layout's text template around the
prompt and the image before or after the text as the layout places it (text first for the
official vLLM adapters and models without a family row); ``image_position`` overrides the
placement (``"before"`` is the official SFT order).

Output folder::

    export.json                  config, split, options, counts (unique and repeated
                                 samples), skipped samples and why, mixing weights
    images/ab/<key>-<norm>.png   each image once, named by the content key of its stored slice
                                 and the normalisation its rendering gave it (e.g. ``minmax``,
                                 ``window-bone``): the config's protocol's rendering rule,
                                 through :func:`~medvision.store.model_image.model_image`
    train.jsonl            trl / swift rows (LLaMA-Factory: medvision_sft.jsonl + dataset_info.json)

Rows name their images by absolute path by default, so TRL, LLaMA-Factory and ms-swift read
them from any working directory; ``image_root`` writes another prefix (the folder's path on the
training machine) or, as ``""``, paths relative to the export folder.

Row layouts (one JSON object a line; ``medvision`` is the rewards' ground truth as a JSON
string, see :class:`medvision.training.rewards.RewardTarget`):

* ``trl``: TRL's conversational prompt-completion format, so ``SFTTrainer`` puts the loss on
  the completion only: ``{"prompt": [{"role": "user", "content": [{"type": "text", ...},
  {"type": "image"}]}], "completion": [{"role": "assistant", "content": [{"type": "text",
  ...}]}], "images": ["<root>/images/ab/<key>.png"], "medvision": "...", "id", "sample_id",
  "family"}``. ``prompt + completion`` is the HF ``messages`` list. GRPO reads the same file
  and ignores ``completion``.
* ``llamafactory``: ShareGPT ``{"conversations": [{"from": "human", "value": "...<image>"},
  {"from": "gpt", "value": ...}], "images": [...]}`` plus ``dataset_info.json`` registering it
  as ``medvision_sft`` (``formatting: sharegpt``); with ``image_root=""`` image paths are
  relative to the folder, which is LLaMA-Factory's ``dataset_dir``.
* ``swift``: ``{"messages": [{"role": "user", "content": "...<image>"}, {"role": "assistant",
  "content": ...}], "images": [...], "solution": <completion>, "medvision": "..."}``.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import medvision
from medvision.schema import Sample, Split, TaskFamily
from medvision.store import BuiltDataset, open_dataset
from medvision.store.model_image import model_image, model_rendering
from medvision.store.reader import normalisation_of
from medvision.tasks import ImagePolicy, PromptStyle, render_prompt
from medvision.tasks.config import EvalConfig
from medvision.tasks.model_families import ChatLayout
from medvision.training.export_read import (
    EXPORT_MANIFEST,
    ROWS_FILE_TRL,
    check_train_split,
    export_config,
    read_export_manifest,
    read_trl_rows,
)
from medvision.training.formats import atomic_write_bytes, layout_row, write_rows
from medvision.training.rewards import RewardTarget
from medvision.training.sampler import mixing_weights, temperature_mix
from medvision.training.targets import TargetError, cot_plan, render_cot_target, render_target

__all__ = [
    "EVAL_IMAGE_POSITION",
    "EXPORT_MANIFEST",
    "ExportFormat",
    "ExportOptions",
    "ExportReport",
    "ImagePosition",
    "TrainingExample",
    "build_example",
    "check_train_split",
    "export_config",
    "export_sft",
    "read_export_manifest",
    "read_trl_rows",
    "select_samples",
]

ExportFormat = Literal["trl", "llamafactory", "swift"]
ImagePosition = Literal["before", "after"]

EVAL_IMAGE_POSITION: ImagePosition = "after"
"""Where evaluation puts the image relative to the prompt text (``medvision.runs`` sends
``(text, image)``); training uses the same order by default."""
ROWS_FILE: dict[str, str] = {
    "trl": ROWS_FILE_TRL,
    "llamafactory": "medvision_sft.jsonl",
    "swift": "train.jsonl",
}
LLAMAFACTORY_DATASET = "medvision_sft"
_MAX_REASONS = 20


@dataclass(frozen=True)
class ExportOptions:
    """What to export and how.

    Attributes:
        format: ``trl``, ``llamafactory`` or ``swift``.
        config: What the model is shown (:class:`~medvision.tasks.config.EvalConfig`:
            protocol, prompt style, image policy and its pixel bounds), with the same
            defaults as ``medvision eval``; the completion answers in its prompt style and
            the prompt states the size and spacing of the image the model sees under its
            policy.
        model: The model to train (name, hub id or folder): the ``auto`` image policy picks
            its family's policy, as ``medvision eval --model`` does.
        split: Split to export (``train`` normally; ``medvision train`` refuses ``test``).
        families: Task families to export.
        planes: Planes to export (0 sagittal, 1 coronal, 2 axial).
        limit: Rows to write; ``None`` = every selected sample once (or, with a temperature,
            as many rows as samples).
        temperature: Task-mixing temperature ``T`` (weights ``N^(1/T)`` per family, V0 uses 5);
            ``None`` keeps the natural mixture (each sample at most once).
        seed: Seed of the shuffle and the mixture.
        image_position: ``after`` (text then image) or ``before``; ``None`` (default) places
            the image where the chat layout does, as evaluation sends it.
        ad_decimals: A/D rounding in non-CoT completions (``None``: ``str(value)``, official).
        image_root: Folder the rows' image paths start from: ``None`` writes absolute paths
            into the export folder (any trainer, from any working directory); a path (e.g.
            where the folder will live on the training machine) writes
            ``<image_root>/images/ab/<key>.png``; ``""`` keeps paths relative to the folder.
    """

    format: ExportFormat = "trl"
    config: EvalConfig = field(default_factory=EvalConfig)
    model: str = ""
    split: Split = "train"
    families: tuple[str, ...] = ("detection", "tl", "ad")
    planes: tuple[int, ...] = (0, 1, 2)
    limit: int | None = None
    temperature: float | None = None
    seed: int = 0
    image_position: ImagePosition | None = None
    ad_decimals: int | None = None
    image_root: str | None = None

    def __post_init__(self) -> None:
        if self.format not in get_args(ExportFormat):
            raise ValueError(
                f"unknown export format {self.format!r}; expected one of {get_args(ExportFormat)}"
            )
        self.image_policy()  # raises on an unknown policy or an unmatched model
        if self.ad_decimals is not None and not 0 <= self.ad_decimals <= 15:
            raise ValueError(f"ad_decimals must be in 0..15; found {self.ad_decimals}")
        self.config.layout(self.model)  # raises on an unknown layout
        if self.image_position is not None and self.image_position not in get_args(ImagePosition):
            raise ValueError(
                f"image_position must be before or after; found {self.image_position!r}"
            )
        for fam in self.families:
            TaskFamily(fam)
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"limit must be >= 0; found {self.limit}")

    @property
    def style(self) -> PromptStyle:
        """The prompt style in effect (the configuration's)."""
        return self.config.style

    def image_policy(self) -> ImagePolicy:
        """The image policy in effect for :attr:`model` under the configuration."""
        return self.config.policy(self.model)

    def layout(self) -> ChatLayout:
        """The chat layout in effect for :attr:`model` under the configuration."""
        return self.config.layout(self.model)

    def position(self) -> ImagePosition:
        """Where the image goes: :attr:`image_position`, else where the layout puts it."""
        if self.image_position is not None:
            return self.image_position
        return "before" if self.layout().image_placement == "before_text" else "after"


@dataclass(frozen=True)
class TrainingExample:
    """One training row before it is laid out in a format.

    Attributes:
        row_id: Unique row id (``<sample_id>`` or ``<sample_id>-r<k>`` for a repeat).
        sample_id: The sample.
        family: Task family value.
        prompt: The user turn's text: the evaluation renderer's prompt inside the chat
            layout's text template.
        system: The layout's system prompt, or ``None``.
        completion: Target completion text.
        image_key: Content key of the stored slice the image is rendered from.
        image_path: Image path relative to the export folder (the rendered PNG).
        seen_hw: ``(H', W')`` the prompt states for the image the model sees.
        seen_spacing_mm_rc: ``(row_mm, col_mm)`` the prompt states.
        reward: Ground truth for the GRPO rewards.
    """

    row_id: str
    sample_id: str
    family: str
    prompt: str
    completion: str
    image_key: str
    image_path: str
    seen_hw: tuple[int, int]
    seen_spacing_mm_rc: tuple[float, float]
    reward: RewardTarget
    system: str | None = None


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote.

    Attributes:
        out_dir: The export folder.
        format: Export format.
        rows_file: The rows file (relative to ``out_dir``).
        n_rows: Rows written.
        n_images: Distinct images referenced (each written once).
        n_selected: Samples that passed the filters.
        rows_by_family: Rows per task family.
        skipped: Samples that could not become a row, by reason class (e.g. ``TargetError``).
        skipped_examples: The first messages of those failures (sample ids included).
        mixing_weights: Task weights used (empty without a temperature).
        n_unique_samples: Distinct samples among the rows.
        n_repeated_rows: Rows that repeat a sample already written (temperature mixing
            draws a small task's pool more than once); ``n_rows = n_unique_samples +
            n_repeated_rows``.
        unique_by_family: Distinct samples per task family.
    """

    out_dir: str
    format: str
    rows_file: str
    n_rows: int
    n_images: int
    n_selected: int
    rows_by_family: dict[str, int]
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_examples: list[str] = field(default_factory=list)
    mixing_weights: dict[str, float] = field(default_factory=dict)
    n_unique_samples: int = 0
    n_repeated_rows: int = 0
    unique_by_family: dict[str, int] = field(default_factory=dict)

    @property
    def n_skipped(self) -> int:
        """Samples skipped in all."""
        return sum(self.skipped.values())


def image_relpath(key: str, norm: str = "minmax") -> str:
    """Relative path of a rendered image in an export folder (fan-out by hash prefix).

    Args:
        key: Content key of the stored slice.
        norm: :attr:`medvision.volumes.Normalisation.name` of its rendering (``":"`` becomes
            ``"-"``), so two renderings of one slice never share a file.
    """
    return f"images/{key[:2]}/{key}-{norm.replace(':', '-')}.png"


def build_example(
    sample: Sample, options: ExportOptions, *, row_id: str | None = None
) -> TrainingExample:
    """Render one sample's prompt and completion for training.

    Args:
        sample: The sample.
        options: Export options (style, policy, A/D rounding).
        row_id: Row id (defaults to the sample id).

    Returns:
        The example.

    Raises:
        TargetError: If the completion cannot be built (e.g. CoT without landmarks).
        ValueError: If the prompt cannot be rendered for this sample.
    """
    policy = options.image_policy()
    layout = options.layout()
    seen_hw = policy.seen_hw(sample.image_hw)
    spacing = policy.seen_spacing(sample.spacing_mm_rc, sample.image_hw)
    style = options.style
    prompt = render_prompt(sample, style, seen_hw=seen_hw, seen_spacing_mm_rc=spacing)
    steps: tuple[Any, ...] = ()
    if style is PromptStyle.COT:
        plan = cot_plan(sample, seen_hw=seen_hw, seen_spacing_mm_rc=spacing)
        completion = render_cot_target(sample, plan)
        steps = tuple(s.points_rel if s.n_points else s.value for s in plan.steps)
    else:
        completion = render_target(
            sample,
            style,
            seen_hw=seen_hw,
            seen_spacing_mm_rc=spacing,
            ad_decimals=options.ad_decimals,
        )
    reward = RewardTarget(
        family=sample.family,
        target=tuple(float(v) for v in sample.target),
        metric_type=sample.metric_type if sample.family is not TaskFamily.DETECTION else "",
        steps=steps,
    )
    return TrainingExample(
        row_id=row_id or sample.sample_id,
        sample_id=sample.sample_id,
        family=sample.family.value,
        prompt=layout.user_text(prompt),
        system=layout.system_prompt,
        completion=completion,
        image_key=sample.image_key,
        image_path=image_relpath(
            sample.image_key,
            normalisation_of(sample, model_rendering(options.config.protocol)).name,
        ),
        seen_hw=seen_hw,
        seen_spacing_mm_rc=spacing,
        reward=reward,
    )


def select_samples(samples: Sequence[Sample], options: ExportOptions) -> list[Sample]:
    """The samples to write, in training order (seeded; repeats only under a temperature).

    Without a temperature: a seeded shuffle, truncated to ``limit``. With one: the
    :func:`~medvision.training.sampler.temperature_mix` of the task families.
    """
    if options.temperature is None:
        order = list(samples)
        random.Random(options.seed).shuffle(order)
        return order if options.limit is None else order[: options.limit]
    pools: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        pools[s.family.value].append(s)
    return temperature_mix(
        pools, temperature=options.temperature, total=options.limit, seed=options.seed
    )


def export_sft(
    dataset: str | os.PathLike[str] | BuiltDataset,
    out_dir: str | os.PathLike[str],
    options: ExportOptions | None = None,
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> ExportReport:
    """Write fine-tuning data for a built dataset (see the module docstring for the layout).

    Samples whose prompt or completion cannot be built (e.g. a CoT target for a sample
    without landmarks) are skipped, counted by reason in the report and in ``export.json``;
    the export goes on. Re-running into the same folder rewrites the rows and reuses the
    images already there.

    Args:
        dataset: Built dataset folder (or an open one).
        out_dir: Export folder (created).
        options: Export options (defaults: TRL, ``official`` style, ``qwen2.5-vl`` policy).
        on_progress: Called as ``(done, total)`` while rows are built.

    Returns:
        The report.
    """
    opts = options or ExportOptions()
    ds = dataset if isinstance(dataset, BuiltDataset) else open_dataset(dataset)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    samples = ds.samples(split=opts.split, families=opts.families, planes=opts.planes)
    chosen = select_samples(samples, opts)

    examples: list[TrainingExample] = []
    skipped: Counter[str] = Counter()
    reasons: list[str] = []
    cache: dict[str, TrainingExample | None] = {}
    repeats: Counter[str] = Counter()
    for i, s in enumerate(chosen):
        if s.sample_id not in cache:
            try:
                cache[s.sample_id] = build_example(s, opts)
            except (TargetError, ValueError) as exc:
                cache[s.sample_id] = None
                skipped[type(exc).__name__] += 1
                if len(reasons) < _MAX_REASONS:
                    reasons.append(str(exc))
        ex = cache[s.sample_id]
        if ex is not None:
            k = repeats[s.sample_id]
            repeats[s.sample_id] += 1
            row_id = s.sample_id if k == 0 else f"{s.sample_id}-r{k}"
            examples.append(ex if k == 0 else _replace_id(ex, row_id))
        if on_progress is not None and (i + 1) % 1000 == 0:
            on_progress(i + 1, len(chosen))

    by_id = {s.sample_id: s for s in chosen}
    first: dict[str, Sample] = {}  # image path -> a sample shown with it
    for ex in examples:
        first.setdefault(ex.image_path, by_id[ex.sample_id])
    for relpath, sample in first.items():
        path = out / relpath
        if not path.is_file():
            atomic_write_bytes(path, model_image(ds, sample, protocol=opts.config.protocol))

    if opts.image_root is None:
        image_root = out.resolve().as_posix()
    else:
        image_root = opts.image_root.rstrip("/") if opts.image_root else ""
    rows_file = ROWS_FILE[opts.format]
    write_rows(
        out / rows_file,
        (layout_row(ex, opts.format, opts.position(), image_root) for ex in examples),
    )
    if opts.format == "llamafactory":
        info = {
            LLAMAFACTORY_DATASET: {
                "file_name": rows_file,
                "formatting": "sharegpt",
                "columns": {
                    "messages": "conversations",
                    "images": "images",
                    **({} if opts.layout().system_prompt is None else {"system": "system"}),
                },
            }
        }
        (out / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n")

    weights: dict[str, float] = {}
    if opts.temperature is not None:
        counts = Counter(s.family.value for s in samples)
        weights = mixing_weights(dict(counts), opts.temperature) if counts else {}
    n_unique = len({ex.sample_id for ex in examples})
    report = ExportReport(
        out_dir=str(out),
        format=opts.format,
        rows_file=rows_file,
        n_rows=len(examples),
        n_images=len({ex.image_path for ex in examples}),
        n_selected=len(samples),
        rows_by_family=dict(Counter(ex.family for ex in examples)),
        skipped=dict(skipped),
        skipped_examples=reasons,
        mixing_weights=weights,
        n_unique_samples=n_unique,
        n_repeated_rows=len(examples) - n_unique,
        unique_by_family=dict(Counter(by_id[i].family.value for i in repeats)),
    )
    recorded = asdict(opts)  # asdict recurses: the config is a plain dict in it
    policy = opts.image_policy()
    manifest = {
        "medvision_version": medvision.__version__,
        "dataset": str(ds.root),
        "dataset_build_id": ds.manifest.build_id,
        "split": opts.split,
        # What the model is shown: `medvision train` copies it into its run folder and
        # `medvision eval --model RUN_DIR` uses it.
        "config": opts.config.to_dict(),
        "resolved": {
            "prompt_style": opts.style.value,
            "image_policy": policy.name,
            "processor_kwargs": opts.config.processor_kwargs(),
            "chat_layout": opts.layout().name,
            "image_position": opts.position(),
            "image_root": image_root,
        },
        "options": recorded,
        "report": asdict(report),
    }
    (out / EXPORT_MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    if on_progress is not None:
        on_progress(len(chosen), len(chosen))
    return report


def _replace_id(ex: TrainingExample, row_id: str) -> TrainingExample:
    return TrainingExample(**{**ex.__dict__, "row_id": row_id})
