"""VerSe'19/'20 spine CT: vertebra masks and vertebral-centroid landmarks.

Release layout (one subject folder per scan series; VerSe'20 adds ``_dir-<orient>``)::

    <image_folder>/sub-verse500/sub-verse500_dir-ax_ct.nii.gz
    <derivatives>/sub-verse500/sub-verse500_dir-ax_seg-vert_msk.nii.gz
    <derivatives>/sub-verse500/sub-verse500_dir-ax_seg-subreg_ctd.json

Mask labels: 1-7 C1-C7, 8-19 T1-T12, 20-25 L1-L6, 28 T13. The centroid file is a JSON list
``[{"direction": ["P", "I", "R"]}, {"label": 20, "X": 120.5, "Y": 88.0, "Z": 40.2}, ...]``;
X, Y, Z are voxel indices along the axes named by ``direction`` (the scan's own index space,
not millimetres, per the official v1.2.0 release note). They are mapped to indices of the
canonical RAS+ array: an axis coded R/A/S keeps its index, an axis coded L/P/I is flipped
(``n - 1 - v``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from medvision.catalog.layout_models import VerseLayout
from medvision.catalog.readers.base import (
    CaseFiles,
    CaseInputs,
    LandmarkError,
    Landmarks,
    case_dirs,
    excluded,
    load_any,
)
from medvision.catalog.spec import TaskSpec

_IMAGE = "_ct.nii.gz"
_MASK = "_seg-vert_msk.nii.gz"
_CTD = "_seg-subreg_ctd.json"
#: Axis code -> (RAS axis, +1 when the code points the RAS way).
_CODES = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}


def discover(task: TaskSpec, root: Path) -> list[CaseFiles]:
    """List the CT scans of every subject folder, sorted by case id (the scan's file stem).

    Raises:
        FileNotFoundError: No folder matches ``image_folder``.
    """
    lay = task.layout
    assert isinstance(lay, VerseLayout)
    cases: list[CaseFiles] = []
    for sub in case_dirs(task, root, lay.case_glob, "rawdata folder"):
        deriv = sub.parent / lay.derivatives / sub.name
        for image in sorted(sub.glob(f"*{_IMAGE}")):
            stem = image.name[: -len(_IMAGE)]
            if excluded(stem, lay.exclude):
                continue
            missing: list[str] = []
            mask = deriv / f"{stem}{_MASK}"
            if not mask.exists():
                missing.append(f"mask file {mask} not found")
            ctd = deriv / f"{stem}{_CTD}"
            if task.measurements and not ctd.exists():
                missing.append(f"landmark file {ctd} not found")
            cases.append(CaseFiles(stem, image, mask, ctd, tuple(missing)))
    return sorted(cases, key=lambda c: c.case_id)


def _direction(path: Path, entry: Any) -> list[tuple[int, int]]:
    codes = entry.get("direction") if isinstance(entry, dict) else None
    axes: list[tuple[int, int]] = []
    if isinstance(codes, list | tuple) and len(codes) == 3:
        axes = [_CODES[str(c).upper()] for c in codes if str(c).upper() in _CODES]
    if len(axes) != 3 or len({a[0] for a in axes}) != 3:
        raise LandmarkError(
            str(path),
            f"centroid file {path}: first entry must be {{'direction': [3 axis codes of "
            f"R/L, A/P, S/I]}}, found {entry!r}",
        )
    return axes


def read_centroids(path: Path, shape: tuple[int, ...]) -> dict[int, tuple[float, float, float]]:
    """Read a VerSe centroid JSON into label -> voxel index (i, j, k) of the RAS+ array.

    Args:
        path: The ``*_seg-subreg_ctd.json`` file.
        shape: Shape (X, Y, Z) of the canonical RAS+ image.

    Raises:
        LandmarkError: Unreadable file, no ``direction`` entry, or a malformed centroid.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LandmarkError(str(path), f"cannot read centroid file {path}: {exc}") from exc
    if not isinstance(data, list) or not data:
        raise LandmarkError(str(path), f"centroid file {path}: expected a non-empty JSON list")
    axes = _direction(path, data[0])
    out: dict[int, tuple[float, float, float]] = {}
    for entry in data[1:]:
        try:
            label = int(entry["label"])
            values = [float(entry[k]) for k in ("X", "Y", "Z")]
        except (TypeError, KeyError, ValueError) as exc:
            raise LandmarkError(
                str(path), f"centroid file {path}: bad centroid entry {entry!r} ({exc})"
            ) from exc
        if not all(math.isfinite(v) for v in values):
            continue  # the release marks absent centroids with NaN
        ras = [0.0, 0.0, 0.0]
        for (axis, sign), v in zip(axes, values, strict=True):
            ras[axis] = v if sign > 0 else shape[axis] - 1 - v
        out[label] = (ras[0], ras[1], ras[2])
    return out


def read(task: TaskSpec, files: CaseFiles) -> CaseInputs:
    """Load the CT, its vertebra labels and (for landmark tasks) the chosen centroids.

    Raises:
        VolumeError, LandmarkError: Unreadable files; a landmark vertebra without a centroid.
    """
    lay = task.layout
    assert isinstance(lay, VerseLayout)
    image = load_any(files.image, "image")
    labels = None
    if task.detection is not None or task.tl is not None:
        assert files.mask is not None
        labels = load_any(files.mask, "labels")
    marks: Landmarks | None = None
    if task.measurements:
        assert files.landmarks is not None
        centroids = read_centroids(files.landmarks, image.shape)
        absent = [lab for lab in lay.landmark_labels if lab not in centroids]
        if absent:
            raise LandmarkError(
                str(files.landmarks),
                f"centroid file {files.landmarks} has no centroid for vertebra labels {absent} "
                f"(field of view without them); expected labels {lay.landmark_labels}",
            )
        marks = {f"P{n}": centroids[lab] for n, lab in enumerate(lay.landmark_labels, start=1)}
    return CaseInputs(image, labels, marks, str(files.landmarks or ""))
