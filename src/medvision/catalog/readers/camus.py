"""CAMUS echocardiography (2023 NIfTI release): one patient folder, two views, 2D+t sequences.

``database_nifti/patient0001/patient0001_2CH_half_sequence.nii.gz`` (frames from ED to ES)
with ``patient0001_2CH_half_sequence_gt.nii.gz``; likewise ``_4CH_`` and the single-frame
``_ED``/``_ES`` files. One case per (patient, view): ``patient0001_2CH``. A sequence is a 3D
volume whose third axis is time, so axial slices are single frames (the official "Axial"
configs) and sagittal/coronal slices are space-time images.
"""

from __future__ import annotations

from pathlib import Path

from medvision.catalog.readers.base import CaseFiles, CaseInputs, case_dirs
from medvision.catalog.readers.folders import read_files
from medvision.catalog.spec import CamusLayout, TaskSpec


def discover(task: TaskSpec, root: Path) -> list[CaseFiles]:
    """List (patient, view) cases, sorted by case id.

    Raises:
        FileNotFoundError: No folder matches ``image_folder``.
    """
    lay = task.layout
    assert isinstance(lay, CamusLayout)
    cases: list[CaseFiles] = []
    for pdir in case_dirs(task, root, lay.case_glob, "patient folder root"):
        for view in lay.views:
            case = f"{pdir.name}_{view}"
            image = pdir / f"{case}_{lay.sequence}.nii.gz"
            mask = pdir / f"{case}_{lay.sequence}_gt.nii.gz"
            missing = [
                f"{what} file {p} not found"
                for what, p in (("image", image), ("mask", mask))
                if not p.exists()
            ]
            cases.append(CaseFiles(case, image, mask, None, tuple(missing)))
    return sorted(cases, key=lambda c: c.case_id)


def read(task: TaskSpec, files: CaseFiles) -> CaseInputs:
    """Load the sequence and its mask (NIfTI, RAS+ as for every volume)."""
    return read_files(task, files)
