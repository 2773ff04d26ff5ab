"""Image policies: the size a model's own processor gives a slice, and the spacing that follows.

The official code states the pixel spacing *of the image the model sees* in T/L and A/D
prompts (official-eval-protocol §1.5): it predicts the processor's resize and rescales the
native spacing, ``adj = spacing / (resized / original)``. A :class:`ImagePolicy` is that
prediction for one model family, without loading the model's processor.

Sizes are ``(H, W)`` = ``(rows, cols)`` in pixels; spacings are ``(row_mm, col_mm)``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from medvision.geometry.frames import rescale_spacing

__all__ = ["POLICIES", "ImagePolicy", "PolicyKind", "get_policy", "smart_resize"]

PolicyKind = Literal["native", "fixed", "qwen_smart"]

QWEN_MIN_PIXELS = 56 * 56
"""Default ``min_pixels`` of the Qwen2-VL / Qwen2.5-VL image processor (3136)."""
QWEN_MAX_PIXELS = 28 * 28 * 16384
"""Default ``max_pixels`` of the Qwen2-VL / Qwen2.5-VL image processor (12845056)."""
_MAX_ASPECT = 200


def smart_resize(
    height: int,
    width: int,
    factor: int = 28,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> tuple[int, int]:
    """The Qwen2-VL / Qwen2.5-VL resize rule (``transformers`` ``smart_resize``), natively.

    Each side is rounded to the nearest multiple of ``factor`` (Python's ``round``, so halves
    go to even). If the area then exceeds ``max_pixels`` both sides are scaled by
    ``1 / beta`` with ``beta = sqrt(H * W / max_pixels)`` and floored to multiples of
    ``factor`` (never below ``factor``); if it is below ``min_pixels`` they are scaled by
    ``beta = sqrt(min_pixels / (H * W))`` and ceiled.

    Args:
        height: Input height in pixels (rows).
        width: Input width in pixels (columns).
        factor: Patch size times merge size (28 for Qwen2/2.5-VL).
        min_pixels: Smallest allowed output area in pixels.
        max_pixels: Largest allowed output area in pixels.

    Returns:
        ``(H', W')`` in pixels, multiples of ``factor``.

    Raises:
        ValueError: If a side is not positive or the aspect ratio exceeds 200 (as Qwen does).

    Example:
        >>> smart_resize(512, 512)
        (504, 504)
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive; found (H, W) = ({height}, {width})")
    if max(height, width) / min(height, width) > _MAX_ASPECT:
        raise ValueError(
            f"absolute aspect ratio must be smaller than {_MAX_ASPECT}, got "
            f"{max(height, width) / min(height, width)} for (H, W) = ({height}, {width})"
        )
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


@dataclass(frozen=True)
class ImagePolicy:
    """How one model family resizes an image before it sees it.

    Attributes:
        name: Registry name (e.g. ``"qwen2.5-vl"``).
        kind: ``"native"`` (no resize), ``"fixed"`` (always ``fixed_hw``) or ``"qwen_smart"``
            (:func:`smart_resize` with the fields below).
        fixed_hw: Output ``(H, W)`` in pixels for ``kind="fixed"``; ``None`` otherwise.
        min_pixels: Qwen ``min_pixels`` (area in pixels).
        max_pixels: Qwen ``max_pixels`` (area in pixels).
        patch_size: Vision patch side in pixels (Qwen: 14).
        merge_size: Patches merged per side (Qwen: 2), so sides are multiples of
            ``patch_size * merge_size``.
    """

    name: str
    kind: PolicyKind
    fixed_hw: tuple[int, int] | None = None
    min_pixels: int = QWEN_MIN_PIXELS
    max_pixels: int = QWEN_MAX_PIXELS
    patch_size: int = 14
    merge_size: int = 2

    def __post_init__(self) -> None:
        if self.kind not in ("native", "fixed", "qwen_smart"):
            raise ValueError(f"policy {self.name!r}: unknown kind {self.kind!r}")
        if self.kind == "fixed":
            if self.fixed_hw is None or len(self.fixed_hw) != 2 or min(self.fixed_hw) <= 0:
                raise ValueError(
                    f"policy {self.name!r}: kind 'fixed' needs fixed_hw=(H, W) > 0; "
                    f"found {self.fixed_hw!r}"
                )
        elif self.fixed_hw is not None:
            raise ValueError(f"policy {self.name!r}: fixed_hw is only for kind 'fixed'")
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ValueError(
                f"policy {self.name!r}: need 0 < min_pixels <= max_pixels; "
                f"found {self.min_pixels}, {self.max_pixels}"
            )
        if self.patch_size <= 0 or self.merge_size <= 0:
            raise ValueError(f"policy {self.name!r}: patch_size and merge_size must be > 0")

    def seen_hw(self, native_hw: tuple[int, int]) -> tuple[int, int]:
        """Size of the image the model sees.

        Args:
            native_hw: Size ``(H, W)`` in pixels of the image sent to the model.

        Returns:
            ``(H', W')`` in pixels after the model's own resize.

        Raises:
            ValueError: If ``native_hw`` is not two positive integers (or Qwen's aspect limit).
        """
        h, w = native_hw
        if h <= 0 or w <= 0:
            raise ValueError(f"policy {self.name!r}: native_hw must be positive; found {native_hw}")
        if self.kind == "native":
            return (h, w)
        if self.kind == "fixed":
            assert self.fixed_hw is not None  # guaranteed by __post_init__
            return self.fixed_hw
        return smart_resize(
            h,
            w,
            factor=self.patch_size * self.merge_size,
            min_pixels=self.min_pixels,
            max_pixels=self.max_pixels,
        )

    def seen_spacing(
        self, spacing_mm_rc: tuple[float, float], native_hw: tuple[int, int]
    ) -> tuple[float, float]:
        """Pixel spacing of the image the model sees (the one a prompt must state).

        Args:
            spacing_mm_rc: Native spacing ``(row_mm, col_mm)`` of the image sent.
            native_hw: Size ``(H, W)`` in pixels of the image sent.

        Returns:
            ``(sr * H / H', sc * W / W')`` in mm (the official ``adj = pix / (resized / orig)``).
        """
        return rescale_spacing(spacing_mm_rc, native_hw, self.seen_hw(native_hw))


def _fixed(name: str, side: int) -> ImagePolicy:
    return ImagePolicy(name=name, kind="fixed", fixed_hw=(side, side))


_REGISTRY: dict[str, ImagePolicy] = {
    "native": ImagePolicy(name="native", kind="native"),
    # The default AutoImageProcessor that official §1.5 probes (Qwen2.5-VL-32B, Lingshu-32B).
    "qwen2.5-vl": ImagePolicy(name="qwen2.5-vl", kind="qwen_smart"),
    "qwen2-vl": ImagePolicy(name="qwen2-vl", kind="qwen_smart"),
    "lingshu": ImagePolicy(name="lingshu", kind="qwen_smart"),
    # The registered (unused) HF qwen2_5_vl adapter's limits, which the official spacing
    # computation ignores (official-eval-protocol §7, §10.10).
    "qwen2.5-vl-hf-adapter": ImagePolicy(
        name="qwen2.5-vl-hf-adapter", kind="qwen_smart", min_pixels=200704, max_pixels=1605632
    ),
    "gemma3": _fixed("gemma3", 896),
    "medgemma": _fixed("medgemma", 896),
    # paper-v1 assumption: InternVL3 at 448x448 (vLLM actually tiles dynamically, §10.10).
    "internvl3": _fixed("internvl3", 448),
    "meddr": _fixed("meddr", 448),
    "llava-med": _fixed("llava-med", 336),
    "huatuogpt-vision": _fixed("huatuogpt-vision", 336),
    "healthgpt": _fixed("healthgpt", 336),
}

POLICIES: Mapping[str, ImagePolicy] = MappingProxyType(_REGISTRY)
"""Known policies by name (read-only). ``get_policy`` also accepts ``"fixed:HxW"``."""

_FIXED_SPEC = re.compile(r"fixed:(\d+)x(\d+)")


def get_policy(name: str) -> ImagePolicy:
    """Return a registered policy, or a fixed-size one for ``"fixed:HxW"``.

    Args:
        name: A key of :data:`POLICIES`, or ``"fixed:<H>x<W>"`` (e.g. ``"fixed:512x512"``).

    Returns:
        The policy.

    Raises:
        KeyError: If the name is unknown; the message lists the known names.

    Example:
        >>> get_policy("fixed:512x384").seen_hw((240, 240))
        (512, 384)
    """
    if name in POLICIES:
        return POLICIES[name]
    spec = _FIXED_SPEC.fullmatch(name)
    if spec is not None:
        h, w = int(spec.group(1)), int(spec.group(2))
        if h > 0 and w > 0:
            return ImagePolicy(name=name, kind="fixed", fixed_hw=(h, w))
    known = ", ".join(sorted(POLICIES))
    raise KeyError(
        f"unknown image policy {name!r}; known: {known}, or 'fixed:HxW' (e.g. fixed:512x512)"
    )
