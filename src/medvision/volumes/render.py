"""Turn slice intensities into 8-bit grey images.

Three normalisations (``reference/official-versions.md`` section 8):

* ``"minmax"``: the official paper-v1 rendering, byte for byte: per-slice min-max in float32,
  scaled to 0..255 and **truncated** by ``astype(uint8)``; a constant slice gives zeros.
* ``"window"``: a CT window (width, level) in HU, clipped to ``[L - W/2, L + W/2]`` and scaled
  to 0..255 (medvision-bm 1.2.1 for CT slices with a label; see :data:`CT_WINDOWS`).
* ``"percentile"``: clipped to the (0.5, 99.5) percentiles of the slice, then scaled
  (medvision-bm 1.2.1 for everything else).

All three share the float32 scale-and-truncate step of the official min-max.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

NormMethod = Literal["minmax", "window", "percentile"]

#: Named CT windows as (width, level) in HU, from medvision-bm 1.2.1 ``CT_HU_windows_WL``.
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "soft_tissue": (400.0, 40.0),
    "lung": (1500.0, -600.0),
    "brain": (80.0, 40.0),
    "bone": (1800.0, 400.0),
}


def to_uint8(
    pixels: np.ndarray,
    *,
    method: NormMethod = "minmax",
    window: tuple[float, float] | None = None,
    percentiles: tuple[float, float] = (0.5, 99.5),
) -> np.ndarray:
    """Normalise a 2D slice to uint8 grey levels.

    Args:
        pixels: (H, W) finite intensities (any real dtype; HU for CT windows).
        method: ``"minmax"`` (official v1), ``"window"`` or ``"percentile"``.
        window: (width, level) for ``method="window"``, e.g. ``CT_WINDOWS["lung"]``.
        percentiles: (low, high) percentiles in [0, 100] for ``method="percentile"``.

    Returns:
        (H, W) uint8 array. Values at or below the lower bound map to 0, at or above the
        upper bound to 255; a slice whose bounds coincide maps to all zeros.

    Raises:
        ValueError: Not 2D, non-finite pixels, or invalid ``window``/``percentiles``/``method``.
    """
    if pixels.ndim != 2:
        raise ValueError(f"expected a 2D (H, W) slice, got shape {pixels.shape}")
    x = pixels.astype(np.float32)
    if x.size and not np.all(np.isfinite(x)):
        raise ValueError(f"slice has {int(np.sum(~np.isfinite(x)))} non-finite pixels")
    if method == "minmax":
        if x.size == 0:
            return np.zeros(x.shape, dtype=np.uint8)
        return _scale(x, x.min(), x.max())
    if method == "window":
        if window is None:
            raise ValueError("method='window' needs window=(width, level), e.g. CT_WINDOWS")
        width, level = (float(v) for v in window)
        if not width > 0:
            raise ValueError(f"window width must be positive, got {width}")
        lo, hi = np.float32(level - width / 2), np.float32(level + width / 2)
        return _scale(np.clip(x, lo, hi), lo, hi)
    if method == "percentile":
        p_lo, p_hi = (float(v) for v in percentiles)
        if not 0 <= p_lo < p_hi <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
        if x.size == 0:
            return np.zeros(x.shape, dtype=np.uint8)
        q_lo, q_hi = np.percentile(x, (p_lo, p_hi))
        lo, hi = np.float32(q_lo), np.float32(q_hi)
        return _scale(np.clip(x, lo, hi), lo, hi)
    raise ValueError(f"method must be 'minmax', 'window' or 'percentile', got {method!r}")


def _scale(x: np.ndarray, lo: np.float32, hi: np.float32) -> np.ndarray:
    """The official step: ``((x - lo) / (hi - lo) * 255).astype(uint8)`` in float32."""
    if hi == lo:
        return np.zeros(x.shape, dtype=np.uint8)
    # Operands stay float32 (numpy scalars and the Python int 255 do not promote), so the
    # rounding, and hence the truncated bytes, match the official code exactly.
    scaled: np.ndarray = ((x - lo) / (hi - lo) * 255).astype(np.uint8)
    return scaled
