"""Image policies: Qwen smart_resize against hand-computed sizes, fixed sizes, spacing."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medvision.tasks import POLICIES, ImagePolicy, get_policy, smart_resize


@pytest.mark.parametrize(
    ("hw", "kwargs", "expected"),
    [
        # 512/28 = 18.29 -> 18 -> 504; area within the default bounds.
        ((512, 512), {}, (504, 504)),
        # 240/28 = 8.57 -> 9 -> 252 (BraTS slices).
        ((240, 240), {}, (252, 252)),
        # 70/28 = 2.5 and 98/28 = 3.5: Python rounds halves to even -> 2*28, 4*28.
        ((70, 98), {}, (56, 112)),
        # HF-adapter min 200704: 196*308 = 60368 is too small; beta = sqrt(200704/60000)
        # = 1.82895; 200*beta/28 = 13.06 -> ceil 14 -> 392; 300*beta/28 = 19.60 -> 20 -> 560.
        ((200, 300), {"min_pixels": 200704, "max_pixels": 1605632}, (392, 560)),
        # HF-adapter max 1605632: 1988^2 is too large; beta = sqrt(4e6/1605632) = 1.57837;
        # 2000/beta/28 = 45.25 -> floor 45 -> 1260.
        ((2000, 2000), {"min_pixels": 200704, "max_pixels": 1605632}, (1260, 1260)),
        # Tiny input: round gives 0 (< min 3136); beta = sqrt(3136/100) = 5.6; 10*5.6/28 = 2.
        ((10, 10), {}, (56, 56)),
    ],
)
def test_smart_resize_hand_computed(
    hw: tuple[int, int], kwargs: dict[str, int], expected: tuple[int, int]
) -> None:
    assert smart_resize(*hw, **kwargs) == expected


def test_smart_resize_rejects_extreme_aspect_and_empty() -> None:
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 2001)
    assert smart_resize(10, 2000)[0] % 28 == 0  # exactly 200 is allowed
    with pytest.raises(ValueError, match="positive"):
        smart_resize(0, 10)


@settings(max_examples=300, deadline=None)
@given(
    h=st.integers(min_value=28, max_value=4000),
    w=st.integers(min_value=28, max_value=4000),
    hf_adapter=st.booleans(),
)
def test_smart_resize_invariants(h: int, w: int, hf_adapter: bool) -> None:
    min_px, max_px = (200704, 1605632) if hf_adapter else (3136, 12845056)
    if max(h, w) / min(h, w) > 200:
        return
    rh, rw = smart_resize(h, w, min_pixels=min_px, max_pixels=max_px)
    assert rh % 28 == 0 and rw % 28 == 0 and rh >= 28 and rw >= 28
    assert rh * rw <= max_px
    # The min bound holds except when flooring to >= 28 cannot reach it (never here).
    assert rh * rw >= min_px
    # Aspect kept: both sides are within one factor step of one common scale s of the input
    # (s = 1 when rounding suffices, else the scale that meets the violated bound).
    scales = (1.0, math.sqrt(max_px / (h * w)), math.sqrt(min_px / (h * w)))
    assert any(abs(rh - h * s) <= 28 + 1e-9 and abs(rw - w * s) <= 28 + 1e-9 for s in scales)


def test_registry_sizes() -> None:
    assert get_policy("native").seen_hw((240, 200)) == (240, 200)
    assert get_policy("qwen2.5-vl").seen_hw((512, 512)) == (504, 504)
    assert get_policy("qwen2.5-vl-hf-adapter").seen_hw((200, 300)) == (392, 560)
    for name, side in [
        ("gemma3", 896),
        ("medgemma", 896),
        ("internvl3", 448),
        ("meddr", 448),
        ("llava-med", 336),
        ("huatuogpt-vision", 336),
        ("healthgpt", 336),
    ]:
        assert get_policy(name).seen_hw((240, 180)) == (side, side), name
    assert set(POLICIES) >= {"native", "qwen2.5-vl", "qwen2.5-vl-hf-adapter", "gemma3"}


def test_fixed_spec_and_unknown_name() -> None:
    policy = get_policy("fixed:512x384")
    assert policy.kind == "fixed" and policy.seen_hw((100, 100)) == (512, 384)
    with pytest.raises(KeyError, match=r"known: .*gemma3.*qwen2\.5-vl"):
        get_policy("gpt-9")
    with pytest.raises(KeyError):
        get_policy("fixed:0x512")
    with pytest.raises(KeyError):
        get_policy("fixed:512")


def test_seen_spacing_follows_the_resize() -> None:
    # 240x200 at (1.0, 0.5) mm shown at 896x896: sr' = 1.0*240/896, sc' = 0.5*200/896.
    sr, sc = get_policy("gemma3").seen_spacing((1.0, 0.5), (240, 200))
    assert sr == pytest.approx(240 / 896) and sc == pytest.approx(100 / 896)
    # Qwen 512x512 -> 504x504 at 0.5 mm: 0.5*512/504 = 0.507937 mm.
    sr, sc = get_policy("qwen2.5-vl").seen_spacing((0.5, 0.5), (512, 512))
    assert sr == pytest.approx(0.5079365079) and sc == pytest.approx(0.5079365079)
    # Native keeps the spacing; the physical field of view is preserved in every case.
    assert get_policy("native").seen_spacing((0.7, 0.9), (300, 200)) == (0.7, 0.9)


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="fixed_hw"):
        ImagePolicy(name="bad", kind="fixed")
    with pytest.raises(ValueError, match="fixed_hw"):
        ImagePolicy(name="bad", kind="native", fixed_hw=(1, 1))
    with pytest.raises(ValueError, match="min_pixels"):
        ImagePolicy(name="bad", kind="qwen_smart", min_pixels=10, max_pixels=5)
