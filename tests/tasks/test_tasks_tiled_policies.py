"""Llama-3.2-Vision and LLaVA-OneVision image policies against the real transformers functions.

The policies are native re-implementations; here the expected values come from calling
transformers' own ``get_optimal_tiled_canvas`` / ``get_image_size_fit_to_canvas`` (Mllama)
and ``select_best_resolution`` / ``get_patch_output_size`` (anyres) on the same sizes.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from medvision.tasks.image_policy import (
    anyres_content,
    anyres_pinpoints,
    get_policy,
    mllama_canvas,
    mllama_fit,
    select_best_resolution,
)
from medvision.tasks.model_families import policy_for_model

tf_utils = pytest.importorskip("transformers.image_processing_utils")
tf_image_utils = pytest.importorskip("transformers.image_utils")
# The PIL flavour of the Mllama processor module imports without torchvision.
tf_mllama = pytest.importorskip("transformers.models.mllama.image_processing_pil_mllama")
tf_ov = pytest.importorskip(
    "transformers.models.llava_onevision.image_processing_pil_llava_onevision"
)

_EDGES = (1, 2, 100, 383, 384, 385, 512, 559, 560, 561, 1120, 1121, 2304, 2305, 4000)
_rng = random.Random(20251129)
SIZES: list[tuple[int, int]] = [(h, w) for h in _EDGES for w in _EDGES] + [
    (_rng.randint(1, 3000), _rng.randint(1, 3000)) for _ in range(400)
]
LLAMA = "meta-llama/Llama-3.2-11B-Vision-Instruct"
OV = "llava-hf/llava-onevision-qwen2-72b-ov-hf"


def _tf_mllama_content(h: int, w: int) -> tuple[tuple[int, int], tuple[int, int]]:
    canvas = tf_mllama.get_optimal_tiled_canvas(h, w, 4, 560)
    ch, cw = int(canvas[0]), int(canvas[1])
    fit = tf_mllama.get_image_size_fit_to_canvas(h, w, ch, cw, 560)
    return (ch, cw), (int(fit[0]), int(fit[1]))


def _tf_anyres(hw: tuple[int, int]) -> tuple[int, int]:
    pins = tf_ov.LlavaOnevisionImageProcessorPil.image_grid_pinpoints
    best = tf_utils.select_best_resolution(hw, pins)
    return int(best[0]), int(best[1])


def test_pinpoints_are_the_onevision_processor_defaults() -> None:
    pins = tf_ov.LlavaOnevisionImageProcessorPil.image_grid_pinpoints
    assert [tuple(p) for p in pins] == list(anyres_pinpoints(384, 6))


def test_llama_policy_matches_transformers_mllama_resize() -> None:
    policy = get_policy("llama-3.2-vision")
    for h, w in SIZES:
        canvas, content = _tf_mllama_content(h, w)
        assert mllama_canvas(h, w) == canvas, (h, w)
        assert mllama_fit(h, w, *canvas) == content, (h, w)
        assert policy.seen_hw((h, w)) == content, (h, w)
        # The content fits its canvas (the rest is padding).
        assert all(0 < c <= k for c, k in zip(content, canvas, strict=True)), (h, w)


def test_onevision_policy_matches_transformers_anyres_content() -> None:
    policy = get_policy("llava-onevision")
    last = tf_image_utils.ChannelDimension.LAST
    for h, w in SIZES:
        canvas = _tf_anyres((h, w))
        assert select_best_resolution((h, w), anyres_pinpoints()) == canvas, (h, w)
        image = np.zeros((h, w, 1), dtype=np.uint8)
        content = tuple(int(v) for v in tf_utils.get_patch_output_size(image, canvas, last))
        assert anyres_content(h, w, canvas) == content, (h, w)
        assert policy.seen_hw((h, w)) == content, (h, w)


def test_onevision_paper_v1_reproduces_the_swapped_padded_canvas() -> None:
    policy = get_policy("llava-onevision-v1")
    for h, w in SIZES:
        # c221615: select_best_resolution(img_PIL.size) with PIL's (W, H), used as (H, W).
        assert policy.seen_hw((h, w)) == _tf_anyres((w, h)), (h, w)
    # A wide slice: the fixed policy states a wide canvas, the paper-v1 one a tall canvas.
    assert get_policy("llava-onevision").seen_hw((200, 400)) == (384, 768)
    assert policy.seen_hw((200, 400)) == (768, 384)


@pytest.mark.parametrize(
    ("model", "protocol", "policy"),
    [
        (LLAMA, "paper-v1", "llama-3.2-vision"),
        (LLAMA, "official", "llama-3.2-vision"),
        ("unsloth/Llama-3.2-90B-Vision", "strict", "llama-3.2-vision"),
        (OV, "paper-v1", "llava-onevision-v1"),
        (OV, "official", "llava-onevision"),
        ("lmms-lab/llava-onevision-qwen2-7b-ov", "strict", "llava-onevision"),
    ],
)
def test_policy_for_model_covers_llama_and_onevision(
    model: str, protocol: str, policy: str
) -> None:
    assert policy_for_model(model, protocol).name == policy


def test_onevision_1_5_is_not_taken_for_onevision() -> None:
    with pytest.raises(KeyError, match="no model family matches"):
        policy_for_model("lmms-lab/LLaVA-OneVision-1.5-8B-Instruct", "official")


def test_tiled_policy_fields_are_validated() -> None:
    from medvision.tasks.image_policy import ImagePolicy

    with pytest.raises(ValueError, match="anyres_grid >= 1"):
        ImagePolicy(name="bad", kind="anyres", tile=384, anyres_grid=0)
    with pytest.raises(ValueError, match="must be positive"):
        get_policy("llama-3.2-vision").seen_hw((0, 10))
