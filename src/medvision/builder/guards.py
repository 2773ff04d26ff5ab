"""Checks that turn bad input into a skipped case instead of a traceback or a wrong number.

* :func:`check_volumetric`: a 2D image (one voxel along an axis) in a task of a volumetric
  modality (CT, MRI, PET) would give sagittal "slices" of 130x1 pixels and tumour sizes
  measured on them; it is refused.
* :func:`invalid_case_ids`: a case id the store cannot use as a file name (leading dot,
  slash, backslash, NUL) is skipped with its reason before any case is built, instead of
  stopping the build.
* :func:`out_of_memory_reason`: the reason recorded when a case runs out of memory.
* :func:`unknown_label_ids`: label values a mask holds that its task does not define.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from medvision.annotate.components import label_bounding_boxes
from medvision.catalog.spec import TaskSpec
from medvision.store import DatasetWriter, SkippedCase
from medvision.volumes import NotVolumetricError, Volume

__all__ = [
    "VOLUMETRIC_MODALITIES",
    "check_volumetric",
    "invalid_case_ids",
    "out_of_memory_reason",
    "unknown_label_ids",
]

#: Modalities whose images are 3D volumes (X-ray and ultrasound tasks are 2D or 2D+t).
VOLUMETRIC_MODALITIES = frozenset({"CT", "MRI", "PET"})


class _Job(Protocol):
    @property
    def key(self) -> str: ...

    def source_paths(self) -> list[tuple[str, Path]]: ...


_J = TypeVar("_J", bound=_Job)


def check_volumetric(task: TaskSpec, image: Volume) -> None:
    """Refuse a 2D image in a task whose modality is volumetric.

    Raises:
        NotVolumetricError: ``task.modality`` is CT, MRI or PET and an axis of ``image`` has
            a single voxel.
    """
    if task.modality in VOLUMETRIC_MODALITIES and min(image.shape) < 2:
        raise NotVolumetricError(
            image.path,
            f"image {image.path} has shape {list(image.shape)} (a 2D image) but task "
            f"{task.id} is {task.modality}, a 3D modality: expected at least 2 voxels along "
            "every axis",
        )


def invalid_case_ids(jobs: list[_J], dataset: str) -> dict[str, SkippedCase]:
    """The jobs whose case id cannot name a store file, each as a skipped case.

    Args:
        jobs: Build jobs.
        dataset: Dataset name in the store.

    Returns:
        ``key -> SkippedCase`` naming the case's first source file and why.
    """
    writer = DatasetWriter(".")
    bad: dict[str, SkippedCase] = {}
    for job in jobs:
        try:
            writer.case_paths(dataset, job.key)
        except ValueError as exc:
            paths = job.source_paths()
            first = str(paths[0][1]) if paths else ""
            bad[job.key] = SkippedCase(
                dataset=dataset,
                case_id=job.key,
                file=first,
                reason=f"case id {job.key!r} of {first or 'this case'}: {exc}; rename the file",
            )
    return bad


def out_of_memory_reason(image: Path) -> str:
    """Reason of a case that ran out of memory while being loaded or planned."""
    return (
        f"out of memory while loading or planning the case of {image}: the volume (or one of "
        "its partners) is larger than this worker can hold; build it with fewer workers or "
        "on a machine with more memory"
    )


def unknown_label_ids(
    labels: Volume, task: TaskSpec, bboxes: Mapping[int, object] | None = None
) -> list[int]:
    """Nonzero label values present in ``labels`` that ``task`` does not define.

    One pass over the volume in place (``find_objects``, no converted copy: ``bincount``
    would first cast the whole volume to int64, four times a uint16 mask), or none when the
    caller passes the label boxes it already has; only a mask with negative labels (rare) is
    sorted by ``np.unique``.
    """
    arr = labels.array
    known = {lab.id for lab in task.labels}
    if arr.dtype.kind == "i" and int(arr.min()) < 0:
        present: list[int] = [int(v) for v in np.unique(arr)]
    else:
        present = list(bboxes if bboxes is not None else label_bounding_boxes(arr))
    return [v for v in present if v != 0 and v not in known]
