"""Chat requests from the model-family table: golden request files, one per family.

Each ``tests/golden/requests/<family>.json`` holds the request a family gets under
``paper-v1`` for one T/L sample (detection where the family has no spacing rule): its layout
row, the image policy and stated pixel size, the token limit, and the messages (text verbatim,
image as a sha256 placeholder, in order). They were generated once and checked by hand
against official-eval-protocol sections 2.6 and 7 (MedGemma's system turn, Lingshu's image
first, ``<image>\\n`` for LLaVA-Med and HealthGPT, text before image for the vLLM adapters).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest

from medvision.runs.messages import build_messages, describe_messages
from medvision.schema import Plane, Sample, TaskFamily
from medvision.tasks import PromptStyle, render_prompt
from medvision.tasks.image_policy import get_policy
from medvision.tasks.model_families import (
    CHAT_LAYOUTS,
    GENERIC_LAYOUT,
    MODEL_FAMILIES,
    ChatLayout,
    get_layout,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "requests"
PNG = b"\x89PNG\r\n\x1a\n golden image"

_TL = Sample(
    sample_id="s0",
    dataset="KiTS23",
    case_id="case_00001",
    split="test",
    family=TaskFamily.TUMOR_LESION_SIZE,
    plane=Plane.AXIAL,
    slice_index=40,
    label_id=2,
    label_name="kidney tumor",
    label_kind="tumour",
    label_group="Kidney Tumor/Lesion",
    modality="CT",
    image_description="kidney computed tomography (CT) scan",
    image_key="0" * 64,
    image_hw=(512, 512),
    spacing_mm_rc=(0.78125, 0.78125),
    target=(30.0, 20.0),
    unit="mm",
    metric_type="axes",
)
_DETECTION = replace(_TL, family=TaskFamily.DETECTION, target=(0.1, 0.2, 0.3, 0.4), unit="relative")

# The section 7 roster plus the generic row (every model without a family).
FAMILIES = ["generic", *(f.name for f in MODEL_FAMILIES)]


def _golden(name: str) -> dict[str, Any]:
    family = next((f for f in MODEL_FAMILIES if f.name == name), None)
    layout = family.chat_layout if family is not None else GENERIC_LAYOUT
    policy_name = family.policy_v1 if family is not None else "native"
    sample = _TL if policy_name is not None else _DETECTION
    policy = get_policy(policy_name or "native")
    spacing = policy.seen_spacing(sample.spacing_mm_rc, sample.image_hw)
    prompt = render_prompt(
        sample,
        PromptStyle.PAPER_V1,
        seen_hw=policy.seen_hw(sample.image_hw),
        seen_spacing_mm_rc=spacing,
    )
    return {
        "family": name,
        "layout": asdict(layout),
        "image_policy_paper_v1": policy_name,
        "seen_hw": list(policy.seen_hw(sample.image_hw)),
        "messages": describe_messages(build_messages(prompt, PNG, layout)),
    }


@pytest.mark.parametrize("name", FAMILIES)
def test_request_matches_golden_file(name: str) -> None:
    expected = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
    assert _golden(name) == expected


def test_every_golden_request_file_is_used() -> None:
    assert {p.stem for p in GOLDEN.glob("*.json")} == set(FAMILIES)


def test_reference_layouts_independently() -> None:
    # Typed from official-eval-protocol 2.6 / 7, not from the table.
    png_hash = hashlib.sha256(PNG).hexdigest()
    image = {"type": "image", "png_sha256": png_hash}

    def user(layout: ChatLayout) -> list[dict[str, Any]]:
        return describe_messages(build_messages("Q {x}", PNG, layout))

    assert user(get_layout("medgemma")) == [
        {"role": "system", "content": [{"type": "text", "text": "You are an expert radiologist."}]},
        {"role": "user", "content": [{"type": "text", "text": "Q {x}"}, image]},
    ]
    assert user(get_layout("lingshu")) == [
        {"role": "user", "content": [image, {"type": "text", "text": "Q {x}"}]}
    ]
    for name in ("llava-med", "healthgpt"):
        assert user(get_layout(name))[0]["content"][1] == {"type": "text", "text": "<image>\nQ {x}"}
    for name in ("qwen2.5-vl", "gemma3", "internvl3", "llama-3.2-vision", "llava-onevision"):
        assert user(get_layout(name)) == [
            {"role": "user", "content": [{"type": "text", "text": "Q {x}"}, image]}
        ]
    gemini = user(get_layout("gemini-2.5"))[0]["content"]
    assert gemini == [
        image,
        {"type": "text", "text": "Q {x}\n\\Please put the final answer after 'Answer:'\n\n"},
    ]
    tokens = {
        n: CHAT_LAYOUTS[n].max_new_tokens for n in ("medgemma", "lingshu", "meddr", "llava-med")
    }
    assert tokens == {"medgemma": 2048, "lingshu": 1024, "meddr": 512, "llava-med": 1024}
    assert CHAT_LAYOUTS["lingshu"].use_model_generation_config
    assert not CHAT_LAYOUTS["meddr"].verified and not CHAT_LAYOUTS["huatuogpt-vision"].verified


def test_layout_template_needs_exactly_one_prompt_placeholder() -> None:
    with pytest.raises(ValueError, match="exactly once"):
        ChatLayout(name="bad", text_template="no placeholder")


if __name__ == "__main__":  # regenerate (then review every diff by hand)
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for family_name in FAMILIES:
        text = json.dumps(_golden(family_name), indent=1, ensure_ascii=False) + "\n"
        (GOLDEN / f"{family_name}.json").write_text(text, encoding="utf-8")


def test_generic_layout_keeps_older_hashes_and_others_change_them() -> None:
    from medvision.runs.spec import RunSpec, _hash

    spec = RunSpec(dataset_dir="ds", backend="openai", model="m")
    before = {  # the settings hash as computed before chat layouts existed
        "generation": asdict(spec.generation),
        "backend": "openai",
        "image_policy": "native",
        "backend_options": {},
        "seed": 0,
    }
    assert spec.settings_hash() == _hash(before)
    medgemma = replace(spec, chat_layout="medgemma")
    assert medgemma.settings_hash() != spec.settings_hash()
    assert medgemma.fingerprint() != spec.fingerprint()


def test_layouts_with_the_generic_turns_keep_the_generic_hashes() -> None:
    from medvision.runs.spec import RunSpec

    spec = RunSpec(dataset_dir="ds", backend="openai", model="m")
    qwen = replace(spec, chat_layout="qwen2.5-vl")  # text, image, no system: as generic
    assert qwen.settings_hash() == spec.settings_hash()
    assert qwen.fingerprint() == spec.fingerprint()
    lingshu = replace(spec, chat_layout="lingshu")
    assert lingshu.settings_hash() != spec.settings_hash()
