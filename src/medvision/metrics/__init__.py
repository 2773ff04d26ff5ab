"""Per-sample scores, official group aggregation and protocol presets.

* :func:`sample_metrics` scores one parsed answer (official section 4.2).
* :func:`summarize_run` aggregates a run's records into the official group tables
  (detection anatomy vs tumour/lesion, T/L per label, A/D per measurement), column-wise.
* :data:`PROTOCOLS` holds the ``paper-v1``, ``official`` and ``strict`` switches.
* :mod:`medvision.metrics.grouping` holds the official grouping rules (group keys, label maps,
  anatomy vs tumour/lesion, sample weights) every summary uses.
"""

from medvision.metrics.aggregate import (
    group_metrics,
    grouped_metrics,
    records_to_table,
    score_columns,
    summarize_ad,
    summarize_detection,
    summarize_run,
    summarize_tl,
    to_jsonable,
)
from medvision.metrics.grouping import (
    catalog_label_maps,
    classify_detection_group,
    detection_groups,
    tl_groups,
)
from medvision.metrics.per_sample import sample_metrics
from medvision.metrics.protocols import PROTOCOLS, Protocol, get_protocol

__all__ = [
    "PROTOCOLS",
    "Protocol",
    "catalog_label_maps",
    "classify_detection_group",
    "detection_groups",
    "get_protocol",
    "group_metrics",
    "grouped_metrics",
    "records_to_table",
    "sample_metrics",
    "score_columns",
    "summarize_ad",
    "summarize_detection",
    "summarize_run",
    "summarize_tl",
    "tl_groups",
    "to_jsonable",
]
