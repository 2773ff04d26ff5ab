"""Layout readers: from a task's files on disk to the volumes and landmarks the planners use.

One module per layout family, registered in :data:`READERS` by the ``kind`` of
:class:`~medvision.catalog.spec.TaskSpec.layout`:

========================  ============================================================
``folders``               flat ``Images/``/``Masks/`` (globs, masks beside, MHA/NRRD/DICOM)
``nnunet``                ``imagesTr``/``labelsTr`` + ``dataset.json`` (nnU-Net v2, MSD 4D)
``case_folders``          one folder per case with templated file names (AbdomenAtlas)
``brats``                 BraTS 2023-2024 case folders with ``-t1c``/``-t1n``/``-t2f``/``-t2w``
``kits23``                ``case_XXXXX/imaging.nii.gz`` + ``segmentation.nii.gz``
``amos``                  AMOS22 ``images{Tr,Va}`` split into CT / MRI by case number
``totalseg``              TotalSegmentator per-structure masks merged into one label map
``camus``                 CAMUS 2D+t sequences, one case per patient and view
``ceph``                  ISBI 2015 cephalograms: BMP + senior/junior landmark txt files
``feta``                  FeTA 2.4 BIDS + biometry masks, realigned with ITK transforms
``verse``                 VerSe'19/'20 rawdata/derivatives, vertebra masks + centroid JSON
``fcsv``                  flat image folders + 3D Slicer ``.fcsv`` landmarks (AFIDs)
``lidc``                  LIDC-IDRI DICOM series + reader XML, 50% consensus nodule mask
========================  ============================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medvision.catalog.readers import (
    amos,
    camus,
    case_folders,
    ceph,
    fcsv,
    feta,
    folders,
    lidc,
    nnunet,
    totalseg,
    verse,
)
from medvision.catalog.readers.base import (
    CaseFiles,
    CaseInputs,
    LandmarkError,
    LayoutError,
    ReaderError,
    load_any,
    read_landmarks_json,
)
from medvision.catalog.spec import LayoutKind, TaskSpec


@dataclass(frozen=True)
class LayoutReader:
    """The two functions of a layout family and a one-line description."""

    discover: Callable[[TaskSpec, Path], list[CaseFiles]]
    read: Callable[[TaskSpec, CaseFiles], CaseInputs]
    description: str


READERS: dict[LayoutKind, LayoutReader] = {
    "folders": LayoutReader(folders.discover, folders.read, "flat image/mask/landmark folders"),
    "nnunet": LayoutReader(nnunet.discover, nnunet.read, "imagesTr/labelsTr + dataset.json"),
    "case_folders": LayoutReader(
        case_folders.discover, case_folders.read, "one folder per case, templated file names"
    ),
    "brats": LayoutReader(case_folders.discover, case_folders.read, "BraTS 2023-24 case folders"),
    "kits23": LayoutReader(case_folders.discover, case_folders.read, "KiTS23 case folders"),
    "amos": LayoutReader(amos.discover, amos.read, "AMOS22 images/labels Tr+Va"),
    "totalseg": LayoutReader(
        totalseg.discover, totalseg.read, "TotalSegmentator per-structure masks, merged"
    ),
    "camus": LayoutReader(camus.discover, camus.read, "CAMUS 2D+t sequences per view"),
    "ceph": LayoutReader(ceph.discover, ceph.read, "ISBI 2015 BMP + annotator txt"),
    "feta": LayoutReader(feta.discover, feta.read, "FeTA 2.4 BIDS + biometry masks"),
    "verse": LayoutReader(verse.discover, verse.read, "VerSe rawdata/derivatives + centroids"),
    "fcsv": LayoutReader(fcsv.discover, fcsv.read, "image folders + Slicer fcsv landmarks"),
    "lidc": LayoutReader(lidc.discover, lidc.read, "LIDC-IDRI DICOM + reader XML consensus"),
}


def discover_cases(task: TaskSpec, root: str | Path) -> list[CaseFiles]:
    """List the cases of ``task`` under ``root`` with the reader of its layout.

    Raises:
        FileNotFoundError: The task's folder is absent.
        LayoutError: The folder does not match the layout (names the file).
    """
    return READERS[task.layout.kind].discover(task, Path(root))


def read_case(task: TaskSpec, files: CaseFiles) -> CaseInputs:
    """Load one case's image, labels and landmarks with the reader of its layout.

    Raises:
        VolumeError, ReaderError: Bad input, naming the file and what was expected.
    """
    return READERS[task.layout.kind].read(task, files)


__all__ = [
    "READERS",
    "CaseFiles",
    "CaseInputs",
    "LandmarkError",
    "LayoutError",
    "LayoutReader",
    "ReaderError",
    "discover_cases",
    "load_any",
    "read_case",
    "read_landmarks_json",
]
