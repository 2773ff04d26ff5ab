"""Flat folders: ``<image_folder>/<prefix><case><suffix>`` with masks and landmarks alike.

The layout of the official MedVision mirrors (``Images/``, ``Masks/``, ``Landmarks/``) and of
many releases (FLARE22, ACDC, CrossMoDA, HNTSMRG24, ...). ``image_folder`` may be a glob;
masks may sit beside the images; images may be NIfTI, MHA/NRRD or DICOM series folders.
"""

from __future__ import annotations

from pathlib import Path

from medvision.catalog.layout_models import FcsvLayout
from medvision.catalog.readers.base import (
    CaseFiles,
    CaseInputs,
    LayoutError,
    excluded,
    image_folders,
    listed_file,
    load_any,
    read_landmarks_json,
    strip_suffix,
)
from medvision.catalog.spec import FoldersLayout, TaskSpec


def _landmark_path(base: Path, task: TaskSpec, case_id: str) -> Path:
    """The landmark file of a case; a gzipped twin (``.json.gz``) is accepted too."""
    assert task.landmark_folder is not None
    path = base / task.landmark_folder / f"{case_id}{task.landmark_suffix}"
    if not path.exists() and not task.landmark_suffix.endswith(".gz"):
        gz = path.with_name(path.name + ".gz")
        if gz.exists():
            return gz
    return path


def discover(task: TaskSpec, root: Path) -> list[CaseFiles]:
    """List the cases of a ``folders`` (or ``fcsv``) task, sorted by case id.

    Raises:
        FileNotFoundError: No folder matches ``image_folder``.
        LayoutError: Two image files give the same case id.
    """
    layout = task.layout
    assert isinstance(layout, FoldersLayout | FcsvLayout)
    dicom_series = isinstance(layout, FoldersLayout) and layout.dicom_series
    masks_beside = isinstance(layout, FoldersLayout) and layout.masks_beside_images
    base = Path(root)
    folders = image_folders(task, base, "image folder")
    found: dict[str, CaseFiles] = {}
    for folder in folders:
        if dicom_series:
            entries = [(p, p.name[len(task.image_prefix) :]) for p in sorted(folder.iterdir())]
            entries = [
                (p, c) for p, c in entries if p.is_dir() and p.name.startswith(task.image_prefix)
            ]
        else:
            pattern = f"{task.image_prefix}*{task.image_suffix}"
            entries = [
                (p, strip_suffix(p.name, task.image_suffix)[len(task.image_prefix) :])
                for p in sorted(folder.glob(pattern))
                if listed_file(p) and not excluded(p.name, layout.exclude)
            ]
        for image, case_id in entries:
            if case_id in found:
                raise LayoutError(
                    str(image),
                    f"task {task.id}: {image} and {found[case_id].image} both give case id "
                    f"{case_id!r}; expected unique case ids",
                )
            missing: list[str] = []
            mask = None
            if task.mask_folder is not None:
                mask_dir = folder if masks_beside else base / task.mask_folder
                mask = mask_dir / f"{task.mask_prefix}{case_id}{task.mask_suffix}"
                if not mask.exists():
                    missing.append(f"mask file {mask} not found")
            landmarks = None
            if task.landmark_folder is not None:
                landmarks = _landmark_path(base, task, case_id)
                if not landmarks.exists():
                    missing.append(f"landmark file {landmarks} not found")
            found[case_id] = CaseFiles(case_id, image, mask, landmarks, tuple(missing))
    return [found[k] for k in sorted(found)]


def read_files(task: TaskSpec, files: CaseFiles) -> CaseInputs:
    """Load a case whose files need no conversion: image, mask, landmark JSON.

    Raises:
        VolumeError, ReaderError: Unreadable or invalid files (named in the message).
    """
    image = load_any(files.image, "image")
    labels = load_any(files.mask, "labels") if files.mask is not None else None
    marks = None
    if files.landmarks is not None and task.measurements:
        marks = read_landmarks_json(files.landmarks)
    return CaseInputs(image, labels, marks, str(files.landmarks or ""))


read = read_files
