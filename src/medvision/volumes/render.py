"""Turn slice intensities into 8-bit grey images, by the rendering rule of a protocol.

Three normalisations (``reference/official-versions.md`` section 8):

* ``"minmax"``: the official paper-v1 rendering, byte for byte: per-slice min-max in float32,
  scaled to 0..255 and **truncated** by ``astype(uint8)``; a constant slice gives zeros.
* ``"window"``: a CT window (width, level) in HU, clipped to ``[L - W/2, L + W/2]`` and scaled
  to 0..255 (medvision-bm 1.2.1 for CT slices with a label; see :data:`CT_WINDOWS`).
* ``"percentile"``: clipped to the (0.5, 99.5) percentiles of the slice, then scaled
  (medvision-bm 1.2.1 for everything else).

All three share the float32 scale-and-truncate step of the official min-max.

Rendering rules (:data:`RENDERINGS`) pick a normalisation per sample
(:func:`normalisation_for`, :func:`render_slice`):

* ``"minmax"``: every slice min-max (GitHub c221615, the paper's tables; ``paper-v1``).
* ``"official"``: medvision-bm 1.2.1. CT with a label: the window of the label's group
  (:func:`official_ct_window`); CT in group ``Others``, CT without a label (A/D), KiPA22
  task 01 and every other modality: the 0.5-99.5 percentile clip.
* ``"percentile"``: every slice 0.5-99.5 percentile (ours, for comparisons).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

__all__ = [
    "CT_WINDOWS",
    "OFFICIAL_BONE_GROUPS",
    "OFFICIAL_BRAIN_GROUPS",
    "OFFICIAL_LUNG_GROUPS",
    "OFFICIAL_PERCENTILES",
    "OFFICIAL_PERCENTILE_GROUP",
    "OFFICIAL_PERCENTILE_TASKS",
    "PROTOCOL_RENDERING",
    "RENDERINGS",
    "NormMethod",
    "Normalisation",
    "Rendering",
    "normalisation_for",
    "official_ct_window",
    "render_slice",
    "rendering_for_protocol",
    "to_uint8",
]

NormMethod = Literal["minmax", "window", "percentile"]
Rendering = Literal["minmax", "official", "percentile"]
#: The rendering rules, in documentation order.
RENDERINGS: tuple[str, ...] = get_args(Rendering)
#: Each protocol preset's rendering rule (read by :class:`medvision.metrics.Protocol`):
#: ``paper-v1`` as GitHub c221615, ``official`` as medvision-bm 1.2.1, ``strict`` as 1.2.1
#: (our choice: a model reads CT in a radiological window).
PROTOCOL_RENDERING: dict[str, str] = {
    "paper-v1": "minmax",
    "official": "official",
    "strict": "official",
}


def rendering_for_protocol(protocol: str) -> str:
    """The rendering rule of a protocol preset.

    Raises:
        ValueError: Unknown protocol (the message lists the known ones).
    """
    try:
        return PROTOCOL_RENDERING[protocol]
    except KeyError:
        raise ValueError(
            f"unknown protocol {protocol!r}; expected one of {sorted(PROTOCOL_RENDERING)}"
        ) from None


#: Named CT windows as (width, level) in HU, from medvision-bm 1.2.1 ``CT_HU_windows_WL``.
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "soft_tissue": (400.0, 40.0),
    "lung": (1500.0, -600.0),
    "brain": (80.0, 40.0),
    "bone": (1800.0, 400.0),
}

#: medvision-bm 1.2.1 ``label_map_regroup`` groups shown with the bone window.
OFFICIAL_BONE_GROUPS = frozenset(
    {"Hip", "Rib", "Spine", "Knee Bone", "Jawbone", "Tooth", "Calculus"}
)
#: Groups shown with the brain window.
OFFICIAL_BRAIN_GROUPS = frozenset({"Brain", "Brain Tumor/Lesion"})
#: Groups shown with the lung window.
OFFICIAL_LUNG_GROUPS = frozenset({"Lung", "Lung Tumor/Lesion"})
#: CT group rendered with percentiles instead of a window.
OFFICIAL_PERCENTILE_GROUP = "Others"
#: (dataset, task id) pairs 1.2.1 forces to percentile scaling although they are CT.
OFFICIAL_PERCENTILE_TASKS = frozenset({("KiPA22", "01")})
#: Percentiles of the 1.2.1 non-CT rule.
OFFICIAL_PERCENTILES = (0.5, 99.5)


@dataclass(frozen=True)
class Normalisation:
    """One concrete normalisation: a method and, for ``"window"``, the named CT window.

    Attributes:
        method: ``"minmax"``, ``"window"`` or ``"percentile"``.
        window_name: Key of :data:`CT_WINDOWS` for ``"window"``, else ``None``.
    """

    method: NormMethod
    window_name: str | None = None

    @property
    def name(self) -> str:
        """``"minmax"``, ``"percentile"`` or ``"window:<name>"`` (e.g. ``"window:bone"``)."""
        return self.method if self.window_name is None else f"window:{self.window_name}"

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """Normalise a (H, W) slice to uint8 (see :func:`to_uint8`)."""
        if self.method == "window":
            if self.window_name is None:
                raise ValueError("a window normalisation needs a window name")
            return to_uint8(pixels, method="window", window=CT_WINDOWS[self.window_name])
        return to_uint8(pixels, method=self.method, percentiles=OFFICIAL_PERCENTILES)


def official_ct_window(label_group: str, label_name: str = "") -> str | None:
    """The 1.2.1 CT window of a label group, or ``None`` where 1.2.1 uses percentiles.

    Groups are the 1.2.1 ``label_map_regroup`` ones (the reader passes the catalog's
    ``group_1_2_1``). A paper-v1 group ``Knee`` (split in 1.2.1) that reaches here, from a
    dataset the catalog does not know, is resolved by the label name: femur and tibia are
    ``Knee Bone`` (bone window), the cartilages and menisci ``Knee Soft Tissue``.

    Args:
        label_group: Report group of the label (e.g. ``"Spine"``, ``"Lung Tumor/Lesion"``).
        label_name: Label name (only read for the group ``Knee``).

    Returns:
        A key of :data:`CT_WINDOWS`, or ``None`` for the group ``Others``.
    """
    group = label_group
    if group == "Knee":
        name = label_name.lower()
        bone = ("femur" in name or "tibia" in name) and "cartilage" not in name
        group = "Knee Bone" if bone else "Knee Soft Tissue"
    if group == OFFICIAL_PERCENTILE_GROUP:
        return None
    if group in OFFICIAL_BONE_GROUPS:
        return "bone"
    if group in OFFICIAL_BRAIN_GROUPS:
        return "brain"
    if group in OFFICIAL_LUNG_GROUPS:
        return "lung"
    return "soft_tissue"


def normalisation_for(
    rule: str,
    *,
    modality: str,
    label_group: str,
    label_name: str = "",
    has_label: bool = True,
    dataset: str = "",
    task_id: str = "",
) -> Normalisation:
    """The normalisation a rendering rule gives one sample.

    Args:
        rule: A rendering rule of :data:`RENDERINGS`.
        modality: The sample's modality (``"CT"`` selects the windows under ``"official"``).
        label_group: The label's report group.
        label_name: The label's name (see :func:`official_ct_window`).
        has_label: ``False`` for samples without a segmentation label (A/D landmarks), which
            1.2.1 renders with percentiles even in CT.
        dataset: Source dataset name (KiPA22 task 01 is forced to percentiles).
        task_id: Task id within the dataset.

    Returns:
        The normalisation.

    Raises:
        ValueError: Unknown rule.
    """
    if rule == "minmax":
        return Normalisation("minmax")
    if rule == "percentile":
        return Normalisation("percentile")
    if rule != "official":
        raise ValueError(f"unknown rendering {rule!r}; expected one of {list(RENDERINGS)}")
    if modality != "CT" or not has_label or (dataset, task_id) in OFFICIAL_PERCENTILE_TASKS:
        return Normalisation("percentile")
    window = official_ct_window(label_group, label_name)
    return Normalisation("percentile") if window is None else Normalisation("window", window)


def render_slice(
    values: np.ndarray,
    rule: str,
    *,
    modality: str,
    label_group: str,
    label_name: str = "",
    has_label: bool = True,
    dataset: str = "",
    task_id: str = "",
) -> np.ndarray:
    """Render a slice's values to uint8 grey under a rendering rule.

    Args:
        values: (H, W) intensities as loaded (HU for CT).
        rule: A rendering rule of :data:`RENDERINGS`.
        modality: The sample's modality.
        label_group: The label's report group.
        label_name: The label's name.
        has_label: ``False`` for samples without a segmentation label (A/D).
        dataset: Source dataset name.
        task_id: Task id within the dataset (see :func:`normalisation_for` for all six).

    Returns:
        (H, W) uint8 grey levels.
    """
    norm = normalisation_for(
        rule,
        modality=modality,
        label_group=label_group,
        label_name=label_name,
        has_label=has_label,
        dataset=dataset,
        task_id=task_id,
    )
    return norm.apply(values)


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
        q_lo, q_hi = percentile_pair(x, p_lo, p_hi)
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


def percentile_pair(x: np.ndarray, p_lo: float, p_hi: float) -> tuple[float, float]:
    """``np.percentile(x, (p_lo, p_hi))`` (method ``"linear"``), bit for bit, in one partition.

    The official code calls ``np.percentile``; rendering a request spends more time in its
    generic machinery than in the partition itself, so this repeats numpy's steps for two
    percentiles of a finite float array: virtual index ``(n - 1) * q / 100`` in float64, the
    two neighbouring order statistics, and numpy's ``_lerp``: ``a + (b - a) * t``, or
    ``b - (b - a) * (1 - t)`` where ``t >= 0.5``, with ``b - a`` in the array's dtype.
    ``tests/volumes/test_volumes_render.py`` checks equality with ``np.percentile`` on many
    arrays, ties and edge quantiles included.

    Args:
        x: Finite values, any shape (read as a flat copy; ``x`` is not changed).
        p_lo: Lower percentile in [0, 100].
        p_hi: Upper percentile in [0, 100].

    Returns:
        The two percentiles as float64, as ``np.percentile`` returns them.
    """
    flat = np.asarray(x).ravel()
    n = flat.size
    q = np.true_divide(np.array([p_lo, p_hi], dtype=np.float64), 100)
    virtual = (n - 1) * q
    previous = np.floor(virtual)
    following = previous + 1
    above = virtual >= n - 1
    previous[above] = -1  # numpy's convention: both neighbours are the largest value
    following[above] = -1
    prev_i, next_i = previous.astype(np.intp), following.astype(np.intp)
    part = np.partition(flat, np.unique(np.concatenate(([0, -1], prev_i, next_i))))
    a, b = part[prev_i], part[next_i]
    gamma = virtual - previous
    diff = b - a
    result = a + diff * gamma
    np.subtract(b, diff * (1 - gamma), out=result, where=gamma >= 0.5, casting="unsafe")
    return float(result[0]), float(result[1])
