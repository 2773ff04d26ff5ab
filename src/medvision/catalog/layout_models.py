"""Layout models added with the official 1.2.0/1.3.0 datasets (VerSe centroids, Slicer fcsv).

They join :data:`medvision.catalog.spec.Layout` (a union discriminated by ``kind``); the
readers live in :mod:`medvision.catalog.readers.verse` and :mod:`medvision.catalog.readers.fcsv`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VerseLayout(_Model):
    """VerSe'19/'20 release: ``rawdata/sub-*/<stem>_ct.nii.gz`` + ``derivatives/sub-*/``.

    A case is one CT scan, ``<stem>`` its file stem (``sub-verse004`` or
    ``sub-verse500_dir-ax``). Its files are::

        <image_folder>/<sub>/<stem>_ct.nii.gz                       image
        <image_folder>/../derivatives/<sub>/<stem>_seg-vert_msk.nii.gz  vertebra labels
        <image_folder>/../derivatives/<sub>/<stem>_seg-subreg_ctd.json  centroids

    The centroid JSON is a list: one ``{"direction": ["P", "I", "R"]}`` entry giving the axis
    codes of the index space, then ``{"label": 20, "X": .., "Y": .., "Z": ..}`` entries whose
    X/Y/Z are voxel indices along those axes (not millimetres). Landmark ``P<n>`` is the
    centroid of ``landmark_labels[n-1]``.

    Attributes:
        case_glob: Pattern of subject folders inside ``image_folder``.
        derivatives: Derivatives folder relative to ``image_folder``.
        landmark_labels: Vertebra label ids read as landmarks P1, P2, ... (20..24 = L1..L5).
        exclude: ``fnmatch`` patterns of case stems left out (``sub-gl*``: CC BY-NC-ND).
    """

    kind: Literal["verse"]
    case_glob: str = "sub-*"
    derivatives: str = "../derivatives"
    landmark_labels: list[int] = Field(default=[20, 21, 22, 23, 24], min_length=1)
    exclude: list[str] = []


class FcsvLayout(_Model):
    """Flat image folder + one 3D Slicer markups ``.fcsv`` landmark file per case (AFIDs).

    Images are found as in the ``folders`` layout (``image_folder`` may be a glob); the
    landmark file of a case is ``<landmark_folder>/<case><landmark_suffix>``. Each data row
    ``id,x,y,z,...,label,desc,...`` gives one landmark in world millimetres; the header line
    ``# CoordinateSystem = 0|RAS|1|LPS`` says which frame (0 and RAS: RAS; 1 and LPS: LPS).
    Landmark key ``P<label>`` when the label column is an integer, else the label text.
    Points are mapped to voxel indices of the RAS+ image through its affine.

    Attributes:
        exclude: ``fnmatch`` patterns of image file names to ignore.
    """

    kind: Literal["fcsv"]
    exclude: list[str] = ["._*"]


class LidcLayout(_Model):
    """LIDC-IDRI as TCIA ships it: DICOM series folders, each with one reader-XML file.

    ``<image_folder>/LIDC-IDRI-0001/<study>/<series>/*.dcm`` + ``<series>/069.xml``. A case
    is one CT series whose XML root is ``LidcReadMessage`` (radiograph series carry an
    ``IdriReadMessage`` and are skipped); a patient with several CT series gives case ids
    ``<patient>_1``, ``<patient>_2`` in folder order. Each reading session's
    ``unblindedReadNodule`` is one reader's outline of one nodule: ``roi`` polygons
    (``edgeMap`` x = column, y = row of the slice named by ``imageSOP_UID``; ``inclusion``
    FALSE cuts a hole). Outlines of different readers that share a voxel form one nodule;
    a voxel is in the mask when at least ``consensus`` of that nodule's outlines hold it
    (the 50% consensus the official release builds with pylidc). Nodules under 3 mm
    (single-point ROIs) have no outline and are left out.

    Attributes:
        case_glob: Pattern of patient folders.
        consensus: Fraction of a nodule's outlines a voxel needs (0 < c <= 1).
    """

    kind: Literal["lidc"]
    case_glob: str = "LIDC-IDRI-*"
    consensus: float = Field(default=0.5, gt=0.0, le=1.0)
