"""AMOS22 release: ``amos22/images{Tr,Va}/amos_0001.nii.gz`` with ``labels{Tr,Va}``.

CT and MRI cases share the folders; a task selects its cases by case number (the official
downloader sends ``amos_<507`` to CT and the rest to MRI). Unlabelled ``imagesTs`` is not read.
"""

from __future__ import annotations

import re
from pathlib import Path

from medvision.catalog.readers.base import CaseFiles, CaseInputs, require_dir
from medvision.catalog.readers.folders import read_files
from medvision.catalog.spec import AmosLayout, TaskSpec

_CASE = re.compile(r"^amos_(\d+)\.nii\.gz$")


def discover(task: TaskSpec, root: Path) -> list[CaseFiles]:
    """List the AMOS cases of this task (by case-number range), sorted by case id.

    Raises:
        FileNotFoundError: An ``images<subset>`` folder does not exist.
    """
    lay = task.layout
    assert isinstance(lay, AmosLayout)
    top = Path(root) / task.image_folder
    cases: list[CaseFiles] = []
    for subset in lay.subsets:
        img_dir = top / f"images{subset}"
        require_dir(img_dir, "image folder", task.id)
        for image in sorted(img_dir.iterdir()):
            m = _CASE.match(image.name)
            if m is None or not lay.min_case_number <= int(m.group(1)) <= lay.max_case_number:
                continue
            case_id = image.name[: -len(".nii.gz")]
            mask = top / f"labels{subset}" / image.name
            missing = () if mask.exists() else (f"mask file {mask} not found",)
            cases.append(CaseFiles(case_id, image, mask, None, missing))
    return sorted(cases, key=lambda c: c.case_id)


def read(task: TaskSpec, files: CaseFiles) -> CaseInputs:
    """Load image and mask (plain NIfTI)."""
    return read_files(task, files)
