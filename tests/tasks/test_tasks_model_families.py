"""Model-family table, the new image-policy kinds, paper-v1+size and JSON answer schemas."""

from __future__ import annotations

import json

import pytest

from medvision.parsing import parse_robust
from medvision.schema import TaskFamily
from medvision.tasks.image_policy import ImagePolicy, get_policy, internvl_tiles
from medvision.tasks.model_families import MODEL_FAMILIES, family_for_model, policy_for_model
from medvision.tasks.prompts import response_schema


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("Qwen/Qwen2.5-VL-7B-Instruct", "qwen2.5-vl"),
        ("Qwen/Qwen2-VL-2B-Instruct", "qwen2-vl"),
        ("Qwen/Qwen3-VL-8B-Instruct", "qwen3-vl"),
        ("lingshu-medical-mllm/Lingshu-32B", "lingshu"),  # a Qwen2.5-VL fine-tune: Lingshu first
        ("google/medgemma-4b-it", "medgemma"),
        ("google/gemma-3-27b-it", "gemma3"),
        ("OpenGVLab/InternVL3-38B", "internvl3"),
        ("Sunanhe/MedDr_0401", "meddr"),
        ("microsoft/llava-med-v1.5-mistral-7b", "llava-med"),
        ("FreedomIntelligence/HuatuoGPT-Vision-34B", "huatuogpt-vision"),
        ("lintw/HealthGPT-L14", "healthgpt"),
        ("meta-llama/Llama-3.2-11B-Vision-Instruct", "llama-3.2-vision"),
        ("llava-hf/llava-onevision-qwen2-72b-ov-hf", "llava-onevision"),
        ("/ckpt/sft/qwen2_5_vl-lora-merged", "qwen2.5-vl"),
    ],
)
def test_model_ids_map_to_their_family(model: str, family: str) -> None:
    assert family_for_model(model).name == family


def test_every_family_policy_is_registered_and_unknown_models_are_refused() -> None:
    for fam in MODEL_FAMILIES:
        for name in (fam.policy_v1, fam.policy_official):
            if name is not None:
                assert get_policy(name).name == name
    with pytest.raises(KeyError, match="no model family matches 'my-own-vlm'"):
        family_for_model("my-own-vlm")
    with pytest.raises(KeyError, match="no image policy under protocol 'paper-v1'"):
        policy_for_model("Qwen/Qwen3-VL-8B-Instruct", "paper-v1")


@pytest.mark.parametrize(
    ("model", "protocol", "native", "seen"),
    [
        # Official section 1.5 fixed sizes (paper-v1 table).
        ("google/medgemma-4b-it", "paper-v1", (512, 400), (896, 896)),
        ("OpenGVLab/InternVL3-38B", "paper-v1", (512, 400), (448, 448)),
        ("microsoft/llava-med-v1.5-mistral-7b", "paper-v1", (512, 400), (336, 336)),
        # Qwen smart resize: 240 -> 252 (multiples of 28).
        ("Qwen/Qwen2.5-VL-32B-Instruct", "paper-v1", (240, 240), (252, 252)),
        # 1.2.1: aspect kept inside 336: 512x400 -> 336 x round(400*336/512 = 262.5) = 262.
        ("microsoft/llava-med-v1.5-mistral-7b", "official", (512, 400), (336, 262)),
        # 1.2.1 InternVL3 tiling: a square 240 image is one 448 tile.
        ("OpenGVLab/InternVL3-38B", "official", (240, 240), (448, 448)),
        # Qwen3-VL factor 32, min area 65536: 240x240 -> 256x256 (round(7.5)=8 -> 256).
        ("Qwen/Qwen3-VL-8B-Instruct", "official", (240, 240), (256, 256)),
    ],
)
def test_policy_for_model_gives_the_size_the_model_sees(
    model: str, protocol: str, native: tuple[int, int], seen: tuple[int, int]
) -> None:
    assert policy_for_model(model, protocol).seen_hw(native) == seen


@pytest.mark.parametrize(
    ("hw", "grid"),
    [
        ((240, 240), (1, 1)),  # square, small: the (1, 1) grid; (2, 2) ties but the image is small
        ((900, 900), (2, 2)),  # square, 810000 px > half of 4 tiles (401408): the tie goes to 2x2
        ((448, 1344), (1, 3)),  # aspect 3 exactly: 1 row x 3 columns
        ((1344, 448), (3, 1)),
        ((100, 5000), (1, 12)),  # aspect 50: the widest grid allowed (12 tiles)
    ],
)
def test_internvl_tiles_hand_computed(hw: tuple[int, int], grid: tuple[int, int]) -> None:
    assert internvl_tiles(*hw) == grid


def test_new_policy_kinds_validate_their_fields() -> None:
    with pytest.raises(ValueError, match="long_side"):
        ImagePolicy(name="x", kind="fit_long_side")
    with pytest.raises(ValueError, match="long_side"):
        ImagePolicy(name="x", kind="native", long_side=336)
    p = ImagePolicy(name="x", kind="fit_long_side", long_side=336)
    # Spacing follows the content: 512 rows -> 336 rows, spacing x 512/336.
    sr, sc = p.seen_spacing((1.0, 1.0), (512, 400))
    assert sr == pytest.approx(512 / 336) and sc == pytest.approx(400 / 262)


@pytest.mark.parametrize(
    ("family", "answer", "values"),
    [
        ("detection", {"box": [0.1, 0.2, 0.3, 0.4]}, (0.1, 0.2, 0.3, 0.4)),
        ("tl", {"major_mm": 12.5, "minor_mm": 7.0}, (12.5, 7.0)),
        ("ad", {"value": 41.5}, (41.5,)),
    ],
)
def test_response_schema_accepts_what_the_json_parser_reads(
    family: str, answer: dict[str, object], values: tuple[float, ...]
) -> None:
    schema = response_schema(family)
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert set(schema["required"]) == set(answer)  # the schema names exactly the parsed keys
    if family == "detection":
        assert (
            schema["properties"]["box"]["minItems"] == schema["properties"]["box"]["maxItems"] == 4
        )
    parsed = parse_robust(
        json.dumps(answer), TaskFamily(family), image_hw=(100, 100), metric_type="angle"
    )
    assert parsed.values == pytest.approx(values)
    assert response_schema(family) is not schema  # fresh copy each call


def test_response_schema_rejects_unknown_family() -> None:
    with pytest.raises(ValueError, match="unknown task family 'boxes'"):
        response_schema("boxes")
