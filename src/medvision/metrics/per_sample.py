"""Per-sample scores of one parsed answer against its target (official section 4.2).

Units follow the task family (see :mod:`medvision.schema`): detection boxes are relative
``[x0, y0, x1, y1]`` (origin lower-left), so detection MAE is in fractions of the image size;
tumour/lesion sizes are ``[major_mm, minor_mm]``; angle/distance is ``[value]`` in degrees or
mm. Relative errors are unitless.

Failures (``parsed is None`` or a wrong number of values, as the official ``len != k`` check)
are scored as the official summarizers score them: detection IoU/F1/precision/recall = 0 and
MAE = NaN; T/L and A/D MAE = MRE = NaN. ``success`` is 1.0 or 0.0.

The vectorised twins used for aggregation live in :mod:`medvision.metrics.aggregate`; a test
keeps them equal to this module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from medvision.geometry.detection import score_box
from medvision.metrics.protocols import Protocol
from medvision.schema import TaskFamily

__all__ = ["RE_EPS", "sample_metrics"]

RE_EPS = 1e-15
"""Added to the target in every relative error, as the official ``AE / (t + 1e-15)``."""

_NAN = float("nan")


def _family(family: str | TaskFamily) -> TaskFamily:
    """Return the :class:`TaskFamily` for ``family`` or raise listing the known values."""
    try:
        return TaskFamily(family)
    except ValueError:
        raise ValueError(
            f"unknown task family {family!r}; expected one of {[f.value for f in TaskFamily]}"
        ) from None


def sample_metrics(
    family: str | TaskFamily,
    parsed: Sequence[float] | None,
    target: Sequence[float],
    protocol: Protocol,
) -> dict[str, float]:
    """Score one parsed answer.

    Args:
        family: ``"detection"``, ``"tl"`` or ``"ad"`` (a :class:`TaskFamily` value).
        parsed: Parsed answer values in the family's units, or ``None`` when parsing failed.
        target: Ground truth in the same units (4, 2 or 1 values).
        protocol: Protocol whose detection switches apply.

    Returns:
        Detection: ``{"success", "iou", "f1", "precision", "recall", "mae"}``.
        T/L and A/D: ``{"success", "mae", "mre"}`` with ``mae = mean |p - t|`` and
        ``mre = mean(|p - t| / (t + 1e-15))`` over the values.

    Raises:
        ValueError: If ``family`` is unknown or ``target`` has the wrong number of values.

    Example:
        >>> from medvision.metrics.protocols import get_protocol
        >>> sample_metrics("tl", [12.0, 6.0], [10.0, 8.0], get_protocol("official"))["mae"]
        2.0
    """
    fam = _family(family)
    k = fam.n_values
    if len(target) != k:
        raise ValueError(
            f"{fam.value} target must have {k} values; found {len(target)}: {tuple(target)!r}"
        )
    ok = parsed is not None and len(parsed) == k
    if fam is TaskFamily.DETECTION:
        if not ok or parsed is None:
            return {
                "success": 0.0,
                "iou": 0.0,
                "f1": 0.0,
                "precision": 0.0,
                "recall": 0.0,
                "mae": _NAN,
            }
        s = score_box(
            parsed, target, sort_corners=protocol.det_sort_corners, clamp=protocol.det_clamp
        )
        return {
            "success": 1.0,
            "iou": s.iou,
            "f1": s.f1,
            "precision": s.precision,
            "recall": s.recall,
            "mae": s.mae,
        }
    if not ok or parsed is None:
        return {"success": 0.0, "mae": _NAN, "mre": _NAN}
    ae = [abs(float(p) - float(t)) for p, t in zip(parsed, target, strict=True)]
    re = [_ieee_div(a, float(t) + RE_EPS) for a, t in zip(ae, target, strict=True)]
    return {"success": 1.0, "mae": sum(ae) / k, "mre": sum(re) / k}


def _ieee_div(num: float, den: float) -> float:
    """``num / den`` with IEEE results for a zero denominator (as numpy), never raising."""
    if den != 0.0:
        return num / den
    if num == 0.0 or math.isnan(num):
        return _NAN
    return math.copysign(math.inf, num) * math.copysign(1.0, den)
