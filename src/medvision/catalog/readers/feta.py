"""FeTA 2.4 fetal brain MRI (BIDS) with its biometry derivatives.

Release layout (per reconstruction, e.g. ``sub-001_rec-mial``)::

    feta_2.4/sub-001/anat/sub-001_rec-mial_T2w.nii.gz       image
    feta_2.4/sub-001/anat/sub-001_rec-mial_dseg.nii.gz      tissue labels (the Box task)
    feta_2.4/derivatives/biometry/sub-001/anat/sub-001_rec-mial_meas.nii.gz   landmark mask
    feta_2.4/derivatives/biometry/sub-001/anat/sub-001_rec-mial_*.txt         ITK transform

In the measurement mask label ``k`` marks exactly two voxels: the endpoints of the ``k``-th
distance, which become ``P(2k-1)`` and ``P(2k)``; the first is the one with the larger index
along ``order_axes[k-1]`` (official ordering). With ``realign`` the T2w image is resampled
into the measurement space with the subject's transform, ``sitk.Resample(im, im, trf,
sitkLinear)`` as the official preparation does (needs SimpleITK).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medvision.catalog.readers.base import (
    CaseFiles,
    CaseInputs,
    LandmarkError,
    Landmarks,
    require_dir,
)
from medvision.catalog.spec import FetaLayout, TaskSpec
from medvision.volumes import Volume, check_same_grid, load_volume

_IMAGE = "_T2w.nii.gz"


def discover(task: TaskSpec, root: Path) -> list[CaseFiles]:
    """List the FeTA reconstructions that have a measurement mask, sorted by case id.

    Raises:
        FileNotFoundError: The BIDS root does not exist.
    """
    lay = task.layout
    assert isinstance(lay, FetaLayout)
    base = Path(root)
    bids = base / task.image_folder
    require_dir(bids, "BIDS root", task.id)
    cases: list[CaseFiles] = []
    for image in sorted(bids.glob(f"sub-*/anat/*{_IMAGE}")):
        case = image.name[: -len(_IMAGE)]
        if case in lay.exclude_cases:
            continue
        subject = case.split("_")[0]
        anat = bids / lay.biometry_folder / subject / "anat"
        meas = anat / f"{case}_meas.nii.gz"
        missing = [] if meas.exists() else [f"landmark file {meas} not found"]
        extra: tuple[Path, ...] = ()
        if lay.realign:
            trfs = sorted(anat.glob(f"{case}*.txt"))
            if len(trfs) == 1:
                extra = (trfs[0],)
            else:
                missing.append(f"expected one transform file {anat}/{case}*.txt, found {len(trfs)}")
        cases.append(CaseFiles(case, image, None, meas, tuple(missing), extra))
    return cases


def landmarks_from_mask(meas: Volume, order_axes: list[int]) -> Landmarks:
    """``P1..P(2n)`` from a mask whose label ``k`` (1..n) marks exactly two voxels.

    Raises:
        LandmarkError: A label does not mark exactly two voxels.
    """
    out: Landmarks = {}
    for k, axis in enumerate(order_axes, start=1):
        pts = np.argwhere(meas.array == k)
        if len(pts) != 2:
            raise LandmarkError(
                meas.path,
                f"landmark mask {meas.path}: label {k} marks {len(pts)} voxels; expected "
                f"exactly 2 (the endpoints of distance {k})",
            )
        first, second = (pts[1], pts[0]) if pts[1][axis] > pts[0][axis] else (pts[0], pts[1])
        out[f"P{2 * k - 1}"] = tuple(float(v) for v in first)
        out[f"P{2 * k}"] = tuple(float(v) for v in second)
    return out


def read(task: TaskSpec, files: CaseFiles) -> CaseInputs:
    """Load the (realigned) image and the landmarks of its measurement mask."""
    lay = task.layout
    assert isinstance(lay, FetaLayout)
    assert files.landmarks is not None
    if lay.realign:
        from medvision.catalog.readers.sitk_io import realign

        image = realign(files.image, files.extra[0])
    else:
        image = load_volume(files.image, "image")
    meas = load_volume(files.landmarks, "labels")
    check_same_grid(image, meas)
    marks = landmarks_from_mask(meas, lay.order_axes)
    return CaseInputs(image, None, marks, str(files.landmarks))
