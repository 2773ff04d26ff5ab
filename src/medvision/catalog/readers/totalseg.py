"""TotalSegmentator: ``s0000/ct.nii.gz`` + ``s0000/segmentations/<structure>.nii.gz``.

The release ships one binary mask per structure (117 for CT v2, 50 for MR). They are merged
into one label map with the ids of the spec's label table, matching each label's
``structure`` (file stem, e.g. ``kidney_right``). A voxel claimed by two masks keeps the
larger id (the structures of one release do not overlap; the rule only makes the merge
deterministic). Every structure the spec names must have its file: TotalSegmentator writes
an empty mask for an absent structure, so a missing file means a damaged download.

PDDCA uses the same layout (``0522c0001/img.nrrd`` + ``structures/<Name>.nrrd``, read through
SimpleITK) with ``missing_structures: skip``: its release simply omits a structure that was
not delineated, so the label stays empty there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medvision.catalog.readers.base import (
    CaseFiles,
    CaseInputs,
    ReaderError,
    case_dirs,
    load_any,
)
from medvision.catalog.spec import TaskSpec, TotalSegLayout
from medvision.volumes import Volume, check_same_grid, from_array


def discover(task: TaskSpec, root: Path) -> list[CaseFiles]:
    """List the case folders, sorted by case id.

    Raises:
        FileNotFoundError: No folder matches ``image_folder``.
    """
    lay = task.layout
    assert isinstance(lay, TotalSegLayout)
    cases: list[CaseFiles] = []
    for case_dir in case_dirs(task, root, lay.case_glob, "case folder root"):
        image = case_dir / lay.image_file
        seg = case_dir / lay.segmentations_folder
        missing = []
        if not image.exists():
            missing.append(f"image file {image} not found")
        if not seg.is_dir():
            missing.append(f"segmentation folder {seg} not found")
        cases.append(CaseFiles(case_dir.name, image, seg, None, tuple(missing)))
    return sorted(cases, key=lambda c: c.case_id)


def merge_structures(task: TaskSpec, seg_dir: Path, image: Volume) -> np.ndarray:
    """Merge the per-structure masks into one label array (uint16) on the image's RAS+ grid.

    Raises:
        ReaderError: A structure's file is missing.
        VolumeError: A mask is unreadable or not on the image's grid.
    """
    lay = task.layout
    assert isinstance(lay, TotalSegLayout)
    merged = np.zeros(image.shape, dtype=np.uint16)
    for lab in sorted(task.labels, key=lambda x: x.id):
        assert lab.structure is not None  # validated by TaskSpec
        path = seg_dir / f"{lab.structure}{lay.structure_suffix}"
        if not path.exists() and lay.missing_structures == "skip":
            continue  # the release omits structures absent from the scan; the label stays 0
        if not path.exists():
            raise ReaderError(
                str(path),
                f"structure mask {path} not found (label {lab.id} {lab.name!r}); expected one "
                f"file per structure in {seg_dir}",
            )
        mask = load_any(path, "labels")
        check_same_grid(image, mask)
        merged[mask.array > 0] = lab.id
    return merged


def read(task: TaskSpec, files: CaseFiles) -> CaseInputs:
    """Load the image and the merged label map of one case."""
    assert files.mask is not None
    image = load_any(files.image, "image")
    merged = merge_structures(task, files.mask, image)
    labels = from_array(merged, image.affine, "labels", str(files.mask))
    return CaseInputs(image, labels, None)
