"""MHA/MHD/NRRD files, DICOM series and ITK transforms through SimpleITK (optional).

SimpleITK is imported lazily, inside each function, so ``import medvision`` works without
it; a missing install becomes a clear :class:`ReaderError` saying what to install.

Frames: ITK images describe physical space in LPS (x toward patient Left, y toward
Posterior), with ``direction`` columns giving each index axis's direction, and return
arrays from ``GetArrayFromImage`` in (z, y, x) order. We transpose to (i, j, k) index order
and flip the first two world axes to RAS, so that the affine maps (i, j, k) to RAS+ mm as
NIfTI does; :func:`medvision.volumes.from_array` then applies the usual canonical reorientation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medvision.catalog.readers.base import ReaderError, corrupt
from medvision.volumes import Volume, from_array
from medvision.volumes.errors import CorruptFileError
from medvision.volumes.io import Kind

INSTALL_HINT = "pip install medvision-bench[itk]"

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _sitk(path: Path) -> Any:
    """Import SimpleITK or explain how to get it (names the file that needed it)."""
    try:
        import SimpleITK
    except ImportError as exc:
        raise ReaderError(
            str(path),
            f"reading {path} needs SimpleITK, which is not installed; run "
            f"`{INSTALL_HINT}` (or `pip install SimpleITK`)",
        ) from exc
    return SimpleITK


def affine_of(img: Any) -> np.ndarray:
    """(4, 4) voxel (i, j, k) -> RAS+ mm affine of a 3D SimpleITK image."""
    direction = np.asarray(img.GetDirection(), dtype=np.float64).reshape(3, 3)
    spacing = np.asarray(img.GetSpacing(), dtype=np.float64)
    origin = np.asarray(img.GetOrigin(), dtype=np.float64)
    lps = np.eye(4)
    lps[:3, :3] = direction * spacing[np.newaxis, :]
    lps[:3, 3] = origin
    return np.asarray(_LPS_TO_RAS @ lps)


def volume_of(img: Any, kind: Kind, path: str) -> Volume:
    """Convert a 3D (or 2D, given a singleton third axis) SimpleITK image to a Volume."""
    sitk = _sitk(Path(path))
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise ReaderError(
            path,
            f"{path} has {img.GetNumberOfComponentsPerPixel()} components per voxel; "
            f"expected a scalar image",
        )
    if img.GetDimension() == 2:
        img = sitk.JoinSeries(img)
    if img.GetDimension() != 3:
        raise ReaderError(path, f"{path} is {img.GetDimension()}D; expected a 3D image")
    array = np.transpose(sitk.GetArrayViewFromImage(img), (2, 1, 0))
    return from_array(np.array(array), affine_of(img), kind, path)


def load_sitk(path: Path, kind: Kind) -> Volume:
    """Load one MHA/MHD/NRRD (or any SimpleITK-readable) file in canonical RAS+.

    Raises:
        ReaderError: SimpleITK missing, or a non-scalar / non-3D image.
        CorruptFileError: SimpleITK cannot read the file.
    """
    sitk = _sitk(path)
    if not path.exists():
        raise corrupt(path, FileNotFoundError(f"no such file {path}"))
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:  # SimpleITK reports every read failure as RuntimeError
        raise corrupt(path, exc) from exc
    return volume_of(img, kind, str(path))


#: File names taken for DICOM slices in a series folder: ``.dcm``/``.ima`` or no suffix.
DICOM_SUFFIXES = (".dcm", ".ima", "")

#: Largest tolerated deviation of one slice gap from the median gap, as a fraction of it
#: (IPP values are written with a few decimals; a missing slice doubles a gap).
SLICE_GAP_RTOL = 0.01


def load_dicom_series(folder: Path, kind: Kind) -> Volume:
    """Load the (single) DICOM series in ``folder``, slices sorted by position (GDCM).

    GDCM silently leaves out slice files it cannot parse, and ITK stacks whatever slices
    remain onto a regular grid (only a console warning says "missing slices"), which would
    give a volume with wrong voxels and spacing. So a series is refused when a slice file of
    the folder (``.dcm``/``.ima``/no suffix, not hidden, not ``DICOMDIR``) is not part of it,
    or when its slice positions along the slice normal are not evenly spaced.

    Raises:
        ReaderError: SimpleITK missing, no series, or several series in the folder.
        CorruptFileError: The series cannot be read, a slice file is unreadable, or a slice
            is missing (uneven positions); the message names the folder and the files.
    """
    sitk = _sitk(folder)
    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise ReaderError(str(folder), f"no DICOM series found in {folder}")
    if len(series) > 1:
        raise ReaderError(
            str(folder),
            f"{folder} holds {len(series)} DICOM series ({', '.join(series)}); expected one "
            f"series per case folder",
        )
    names = list(reader.GetGDCMSeriesFileNames(str(folder), series[0]))
    listed = {Path(n).name for n in names}
    stray = sorted(
        p.name
        for p in folder.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and p.name.upper() != "DICOMDIR"
        and p.suffix.lower() in DICOM_SUFFIXES
        and p.name not in listed
    )
    if stray:
        raise CorruptFileError(
            str(folder),
            f"DICOM series folder {folder}: {len(stray)} slice file(s) are not readable as "
            f"part of series {series[0]} ({', '.join(stray[:5])}); expected every slice file "
            f"to belong to the one series ({len(names)} do)",
        )
    reader.SetFileNames(names)
    reader.MetaDataDictionaryArrayUpdateOn()  # per-slice tags, to check the positions
    try:
        img = reader.Execute()
    except RuntimeError as exc:
        raise corrupt(folder, exc) from exc
    _check_slice_positions(reader, names, folder)
    return volume_of(img, kind, str(folder))


def _dicom_floats(reader: Any, i: int, tag: str) -> np.ndarray | None:
    """A multi-valued decimal tag of slice ``i`` as floats, or ``None`` when absent/invalid."""
    if not reader.HasMetaDataKey(i, tag):
        return None
    try:
        return np.array([float(v) for v in reader.GetMetaData(i, tag).split("\\")])
    except ValueError:
        return None


def _check_slice_positions(reader: Any, names: list[str], folder: Path) -> None:
    """Refuse a series whose slices are not evenly spaced along their normal.

    Raises:
        CorruptFileError: A gap differs from the median gap by more than
            :data:`SLICE_GAP_RTOL` (a missing or unreadable slice), or two slices coincide.
    """
    if len(names) < 3:
        return
    iop = _dicom_floats(reader, 0, "0020|0037")
    positions = [_dicom_floats(reader, i, "0020|0032") for i in range(len(names))]
    if iop is None or iop.size != 6 or any(p is None or p.size != 3 for p in positions):
        return  # no geometry tags (e.g. secondary capture): nothing to check against
    normal = np.cross(iop[:3], iop[3:])
    along = np.array([float(np.dot(p, normal)) for p in positions if p is not None])
    gaps = np.diff(along)
    step = float(np.median(gaps))
    bad = np.flatnonzero(np.abs(gaps - step) > SLICE_GAP_RTOL * abs(step))
    if step == 0.0 or bad.size:
        k = int(bad[0]) if bad.size else 0
        raise CorruptFileError(
            str(folder),
            f"DICOM series folder {folder}: slices are not evenly spaced along their normal "
            f"(gap of {gaps[k]:.4g} mm between {Path(names[k]).name} and "
            f"{Path(names[k + 1]).name}, expected {step:.4g} mm); a slice is missing or "
            f"unreadable",
        )


def realign(image_path: Path, transform_path: Path) -> Volume:
    """Resample an image into its own grid through an ITK transform (linear interpolation).

    This is the official FeTA preparation, ``sitk.Resample(im, im, trf, sitkLinear)``: the
    output keeps the input's grid; voxel ``x`` takes the input's value at ``trf(x)``.

    Raises:
        ReaderError: SimpleITK missing.
        CorruptFileError: The image or the transform cannot be read.
    """
    sitk = _sitk(image_path)
    try:
        img = sitk.ReadImage(str(image_path), sitk.sitkFloat32)
    except RuntimeError as exc:
        raise corrupt(image_path, exc) from exc
    try:
        trf = sitk.ReadTransform(str(transform_path))
    except RuntimeError as exc:
        raise corrupt(transform_path, exc) from exc
    out = sitk.Resample(img, img, trf, sitk.sitkLinear, 0.0)
    return volume_of(out, "image", str(image_path))
