"""Find and read the files of each case of a task (facade over :mod:`.readers`).

The generic layout is the one the official plans describe: ``<root>/<image_folder>/<prefix>
<case><suffix>`` with the mask at ``<mask_folder>/<mask_prefix><case><mask_suffix>`` and the
landmarks at ``<landmark_folder>/<case><landmark_suffix>``. Source layouts (nnU-Net/MSD,
BraTS, KiTS23, AMOS, TotalSegmentator, CAMUS, Ceph, FeTA, MHA/NRRD/DICOM) have their own
readers, chosen by ``TaskSpec.layout.kind``; all of them yield :class:`CaseFiles` and,
through :func:`read_case`, the same :class:`CaseInputs`.
"""

from __future__ import annotations

from medvision.catalog.readers import (
    READERS,
    CaseFiles,
    CaseInputs,
    LandmarkError,
    LayoutError,
    ReaderError,
    discover_cases,
    read_case,
    read_landmarks_json,
)

__all__ = [
    "READERS",
    "CaseFiles",
    "CaseInputs",
    "LandmarkError",
    "LayoutError",
    "ReaderError",
    "discover_cases",
    "read_case",
    "read_landmarks_json",
]
