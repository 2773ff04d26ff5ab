"""Scoring protocols: the switches that change a per-sample score or an aggregate.

Three presets (reference ``official-versions.md`` section 12):

* ``paper-v1``: GitHub c221615, the code behind the paper's tables. Detection corners are used
  as given (an inverted box scores 0), overlap scores are not clamped, and no A/D sample is
  excluded.
* ``official``: PyPI medvision-bm 1.2.1. Corners are sorted before the overlap scores, each
  overlap score is capped at 1.0, and A/D samples whose ground truth is below 0.1 (deg or mm)
  are removed before counting (``AD_NEAR_ZERO_GT_THRESHOLD``). The 1.2.1 extras are shown:
  detection ``Acc@IoU>=t`` / ``Acc@IoU[0.50:0.95]`` and T/L / A/D-distance ``nMAE``.
* ``strict``: ours. Corner sorting and clamping as in ``official`` (an answer that names the
  right box with its corners in another order is the right box), but **no** near-zero
  exclusion: every evaluated sample counts, and MRE on a tiny target is reported as it is.
  The 1.2.1 extras (Acc@IoU, nMAE) are shown.

``paper-v1`` omits the extras: the paper's code computes neither, so its tables have no
such columns.

Each preset also names the rendering rule of its images (:data:`medvision.volumes.RENDERINGS`;
reference ``official-versions.md`` section 8): ``paper-v1`` per-slice min-max (c221615),
``official`` the 1.2.1 CT windows by label group and 0.5-99.5 percentiles elsewhere, and
``strict`` the same as ``official`` (our choice: a model reads CT in a radiological window).

Everything both official versions share is fixed here for all presets: minimum group size 50
and the excluded / tumour-lesion key words of the detection anatomy-vs-T/L split, bins
``min(int(v*10), 9)`` over all samples, ``>=`` for the overlap thresholds, and sample-weighted
group means. Parsing and prompt switches live with :mod:`medvision.parsing` and
:mod:`medvision.tasks`; this module only holds what the scorer and the aggregator read.
"""

from __future__ import annotations

from dataclasses import dataclass

from medvision.volumes.render import PROTOCOL_RENDERING

__all__ = ["PROTOCOLS", "Protocol", "get_protocol"]


@dataclass(frozen=True)
class Protocol:
    """The scoring and aggregation switches of one protocol preset.

    Attributes:
        name: Preset name (``"paper-v1"``, ``"official"`` or ``"strict"``).
        det_sort_corners: Sort ``x0, x1`` and ``y0, y1`` of both boxes before IoU/F1/P/R.
        det_clamp: Cap IoU/F1/P/R at 1.0.
        ad_near_zero_gt: Drop A/D samples with ground truth below this value (deg or mm)
            before counting; ``None`` keeps every sample.
        metrics_extra: Add the medvision-bm 1.2.1 extras to the summaries: detection
            ``Acc@IoU>=t`` for t = 0.50, 0.55, ..., 0.95 and their mean
            ``Acc@IoU[0.50:0.95]``; T/L and A/D-distance ``avgNMAE`` (groups) and ``nMAE``
            (model lines, A/D group averages).
        min_group_size: Detection groups with fewer samples are left out of the
            anatomy-vs-T/L summary.
        excluded_keys: Lower-case words; a detection group whose lower-cased key contains one
            is left out of the anatomy-vs-T/L summary.
        tumor_lesion_keys: Lower-case words; a detection group whose lower-cased key contains
            one is a tumour/lesion group (otherwise anatomy).
        description: One line saying where the preset comes from.
        label_maps: Which official label maps group detection labels: ``"c221615"`` (the
            paper's, Knee one class) or ``"1.2.1"`` (medvision-bm 1.2.1: Knee split into
            ``Knee Bone`` and ``Knee Soft Tissue``); see :mod:`medvision.metrics.grouping`.
        rendering: Default rendering rule of the images the model is shown (``"minmax"``,
            ``"official"`` or ``"percentile"``; see :mod:`medvision.volumes.render`). Not a
            scoring switch: a run records the rule it used in ``summary["run"]["rendering"]``
            (a rescore under another protocol keeps it, since the answers were given on
            those images).
    """

    name: str
    det_sort_corners: bool
    det_clamp: bool
    ad_near_zero_gt: float | None
    metrics_extra: bool = False
    min_group_size: int = 50
    excluded_keys: tuple[str, ...] = ("miscellaneous", "others")
    tumor_lesion_keys: tuple[str, ...] = ("tumor", "lesion", "metastatic")
    description: str = ""
    label_maps: str = "1.2.1"
    rendering: str = "minmax"

    def switches(self) -> dict[str, object]:
        """Return the switches as a JSON-serialisable dict (for reports and summaries)."""
        return {
            "name": self.name,
            "det_sort_corners": self.det_sort_corners,
            "det_clamp": self.det_clamp,
            "ad_near_zero_gt": self.ad_near_zero_gt,
            "metrics_extra": self.metrics_extra,
            "min_group_size": self.min_group_size,
            "excluded_keys": list(self.excluded_keys),
            "tumor_lesion_keys": list(self.tumor_lesion_keys),
            "description": self.description,
            "label_maps": self.label_maps,
        }


PROTOCOLS: dict[str, Protocol] = {
    "paper-v1": Protocol(
        name="paper-v1",
        det_sort_corners=False,
        det_clamp=False,
        ad_near_zero_gt=None,
        description="GitHub c221615 (paper v1 tables)",
        label_maps="c221615",
        rendering=PROTOCOL_RENDERING["paper-v1"],
    ),
    "official": Protocol(
        name="official",
        det_sort_corners=True,
        det_clamp=True,
        ad_near_zero_gt=0.1,
        metrics_extra=True,
        description="PyPI medvision-bm 1.2.1",
        rendering=PROTOCOL_RENDERING["official"],
    ),
    "strict": Protocol(
        name="strict",
        det_sort_corners=True,
        det_clamp=True,
        ad_near_zero_gt=None,
        metrics_extra=True,
        description="medvision-bench: sorted corners, clamped overlaps, every A/D sample kept",
        rendering=PROTOCOL_RENDERING["strict"],
    ),
}


def get_protocol(name: str) -> Protocol:
    """Return the preset called ``name``.

    Args:
        name: ``"paper-v1"``, ``"official"`` or ``"strict"``.

    Returns:
        The frozen :class:`Protocol`.

    Raises:
        KeyError: If ``name`` is not a known preset (the message lists the known ones).
    """
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise KeyError(f"unknown protocol {name!r}; expected one of {sorted(PROTOCOLS)}") from None
