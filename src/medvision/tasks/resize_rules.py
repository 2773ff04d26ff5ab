"""Resize rules of model image processors, re-implemented natively (no ``transformers``).

Sizes are ``(H, W)`` = ``(rows, cols)`` in pixels. :mod:`medvision.tasks.image_policy` turns
them into per-family policies; the tests compare each rule with the transformers function it
re-implements.
"""

from __future__ import annotations

import math

__all__ = [
    "QWEN_MAX_PIXELS",
    "QWEN_MIN_PIXELS",
    "anyres_content",
    "anyres_pinpoints",
    "internvl_tiles",
    "mllama_canvas",
    "mllama_fit",
    "select_best_resolution",
    "smart_resize",
]

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


def internvl_tiles(
    height: int, width: int, *, tile: int = 448, min_tiles: int = 1, max_tiles: int = 12
) -> tuple[int, int]:
    """InternVL's dynamic tiling grid (the public ``dynamic_preprocess`` of InternVL/GOT-OCR2).

    The candidate grids are every ``(cols, rows)`` with ``min_tiles <= cols * rows <=
    max_tiles``, ordered by tile count; the grid whose aspect ``cols / rows`` is closest to
    ``W / H`` wins, and on a tie a later (larger) grid wins when the image area exceeds half
    of that grid's area. The thumbnail tile added when there is more than one tile does not
    change the content size.

    Args:
        height: Input height in pixels (rows).
        width: Input width in pixels (columns).
        tile: Tile side in pixels (448 for InternVL2.5/3).
        min_tiles: Fewest tiles.
        max_tiles: Most tiles.

    Returns:
        ``(rows, cols)`` of the tile grid; the model sees ``(tile * rows, tile * cols)``.

    Example:
        >>> internvl_tiles(240, 240)
        (1, 1)
        >>> internvl_tiles(1000, 2000)  # aspect 2: 1x2, 2x4 tie; the large image takes 2x4
        (2, 4)
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive; found (H, W) = ({height}, {width})")
    # The same construction as InternVL (a set, then a stable sort by tile count), so ties in
    # tile count keep InternVL's order.
    grids = sorted(
        {
            (i, j)
            for n in range(min_tiles, max_tiles + 1)
            for i in range(1, n + 1)
            for j in range(1, n + 1)
            if min_tiles <= i * j <= max_tiles
        },
        key=lambda g: g[0] * g[1],
    )
    aspect = width / height
    best_diff = math.inf
    best = (1, 1)
    for cols, rows in grids:
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best_diff, best = diff, (cols, rows)
        elif diff == best_diff and width * height > 0.5 * tile * tile * cols * rows:
            best = (cols, rows)
    return best[1], best[0]


def mllama_canvas(
    height: int, width: int, *, tile: int = 560, max_tiles: int = 4
) -> tuple[int, int]:
    """Llama-3.2-Vision's tile canvas (transformers ``get_optimal_tiled_canvas``), natively.

    Candidate canvases are ``tile * (a, b)`` for every arrangement with ``a * b <= max_tiles``
    (``a`` outer, ``b`` inner, read as (rows, cols), as transformers does). Each canvas scales
    the image by ``min(canvas_h / H, canvas_w / W)``; the smallest scale ``>= 1`` wins (the
    least upscaling), else the largest scale ``< 1`` (the least downscaling); among canvases
    with that scale the smallest area wins (the first in order on a tie).

    Args:
        height: Input height in pixels (rows).
        width: Input width in pixels (columns).
        tile: Tile side in pixels (560 for Llama-3.2-Vision).
        max_tiles: Most tiles (4 for Llama-3.2-Vision).

    Returns:
        ``(canvas_h, canvas_w)`` in pixels, multiples of ``tile``.

    Example:
        >>> mllama_canvas(512, 1024)
        (560, 1120)
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive; found (H, W) = ({height}, {width})")
    canvases = [
        (a * tile, b * tile)
        for a in range(1, max_tiles + 1)
        for b in range(1, max_tiles + 1)
        if a * b <= max_tiles
    ]
    scales = [min(ch / height, cw / width) for ch, cw in canvases]
    up = [s for s in scales if s >= 1]
    chosen_scale = min(up) if up else max(scales)
    chosen = [c for c, s in zip(canvases, scales, strict=True) if s == chosen_scale]
    return min(chosen, key=lambda c: c[0] * c[1])  # min keeps the first on equal areas


def mllama_fit(
    height: int, width: int, canvas_h: int, canvas_w: int, *, tile: int = 560
) -> tuple[int, int]:
    """Size of the image inside a Llama-3.2-Vision canvas (``get_image_size_fit_to_canvas``).

    Each side's target is clipped to ``[tile, canvas side]``; the axis needing the smaller
    scale takes its target and the other is scaled by the same factor and floored (at least
    1, at most its target), so the aspect ratio is kept.

    Args:
        height: Input height in pixels (rows).
        width: Input width in pixels (columns).
        canvas_h: Canvas height in pixels (from :func:`mllama_canvas`).
        canvas_w: Canvas width in pixels.
        tile: Tile side in pixels.

    Returns:
        ``(H', W')`` in pixels of the content (the rest of the canvas is padding).

    Example:
        >>> mllama_fit(512, 1024, 560, 1120)  # fits already: kept
        (512, 1024)
        >>> mllama_fit(100, 200, 560, 560)  # smaller than a tile: scaled up to fill one side
        (280, 560)
    """
    target_w = min(max(width, tile), canvas_w)
    target_h = min(max(height, tile), canvas_h)
    scale_h = target_h / height
    scale_w = target_w / width
    if scale_w < scale_h:
        return min(math.floor(height * scale_w) or 1, target_h), target_w
    return target_h, min(math.floor(width * scale_h) or 1, target_w)


def anyres_pinpoints(tile: int = 384, grid: int = 6) -> tuple[tuple[int, int], ...]:
    """LLaVA-OneVision's ``image_grid_pinpoints``: ``tile * (i, j)`` for ``i, j`` in 1..grid.

    The order is that of the checkpoints' list (rows outer, columns inner), which matters for
    :func:`select_best_resolution` ties. 384 and 6 are the llava-onevision-qwen2 values
    (SigLIP-384 tower, canvases up to 2304 x 2304).

    Returns:
        ``((h, w), ...)`` in pixels.
    """
    return tuple((tile * i, tile * j) for i in range(1, grid + 1) for j in range(1, grid + 1))


def select_best_resolution(
    original_hw: tuple[int, int], pinpoints: tuple[tuple[int, int], ...]
) -> tuple[int, int]:
    """The anyres canvas of LLaVA-NeXT/OneVision (transformers ``select_best_resolution``).

    For each candidate ``(h, w)`` the image is scaled by ``min(w / W, h / H)`` (sides
    truncated to integers); the candidate keeping the most of the original pixels wins
    (effective area ``min(scaled area, H * W)``), then the one wasting the least canvas area;
    on a full tie the first in order stays.

    Args:
        original_hw: ``(H, W)`` in pixels.
        pinpoints: Candidate canvases ``(h, w)`` in pixels, in the checkpoint's order.

    Returns:
        The chosen ``(h, w)``.

    Example:
        >>> select_best_resolution((200, 400), anyres_pinpoints())
        (384, 768)
    """
    height, width = original_hw
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive; found (H, W) = ({height}, {width})")
    best: tuple[int, int] | None = None
    best_effective = 0
    best_wasted = math.inf
    for ch, cw in pinpoints:
        scale = min(cw / width, ch / height)
        effective = min(int(width * scale) * int(height * scale), width * height)
        wasted = ch * cw - effective
        if effective > best_effective or (effective == best_effective and wasted < best_wasted):
            best, best_effective, best_wasted = (ch, cw), effective, wasted
    if best is None:
        raise ValueError(f"no anyres canvas fits an image of (H, W) = {original_hw}")
    return best


def anyres_content(height: int, width: int, canvas_hw: tuple[int, int]) -> tuple[int, int]:
    """Aspect-kept size of an image inside an anyres canvas (``get_patch_output_size``).

    The axis with the smaller scale fills the canvas; the other is scaled by the same factor,
    rounded up and capped at the canvas.

    Args:
        height: Input height in pixels (rows).
        width: Input width in pixels (columns).
        canvas_hw: Canvas ``(h, w)`` in pixels (from :func:`select_best_resolution`).

    Returns:
        ``(H', W')`` in pixels of the content before padding.

    Example:
        >>> anyres_content(200, 400, (384, 768))
        (384, 768)
    """
    ch, cw = canvas_hw
    scale_w = cw / width
    scale_h = ch / height
    if scale_w < scale_h:
        return min(math.ceil(height * scale_w), ch), cw
    return ch, min(math.ceil(width * scale_h), cw)
