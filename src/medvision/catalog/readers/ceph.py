"""ISBI 2015 cephalometric X-rays (Ceph-Biometrics-400): BMP images, two annotators' txt files.

Release layout::

    RawImage/TrainingData/001.bmp ... RawImage/Test1Data/151.bmp ... RawImage/Test2Data/400.bmp
    AnnotationsByMD/400_senior/001.txt   19 lines "x,y" (x = column, y = row, 1-based pixels),
    AnnotationsByMD/400_junior/001.txt   possibly followed by other lines (ignored)

Conversion, as the official ``convert_bmp_to_niigz``: the ``H x W`` grey image (2400 x 1935)
is flipped vertically and transposed, giving ``W x H`` with axis 0 = column (left to right,
toward the face: Anterior) and axis 1 = height from the bottom (Superior); it is embedded as a
sagittal ``1 x W x H`` volume with a pseudo voxel of ``pixel_mm`` (0.1 mm) in every axis.
A landmark ``(x, y)`` goes through the same transform: ``(0, x - 1, H - y)`` (0-based; the
later official off-by-one fix, REL121). The official benchmark uses the senior annotator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medvision.catalog.readers.base import (
    CaseFiles,
    CaseInputs,
    LandmarkError,
    Landmarks,
    corrupt,
    require_dir,
)
from medvision.catalog.spec import CephLayout, TaskSpec
from medvision.volumes import Volume, from_array


def discover(task: TaskSpec, root: Path) -> list[CaseFiles]:
    """List the BMP images under ``image_folder`` (recursively), sorted by case id.

    Raises:
        FileNotFoundError: The image folder does not exist.
    """
    lay = task.layout
    assert isinstance(lay, CephLayout)
    base = Path(root)
    img_root = base / task.image_folder
    require_dir(img_root, "image folder", task.id)
    ann = base / lay.annotation_folder
    cases: list[CaseFiles] = []
    for image in sorted(img_root.rglob("*.bmp"), key=lambda p: p.stem):
        case = image.stem
        senior = ann / lay.senior_folder / f"{case}.txt"
        junior = ann / lay.junior_folder / f"{case}.txt"
        needed = {"senior": [senior], "junior": [junior], "mean": [senior, junior]}[lay.annotator]
        missing = tuple(f"landmark file {p} not found" for p in needed if not p.exists())
        primary = junior if lay.annotator == "junior" else senior
        extra = (junior,) if lay.annotator == "mean" else ()
        cases.append(CaseFiles(case, image, None, primary, missing, extra))
    return cases


def read_bmp(path: Path, pixel_mm: float) -> tuple[Volume, int]:
    """The ``1 x W x H`` sagittal volume of a BMP and the image height ``H`` in pixels."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            grey = np.asarray(im.convert("L"))
    except (OSError, ValueError, SyntaxError) as exc:  # PIL's ways of saying "not an image"
        raise corrupt(path, exc) from exc
    height = int(grey.shape[0])
    array = np.flipud(grey).T[np.newaxis]
    affine = np.diag([pixel_mm, pixel_mm, pixel_mm, 1.0])
    return from_array(array, affine, "image", str(path)), height


def read_txt(path: Path, n: int, height: int) -> Landmarks:
    """Landmarks ``P1..Pn`` of one annotator's txt file, as RAS+ voxel indices.

    Raises:
        LandmarkError: Unreadable file, fewer than ``n`` ``x,y`` lines, or non-numbers.
    """
    try:
        lines = path.read_text(encoding="utf-8", errors="strict").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LandmarkError(str(path), f"cannot read landmark file {path}: {exc}") from exc
    rows = [ln.strip() for ln in lines if ln.strip()]
    if len(rows) < n:
        raise LandmarkError(
            str(path), f"landmark file {path}: expected {n} 'x,y' lines, found {len(rows)} lines"
        )
    out: Landmarks = {}
    for k, row in enumerate(rows[:n], start=1):
        parts = row.replace(" ", "").split(",")
        try:
            x, y = (float(v) for v in parts)
        except ValueError as exc:
            raise LandmarkError(
                str(path), f"landmark file {path}: line {k} is {row!r}; expected 'x,y' numbers"
            ) from exc
        if not (np.isfinite(x) and np.isfinite(y)):
            raise LandmarkError(str(path), f"landmark file {path}: line {k} is not finite")
        out[f"P{k}"] = (0.0, x - 1.0, float(height) - y)
    return out


def read(task: TaskSpec, files: CaseFiles) -> CaseInputs:
    """Load the BMP as a volume and the chosen annotator's (or both's mean) landmarks."""
    lay = task.layout
    assert isinstance(lay, CephLayout)
    assert files.landmarks is not None
    image, height = read_bmp(files.image, lay.pixel_mm)
    marks = read_txt(files.landmarks, lay.n_landmarks, height)
    source = str(files.landmarks)
    if lay.annotator == "mean":
        other = read_txt(files.extra[0], lay.n_landmarks, height)
        marks = {
            k: tuple((a + b) / 2.0 for a, b in zip(v, other[k], strict=True))
            for k, v in marks.items()
        }
        source = f"{files.landmarks} + {files.extra[0]}"
    return CaseInputs(image, None, marks, source)
