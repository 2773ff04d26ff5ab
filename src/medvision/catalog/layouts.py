"""Find the files of each case of a task on disk.

The generic layout is the one the official plans describe: ``<root>/<image_folder>/<prefix>
<case><suffix>`` with the mask at ``<mask_folder>/<mask_prefix><case><mask_suffix>`` and the
landmarks at ``<landmark_folder>/<case><landmark_suffix>``. Dataset-specific layouts (BraTS
folders, TotalSegmentator per-structure masks, ...) convert to this one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from medvision.catalog.spec import TaskSpec


@dataclass(frozen=True)
class CaseFiles:
    """The files of one case of one task.

    Attributes:
        case_id: Image basename without prefix and suffix.
        image: Image path.
        mask: Mask path, or ``None`` when the task has no masks.
        landmarks: Landmark file path, or ``None`` when the task has no landmarks.
        missing: Expected files that do not exist (the case is then skipped with this reason).
    """

    case_id: str
    image: Path
    mask: Path | None
    landmarks: Path | None
    missing: tuple[str, ...] = ()


def discover_cases(task: TaskSpec, root: str | Path) -> list[CaseFiles]:
    """List the cases of ``task`` under ``root``, sorted by case id.

    Args:
        task: The task spec (folders, prefixes, suffixes).
        root: Folder holding the dataset's files.

    Returns:
        One :class:`CaseFiles` per image file; cases whose mask or landmark file is absent
        are still returned, with ``missing`` filled, so the build can count them.

    Raises:
        FileNotFoundError: If the image folder does not exist (names the expected path).
    """
    base = Path(root)
    folder = base / task.image_folder
    if not folder.is_dir():
        raise FileNotFoundError(f"task {task.id}: image folder {folder} does not exist")
    cases: list[CaseFiles] = []
    pattern = f"{task.image_prefix}*{task.image_suffix}"
    for image in sorted(folder.glob(pattern)):
        name = image.name
        case_id = name[len(task.image_prefix) : len(name) - len(task.image_suffix)]
        missing: list[str] = []
        mask = None
        if task.mask_folder is not None:
            mask = base / task.mask_folder / f"{task.mask_prefix}{case_id}{task.mask_suffix}"
            if not mask.exists():
                missing.append(f"mask file {mask} not found")
        landmarks = None
        if task.landmark_folder is not None:
            landmarks = base / task.landmark_folder / f"{case_id}{task.landmark_suffix}"
            if not landmarks.exists():
                missing.append(f"landmark file {landmarks} not found")
        cases.append(CaseFiles(case_id, image, mask, landmarks, tuple(missing)))
    return cases


class LandmarkError(ValueError):
    """A landmark file is unreadable or lacks a landmark; the message names the file."""


def read_landmarks_json(path: Path) -> dict[str, tuple[float, ...]]:
    """Read ``{"landmarks": {"P1": [i, j, k], ...}}`` (voxel indices in the RAS+ array).

    Raises:
        LandmarkError: If the file is not JSON or does not have that shape.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise LandmarkError(f"cannot read landmark file {path}: {exc}") from exc
    marks = data.get("landmarks") if isinstance(data, dict) else None
    if not isinstance(marks, dict):
        raise LandmarkError(f"landmark file {path}: expected an object with 'landmarks'")
    out: dict[str, tuple[float, ...]] = {}
    for key, value in marks.items():
        if not (isinstance(value, list) and len(value) == 3):
            raise LandmarkError(f"landmark file {path}: {key} must be [i, j, k], found {value!r}")
        out[str(key)] = tuple(float(v) for v in value)
    return out
