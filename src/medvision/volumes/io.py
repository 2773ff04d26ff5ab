"""Load NIfTI (and other nibabel-readable) volumes as canonical RAS+ arrays.

Frames and units:

* After loading, array axis 0 increases toward patient Right, axis 1 toward Anterior and axis 2
  toward Superior (nibabel's "closest canonical" RAS+ orientation, the frame every MedVision
  annotation is defined in). The affine maps (i, j, k, 1) voxel indices to RAS+ world mm.
* Voxel spacing is the Euclidean norm of each affine column, in mm, paired with the array axis
  of the same index. It is read from the affine, not the header zooms, so that it is always the
  spacing of the reoriented array.

Loading reads the voxel data once: the canonical reorientation is a view (flips and axis swaps),
and the only further copy is the dtype conversion (float32 images, uint16/int32 labels). Header
scaling is applied slab by slab in float64 straight into the float32 result, so loading peaks
at the file's raw array plus the float32 volume, never a float64 volume.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import nibabel as nib
import numpy as np
from nibabel import orientations
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError
from nibabel.volumeutils import apply_read_scaling

from medvision.volumes.errors import (
    AffineError,
    CorruptFileError,
    EmptyMaskError,
    LabelValueError,
    NonFiniteError,
    ShapeMismatchError,
    VolumeError,
)
from medvision.volumes.limits import check_declared_size

Kind = Literal["image", "labels"]

#: Largest tolerated |cos| between two normalised affine columns. Stored affines are float32,
#: so a truly orthogonal one deviates by ~1e-7; 1e-4 (about 0.006 degrees) still refuses
#: genuine shears such as CT gantry tilt.
ORTHOGONALITY_TOL = 1e-4

#: Smallest accepted determinant of the column-normalised 3x3 part (1 for a rotation).
_SINGULAR_TOL = 1e-6

# nibabel.orientations is untyped; call it through Any so mypy --strict accepts the calls.
_ORIENT: Any = orientations

_IDENTITY_ORNT = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])

# What nibabel, gzip and zlib raise for missing, unreadable, truncated or damaged files.
_READ_ERRORS: tuple[type[BaseException], ...] = (
    ImageFileError,
    HeaderDataError,
    OSError,  # includes FileNotFoundError, gzip.BadGzipFile and "Expected N bytes, got M"
    EOFError,  # gzip stream ends before its end-of-stream marker
    zlib.error,  # damaged deflate data
)
#: The exceptions a damaged or unreadable volume file raises (readers catch exactly these).
READ_ERRORS = _READ_ERRORS


def verify_gzip(path: str | Path) -> None:
    """Read a ``.gz`` file to its end so gzip checks its CRC32 and length trailer.

    Raises:
        OSError, EOFError, zlib.error: The file is truncated or damaged.
    """
    with gzip.open(path, "rb") as stream:
        while stream.read(1 << 20):
            pass


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D volume in canonical RAS+ orientation.

    ``eq`` is disabled because element-wise array comparison has no single truth value.

    Attributes:
        array: Voxel values, shape (X, Y, Z), axes toward Right, Anterior, Superior. float32
            for ``kind="image"``; uint16 (or int32 when a label is negative or above 65535)
            for ``kind="labels"``.
        affine: (4, 4) float64 voxel-index -> RAS+ world (mm) transform of ``array``.
        kind: ``"image"`` (intensities) or ``"labels"`` (integer mask).
        path: Source file, or ``"<memory>"``; used in every error message.
    """

    array: np.ndarray
    affine: np.ndarray
    kind: Kind
    path: str

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"{self.path}: Volume needs a 3D array, got shape {self.array.shape}")
        if self.affine.shape != (4, 4):
            raise ValueError(f"{self.path}: Volume needs a (4, 4) affine, got {self.affine.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape (X, Y, Z) in voxels."""
        x, y, z = self.array.shape
        return (int(x), int(y), int(z))

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel spacing (axis 0, axis 1, axis 2) in mm: the norms of the affine's columns."""
        norms = np.linalg.norm(self.affine[:3, :3], axis=0)
        return (float(norms[0]), float(norms[1]), float(norms[2]))


def load_volume(path: str | Path, kind: Kind, *, allow_nonfinite: bool = False) -> Volume:
    """Load a volume file and return it in canonical RAS+ orientation.

    Images become float32 with the header's ``scl_slope``/``scl_inter`` applied exactly as
    ``img.get_fdata().astype(np.float32)`` would (the official loader), labels become
    ``np.rint`` of the scaled values cast to uint16 (int32 if a label is negative or above
    65535). Gzip files are read to their end so that their CRC and length are verified: a
    damaged ``.nii.gz`` fails loudly instead of yielding wrong voxels.

    Args:
        path: A ``.nii``/``.nii.gz`` file or anything else nibabel loads.
        kind: ``"image"`` or ``"labels"``.
        allow_nonfinite: Images only. If True, NaN and -inf voxels are replaced by the finite
            minimum and +inf voxels by the finite maximum instead of raising. Labels never
            accept non-finite values.

    Returns:
        The canonical :class:`Volume`.

    Raises:
        CorruptFileError: Missing, unreadable, truncated or corrupt file.
        NonFiniteError: NaN/inf voxels (images unless ``allow_nonfinite``; labels always).
        AffineError: Non-finite, singular or sheared affine.
        ShapeMismatchError: Not a 3D volume (trailing singleton dimensions are dropped, a 2D
            array gets a trailing singleton axis as NIfTI defines).
        VolumeError: Unsupported voxel dtype, or labels outside the int32 range.
    """
    spath = str(path)
    try:
        array, affine = _read(spath, kind)
    except _READ_ERRORS as exc:
        raise CorruptFileError(
            spath, f"cannot read {spath} ({type(exc).__name__}: {_one_line(exc)})"
        ) from exc
    return _canonical_volume(array, affine, kind, spath, allow_nonfinite=allow_nonfinite)


def from_array(
    array: np.ndarray,
    affine: np.ndarray,
    kind: Kind,
    path: str = "<memory>",
    *,
    allow_nonfinite: bool = False,
) -> Volume:
    """Build a canonical RAS+ :class:`Volume` from an in-memory array, as loading does.

    The input array is never modified; it is copied only when the dtype changes or non-finite
    values are replaced (the result may otherwise be a view of it).

    Args:
        array: Voxel values in the frame of ``affine``; 2D arrays get a trailing singleton axis.
        affine: (4, 4) voxel-index -> RAS+ world (mm) transform.
        kind: ``"image"`` or ``"labels"``.
        path: Name used in error messages.
        allow_nonfinite: See :func:`load_volume`.

    Returns:
        The canonical :class:`Volume`.

    Raises:
        NonFiniteError, AffineError, ShapeMismatchError, VolumeError: As :func:`load_volume`.
    """
    return _canonical_volume(
        np.asarray(array), np.asarray(affine), kind, path, allow_nonfinite=allow_nonfinite
    )


def check_same_grid(image: Volume, labels: Volume, *, atol_mm: float = 1e-3) -> None:
    """Refuse an image/mask pair that does not share one voxel grid.

    Both volumes are canonical, so a mask stored in another orientation than its image still
    passes when it covers the same grid.

    Args:
        image: The intensity volume.
        labels: The mask that annotates it.
        atol_mm: Largest tolerated absolute difference between affine entries, in mm.

    Raises:
        ShapeMismatchError: The array shapes differ.
        AffineError: The affines differ by more than ``atol_mm``.
    """
    if image.array.shape != labels.array.shape:
        raise ShapeMismatchError(
            labels.path,
            f"image {image.path} has shape {tuple(image.array.shape)} "
            f"but mask {labels.path} has shape {tuple(labels.array.shape)}",
        )
    diff = float(np.max(np.abs(image.affine - labels.affine)))
    if not diff <= atol_mm:  # also catches NaN
        raise AffineError(
            labels.path,
            f"image {image.path} and mask {labels.path} have affines differing by up to "
            f"{diff:.4g} mm (tolerance {atol_mm:g} mm): image affine "
            f"{_fmt_affine(image.affine)} vs mask affine {_fmt_affine(labels.affine)}",
        )


def check_nonempty(labels: Volume, label_id: int | None = None) -> None:
    """Refuse a mask without foreground.

    Args:
        labels: A ``kind="labels"`` volume.
        label_id: The label that must be present; ``None`` means any non-zero label.

    Raises:
        EmptyMaskError: No voxel is non-zero (or equal to ``label_id``).
    """
    if label_id is None:
        if not np.any(labels.array):
            raise EmptyMaskError(
                labels.path,
                f"mask {labels.path} has no foreground voxel (expected at least one non-zero "
                f"label, found only zeros in shape {tuple(labels.array.shape)})",
            )
    elif not np.any(labels.array == label_id):
        present = np.unique(labels.array)
        raise EmptyMaskError(
            labels.path,
            f"mask {labels.path} has no voxel with label {label_id} "
            f"(labels present: {present.tolist()[:20]})",
        )


# --------------------------------------------------------------------------- internals


def _read(path: str, kind: Kind) -> tuple[np.ndarray, np.ndarray]:
    """Read the scaled voxel array and affine of a file (no reorientation yet)."""
    img: Any = nib.load(path, mmap=False)  # parses the header only
    check_declared_size(img, path)  # before any voxel buffer is allocated
    if isinstance(img, nib.Nifti1Image) and path.lower().endswith(".gz"):
        # Re-read through our own gzip stream so the CRC32/length trailer is checked.
        # nibabel stops reading after the voxel data and would never notice a bad CRC.
        with gzip.open(path, "rb") as stream:
            holder = nib.FileHolder(filename=path, fileobj=stream)
            image_class: Any = type(img)
            checked: Any = image_class.from_file_map({"image": holder})
            array = _scaled_array(checked, kind)
            affine = np.asarray(checked.affine, dtype=np.float64)
            while stream.read(1 << 20):  # reaching EOF makes gzip verify CRC and length
                pass
        return array, affine
    return _scaled_array(img, kind), np.asarray(img.affine, dtype=np.float64)


def _scaled_array(img: Any, kind: Kind) -> np.ndarray:
    """Return the voxel data with header scaling applied, reading the file once."""
    dataobj = img.dataobj
    slope = float(getattr(dataobj, "slope", 1.0))
    inter = float(getattr(dataobj, "inter", 0.0))
    if kind == "image" and (slope, inter) != (1.0, 0.0):
        # get_fdata() scales in float64; nibabel's default would scale in float32 and can
        # differ by one ulp, which can flip a truncated uint8 pixel in the official rendering.
        if not hasattr(dataobj, "get_unscaled"):
            return np.asarray(dataobj, dtype=np.float64)
        return _scale_to_float32(np.asarray(dataobj.get_unscaled()), slope, inter)
    return np.asarray(dataobj)


#: Voxels scaled per slab by :func:`_scale_to_float32` (2 MiB per float64 temporary).
_SLAB_VOXELS = 1 << 18


def _scale_to_float32(raw: np.ndarray, slope: float, inter: float) -> np.ndarray:
    """``np.asarray(dataobj, dtype=float64).astype(float32)`` without the float64 volume.

    Each slab is scaled exactly as nibabel's ``ArrayProxy._get_scaled(dtype=float64)`` does
    (``apply_read_scaling`` with float64 factors, then the float64 promotion) and rounded to
    float32 into the output, so the values are identical while the peak is the raw volume
    plus the float32 one (not raw + float64 + float32, three times the float32 image for
    int16 data).
    """
    fortran = raw.flags.f_contiguous and not raw.flags.c_contiguous
    out = np.empty(raw.shape, dtype=np.float32, order="F" if fortran else "C")
    if raw.ndim == 0 or raw.size == 0:
        out[...] = _scaled_f64(raw, slope, inter)
        return out
    # Slabs along the slowest axis are contiguous in both arrays.
    axis = raw.ndim - 1 if fortran else 0
    n = raw.shape[axis]
    step = max(1, _SLAB_VOXELS // max(1, raw.size // n))
    for start in range(0, n, step):
        where: list[slice] = [slice(None)] * raw.ndim
        where[axis] = slice(start, start + step)
        out[tuple(where)] = _scaled_f64(raw[tuple(where)], slope, inter)
    return out


def _scaled_f64(raw: np.ndarray, slope: float, inter: float) -> np.ndarray:
    """The float64 read scaling of nibabel, applied to (part of) an unscaled array."""
    scaled: np.ndarray = apply_read_scaling(raw, np.float64(slope), np.float64(inter))
    return scaled.astype(np.promote_types(scaled.dtype, np.float64), copy=False)


def _canonical_volume(
    array: np.ndarray, affine: np.ndarray, kind: Kind, path: str, *, allow_nonfinite: bool
) -> Volume:
    """Validate, reorient to closest canonical RAS+ and convert the dtype."""
    array = _as_3d(array, path)
    affine = _checked_affine(affine, path)
    ornt = _ORIENT.io_orientation(affine)
    if not np.array_equal(ornt, _IDENTITY_ORNT):
        # Same transform as nibabel.as_closest_canonical; apply_orientation returns a view.
        shape = array.shape
        array = _ORIENT.apply_orientation(array, ornt)
        affine = affine @ _ORIENT.inv_ornt_aff(ornt, shape)
    if kind == "image":
        array = _to_image_dtype(array, path, allow_nonfinite=allow_nonfinite)
    elif kind == "labels":
        array = _to_label_dtype(array, path)
    else:
        raise ValueError(f"{path}: kind must be 'image' or 'labels', got {kind!r}")
    return Volume(array=array, affine=affine, kind=kind, path=path)


def _as_3d(array: np.ndarray, path: str) -> np.ndarray:
    """Return ``array`` as 3D: trailing singleton dims dropped, 2D given a trailing axis."""
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    elif array.ndim > 3 and all(n == 1 for n in array.shape[3:]):
        array = array.reshape(array.shape[:3])
    if array.ndim != 3:
        raise ShapeMismatchError(
            path, f"expected a 3D volume in {path}, found shape {tuple(array.shape)}"
        )
    if 0 in array.shape:
        raise ShapeMismatchError(
            path, f"expected a non-empty 3D volume in {path}, found shape {tuple(array.shape)}"
        )
    if array.dtype.kind not in "biuf":
        raise VolumeError(path, f"expected real-valued voxels in {path}, found dtype {array.dtype}")
    return array


def _checked_affine(affine: np.ndarray, path: str) -> np.ndarray:
    """Refuse non-finite, singular or sheared affines; return a float64 copy."""
    affine = np.array(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise AffineError(path, f"expected a (4, 4) affine for {path}, found {affine.shape}")
    if not np.all(np.isfinite(affine)):
        raise AffineError(path, f"affine of {path} has non-finite entries: {_fmt_affine(affine)}")
    if not np.allclose(affine[3], [0.0, 0.0, 0.0, 1.0], atol=1e-6):
        raise AffineError(
            path, f"affine of {path} has last row {affine[3].tolist()}, expected [0, 0, 0, 1]"
        )
    linear = affine[:3, :3]
    norms = np.linalg.norm(linear, axis=0)
    unit = linear / np.where(norms > 0, norms, 1.0)
    det = float(np.linalg.det(unit))
    if np.any(norms <= 1e-9) or abs(det) < _SINGULAR_TOL:
        raise AffineError(
            path,
            f"affine of {path} is singular (voxel axis lengths {np.round(norms, 6).tolist()} "
            f"mm, normalised determinant {det:.3g}; expected an invertible 3x3 part): "
            f"{_fmt_affine(affine)}",
        )
    skew = float(np.max(np.abs(unit.T @ unit - np.eye(3))))
    if skew > ORTHOGONALITY_TOL:
        raise AffineError(
            path,
            f"affine of {path} is sheared: voxel axes are not orthogonal (largest |cos| between "
            f"axes {skew:.3g}, tolerance {ORTHOGONALITY_TOL:g}): {_fmt_affine(affine)}",
        )
    return affine


def _to_image_dtype(array: np.ndarray, path: str, *, allow_nonfinite: bool) -> np.ndarray:
    """Return float32 intensities, refusing (or repairing) non-finite voxels."""
    array = array.astype(np.float32, copy=False)
    # min/max propagate NaN and expose +-inf without allocating a boolean volume.
    lo, hi = float(array.min()), float(array.max())
    if np.isfinite(lo) and np.isfinite(hi):
        return array
    bad = ~np.isfinite(array)
    n_bad = int(bad.sum())
    finite = array[~bad]
    if not allow_nonfinite or finite.size == 0:
        raise NonFiniteError(
            path,
            f"image {path} has {n_bad} non-finite voxels (NaN/inf) out of {array.size}; "
            f"expected all finite"
            + ("" if finite.size else " and no finite voxel is left to replace them with"),
        )
    fmin, fmax = float(finite.min()), float(finite.max())
    repaired: np.ndarray = np.nan_to_num(array, copy=True, nan=fmin, posinf=fmax, neginf=fmin)
    return repaired


#: Largest distance of a float mask value from an integer still read as that integer label
#: (float32 storage of integer labels is exact; interpolated masks are not).
LABEL_INTEGER_TOL = 1e-3


def _to_label_dtype(array: np.ndarray, path: str) -> np.ndarray:
    """Return integer labels (uint16, or int32 when needed).

    Float labels within :data:`LABEL_INTEGER_TOL` of an integer are rounded (the official
    ``np.rint`` hygiene); any other value (1.5 from an interpolated mask) is refused rather
    than rounded into a neighbouring label.
    """
    if array.dtype.kind == "f":
        lo, hi = float(array.min()), float(array.max())
        if not (np.isfinite(lo) and np.isfinite(hi)):
            n_bad = int(np.count_nonzero(~np.isfinite(array)))
            raise NonFiniteError(
                path,
                f"mask {path} has {n_bad} non-finite voxels (NaN/inf); expected integer labels",
            )
        # The official mask hygiene: np.rint(get_fdata()).astype(uint16).
        rounded = np.rint(array)
        off = np.abs(array - rounded) > LABEL_INTEGER_TOL
        if off.any():
            values = np.unique(array[off])
            raise LabelValueError(
                path,
                f"mask {path} has {int(off.sum())} voxels with non-integer label values "
                f"(e.g. {[float(v) for v in values[:5]]}); expected integer labels (an "
                "interpolated or probability mask?)",
            )
        array = rounded
    lo, hi = int(array.min()), int(array.max())
    if lo >= 0 and hi <= np.iinfo(np.uint16).max:
        return array.astype(np.uint16, copy=False)
    i32 = np.iinfo(np.int32)
    if lo >= i32.min and hi <= i32.max:
        return array.astype(np.int32, copy=False)
    raise VolumeError(
        path, f"mask {path} has labels in [{lo}, {hi}]; expected values within the int32 range"
    )


def _fmt_affine(affine: np.ndarray) -> str:
    """Compact one-line rendering of an affine for error messages."""
    return np.array2string(np.asarray(affine), precision=4, suppress_small=True).replace("\n", "")


def _one_line(exc: BaseException) -> str:
    """The exception text on one line (some nibabel messages contain newlines)."""
    return " ".join(str(exc).split())
