"""What every layout reader shares: the case records, the errors and the file loaders.

A reader family provides two functions (see :mod:`medvision.catalog.readers`):

* ``discover(task, root) -> list[CaseFiles]``: the cases on disk, sorted by case id, with
  the files each needs; a case whose partner file is absent is still listed, with
  ``missing`` filled, so the build counts it as skipped instead of losing it silently.
* ``read(task, files) -> CaseInputs``: the case's volumes (canonical RAS+) and landmarks.
  Conversions (per-structure masks merged into one label map, BMP images, 4D channels,
  realignment) happen here, in memory, so the planners see one kind of input.

Readers raise :class:`~medvision.volumes.VolumeError` or :class:`ReaderError`; both carry
the offending file in ``path`` and say what was expected and what was found.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import numpy as np

from medvision.catalog.spec import TaskSpec
from medvision.volumes import Volume, load_volume
from medvision.volumes.errors import CorruptFileError
from medvision.volumes.io import Kind

#: File name endings nibabel reads (everything else goes through SimpleITK).
NIBABEL_SUFFIXES = (".nii.gz", ".nii", ".mgz", ".mgh")
#: File name endings read through SimpleITK (optional dependency).
SITK_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr", ".dcm")

Landmarks = dict[str, tuple[float, ...]]


class ReaderError(ValueError):
    """A case's files do not have the layout or content the spec says.

    Attributes:
        path: The offending file or folder.
        reason: What was expected and what was found (names the file).
    """

    def __init__(self, path: str, reason: str) -> None:
        # Both go to Exception so that pickling across worker processes round-trips.
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return self.reason if self.path in self.reason else f"{self.path}: {self.reason}"


class LayoutError(ReaderError):
    """A folder or index file (``dataset.json``) does not match the declared layout."""


class LandmarkError(ReaderError):
    """A landmark file is unreadable or lacks a landmark."""


@dataclass(frozen=True)
class CaseFiles:
    """The files of one case of one task (picklable; sent to build workers).

    Attributes:
        case_id: Case identifier (image basename without prefix and suffix, or the case
            folder's name, or ``<patient>_<view>`` for CAMUS).
        image: Image file (or DICOM series folder).
        mask: Mask file (or, for TotalSegmentator, the folder of per-structure masks), or
            ``None`` when the task has no masks.
        landmarks: Landmark file, or ``None`` when the task has no landmarks.
        missing: Expected files that do not exist (the case is then skipped with this reason).
        extra: Further files a layout needs (the junior annotator's Ceph file, the FeTA
            transform), in the layout's own order.
    """

    case_id: str
    image: Path
    mask: Path | None
    landmarks: Path | None
    missing: tuple[str, ...] = ()
    extra: tuple[Path, ...] = ()


@dataclass(frozen=True, eq=False)
class CaseInputs:
    """What the planners need for one case.

    Attributes:
        image: Image volume, canonical RAS+.
        labels: Label volume on the image's grid, or ``None``.
        landmarks: Landmark key -> voxel index (i, j, k) in the RAS+ image array, or ``None``.
        landmark_file: Where the landmarks came from (used in error messages).
    """

    image: Volume
    labels: Volume | None
    landmarks: Landmarks | None
    landmark_file: str = ""


def require_dir(path: Path, what: str, task_id: str) -> None:
    """Refuse a missing folder with a message naming the task and the expected path.

    Raises:
        FileNotFoundError: If ``path`` is not a directory.
    """
    if not path.is_dir():
        raise FileNotFoundError(f"task {task_id}: {what} {path} does not exist")


def glob_dirs(root: Path, pattern: str) -> list[Path]:
    """Folders under ``root`` matching ``pattern`` (a relative path, globs allowed), sorted."""
    if not any(ch in pattern for ch in "*?["):
        return [root / pattern]
    return sorted(p for p in root.glob(pattern) if p.is_dir())


def image_folders(task: TaskSpec, root: Path, what: str) -> list[Path]:
    """The existing folders matching the task's ``image_folder`` under ``root``, sorted.

    Args:
        task: The task (its ``image_folder`` may hold globs).
        root: Dataset folder.
        what: What such a folder is, for the error message (e.g. ``"case folder root"``).

    Raises:
        FileNotFoundError: If no folder matches, or a plain (glob-free) path does not exist.
    """
    base = Path(root)
    folders = glob_dirs(base, task.image_folder)
    if not folders:
        raise FileNotFoundError(f"task {task.id}: no folder matches {base / task.image_folder}")
    for folder in folders:
        require_dir(folder, what, task.id)
    return folders


def case_dirs(task: TaskSpec, root: Path, case_glob: str, what: str) -> list[Path]:
    """The case folders (``case_glob`` matches) inside every :func:`image_folders` folder.

    Returns:
        The folders, sorted within each parent, parents in order.
    """
    return [
        case_dir
        for parent in image_folders(task, root, what)
        for case_dir in sorted(p for p in parent.glob(case_glob) if p.is_dir())
    ]


def listed_file(path: Path) -> bool:
    """Whether discovery lists ``path`` as a case file: a regular file or any symbolic link.

    A dangling link or a link loop is listed too (``is_file()`` alone would drop it
    silently), so the build skips the case and names the link.
    """
    return path.is_symlink() or path.is_file()


def link_problem(path: Path) -> str:
    """Why a symbolic link cannot be followed (dangling, loop), or ``""`` when it can.

    Args:
        path: A case file or folder (links anywhere on the way are followed).
    """
    if not path.is_symlink():
        return ""
    try:
        path.resolve(strict=True)
    except FileNotFoundError:
        try:
            target = str(path.readlink())
        except OSError:
            target = "?"
        return f"{path} is a dangling symbolic link (-> {target}); expected an existing file"
    except (RuntimeError, OSError) as exc:  # RuntimeError: symlink loop (Python < 3.13)
        return f"{path} is a symbolic link that cannot be resolved (loop?): {exc}"
    return ""


def excluded(name: str, patterns: list[str]) -> bool:
    """Whether a file name matches one of the ``fnmatch`` patterns."""
    return any(fnmatch(name, pat) for pat in patterns)


def strip_suffix(name: str, suffix: str) -> str:
    """``name`` without ``suffix`` (which it must end with)."""
    return name[: len(name) - len(suffix)] if suffix else name


def load_any(path: Path, kind: Kind) -> Volume:
    """Load an image or mask in canonical RAS+, whatever its format.

    NIfTI (and other nibabel formats) go through :func:`medvision.volumes.load_volume`;
    MHA/MHD/NRRD files and DICOM series folders go through SimpleITK (optional dependency).

    Raises:
        CorruptFileError, ...: As :func:`~medvision.volumes.load_volume`.
        ReaderError: SimpleITK is needed but not installed (says how to install it).
    """
    if path.is_dir():
        from medvision.catalog.readers.sitk_io import load_dicom_series

        return load_dicom_series(path, kind)
    if path.name.lower().endswith(NIBABEL_SUFFIXES):
        return load_volume(path, kind)
    if path.name.lower().endswith(SITK_SUFFIXES):
        from medvision.catalog.readers.sitk_io import load_sitk

        return load_sitk(path, kind)
    # Anything else: let nibabel try, it names the file when it cannot.
    return load_volume(path, kind)


# --------------------------------------------------------------------------- landmarks


def _read_json(path: Path) -> Any:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                return json.load(fh)
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, EOFError, zlib.error, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LandmarkError(
            str(path), f"cannot read landmark file {path}: {type(exc).__name__}: {exc}"
        ) from exc


def _point(path: Path, key: str, value: object) -> tuple[float, ...]:
    ok = (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )
    if not ok:
        raise LandmarkError(
            str(path), f"landmark file {path}: {key} must be [i, j, k] numbers, found {value!r}"
        )
    assert isinstance(value, list)
    point = tuple(float(v) for v in value)
    if not all(np.isfinite(point)):
        raise LandmarkError(str(path), f"landmark file {path}: {key} is not finite: {value!r}")
    return point


def read_landmarks_json(path: Path) -> Landmarks:
    """Read a landmark file (``.json`` or ``.json.gz``) in either supported format.

    * ours: ``{"landmarks": {"P1": [i, j, k], ...}}``;
    * the official MedVision one: ``{"slice_landmarks_x": [{"slice_idx": 0, "landmarks":
      {"P1": [i, j, k], ...}}], "slice_landmarks_y": [...], "slice_landmarks_z": [...]}``;
      all entries are merged, the first occurrence of a key wins.

    Indices are voxel indices (i, j, k) into the canonical RAS+ array of the image.

    Raises:
        LandmarkError: If the file is unreadable or has neither shape (names the file).
    """
    data = _read_json(path)
    if not isinstance(data, dict):
        raise LandmarkError(
            str(path), f"landmark file {path}: expected a JSON object, found {type(data).__name__}"
        )
    out: Landmarks = {}
    if "landmarks" in data:
        marks = data["landmarks"]
        if not isinstance(marks, dict):
            raise LandmarkError(
                str(path), f"landmark file {path}: 'landmarks' must map keys to [i, j, k]"
            )
        for key, value in marks.items():
            out[str(key)] = _point(path, str(key), value)
        return out
    lists = [data.get(f"slice_landmarks_{ax}") for ax in "xyz"]
    if all(v is None for v in lists):
        raise LandmarkError(
            str(path),
            f"landmark file {path}: expected an object with 'landmarks' or "
            f"'slice_landmarks_x|y|z', found keys {sorted(data)[:10]}",
        )
    for entries in lists:
        for entry in entries or []:
            marks = entry.get("landmarks") if isinstance(entry, dict) else None
            if not isinstance(marks, dict):
                # Tumour/lesion landmark files hold lists of ellipses; they are not A/D input.
                raise LandmarkError(
                    str(path),
                    f"landmark file {path}: slice entry without a 'landmarks' object "
                    f"(found {type(marks).__name__})",
                )
            for key, value in marks.items():
                out.setdefault(str(key), _point(path, str(key), value))
    return out


def corrupt(path: Path, exc: BaseException) -> CorruptFileError:
    """A :class:`CorruptFileError` for a file a third-party reader failed on."""
    text = " ".join(str(exc).split())
    return CorruptFileError(str(path), f"cannot read {path} ({type(exc).__name__}: {text})")
