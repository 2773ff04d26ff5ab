"""Conversions between the array frame, the prompts' relative frame and physical millimetres.

Three frames are used throughout ``medvision``:

* **array (rc)**: ``(row, col)`` pixel indices of a 2D image, origin at the top-left pixel
  centre, rows growing downwards, columns growing to the right. Boxes are
  ``(r0, c0, r1, c1)`` with **inclusive** min and max, as the official plans store them.
* **relative (rel)**: ``(x, y)`` in ``[0, 1]``, origin at the **lower-left** corner of the
  image, ``x = col / W`` to the right and ``y = (H - row) / H`` upwards. This is the frame the
  official detection prompt asks for; it is produced here and nowhere else.
* **physical (mm)**: ``(row * sr, col * sc)`` with ``spacing_mm_rc = (sr, sc)`` the pixel
  spacing in mm along rows and columns.

The official detection target is reproduced exactly: there is no ``+1`` on the inclusive max,
so a box that ends on the last row maps to ``y0 = 1 / H``, not ``0``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "BoxRC",
    "BoxRel",
    "PointRC",
    "PointRel",
    "box_rc_to_rel",
    "box_size_mm",
    "box_size_px",
    "points_rc_to_mm",
    "points_rc_to_rel",
    "rel_to_box_rc",
    "rel_to_points_rc",
    "rescale_spacing",
]

BoxRC = tuple[float, float, float, float]
"""``(r0, c0, r1, c1)`` in pixels, inclusive min and max (ints or floats)."""
BoxRel = tuple[float, float, float, float]
"""``(x0, y0, x1, y1)`` relative to the image, origin lower-left, y up."""
PointRC = tuple[float, float]
"""``(row, col)`` in pixels."""
PointRel = tuple[float, float]
"""``(x, y)`` relative to the image, origin lower-left, y up."""


def _check_hw(image_hw: Sequence[int]) -> tuple[int, int]:
    """Validate an image size ``(H, W)`` in pixels and return it as ints."""
    if len(image_hw) != 2:
        raise ValueError(f"image_hw must be (H, W); found {tuple(image_hw)!r}")
    h, w = int(image_hw[0]), int(image_hw[1])
    if h != image_hw[0] or w != image_hw[1] or h <= 0 or w <= 0:
        raise ValueError(f"image_hw must be two positive integers; found {tuple(image_hw)!r}")
    return h, w


def _check_spacing(spacing_mm_rc: Sequence[float]) -> tuple[float, float]:
    """Validate an in-plane spacing ``(sr, sc)`` in mm and return it as floats."""
    if len(spacing_mm_rc) != 2:
        raise ValueError(f"spacing_mm_rc must be (row_mm, col_mm); found {tuple(spacing_mm_rc)!r}")
    sr, sc = float(spacing_mm_rc[0]), float(spacing_mm_rc[1])
    if not (math.isfinite(sr) and math.isfinite(sc) and sr > 0 and sc > 0):
        raise ValueError(f"spacing_mm_rc must be finite and positive; found {(sr, sc)!r}")
    return sr, sc


def _check_box(box_rc: Sequence[float]) -> BoxRC:
    """Validate an inclusive ``(r0, c0, r1, c1)`` box and return it as a 4-tuple."""
    if len(box_rc) != 4:
        raise ValueError(f"box_rc must be (r0, c0, r1, c1); found {tuple(box_rc)!r}")
    r0, c0, r1, c1 = (box_rc[0], box_rc[1], box_rc[2], box_rc[3])
    if not all(math.isfinite(float(v)) for v in (r0, c0, r1, c1)):
        raise ValueError(f"box_rc must be finite; found {tuple(box_rc)!r}")
    if r1 < r0 or c1 < c0:
        raise ValueError(f"box_rc must have r0 <= r1 and c0 <= c1; found {tuple(box_rc)!r}")
    return r0, c0, r1, c1


def box_rc_to_rel(box_rc: Sequence[float], image_hw: Sequence[int]) -> BoxRel:
    """Convert an inclusive array-frame box to the official relative detection target.

    Exactly the official ``doc_to_target_BoxCoordinate``: ``x0 = c0/W``, ``y0 = (H - r1)/H``,
    ``x1 = c1/W``, ``y1 = (H - r0)/H`` (no ``+1`` on the inclusive max).

    Args:
        box_rc: ``(r0, c0, r1, c1)`` in pixels, inclusive, array frame.
        image_hw: Image size ``(H, W)`` in pixels.

    Returns:
        ``(x0, y0, x1, y1)`` relative, origin lower-left, y up; ``x0 <= x1`` and ``y0 <= y1``.

    Raises:
        ValueError: If the box or the size is malformed.

    Example:
        >>> box_rc_to_rel((10, 20, 29, 59), (100, 200))
        (0.1, 0.71, 0.295, 0.9)
    """
    h, w = _check_hw(image_hw)
    r0, c0, r1, c1 = _check_box(box_rc)
    return _to_rel(r0, c0, r1, c1, h, w)


def component_boxes_to_rel(
    boxes_rc: Sequence[Sequence[int]], image_hw: Sequence[int]
) -> list[BoxRel]:
    """:func:`box_rc_to_rel` of many component boxes of one image; the size is checked once.

    For boxes that come from component labelling (integers with ``r0 <= r1`` and
    ``c0 <= c1`` by construction), which the detection planner converts by the hundred per
    slice: the boxes themselves are not checked again.

    Args:
        boxes_rc: ``(r0, c0, r1, c1)`` boxes in pixels, inclusive, array frame.
        image_hw: Image size ``(H, W)`` in pixels.

    Returns:
        One ``(x0, y0, x1, y1)`` relative box per input box, as :func:`box_rc_to_rel`.

    Raises:
        ValueError: If the size is malformed.
    """
    h, w = _check_hw(image_hw)
    return [_to_rel(r0, c0, r1, c1, h, w) for r0, c0, r1, c1 in boxes_rc]


def _to_rel(r0: float, c0: float, r1: float, c1: float, h: int, w: int) -> BoxRel:
    # The official doc_to_target_BoxCoordinate, term for term (see box_rc_to_rel).
    return (c0 / w, (h - r1) / h, c1 / w, (h - r0) / h)


def rel_to_box_rc(box_rel: Sequence[float], image_hw: Sequence[int]) -> BoxRC:
    """Invert :func:`box_rc_to_rel`: relative lower-left box back to array ``(r0, c0, r1, c1)``.

    Args:
        box_rel: ``(x0, y0, x1, y1)`` relative, origin lower-left, y up.
        image_hw: Image size ``(H, W)`` in pixels.

    Returns:
        ``(r0, c0, r1, c1)`` as floats in pixels (not rounded), array frame.

    Raises:
        ValueError: If ``box_rel`` does not have four finite values or the size is malformed.
    """
    h, w = _check_hw(image_hw)
    if len(box_rel) != 4 or not all(math.isfinite(float(v)) for v in box_rel):
        raise ValueError(f"box_rel must be four finite values (x0, y0, x1, y1); found {box_rel!r}")
    x0, y0, x1, y1 = (float(v) for v in box_rel)
    return (h - y1 * h, x0 * w, h - y0 * h, x1 * w)


def box_size_px(box_rc: Sequence[int]) -> tuple[int, int]:
    """Size ``(h, w)`` in pixels of an inclusive box: ``(r1 - r0 + 1, c1 - c0 + 1)``.

    Args:
        box_rc: ``(r0, c0, r1, c1)`` integer pixels, inclusive.

    Returns:
        ``(h, w)`` pixel counts along rows and columns.
    """
    r0, c0, r1, c1 = _check_box(box_rc)
    return (int(r1 - r0 + 1), int(c1 - c0 + 1))


def box_size_mm(box_rc: Sequence[int], spacing_mm_rc: Sequence[float]) -> tuple[float, float]:
    """Physical size ``(h_mm, w_mm)`` of an inclusive box: pixel extents times spacing.

    Args:
        box_rc: ``(r0, c0, r1, c1)`` integer pixels, inclusive.
        spacing_mm_rc: Pixel spacing ``(row_mm, col_mm)``.

    Returns:
        ``((r1 - r0 + 1) * sr, (c1 - c0 + 1) * sc)`` in mm.
    """
    sr, sc = _check_spacing(spacing_mm_rc)
    h, w = box_size_px(box_rc)
    return (h * sr, w * sc)


def _as_points(points: Sequence[Sequence[float]], name: str) -> list[tuple[float, float]]:
    """Validate a sequence of 2D points and return them as float pairs."""
    out: list[tuple[float, float]] = []
    for i, p in enumerate(points):
        if len(p) != 2:
            raise ValueError(f"{name}[{i}] must have 2 coordinates; found {tuple(p)!r}")
        a, b = float(p[0]), float(p[1])
        if not (math.isfinite(a) and math.isfinite(b)):
            raise ValueError(f"{name}[{i}] must be finite; found {(a, b)!r}")
        out.append((a, b))
    return out


def points_rc_to_rel(
    points_rc: Sequence[Sequence[float]], image_hw: Sequence[int]
) -> tuple[PointRel, ...]:
    """Convert ``(row, col)`` pixel points to relative lower-left ``(x, y)``.

    ``x = col / W`` and ``y = (H - row) / H``, the same mapping as the box corners of
    :func:`box_rc_to_rel`.

    Args:
        points_rc: Points ``(row, col)`` in pixels, array frame.
        image_hw: Image size ``(H, W)`` in pixels.

    Returns:
        One ``(x, y)`` per input point, in order.

    Example:
        >>> points_rc_to_rel([(0, 0), (50, 100)], (100, 200))
        ((0.0, 1.0), (0.5, 0.5))
    """
    h, w = _check_hw(image_hw)
    return tuple((c / w, (h - r) / h) for r, c in _as_points(points_rc, "points_rc"))


def rel_to_points_rc(
    points_rel: Sequence[Sequence[float]], image_hw: Sequence[int]
) -> tuple[PointRC, ...]:
    """Invert :func:`points_rc_to_rel`: relative lower-left ``(x, y)`` to ``(row, col)`` floats.

    Args:
        points_rel: Points ``(x, y)`` relative, origin lower-left, y up.
        image_hw: Image size ``(H, W)`` in pixels.

    Returns:
        One ``(row, col)`` per input point, floats in pixels, array frame.
    """
    h, w = _check_hw(image_hw)
    return tuple((h - y * h, x * w) for x, y in _as_points(points_rel, "points_rel"))


def points_rc_to_mm(
    points_rc: Sequence[Sequence[float]], spacing_mm_rc: Sequence[float]
) -> tuple[tuple[float, float], ...]:
    """Convert ``(row, col)`` pixel points to physical in-plane ``(row_mm, col_mm)``.

    Args:
        points_rc: Points ``(row, col)`` in pixels, array frame.
        spacing_mm_rc: Pixel spacing ``(row_mm, col_mm)``.

    Returns:
        One ``(row * sr, col * sc)`` per input point, in mm, same origin as the array frame.
    """
    sr, sc = _check_spacing(spacing_mm_rc)
    return tuple((r * sr, c * sc) for r, c in _as_points(points_rc, "points_rc"))


def rescale_spacing(
    spacing_mm_rc: Sequence[float], native_hw: Sequence[int], seen_hw: Sequence[int]
) -> tuple[float, float]:
    """Pixel spacing of an image after it is resized from ``native_hw`` to ``seen_hw``.

    The field of view is unchanged by a resize, so ``sr' = sr * H / H'`` and
    ``sc' = sc * W / W'`` (the official ``adj = spacing * orig_size / resized_size``).

    Args:
        spacing_mm_rc: Native pixel spacing ``(row_mm, col_mm)``.
        native_hw: Native image size ``(H, W)`` in pixels.
        seen_hw: Size ``(H', W')`` of the resized image the model sees.

    Returns:
        ``(row_mm, col_mm)`` spacing of the resized image.

    Example:
        >>> rescale_spacing((1.0, 0.5), (512, 256), (256, 256))
        (2.0, 0.5)
    """
    sr, sc = _check_spacing(spacing_mm_rc)
    h, w = _check_hw(native_hw)
    h2, w2 = _check_hw(seen_hw)
    return (sr * h / h2, sc * w / w2)
