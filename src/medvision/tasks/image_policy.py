"""Image policies: the size a model's own processor gives a slice, and the spacing that follows.

The official code states the pixel spacing *of the image the model sees* in T/L and A/D
prompts (official-eval-protocol §1.5): it predicts the processor's resize and rescales the
native spacing, ``adj = spacing / (resized / original)``. A :class:`ImagePolicy` is that
prediction for one model family, without loading the model's processor.

Sizes are ``(H, W)`` = ``(rows, cols)`` in pixels; spacings are ``(row_mm, col_mm)``.

:mod:`medvision.tasks.model_families` maps model names / hub ids to a family and its policy
under each protocol (``paper-v1``: the c221615 table; ``official``: the 1.2.1 table,
official-versions section 8), so a run can say ``--image-policy auto``.

Tiling models keep the aspect ratio inside a canvas of tiles and pad the rest; the prompt's
pixel size must follow the *content* (the resized image before padding):

* Llama-3.2-Vision (``mllama_tiles``): :func:`mllama_canvas` picks the tile canvas
  (transformers ``get_optimal_tiled_canvas``) and :func:`mllama_fit` the content inside it
  (``get_image_size_fit_to_canvas``); both protocols use the content.
* LLaVA-OneVision (``anyres``): :func:`select_best_resolution` over :func:`anyres_pinpoints`
  picks the canvas and :func:`anyres_content` the content (``get_patch_output_size``). Under
  ``paper-v1`` (``anyres_canvas_v1``) the c221615 code used the *padded canvas*, and chose it
  from PIL's ``(W, H)`` where ``select_best_resolution`` expects ``(H, W)`` (official-eval-
  protocol §10.10); that policy reproduces both bugs on purpose, for paper parity only.

All of them are native re-implementations (``transformers`` is never imported here); the
tests compare them with the real transformers functions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Literal

from medvision.geometry.frames import rescale_spacing
from medvision.tasks.resize_rules import (
    QWEN_MAX_PIXELS,
    QWEN_MIN_PIXELS,
    anyres_content,
    anyres_pinpoints,
    internvl_tiles,
    mllama_canvas,
    mllama_fit,
    select_best_resolution,
    smart_resize,
)

__all__ = [
    "POLICIES",
    "ImagePolicy",
    "PolicyKind",
    "anyres_content",
    "anyres_pinpoints",
    "get_policy",
    "internvl_tiles",
    "mllama_canvas",
    "mllama_fit",
    "select_best_resolution",
    "smart_resize",
]

PolicyKind = Literal[
    "native",
    "fixed",
    "qwen_smart",
    "fit_long_side",
    "internvl_tiles",
    "mllama_tiles",
    "anyres",
    "anyres_canvas_v1",
]
_KINDS: tuple[str, ...] = (
    "native",
    "fixed",
    "qwen_smart",
    "fit_long_side",
    "internvl_tiles",
    "mllama_tiles",
    "anyres",
    "anyres_canvas_v1",
)


@dataclass(frozen=True)
class ImagePolicy:
    """How one model family resizes an image before it sees it.

    Attributes:
        name: Registry name (e.g. ``"qwen2.5-vl"``).
        kind: ``"native"`` (no resize), ``"fixed"`` (always ``fixed_hw``), ``"qwen_smart"``
            (:func:`smart_resize` with the fields below), ``"fit_long_side"`` (aspect kept,
            the long side scaled to ``long_side``: content ``round(H * S / max(H, W))`` x
            ``round(W * S / max(H, W))``, as the 1.2.1 table for LLaVA-style 336 models) or
            ``"internvl_tiles"`` (:func:`internvl_tiles` with ``tile``/``max_tiles``),
            ``"mllama_tiles"`` (Llama-3.2-Vision content: :func:`mllama_fit` inside
            :func:`mllama_canvas`, ``tile``/``max_tiles``), ``"anyres"`` (LLaVA-OneVision
            content: :func:`anyres_content` inside :func:`select_best_resolution` over
            :func:`anyres_pinpoints` of ``tile``/``anyres_grid``) or ``"anyres_canvas_v1"``
            (the c221615 value: the padded canvas chosen from the swapped ``(W, H)``).
        fixed_hw: Output ``(H, W)`` in pixels for ``kind="fixed"``; ``None`` otherwise.
        min_pixels: Qwen ``min_pixels`` (area in pixels).
        max_pixels: Qwen ``max_pixels`` (area in pixels).
        patch_size: Vision patch side in pixels (Qwen: 14).
        merge_size: Patches merged per side (Qwen: 2), so sides are multiples of
            ``patch_size * merge_size``.
        long_side: Target long side in pixels for ``kind="fit_long_side"``.
        tile: Tile side in pixels for the tiling kinds (InternVL 448, Mllama 560, anyres 384).
        max_tiles: Most tiles for ``"internvl_tiles"`` and ``"mllama_tiles"``.
        anyres_grid: Largest tiles per side of the anyres canvases (6 for OneVision).
    """

    name: str
    kind: PolicyKind
    fixed_hw: tuple[int, int] | None = None
    min_pixels: int = QWEN_MIN_PIXELS
    max_pixels: int = QWEN_MAX_PIXELS
    patch_size: int = 14
    merge_size: int = 2
    long_side: int | None = None
    tile: int = 448
    max_tiles: int = 12
    anyres_grid: int = 6

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
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
        if (self.kind == "fit_long_side") != (self.long_side is not None):
            raise ValueError(
                f"policy {self.name!r}: long_side is for (and needed by) kind 'fit_long_side'"
            )
        if self.long_side is not None and self.long_side <= 0:
            raise ValueError(f"policy {self.name!r}: long_side must be > 0; found {self.long_side}")
        if self.tile <= 0 or self.max_tiles < 1 or self.anyres_grid < 1:
            raise ValueError(
                f"policy {self.name!r}: need tile > 0, max_tiles >= 1 and anyres_grid >= 1"
            )

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
        if self.kind == "fit_long_side":
            assert self.long_side is not None  # guaranteed by __post_init__
            scale = self.long_side / max(h, w)
            return (max(1, round(h * scale)), max(1, round(w * scale)))
        if self.kind == "internvl_tiles":
            rows, cols = internvl_tiles(h, w, tile=self.tile, max_tiles=self.max_tiles)
            return (self.tile * rows, self.tile * cols)
        if self.kind == "mllama_tiles":
            canvas_h, canvas_w = mllama_canvas(h, w, tile=self.tile, max_tiles=self.max_tiles)
            return mllama_fit(h, w, canvas_h, canvas_w, tile=self.tile)
        if self.kind in ("anyres", "anyres_canvas_v1"):
            pins = anyres_pinpoints(self.tile, self.anyres_grid)
            if self.kind == "anyres_canvas_v1":
                # c221615 passed PIL's (W, H) and used the returned canvas as (H, W): kept
                # verbatim so paper-v1 prompts state the pixel size the paper's runs stated.
                return select_best_resolution((w, h), pins)
            return anyres_content(h, w, select_best_resolution((h, w), pins))
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
    # 1.2.1 (official-versions section 8): InternVL3 tiles dynamically; the LLaVA-style 336
    # models keep the aspect ratio inside a 336 canvas (the pixel size follows the content).
    "internvl3-dynamic": ImagePolicy(name="internvl3-dynamic", kind="internvl_tiles"),
    "llava-med-fit": ImagePolicy(name="llava-med-fit", kind="fit_long_side", long_side=336),
    "huatuogpt-vision-fit": ImagePolicy(
        name="huatuogpt-vision-fit", kind="fit_long_side", long_side=336
    ),
    "healthgpt-fit": ImagePolicy(name="healthgpt-fit", kind="fit_long_side", long_side=336),
    # Llama-3.2-Vision (preprocessor_config: 560 tiles, max_image_tiles 4): the content inside
    # the tile canvas, in both tables (official-versions section 8).
    "llama-3.2-vision": ImagePolicy(
        name="llama-3.2-vision", kind="mllama_tiles", tile=560, max_tiles=4
    ),
    # LLaVA-OneVision-qwen2 (SigLIP-384, pinpoints 384..2304): 1.2.1 content; c221615 canvas.
    "llava-onevision": ImagePolicy(name="llava-onevision", kind="anyres", tile=384, anyres_grid=6),
    "llava-onevision-v1": ImagePolicy(
        name="llava-onevision-v1", kind="anyres_canvas_v1", tile=384, anyres_grid=6
    ),
    # Qwen3-VL: patch 16, merge 2 (factor 32); the processor's default size bounds
    # shortest_edge 65536 and longest_edge 16777216 pixels of area.
    "qwen3-vl": ImagePolicy(
        name="qwen3-vl",
        kind="qwen_smart",
        min_pixels=65536,
        max_pixels=16777216,
        patch_size=16,
        merge_size=2,
    ),
}

POLICIES: Mapping[str, ImagePolicy] = MappingProxyType(_REGISTRY)
"""Known policies by name (read-only). ``get_policy`` also accepts ``"fixed:HxW"``."""

_FIXED_SPEC = re.compile(r"fixed:(\d+)x(\d+)")
_BOUND = r"(?:min_pixels|max_pixels)=\d+"
_BOUNDS_SPEC = re.compile(rf"([^:]+):({_BOUND}(?:,{_BOUND})?)")


def _bounded(base: ImagePolicy, spec: str, name: str) -> ImagePolicy:
    """``base`` with the pixel bounds of ``"min_pixels=A,max_pixels=B"`` (either or both)."""
    if base.kind != "qwen_smart":
        raise KeyError(f"image policy {name!r}: pixel bounds apply to Qwen-style policies only")
    values = {k: int(v) for k, v in (item.split("=") for item in spec.split(","))}
    return replace(
        base,
        name=name,
        min_pixels=values.get("min_pixels", base.min_pixels),
        max_pixels=values.get("max_pixels", base.max_pixels),
    )


def get_policy(name: str) -> ImagePolicy:
    """Return a registered policy, or a fixed-size one for ``"fixed:HxW"``.

    Args:
        name: A key of :data:`POLICIES`, ``"fixed:<H>x<W>"`` (e.g. ``"fixed:512x512"``), or
            a Qwen-style key with pixel bounds, ``"<key>:min_pixels=<A>,max_pixels=<B>"``
            (either bound alone works; :meth:`medvision.tasks.config.EvalConfig.policy`
            writes these names).

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
    bounds = _BOUNDS_SPEC.fullmatch(name)
    if bounds is not None and bounds.group(1) in POLICIES:
        return _bounded(POLICIES[bounds.group(1)], bounds.group(2), name)
    spec = _FIXED_SPEC.fullmatch(name)
    if spec is not None:
        h, w = int(spec.group(1)), int(spec.group(2))
        if h > 0 and w > 0:
            return ImagePolicy(name=name, kind="fixed", fixed_hw=(h, w))
    known = ", ".join(sorted(POLICIES))
    raise KeyError(
        f"unknown image policy {name!r}; known: {known}, or 'fixed:HxW' (e.g. fixed:512x512)"
    )
