"""One folder per case: AbdomenAtlas (``ct.nii.gz``), BraTS (``<case>-t1c.nii.gz``), KiTS23.

* ``case_folders``: file names are templates in which ``{case}`` is the folder's name.
* ``brats``: BraTS 2023-2024, ``BraTS-GLI-00000-000/BraTS-GLI-00000-000-t1c.nii.gz`` with
  ``-seg.nii.gz`` masks (MEN-RT: ``BraTS-MEN-RT-0000-1_t1c.nii.gz`` and ``_gtv.nii.gz``).
* ``kits23``: ``dataset/case_00000/imaging.nii.gz`` and ``segmentation.nii.gz``.
"""

from __future__ import annotations

from pathlib import Path

from medvision.catalog.readers.base import CaseFiles, CaseInputs, case_dirs
from medvision.catalog.readers.folders import read_files
from medvision.catalog.spec import BratsLayout, CaseFoldersLayout, Kits23Layout, TaskSpec


def templates(task: TaskSpec) -> tuple[str, str, str | None, str | None]:
    """``(case_glob, image template, mask template, landmark template)`` of the task."""
    lay = task.layout
    if isinstance(lay, CaseFoldersLayout):
        return lay.case_glob, lay.image_file, lay.mask_file, lay.landmark_file
    if isinstance(lay, BratsLayout):
        sep = lay.separator
        return (
            lay.case_glob,
            f"{{case}}{sep}{lay.sequence}.nii.gz",
            f"{{case}}{sep}{lay.mask}.nii.gz",
            None,
        )
    if isinstance(lay, Kits23Layout):
        return lay.case_glob, "imaging.nii.gz", "segmentation.nii.gz", None
    raise TypeError(f"task {task.id}: layout {lay.kind!r} is not a case-folder layout")


def _fill(template: str, case: str) -> str:
    # str.replace, not str.format: a file name holding braces must not be interpreted.
    return template.replace("{case}", case)


def discover(task: TaskSpec, root: Path) -> list[CaseFiles]:
    """List the case folders of the task, sorted by case id.

    Raises:
        FileNotFoundError: No folder matches ``image_folder``.
    """
    case_glob, image_tpl, mask_tpl, mark_tpl = templates(task)
    cases: dict[str, CaseFiles] = {}
    for case_dir in case_dirs(task, root, case_glob, "case folder root"):
        case = case_dir.name
        image = case_dir / _fill(image_tpl, case)
        missing = [] if image.exists() else [f"image file {image} not found"]
        mask = case_dir / _fill(mask_tpl, case) if mask_tpl else None
        if mask is not None and not mask.exists():
            missing.append(f"mask file {mask} not found")
        marks = case_dir / _fill(mark_tpl, case) if mark_tpl else None
        if marks is not None and not marks.exists():
            missing.append(f"landmark file {marks} not found")
        cases[case] = CaseFiles(case, image, mask, marks, tuple(missing))
    return [cases[k] for k in sorted(cases)]


def read(task: TaskSpec, files: CaseFiles) -> CaseInputs:
    """Load image, mask and landmarks of a case folder (no conversion needed)."""
    return read_files(task, files)
