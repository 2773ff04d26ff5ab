"""The model-family table: one row per family, with its image policy and its chat layout.

A row says, for one model family of the official evaluation (official-eval-protocol section 7
and the adapter wrappers of section 2.6):

* which model names / hub ids belong to it (a regular expression), and which ``model_type``
  values of a local folder's ``config.json`` (:func:`family_for_model_dir`);
* its image policy under each protocol (``paper-v1``: the c221615 table; ``official``: the
  1.2.1 table, official-versions section 8), see :mod:`medvision.tasks.image_policy`;
* its chat layout (:class:`ChatLayout`): system prompt, where the image goes relative to the
  text, the text template of repository-code adapters, whether the model's own generation
  config decides the decoding, and its ``max_new_tokens`` in the paper's runs.

Message building from a layout lives in :mod:`medvision.runs.messages` (``tasks`` must not
import the backends' message types).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from medvision.tasks.image_policy import ImagePolicy, get_policy

__all__ = [
    "AUTO",
    "CHAT_LAYOUTS",
    "GENERIC_LAYOUT",
    "MODEL_FAMILIES",
    "MODEL_TYPES",
    "ChatLayout",
    "ImagePlacement",
    "ModelFamily",
    "ModelFamilyError",
    "family_for_model",
    "family_for_model_dir",
    "find_family",
    "get_layout",
    "layout_for_model",
    "policy_for_model",
    "resolve_image_policy",
]

#: The value of ``--image-policy`` / ``--chat-layout`` that asks for the model's family row.
AUTO = "auto"
_PROMPT = "{prompt}"

ImagePlacement = Literal["before_text", "after_text"]


class ModelFamilyError(KeyError):
    """No family row fits the model (the message is one line and says which option to pass)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class ChatLayout:
    r"""How one family's official adapter lays out the single user turn.

    Attributes:
        name: Layout name (the family name, or ``"generic"``).
        system_prompt: System message text, or ``None`` for no system turn.
        image_placement: ``"after_text"`` (text part, then the image: the vLLM adapters and
            MedGemma) or ``"before_text"`` (image, then text: Lingshu, Gemini, the
            repository-code adapters).
        text_template: The user text with ``{prompt}`` standing for the rendered prompt (no
            other placeholder; braces in the prompt are kept). Repository-code adapters put
            ``<image>\n`` before the prompt, where their code splices the image features.
        use_model_generation_config: The adapter passes no sampling arguments to
            ``generate()``, so the checkpoint's ``generation_config`` decides (Lingshu).
        max_new_tokens: The adapter's ``max_new_tokens`` in the paper's (c221615) runs, or
            ``None`` where the reference states none.
        verified: Whether the reference states this layout (``False``: our reconstruction).
        source: Where the reference states it.
    """

    name: str
    system_prompt: str | None = None
    image_placement: ImagePlacement = "after_text"
    text_template: str = _PROMPT
    use_model_generation_config: bool = False
    max_new_tokens: int | None = None
    verified: bool = True
    source: str = ""

    def __post_init__(self) -> None:
        if self.text_template.count(_PROMPT) != 1:
            raise ValueError(
                f"chat layout {self.name!r}: text_template must hold {_PROMPT} exactly once; "
                f"found {self.text_template!r}"
            )
        if self.image_placement not in ("before_text", "after_text"):
            raise ValueError(
                f"chat layout {self.name!r}: image_placement must be before_text or "
                f"after_text; found {self.image_placement!r}"
            )
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"chat layout {self.name!r}: max_new_tokens must be >= 1")

    def user_text(self, prompt: str) -> str:
        """The user turn's text: the template with ``{prompt}`` replaced (no other formatting)."""
        return self.text_template.replace(_PROMPT, prompt)


_VLLM = "official-eval-protocol 2.6 (vLLM adapters: text before image, no system) and 7"
#: The official vLLM adapters' layout (text, then image; no system prompt; 1024 new tokens),
#: used for every model without a family row.
GENERIC_LAYOUT = ChatLayout(name="generic", max_new_tokens=1024, source=_VLLM)


def _vllm(name: str) -> ChatLayout:
    return ChatLayout(name=name, max_new_tokens=1024, source=_VLLM)


_LAYOUTS: dict[str, ChatLayout] = {
    "generic": GENERIC_LAYOUT,
    "qwen2.5-vl": _vllm("qwen2.5-vl"),
    "gemma3": _vllm("gemma3"),
    "internvl3": _vllm("internvl3"),
    "llama-3.2-vision": _vllm("llama-3.2-vision"),
    "llava-onevision": _vllm("llava-onevision"),
    "medgemma": ChatLayout(
        name="medgemma",
        system_prompt="You are an expert radiologist.",
        max_new_tokens=2048,
        source="official-eval-protocol 2.6 (medgemma: system, user [text, image]) and 7",
    ),
    "lingshu": ChatLayout(
        name="lingshu",
        image_placement="before_text",
        use_model_generation_config=True,
        max_new_tokens=1024,
        source="official-eval-protocol 2.6 (lingshu: user [image, text]) and 7",
    ),
    "llava-med": ChatLayout(
        name="llava-med",
        image_placement="before_text",
        text_template="<image>\n" + _PROMPT,
        max_new_tokens=1024,
        source="official-eval-protocol 2.6 (llava_med: '<image>\\n'+prompt, mistral_instruct)",
    ),
    "healthgpt": ChatLayout(
        name="healthgpt",
        image_placement="before_text",
        text_template="<image>\n" + _PROMPT,
        max_new_tokens=1024,
        source="official-eval-protocol 2.6 (healthgpt_l14: '<image>\\n'+prompt, phi4_instruct)",
    ),
    "meddr": ChatLayout(
        name="meddr",
        image_placement="before_text",
        max_new_tokens=512,
        verified=False,
        source="official-eval-protocol 2.6 says only 'the original repo's chat helper'; "
        "max_new_tokens 512 from section 7",
    ),
    "huatuogpt-vision": ChatLayout(
        name="huatuogpt-vision",
        image_placement="before_text",
        verified=False,
        source="official-eval-protocol 2.6 says only 'the original repo's chat helper'; "
        "section 7 states no max_new_tokens",
    ),
    # Gemini with the code-execution tool (the variant that returns plain text): contents
    # [image, text], the prompt followed by a literal backslash before "Please" (sic).
    "gemini-2.5": ChatLayout(
        name="gemini-2.5",
        image_placement="before_text",
        text_template=_PROMPT + "\n\\Please put the final answer after 'Answer:'\n\n",
        source="official-eval-protocol 2.6 (gemini__2_5 with tool; the tool itself is not "
        "attached by medvision's backends)",
    ),
    # Not in the paper's roster: the official vLLM default layout, unverified for them.
    "qwen2-vl": ChatLayout(name="qwen2-vl", verified=False, source=_VLLM + " (assumed)"),
    "qwen3-vl": ChatLayout(name="qwen3-vl", verified=False, source=_VLLM + " (assumed)"),
}

CHAT_LAYOUTS: Mapping[str, ChatLayout] = MappingProxyType(_LAYOUTS)
"""Chat layouts by name (read-only): ``"generic"`` and one per family."""


def get_layout(name: str) -> ChatLayout:
    """Return a registered chat layout.

    Raises:
        ModelFamilyError: If the name is unknown (the message lists the known names).
    """
    try:
        return CHAT_LAYOUTS[name]
    except KeyError:
        known = ", ".join(sorted(CHAT_LAYOUTS))
        raise ModelFamilyError(f"unknown chat layout {name!r}; known: {known}, auto") from None


@dataclass(frozen=True)
class ModelFamily:
    """A model family: which models belong to it, its image policies and its chat layout.

    Attributes:
        name: Family name (e.g. ``"qwen2.5-vl"``).
        pattern: Regular expression searched (case-insensitively) in the model name or id.
        policy_v1: Policy name under ``paper-v1`` (the GitHub c221615 table), or ``None`` where
            that table has no entry (the official code raised ``ValueError`` there).
        policy_official: Policy name under ``official`` / ``strict`` (the 1.2.1 table).
        layout: Name of the family's :class:`ChatLayout` in :data:`CHAT_LAYOUTS`.
    """

    name: str
    pattern: str
    policy_v1: str | None
    policy_official: str | None
    layout: str = "generic"

    def matches(self, model: str) -> bool:
        """Whether ``model`` (a name, hub id or folder path) belongs to this family."""
        return re.search(self.pattern, model, flags=re.IGNORECASE) is not None

    @property
    def chat_layout(self) -> ChatLayout:
        """The family's chat layout."""
        return get_layout(self.layout)


#: Model families, most specific first (the first match wins): Lingshu before Qwen, MedGemma
#: before Gemma, LLaVA-Med before LLaVA-OneVision. LLaVA-OneVision-1.5 (a different, Qwen2-VL
#: style processor) is deliberately not matched by the LLaVA-OneVision pattern.
MODEL_FAMILIES: tuple[ModelFamily, ...] = (
    ModelFamily("lingshu", r"lingshu", "lingshu", "lingshu", "lingshu"),
    ModelFamily("qwen3-vl", r"qwen3[-_.]?vl", None, "qwen3-vl", "qwen3-vl"),
    ModelFamily("qwen2.5-vl", r"qwen2[._]?5[-_]?vl", "qwen2.5-vl", "qwen2.5-vl", "qwen2.5-vl"),
    ModelFamily("qwen2-vl", r"qwen2[-_]?vl", "qwen2-vl", "qwen2-vl", "qwen2-vl"),
    ModelFamily("medgemma", r"medgemma", "medgemma", "medgemma", "medgemma"),
    ModelFamily("gemma3", r"gemma[-_]?3", "gemma3", "gemma3", "gemma3"),
    ModelFamily("internvl3", r"internvl[-_]?3", "internvl3", "internvl3-dynamic", "internvl3"),
    ModelFamily("meddr", r"meddr", "meddr", "meddr", "meddr"),
    ModelFamily("llava-med", r"llava[-_]?med", "llava-med", "llava-med-fit", "llava-med"),
    ModelFamily(
        "huatuogpt-vision",
        r"huatuogpt[-_]?vision",
        "huatuogpt-vision",
        "huatuogpt-vision-fit",
        "huatuogpt-vision",
    ),
    ModelFamily("healthgpt", r"healthgpt", "healthgpt", "healthgpt-fit", "healthgpt"),
    ModelFamily(
        "llama-3.2-vision",
        r"llama[-_]?3\.2[-_].*vision|mllama",
        "llama-3.2-vision",
        "llama-3.2-vision",
        "llama-3.2-vision",
    ),
    ModelFamily(
        "llava-onevision",
        r"llava[-_]?onevision(?![-_]?1[._]5)",
        "llava-onevision-v1",
        "llava-onevision",
        "llava-onevision",
    ),
    # Gemini had no spacing rule in the official code (section 1.5): detection only, so no
    # image policy; an explicit --image-policy is needed for T/L and A/D.
    ModelFamily("gemini-2.5", r"gemini[-_]?2\.5", None, None, "gemini-2.5"),
)

#: ``config.json`` ``model_type`` -> family, for local folders whose name says nothing. Only
#: types that one family owns: ``gemma3`` (MedGemma shares it) maps to Gemma-3, whose image
#: policy is the same 896 x 896; InternVL's ``internvl_chat`` spans versions and is left out.
MODEL_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "qwen2_5_vl": "qwen2.5-vl",
        "qwen2_vl": "qwen2-vl",
        "qwen3_vl": "qwen3-vl",
        "gemma3": "gemma3",
        "mllama": "llama-3.2-vision",
        "llava_onevision": "llava-onevision",
    }
)


def _by_name(name: str) -> ModelFamily:
    return next(f for f in MODEL_FAMILIES if f.name == name)


def find_family(model: str) -> ModelFamily | None:
    """The first family whose pattern matches ``model``, or ``None``."""
    for family in MODEL_FAMILIES:
        if family.matches(model):
            return family
    return None


def family_for_model(model: str) -> ModelFamily:
    """The first family of :data:`MODEL_FAMILIES` whose pattern matches ``model``.

    Args:
        model: Model name, hub id (``"Qwen/Qwen2.5-VL-7B-Instruct"``) or folder path.

    Returns:
        The family.

    Raises:
        ModelFamilyError: If no family matches (a ``KeyError``; one line naming
            ``--image-policy``).

    Example:
        >>> family_for_model("google/medgemma-4b-it").name
        'medgemma'
    """
    family = find_family(model)
    if family is None:
        raise ModelFamilyError(
            f"no model family matches {model!r}; pass --image-policy (e.g. native or fixed:HxW)"
        )
    return family


def _read_json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def family_for_model_dir(folder: str | Path) -> ModelFamily | None:
    """The family of a local model, adapter or run folder, from the files it holds.

    Tried in order: the ``config.json`` ``model_type`` (:data:`MODEL_TYPES`), then the
    ``_name_or_path`` of ``config.json`` and the ``base_model_name_or_path`` of an
    ``adapter_config.json`` (a LoRA or training-run folder) against the family patterns.

    Args:
        folder: A folder path (a missing folder or file gives ``None``).

    Returns:
        The family, or ``None`` when nothing there names one.
    """
    path = Path(folder)
    if not path.is_dir():
        return None
    config = _read_json(path / "config.json")
    model_type = config.get("model_type")
    if isinstance(model_type, str) and model_type in MODEL_TYPES:
        return _by_name(MODEL_TYPES[model_type])
    names = (
        config.get("_name_or_path"),
        _read_json(path / "adapter_config.json").get("base_model_name_or_path"),
    )
    for name in names:
        if isinstance(name, str) and name:
            family = find_family(name)
            if family is not None:
                return family
    return None


def _family(model: str) -> ModelFamily | None:
    """The family from the name first, then from a local folder's files."""
    return find_family(model) or family_for_model_dir(model)


def policy_for_model(model: str, protocol: str = "official") -> ImagePolicy:
    """The image policy a model family uses under a protocol.

    Args:
        model: Model name, hub id or folder path (a folder's ``config.json`` is read when the
            name matches no family).
        protocol: ``"paper-v1"`` (c221615 table) or ``"official"`` / ``"strict"`` (1.2.1).

    Returns:
        The registered policy.

    Raises:
        ModelFamilyError: If no family matches or the family has no policy under
            ``protocol`` (one line naming ``--image-policy``).

    Example:
        >>> policy_for_model("OpenGVLab/InternVL3-38B", "paper-v1").seen_hw((512, 512))
        (448, 448)
    """
    family = _family(model) or family_for_model(model)
    name = family.policy_v1 if protocol == "paper-v1" else family.policy_official
    if name is None:
        raise ModelFamilyError(
            f"model family {family.name!r} (from {model!r}) has no image policy under "
            f"protocol {protocol!r}; pass --image-policy"
        )
    return get_policy(name)


def resolve_image_policy(image_policy: str | None, model: str, protocol: str) -> str:
    """The image policy name a run uses: an explicit name, or ``auto``'s family row.

    Args:
        image_policy: A policy name, ``"auto"``, or ``None`` (= ``"auto"``).
        model: The model name, hub id or local folder.
        protocol: The run's protocol.

    Returns:
        A registered policy name (or ``fixed:HxW``).

    Raises:
        ModelFamilyError: ``auto`` and no family fits: one line that names ``--image-policy``.
        KeyError: An unknown explicit policy name.
    """
    if image_policy not in (None, AUTO):
        return get_policy(image_policy).name
    return policy_for_model(model, protocol).name


def layout_for_model(chat_layout: str | None, model: str) -> ChatLayout:
    """The chat layout a run uses: an explicit name, or ``auto``'s family row.

    ``auto`` (or ``None``) takes the layout of the model's family and falls back to
    :data:`GENERIC_LAYOUT` (the official vLLM adapters' layout) when no family fits: the
    served model's own chat template still applies there.

    Raises:
        ModelFamilyError: An unknown explicit layout name.
    """
    if chat_layout not in (None, AUTO):
        return get_layout(chat_layout)
    family = _family(model)
    return family.chat_layout if family is not None else GENERIC_LAYOUT
