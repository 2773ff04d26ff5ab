"""One named configuration for what a model is shown: protocol, prompt style, image policy.

Training data (``medvision export sft``) and evaluation (``medvision eval``) must show a model
the same text and the same image, or a fine-tuned model is evaluated on questions it was not
trained on. :class:`EvalConfig` is that choice in one frozen object with **one set of
defaults** used by both commands; ``export.json`` records it, ``medvision train sft`` copies it
into the run folder (:data:`CONFIG_FILE`), and ``medvision eval --model RUN_DIR`` reads it back
(:func:`read_run_config`).

Fields:

* ``protocol``: ``paper-v1`` (default, as ``medvision eval``), ``official`` or ``strict``;
  it picks the default prompt style and the model-family policy table of ``auto``.
* ``prompt_style``: ``None`` = the protocol's own (``paper-v1`` -> ``paper-v1``,
  ``official``/``strict`` -> ``official``); or ``paper-v1+size``, ``cot``, ``json``.
* ``image_policy``: ``auto`` (default: the model family's policy under the protocol,
  :func:`~medvision.tasks.model_families.resolve_image_policy`, by name or a local folder's
  ``config.json``; ``native`` for the built-in baselines, which have no processor), or a
  policy name / ``fixed:HxW``.
* ``min_pixels`` / ``max_pixels``: override a Qwen-style policy's pixel bounds (area in
  pixels); the same numbers must reach the model's processor, so the ``hf`` backend and the
  trainers pass them as processor options (:meth:`EvalConfig.processor_kwargs`).
* ``chat_layout``: ``auto`` (default: the model family's row, ``generic`` when none fits:
  system prompt, image before or after the text, text template), ``generic`` or a family
  name (:data:`~medvision.tasks.model_families.CHAT_LAYOUTS`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from medvision.tasks.image_policy import ImagePolicy, get_policy
from medvision.tasks.model_families import (
    GENERIC_LAYOUT,
    ChatLayout,
    get_layout,
    layout_for_model,
    resolve_image_policy,
)
from medvision.tasks.prompts import PromptStyle

__all__ = [
    "AUTO_POLICY",
    "BASELINE_BACKENDS",
    "CONFIG_FILE",
    "PROTOCOL_STYLE",
    "EvalConfig",
    "config_mismatches",
    "read_run_config",
    "write_run_config",
]

#: The image policy that follows the model family.
AUTO_POLICY = "auto"
#: Backends without an image processor: ``auto`` means ``native`` for them.
BASELINE_BACKENDS = frozenset({"random", "prior", "oracle"})
#: Default prompt style of each protocol (the same table :class:`medvision.runs.RunSpec` uses).
PROTOCOL_STYLE = {"paper-v1": "paper-v1", "official": "official", "strict": "official"}
#: File in a training run folder (and an export folder's ``export.json`` key) holding the config.
CONFIG_FILE = "medvision_config.json"


@dataclass(frozen=True)
class EvalConfig:
    """What a model is shown: protocol, prompt style and image policy (see the module doc).

    Attributes:
        protocol: ``paper-v1``, ``official`` or ``strict``.
        prompt_style: Prompt style, or ``None`` for the protocol's own.
        image_policy: ``auto``, a policy name or ``fixed:HxW``.
        min_pixels: Override of a Qwen-style policy's ``min_pixels`` (area, pixels).
        max_pixels: Override of a Qwen-style policy's ``max_pixels`` (area, pixels).
        chat_layout: ``auto``, ``generic`` or a family's layout name.
    """

    protocol: str = "paper-v1"
    prompt_style: str | None = None
    image_policy: str = AUTO_POLICY
    min_pixels: int | None = None
    max_pixels: int | None = None
    chat_layout: str = AUTO_POLICY

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOL_STYLE:
            raise ValueError(
                f"unknown protocol {self.protocol!r}; expected one of {sorted(PROTOCOL_STYLE)}"
            )
        if self.prompt_style is not None and self.prompt_style not in set(PromptStyle):
            known = ", ".join(s.value for s in PromptStyle)
            raise ValueError(f"unknown prompt style {self.prompt_style!r}; choose one of: {known}")
        if self.image_policy != AUTO_POLICY:
            get_policy(self.image_policy)  # raises KeyError on an unknown policy
        if self.chat_layout != AUTO_POLICY:
            get_layout(self.chat_layout)  # raises on an unknown layout
        for name, value in (("min_pixels", self.min_pixels), ("max_pixels", self.max_pixels)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0; found {value}")
        if (
            self.min_pixels is not None
            and self.max_pixels is not None
            and self.min_pixels > self.max_pixels
        ):
            raise ValueError(
                f"min_pixels ({self.min_pixels}) must not exceed max_pixels ({self.max_pixels})"
            )

    @property
    def style(self) -> PromptStyle:
        """The prompt style in effect."""
        return PromptStyle(self.prompt_style or PROTOCOL_STYLE[self.protocol])

    def policy(self, model: str = "", backend: str = "") -> ImagePolicy:
        """The image policy in effect for a model.

        Args:
            model: Model name, hub id or folder (``auto`` matches it against the model
                families); ignored for an explicit policy.
            backend: Backend name; ``auto`` is ``native`` for the baselines.

        Returns:
            The policy, with ``min_pixels``/``max_pixels`` applied (its name then says so,
            e.g. ``qwen2.5-vl:max_pixels=1003520``, and :func:`get_policy` reads it back).

        Raises:
            KeyError: If ``auto`` finds no family for ``model`` (the message names
                ``--image-policy``), or the policy is unknown.
            ValueError: If pixel bounds are given for a policy that is not Qwen-style.
        """
        if self.image_policy != AUTO_POLICY:
            base = get_policy(self.image_policy)
        elif backend in BASELINE_BACKENDS:
            base = get_policy("native")
        elif not model:
            raise KeyError(
                "image policy 'auto' needs the model name (--model) to pick the model "
                "family's policy; or pass --image-policy (e.g. qwen2.5-vl, native, fixed:HxW)"
            )
        else:  # the family by name, else a local folder's config.json
            base = get_policy(resolve_image_policy(AUTO_POLICY, model, self.protocol))
        return _with_pixels(base, self.min_pixels, self.max_pixels)

    def layout(self, model: str = "", backend: str = "") -> ChatLayout:
        """The chat layout in effect for a model (``generic`` for the baselines).

        Args:
            model: Model name, hub id or folder (``auto`` matches it against the families,
                falling back to ``generic``).
            backend: Backend name.

        Returns:
            The layout: system prompt, image placement, text template.
        """
        if backend in BASELINE_BACKENDS:
            return GENERIC_LAYOUT
        return layout_for_model(self.chat_layout, model)

    def processor_kwargs(self) -> dict[str, int]:
        """Processor options that make the model's own resize follow the policy's bounds."""
        out: dict[str, int] = {}
        if self.min_pixels is not None:
            out["min_pixels"] = self.min_pixels
        if self.max_pixels is not None:
            out["max_pixels"] = self.max_pixels
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalConfig:
        """Read :meth:`to_dict` output (unknown keys are refused by the constructor)."""
        return cls(**data)

    def differences(self, other: EvalConfig) -> dict[str, tuple[Any, Any]]:
        """Fields that differ: ``{name: (self value, other value)}``."""
        mine, theirs = asdict(self), asdict(other)
        return {k: (v, theirs[k]) for k, v in mine.items() if v != theirs[k]}


def _with_pixels(
    policy: ImagePolicy, min_pixels: int | None, max_pixels: int | None
) -> ImagePolicy:
    if min_pixels is None and max_pixels is None:
        return policy
    if policy.kind != "qwen_smart":
        raise ValueError(
            f"min_pixels/max_pixels apply to Qwen-style policies; {policy.name!r} is "
            f"{policy.kind!r}"
        )
    lo = policy.min_pixels if min_pixels is None else min_pixels
    hi = policy.max_pixels if max_pixels is None else max_pixels
    parts = [f"min_pixels={lo}"] if min_pixels is not None else []
    parts += [f"max_pixels={hi}"] if max_pixels is not None else []
    base = policy.name.split(":", 1)[0]
    return replace(policy, name=f"{base}:{','.join(parts)}", min_pixels=lo, max_pixels=hi)


def write_run_config(folder: str | os.PathLike[str], config: EvalConfig, **extra: Any) -> Path:
    """Write ``{"config": ..., **extra}`` to ``folder/medvision_config.json``.

    Args:
        folder: A training run folder (or any folder a model is loaded from).
        config: The configuration the model was trained with.
        **extra: JSON-ready provenance (e.g. the resolved policy, the export folder).

    Returns:
        The file written.
    """
    path = Path(folder) / CONFIG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"config": config.to_dict(), **extra}
    path.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
    return path


def read_run_config(folder: str | os.PathLike[str]) -> EvalConfig | None:
    """The configuration a model folder was trained with, or ``None`` if it has none.

    Raises:
        ValueError: If the file exists but is not a valid configuration (names the file).
    """
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return EvalConfig.from_dict(data["config"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a valid medvision configuration ({exc})") from exc


def config_mismatches(trained: EvalConfig, used: EvalConfig) -> list[str]:
    """One line per field where an evaluation departs from the training configuration."""
    return [
        f"{name}: trained with {a!r}, evaluated with {b!r}"
        for name, (a, b) in trained.differences(used).items()
    ]
