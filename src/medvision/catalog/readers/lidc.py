"""LIDC-IDRI from TCIA: CT DICOM series + the readers' XML outlines -> consensus nodule mask.

The XML (``LidcReadMessage``, namespace ``http://www.nih.gov``) holds up to four
``readingSession`` elements; each ``unblindedReadNodule`` is one reader's outline of one
nodule, as ``roi`` elements::

    <roi>
      <imageZposition>-125.0</imageZposition>
      <imageSOP_UID>1.3.6.1.4...</imageSOP_UID>
      <inclusion>TRUE</inclusion>
      <edgeMap><xCoord>312</xCoord><yCoord>355</yCoord></edgeMap> ...
    </roi>

x is the column and y the row of the slice whose SOP Instance UID is ``imageSOP_UID``
(matched by ``imageZposition`` when the UID is absent). A polygon is filled with its
boundary; an ``inclusion`` FALSE polygon cuts a hole. Pixels go to the world through that
slice's DICOM geometry (ImagePositionPatient, ImageOrientationPatient, PixelSpacing; LPS)
and then to the voxel of the canonical RAS+ image. Outlines of different readers sharing a
voxel are one nodule; a voxel is kept when at least ``consensus`` of its outlines hold it.
The official release builds the same 50% consensus with pylidc, which groups outlines by
distance instead of overlap, so masks can differ at the margins.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from medvision.catalog.layout_models import LidcLayout
from medvision.catalog.readers.base import CaseFiles, CaseInputs, ReaderError, case_dirs
from medvision.catalog.readers.sitk_io import _sitk, load_dicom_series
from medvision.catalog.spec import TaskSpec
from medvision.volumes import Volume, from_array

_LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])
Voxels = set[tuple[int, int, int]]


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _children(node: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in node if _local(c.tag) == name]


def _text(node: ET.Element, name: str) -> str:
    found = _children(node, name)
    return (found[0].text or "").strip() if found else ""


def _root_name(xml: Path) -> str:
    try:
        for _, elem in ET.iterparse(xml, events=("start",)):
            return _local(elem.tag)
    except ET.ParseError:
        return ""
    return ""


def discover(task: TaskSpec, root: Path) -> list[CaseFiles]:
    """List the CT series (folders with a ``LidcReadMessage`` XML), sorted by case id.

    Raises:
        FileNotFoundError: No folder matches ``image_folder``.
    """
    lay = task.layout
    assert isinstance(lay, LidcLayout)
    cases: list[CaseFiles] = []
    for patient in case_dirs(task, root, lay.case_glob, "LIDC-IDRI folder"):
        series = [
            xml for xml in sorted(patient.rglob("*.xml")) if _root_name(xml) == "LidcReadMessage"
        ]
        for n, xml in enumerate(series, start=1):
            case = patient.name if len(series) == 1 else f"{patient.name}_{n}"
            cases.append(CaseFiles(case, xml.parent, xml, None))
    return sorted(cases, key=lambda c: c.case_id)


def _slice_geometry(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per slice file: SOP UID -> (axes, origin), with LPS mm = origin + axes @ (col, row).

    ``axes`` is (3, 2): the ImageOrientationPatient row and column directions scaled by the
    column and row spacing; ``origin`` is ImagePositionPatient. Each slice is also keyed by
    ``"z:<ImagePositionPatient z>"`` for the XML's imageZposition fallback.
    """
    sitk = _sitk(folder)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    reader = sitk.ImageFileReader()
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() == ".dcm"):
        reader.SetFileName(str(path))
        try:
            reader.ReadImageInformation()
            uid = reader.GetMetaData("0008|0018").strip()
            ipp = np.array([float(v) for v in reader.GetMetaData("0020|0032").split("\\")])
            iop = np.array([float(v) for v in reader.GetMetaData("0020|0037").split("\\")])
            row_mm, col_mm = (float(v) for v in reader.GetMetaData("0028|0030").split("\\"))
        except (RuntimeError, ValueError) as exc:
            raise ReaderError(
                str(path), f"LIDC slice {path}: cannot read its UID and geometry ({exc})"
            ) from exc
        axes = np.stack([iop[:3] * col_mm, iop[3:] * row_mm], axis=1)  # (col, row) -> mm
        out[uid] = (axes, ipp)
        out[f"z:{ipp[2]:.2f}"] = (axes, ipp)
    return out


def _fill(points: list[tuple[int, int]], shape: tuple[int, int]) -> np.ndarray:
    """Filled polygon with its boundary, (row, col) pixel mask of ``shape``."""
    from PIL import Image, ImageDraw  # lazy: only LIDC builds need it

    canvas = Image.new("1", (shape[1], shape[0]), 0)
    ImageDraw.Draw(canvas).polygon(points, fill=1, outline=1)
    return np.asarray(canvas, dtype=bool)


def _outline(nodule: ET.Element, geometry: dict[str, Any], image: Volume, xml: Path) -> Voxels:
    """Canonical RAS+ voxels inside one reader's outline of one nodule."""
    inv = np.linalg.inv(image.affine)
    keep: Voxels = set()
    holes: Voxels = set()
    for roi in _children(nodule, "roi"):
        key = _text(roi, "imageSOP_UID")
        try:
            pts = [
                (int(float(_text(e, "xCoord"))), int(float(_text(e, "yCoord"))))
                for e in _children(roi, "edgeMap")
            ]
            z = _text(roi, "imageZposition")
            geo = geometry.get(key) or (geometry.get(f"z:{float(z):.2f}") if z else None)
        except ValueError as exc:
            raise ReaderError(
                str(xml), f"LIDC annotation {xml}: ROI on slice {key or '?'} is malformed ({exc})"
            ) from exc
        if len(pts) < 3:
            continue  # a point, not an outline (nodules under 3 mm)
        if geo is None:
            raise ReaderError(
                str(xml),
                f"LIDC annotation {xml}: ROI on slice {key or '?'} (z "
                f"{_text(roi, 'imageZposition')}) matches no slice of the series",
            )
        axes, origin = geo
        size = max(max(p[0] for p in pts), max(p[1] for p in pts)) + 2
        rows, cols = np.nonzero(_fill(pts, (size, size)))
        lps = origin[:, None] + axes @ np.stack([cols, rows]).astype(np.float64)
        ras = np.vstack([lps * _LPS_TO_RAS[:, None], np.ones(lps.shape[1])])
        ijk = np.rint((inv @ ras)[:3]).astype(int)
        target = keep if _text(roi, "inclusion").upper() != "FALSE" else holes
        target.update((int(a), int(b), int(c)) for a, b, c in ijk.T)
    return keep - holes


def _consensus(outlines: list[tuple[int, Voxels]], level: float) -> Voxels:
    """The voxels each nodule's consensus keeps.

    A nodule is a group of outlines by different readers that share a voxel; a voxel is
    kept when at least ``level`` of the nodule's outlines hold it.
    """
    parent = list(range(len(outlines)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, (ri, vi) in enumerate(outlines):
        for j in range(i):
            rj, vj = outlines[j]
            if ri != rj and vi & vj:
                parent[find(i)] = find(j)
    groups: dict[int, list[Voxels]] = {}
    for i, (_, vox) in enumerate(outlines):
        groups.setdefault(find(i), []).append(vox)
    kept: Voxels = set()
    for members in groups.values():
        counts: dict[tuple[int, int, int], int] = {}
        for vox in members:
            for v in vox:
                counts[v] = counts.get(v, 0) + 1
        need = level * len(members)
        kept.update(v for v, n in counts.items() if n >= need - 1e-9)
    return kept


def read(task: TaskSpec, files: CaseFiles) -> CaseInputs:
    """Load the CT series and build its consensus nodule mask (label 1).

    Raises:
        VolumeError, ReaderError: Unreadable series or XML, an ROI on no slice of the series.
    """
    lay = task.layout
    assert isinstance(lay, LidcLayout) and files.mask is not None
    image = load_dicom_series(files.image, "image")
    try:
        root = ET.parse(files.mask).getroot()
    except (OSError, ET.ParseError) as exc:
        raise ReaderError(str(files.mask), f"cannot read LIDC XML {files.mask}: {exc}") from exc
    geometry = _slice_geometry(files.image)
    outlines: list[tuple[int, Voxels]] = []
    for reader_no, session in enumerate(_children(root, "readingSession")):
        for nodule in _children(session, "unblindedReadNodule"):
            vox = _outline(nodule, geometry, image, files.mask)
            if vox:
                outlines.append((reader_no, vox))
    mask = np.zeros(image.shape, dtype=np.uint8)
    kept = _consensus(outlines, lay.consensus)
    if kept:
        idx = np.array(sorted(kept)).T
        if (idx < 0).any() or (idx >= np.array(image.shape)[:, None]).any():
            raise ReaderError(
                str(files.mask),
                f"LIDC annotation {files.mask}: outlines fall outside the series grid "
                f"{image.shape}; expected the XML of this series",
            )
        mask[tuple(idx)] = 1
    labels = from_array(mask, image.affine, "labels", str(files.mask))
    return CaseInputs(image, labels, None)
