"""3D Slicer markups fiducial files (``.fcsv``), as AFIDs ships its 32 brain fiducials.

A file looks like::

    # Markups fiducial file version = 4.6
    # CoordinateSystem = 0
    # columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID
    vtkMRMLMarkupsFiducialNode_1,-0.07,1.93,-2.98,0,0,0,1,1,1,1,1,AC,

x, y, z are world millimetres in RAS (``CoordinateSystem`` 0 or ``RAS``) or LPS (1 or
``LPS``). The ``label`` column names the point; an integer label ``n`` becomes key ``Pn``.
Points become voxel indices (i, j, k) of the canonical RAS+ image through the inverse of its
affine (fractional; the planners pick the slice through the rounded index).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from medvision.catalog.readers.base import CaseFiles, CaseInputs, LandmarkError, Landmarks, load_any
from medvision.catalog.readers.folders import discover
from medvision.catalog.spec import TaskSpec

_RAS = {"0", "RAS"}
_LPS = {"1", "LPS"}
_DEFAULT_COLUMNS = ["id", "x", "y", "z", "ow", "ox", "oy", "oz", "vis", "sel", "lock", "label"]


def read_fcsv(path: Path) -> dict[str, tuple[float, float, float]]:
    """Read a Slicer ``.fcsv`` file into key -> RAS world point (mm).

    Raises:
        LandmarkError: Unreadable file, unknown coordinate system, bad or repeated row.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LandmarkError(str(path), f"cannot read landmark file {path}: {exc}") from exc
    system = "RAS"  # Slicer's default when the header is silent
    columns = _DEFAULT_COLUMNS
    rows: list[str] = []
    for line in lines:
        if line.startswith("#"):
            key, _, value = line[1:].partition("=")
            if key.strip().lower() == "coordinatesystem":
                system = value.strip().upper()
            elif key.strip().lower() == "columns":
                columns = [c.strip().lower() for c in value.split(",")]
        elif line.strip():
            rows.append(line)
    if system not in _RAS | _LPS:
        raise LandmarkError(
            str(path), f"landmark file {path}: CoordinateSystem {system!r} is not 0/RAS or 1/LPS"
        )
    if not {"x", "y", "z", "label"} <= set(columns):
        raise LandmarkError(
            str(path), f"landmark file {path}: columns {columns} lack x, y, z or label"
        )
    flip = np.array([-1.0, -1.0, 1.0]) if system in _LPS else np.ones(3)
    out: dict[str, tuple[float, float, float]] = {}
    for row in csv.reader(rows):
        cells = dict(zip(columns, (c.strip() for c in row), strict=False))
        label = cells.get("label", "")
        try:
            point = np.array([float(cells[a]) for a in "xyz"]) * flip
        except (KeyError, ValueError) as exc:
            raise LandmarkError(
                str(path), f"landmark file {path}: row {row!r} has no numeric x, y, z"
            ) from exc
        key = f"P{int(label)}" if label.isdigit() else label
        if not key or not np.all(np.isfinite(point)):
            raise LandmarkError(str(path), f"landmark file {path}: bad row {row!r}")
        if key in out:
            raise LandmarkError(str(path), f"landmark file {path}: landmark {key!r} repeats")
        out[key] = (float(point[0]), float(point[1]), float(point[2]))
    return out


def read(task: TaskSpec, files: CaseFiles) -> CaseInputs:
    """Load the image and its fcsv landmarks as voxel indices of the RAS+ array."""
    image = load_any(files.image, "image")
    marks: Landmarks | None = None
    if files.landmarks is not None and task.measurements:
        world = read_fcsv(files.landmarks)
        inv = np.linalg.inv(image.affine)
        marks = {}
        for key, p in world.items():
            ijk = inv @ np.array([p[0], p[1], p[2], 1.0])
            marks[key] = (float(ijk[0]), float(ijk[1]), float(ijk[2]))
    return CaseInputs(image, None, marks, str(files.landmarks or ""))


__all__ = ["discover", "read", "read_fcsv"]
