"""Ground-truth versions of the tumour/lesion size task (``--annotation``).

A build states which rules made its T/L targets (manifest field ``annotation``, and every
sample's ``annotation``):

* ``official-1.0.0``: the paper's leaderboard targets (official planner v1.0.0): OpenCV pixel-
  centre contour and ``fitEllipse`` with the v1.0.0 spacing pairing (a known official bug,
  kept), clusters under 200 px skipped, the ``all_within`` ring gate, lengths between the
  rounded endpoints; the v1.0.0 loader drops a slice with more than one *fitted* ellipse.
* ``official-1.4.0`` (default): the current official rules: the same contour and fit with the
  right pairing, continuous axis lengths, no pixel floor, the v1.4.0 guards; the loader drops
  a slice with more than one cluster (``n_total_clusters > 1``).
* ``precise``: our own sub-pixel fit (:func:`medvision.geometry.ellipse.fit_ellipse`: marching-
  squares contour halfway between pixel centres, the v1.4.0 guards and instance filter).

Source: reference dataset-construction.md section 3.6. Detection and angle/distance targets do
not depend on the version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from medvision.annotate.components import SliceComponents
from medvision.geometry.ellipse import Diameters, _feret_crop, _fit_ellipse_crop
from medvision.geometry.ellipse_official import fit_official_v100, fit_official_v140
from medvision.geometry.frames import PointRC

__all__ = [
    "ANNOTATIONS",
    "DEFAULT_ANNOTATION",
    "PAPER_ANNOTATION",
    "Annotation",
    "AxesFit",
    "LesionFit",
    "check_annotation",
    "counts_fitted_instances",
    "fit_component",
    "measure_component",
    "min_cluster_pixels",
    "plan_file_annotation",
]

Annotation = Literal["official-1.0.0", "official-1.4.0", "precise"]

#: Every ground-truth version, in the order the CLI lists them.
ANNOTATIONS: tuple[Annotation, ...] = get_args(Annotation)

#: The version a build uses unless told otherwise.
DEFAULT_ANNOTATION: Annotation = "official-1.4.0"

#: The ground truth of the paper's leaderboard (what ``paper-v1`` numbers compare with).
PAPER_ANNOTATION: Annotation = "official-1.0.0"

#: Official v1.0.0 ``cluster_size_threshold``: smaller clusters are not fitted.
V100_MIN_CLUSTER_PX = 200


def check_annotation(name: str) -> Annotation:
    """Return ``name`` as an :data:`Annotation`, or raise a one-line ``ValueError``."""
    if name not in ANNOTATIONS:
        raise ValueError(
            f"unknown annotation (ground-truth version) {name!r}; choose one of "
            f"{', '.join(ANNOTATIONS)}"
        )
    return name


def plan_file_annotation(file_name: str) -> Annotation | None:
    """Ground-truth version of an official ``benchmark_plan_*_v<X.Y.Z>.json.gz`` file's targets.

    ``..._v1.0.0.json.gz`` -> ``official-1.0.0``, ``..._v1.4.0.json.gz`` -> ``official-1.4.0``;
    any other (or no) version in the name -> ``None`` (not one of the versions named here).
    """
    for version in ("1.0.0", "1.4.0"):
        if f"_v{version}." in file_name:
            return check_annotation(f"official-{version}")
    return None


def min_cluster_pixels(annotation: Annotation) -> int:
    """Clusters with fewer pixels are skipped before any fit (200 in v1.0.0, else none)."""
    return V100_MIN_CLUSTER_PX if annotation == "official-1.0.0" else 0


def counts_fitted_instances(annotation: Annotation) -> bool:
    """Whether the single-instance filter counts fitted ellipses (v1.0.0) or all clusters."""
    return annotation == "official-1.0.0"


@dataclass(frozen=True)
class AxesFit:
    """One component's T/L target under a ground-truth version.

    Attributes:
        major_mm: First target value (official ``L-1-2``), mm.
        minor_mm: Second target value (official ``L-3-4``), mm.
        endpoints_rc: ``(P1, P2, P3, P4)`` ``(row, col)`` slice pixels.
    """

    major_mm: float
    minor_mm: float
    endpoints_rc: tuple[PointRC, PointRC, PointRC, PointRC]


def fit_component(
    annotation: Annotation,
    crop: npt.NDArray[np.bool_],
    offset_rc: tuple[int, int],
    spacing_mm_rc: tuple[float, float],
    slice_hw: tuple[int, int],
) -> AxesFit | None:
    """Fit one component under ``annotation``; ``None`` when the version rejects it.

    Args:
        annotation: Ground-truth version.
        crop: Tight boolean crop of one 4-connected component.
        offset_rc: Crop origin ``(row, col)`` in the slice.
        spacing_mm_rc: ``(sr, sc)`` in mm.
        slice_hw: Slice size ``(H, W)`` (the v1.0.0 gate clips to it).

    Returns:
        The target and endpoints, or ``None``.
    """
    if annotation == "precise":
        e = _fit_ellipse_crop(crop, offset_rc, spacing_mm_rc, int(crop.sum()))
        return None if e is None else AxesFit(e.major_mm, e.minor_mm, e.endpoints_rc)
    if annotation == "official-1.0.0":
        o = fit_official_v100(crop, offset_rc, spacing_mm_rc, slice_hw)
    else:
        o = fit_official_v140(crop, offset_rc, spacing_mm_rc)
    return None if o is None else AxesFit(o.major_mm, o.minor_mm, o.endpoints_rc)


@dataclass(frozen=True)
class LesionFit:
    """One fitted lesion component: its box, size, target fit and Feret diameters.

    Attributes:
        box_rc: Inclusive ``(r0, c0, r1, c1)`` pixel box in the slice.
        pixel_count: Pixels of the component.
        fit: The target under the build's version.
        diameters: RECIST longest diameter and perpendicular (the same in every version).
    """

    box_rc: tuple[int, int, int, int]
    pixel_count: int
    fit: AxesFit
    diameters: Diameters


def measure_component(
    annotation: Annotation,
    comps: SliceComponents,
    i: int,
    spacing_mm_rc: tuple[float, float],
    slice_hw: tuple[int, int],
) -> LesionFit | None:
    """Fit component ``i`` of ``comps`` under ``annotation`` and add its Feret diameters.

    Returns:
        The measurement, or ``None`` when the version rejects the fit.
    """
    crop, offset = comps.crop2d(i)
    fit = fit_component(annotation, crop, offset, spacing_mm_rc, slice_hw)
    if fit is None:
        return None
    r0, c0, r1, c1 = (int(v) for v in comps.box_rc[i])
    return LesionFit(
        box_rc=(r0, c0, r1, c1),
        pixel_count=int(comps.pixel_count[i]),
        fit=fit,
        diameters=_feret_crop(crop, offset, spacing_mm_rc),
    )
