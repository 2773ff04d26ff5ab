"""Clusters for the bootstrap: the cases (volumes) or subjects that evaluated slices come from.

The evaluated samples of a task configuration are consecutive slices of a handful of volumes,
so neighbouring samples are nearly copies and are not independent draws. The cluster
bootstrap (:mod:`medvision.metrics.bootstrap`) therefore resamples whole clusters: the
**subject** of a case where the catalog knows how to read it from the case id (the dataset's
``split.subject_regex``, e.g. ``^(patient[0-9]+)_`` for ACDC), else the **case** itself. A
cluster never spans two datasets.

Resampling happens within strata (official group x dataset): a stratum with ``K`` clusters
draws ``K`` of its clusters with replacement and keeps every row of each drawn cluster, so the
number of rows of a stratum varies between replicates while the number of clusters does not.
The slice bootstrap is the special case where every row is its own cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import NDArray

from medvision.catalog.registry import CATALOG_DIR
from medvision.catalog.spec import SpecError, load_spec

__all__ = [
    "ClusterIndex",
    "cluster_codes",
    "draw_clusters",
    "make_clusters",
    "rows_of",
    "subject_of_case",
]

IntArray = NDArray[np.int64]


@cache
def _subject_pattern(dataset: str) -> re.Pattern[str] | None:
    """The compiled subject regex of a built-in catalog dataset, or ``None``.

    Only the dataset's own spec file is read (``catalog/datasets/<name>.yaml``), once.
    """
    path = CATALOG_DIR / f"{dataset}.yaml"
    if "/" in dataset or "\\" in dataset or not path.is_file():
        return None
    try:
        spec = load_spec(path)
    except SpecError:  # a broken built-in spec must not break scoring; cases stay clusters
        return None
    regex = spec.split.subject_regex if spec.name == dataset else None
    return re.compile(regex) if regex else None


def subject_of_case(dataset: str, case_id: str) -> str:
    r"""The subject of ``case_id`` in ``dataset`` (the case id itself when unknown).

    Example:
        >>> subject_of_case("ACDC", "patient007_frame01")
        'patient007'
        >>> subject_of_case("unknown-dataset", "case_3")
        'case_3'
    """
    pat = _subject_pattern(dataset)
    if pat is None:
        return case_id
    m = pat.match(case_id)
    return m.group(1) if m else case_id


def cluster_codes(datasets: NDArray[np.str_], case_ids: NDArray[np.str_]) -> IntArray:
    """Integer cluster code of each row: one code per (dataset, subject or case).

    Args:
        datasets: ``(N,)`` dataset name of each row.
        case_ids: ``(N,)`` case id of each row (empty ids are one cluster per dataset).

    Returns:
        ``(N,)`` int64 codes, dense from 0.
    """
    ds = np.asarray(datasets).astype(str)
    cases = np.asarray(case_ids).astype(str)
    if ds.size == 0:
        return np.zeros(0, dtype=np.int64)
    pairs, inverse = np.unique(np.char.add(np.char.add(ds, "\x1f"), cases), return_inverse=True)
    subjects = []
    for pair in pairs.tolist():
        d, c = pair.split("\x1f", 1)
        subjects.append(f"{d}\x1f{subject_of_case(d, c)}")
    _, code = np.unique(np.array(subjects), return_inverse=True)
    return np.asarray(code, dtype=np.int64)[np.asarray(inverse).reshape(-1)]


@dataclass(frozen=True)
class ClusterIndex:
    """Rows grouped into clusters within strata, ready for vectorised resampling.

    Attributes:
        order: ``(N,)`` row indices sorted by (stratum, cluster); a cluster's rows are the
            contiguous block ``order[start[k] : start[k] + size[k]]``.
        start: ``(K,)`` start of each cluster's block in ``order``.
        size: ``(K,)`` rows of each cluster.
        first: ``(K,)`` index of the first cluster of the cluster's stratum.
        count: ``(K,)`` number of clusters in the cluster's stratum.
    """

    order: IntArray
    start: IntArray
    size: IntArray
    first: IntArray
    count: IntArray

    @property
    def n_clusters(self) -> int:
        """Number of clusters ``K`` (over all strata)."""
        return int(self.start.size)


def make_clusters(strata: NDArray[np.integer], clusters: NDArray[np.integer]) -> ClusterIndex:
    """Index the clusters of every stratum (a cluster split by strata is one cluster per stratum).

    Args:
        strata: ``(N,)`` integer stratum code of each row.
        clusters: ``(N,)`` integer cluster code of each row.

    Returns:
        The :class:`ClusterIndex`.
    """
    s = np.asarray(strata, dtype=np.int64)
    c = np.asarray(clusters, dtype=np.int64)
    if s.shape != c.shape:
        raise ValueError(f"strata {s.shape} and clusters {c.shape} differ in shape")
    order = np.lexsort((c, s)).astype(np.int64)
    if order.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return ClusterIndex(order, empty, empty, empty, empty)
    ss, cs = s[order], c[order]
    new = np.ones(order.size, dtype=bool)
    new[1:] = (ss[1:] != ss[:-1]) | (cs[1:] != cs[:-1])
    start = np.flatnonzero(new).astype(np.int64)
    size = np.diff(np.append(start, order.size)).astype(np.int64)
    k_stratum = ss[start]
    new_s = np.ones(start.size, dtype=bool)
    new_s[1:] = k_stratum[1:] != k_stratum[:-1]
    s_first = np.flatnonzero(new_s)
    s_count = np.diff(np.append(s_first, start.size))
    which = np.cumsum(new_s) - 1
    return ClusterIndex(
        order=order,
        start=start,
        size=size,
        first=s_first[which].astype(np.int64),
        count=s_count[which].astype(np.int64),
    )


def draw_clusters(index: ClusterIndex, n_boot: int, rng: np.random.Generator) -> IntArray:
    """Draw every replicate's clusters at once: each stratum draws as many as it has.

    Args:
        index: The clusters.
        n_boot: Replicates.
        rng: The only source of randomness.

    Returns:
        ``(n_boot, K)`` cluster indices; column ``k`` is drawn uniformly from the clusters of
        cluster ``k``'s stratum.
    """
    u = rng.random((n_boot, index.n_clusters))
    offset = np.minimum(np.floor(u * index.count).astype(np.int64), index.count - 1)
    return index.first + offset


def rows_of(index: ClusterIndex, picks: IntArray) -> IntArray:
    """Row indices of the drawn clusters of one replicate, every row of each cluster.

    Args:
        index: The clusters.
        picks: ``(K',)`` drawn cluster indices (one row of :func:`draw_clusters`).

    Returns:
        ``(sum(size[picks]),)`` int64 row indices, cluster after cluster.
    """
    sizes = index.size[picks]
    total = int(sizes.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    # Position j of the output reads order[start[pick] + (j - offset of its cluster)].
    ends = np.cumsum(sizes)
    base = np.repeat(index.start[picks] - (ends - sizes), sizes)
    return index.order[base + np.arange(total, dtype=np.int64)]
