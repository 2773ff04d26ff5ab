"""nnU-Net and Medical Segmentation Decathlon folders: ``imagesTr``/``labelsTr`` + ``dataset.json``.

Two generations share the folder names:

* nnU-Net v2: one file per channel, ``imagesTr/<case>_0000<file_ending>``; ``dataset.json``
  has ``"labels": {"background": 0, "liver": 1}`` (values may be lists for region-based
  training), ``"channel_names"`` and ``"file_ending"`` (``.nii.gz``, ``.mha``, ...).
* MSD / nnU-Net v1: ``"training": [{"image": "./imagesTr/BRATS_001.nii.gz", "label":
  ...}]``, ``"labels": {"0": "background", "1": "edema"}``, ``"modality"``; multi-channel
  cases are one 4D NIfTI whose last axis holds the channels. The MSD archives also carry
  macOS ``._*`` resource forks, which are ignored.

``dataset.json`` is checked against the spec: every label id of the spec must be declared
there and the channel must exist, or the task is refused with both lists in the message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from medvision.catalog.readers.base import (
    CaseFiles,
    CaseInputs,
    LayoutError,
    ReaderError,
    corrupt,
    listed_file,
    load_any,
    require_dir,
    strip_suffix,
)
from medvision.catalog.spec import NnunetLayout, TaskSpec
from medvision.volumes import Volume, from_array
from medvision.volumes.io import READ_ERRORS, Kind, verify_gzip


def dataset_json_path(task: TaskSpec, base: Path) -> Path:
    """Where the task's ``dataset.json`` is (explicit, or beside the image folder)."""
    layout = task.layout
    assert isinstance(layout, NnunetLayout)
    if layout.dataset_json is not None:
        return base / layout.dataset_json
    return (base / task.image_folder).parent / "dataset.json"


def read_dataset_json(path: Path) -> dict[str, Any]:
    """Parse ``dataset.json``.

    Raises:
        LayoutError: Missing, not JSON, or not an object.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LayoutError(str(path), f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(data, dict):
        raise LayoutError(str(path), f"{path}: expected a JSON object")
    return data


def declared_label_ids(data: dict[str, Any], path: Path) -> set[int]:
    """Label ids declared by ``dataset.json`` (v1 ``id -> name`` or v2 ``name -> id``)."""
    labels = data.get("labels")
    if not isinstance(labels, dict):
        raise LayoutError(str(path), f"{path}: expected a 'labels' object")
    ids: set[int] = set()
    for key, value in labels.items():
        try:
            if isinstance(value, str):  # v1: {"1": "edema"}
                ids.add(int(key))
            elif isinstance(value, list):  # v2 region: {"whole tumor": [1, 2, 3]}
                ids.update(int(v) for v in value)
            else:  # v2: {"liver": 1}
                ids.add(int(value))
        except (TypeError, ValueError) as exc:
            raise LayoutError(
                str(path), f"{path}: label entry {key!r}: {value!r} is not an integer id"
            ) from exc
    return ids


def _channels(data: dict[str, Any]) -> list[str]:
    names = data.get("channel_names") or data.get("modality") or {}
    return [str(k) for k in names] if isinstance(names, dict) else []


def _check(task: TaskSpec, data: dict[str, Any], path: Path, channel: int) -> None:
    declared = declared_label_ids(data, path)
    wanted = {lab.id for lab in task.labels}
    if not wanted <= declared:
        raise LayoutError(
            str(path),
            f"task {task.id}: {path} declares label ids {sorted(declared)}; the spec expects "
            f"{sorted(wanted)} (missing {sorted(wanted - declared)})",
        )
    chans = _channels(data)
    if chans and str(channel) not in chans:
        raise LayoutError(
            str(path),
            f"task {task.id}: channel {channel} is not among the channels {chans} of {path}",
        )


def _case_ids(data: dict[str, Any], img_dir: Path, ending: str, channel: int) -> list[str]:
    training = data.get("training")
    if isinstance(training, list) and training:
        ids = []
        for entry in training:
            image = entry.get("image") if isinstance(entry, dict) else None
            if isinstance(image, str):
                name = Path(image).name
                ids.append(strip_suffix(name, ending) if name.endswith(ending) else name)
        return sorted(set(ids))
    tail = f"_{channel:04d}{ending}"
    return sorted(
        strip_suffix(p.name, tail)
        for p in img_dir.glob(f"*{tail}")
        if listed_file(p) and not p.name.startswith("._")
    )


def discover(task: TaskSpec, root: Path) -> list[CaseFiles]:
    """List the cases of an ``nnunet`` task, sorted by case id.

    Raises:
        FileNotFoundError: The image folder does not exist.
        LayoutError: ``dataset.json`` is missing, unreadable or disagrees with the spec.
    """
    layout = task.layout
    assert isinstance(layout, NnunetLayout)
    base = Path(root)
    img_dir = base / task.image_folder
    require_dir(img_dir, "image folder", task.id)
    dj = dataset_json_path(task, base)
    data = read_dataset_json(dj)
    _check(task, data, dj, layout.channel)
    ending = str(data.get("file_ending", ".nii.gz"))
    cases: list[CaseFiles] = []
    for case_id in _case_ids(data, img_dir, ending, layout.channel):
        per_channel = img_dir / f"{case_id}_{layout.channel:04d}{ending}"
        whole = img_dir / f"{case_id}{ending}"
        image = per_channel if listed_file(per_channel) or not listed_file(whole) else whole
        missing: list[str] = []
        if not listed_file(image):
            missing.append(f"image file {per_channel} (or {whole}) not found")
        mask = None
        if task.mask_folder is not None:
            mask = base / task.mask_folder / f"{case_id}{ending}"
            if not mask.exists():
                missing.append(f"mask file {mask} not found")
        cases.append(CaseFiles(case_id, image, mask, None, tuple(missing)))
    return cases


def load_channel(path: Path, channel: int, kind: Kind) -> Volume:
    """Load channel ``channel`` of a 4D NIfTI (a 3D file is channel 0).

    Raises:
        ReaderError: The channel does not exist in the file.
        CorruptFileError: nibabel cannot read the file.
    """
    try:
        if str(path).lower().endswith(".gz"):
            verify_gzip(path)  # nibabel alone never reads the CRC of a 4D file's trailer
        img: Any = nib.load(path)
        shape = tuple(int(n) for n in img.shape)
        if len(shape) == 4:
            if channel >= shape[3]:
                raise ReaderError(
                    str(path),
                    f"{path} has {shape[3]} channels (shape {list(shape)}); expected channel "
                    f"{channel} to exist",
                )
            array = np.asarray(img.dataobj[..., channel])
            affine = np.asarray(img.affine, dtype=np.float64)
        else:
            if channel != 0:
                raise ReaderError(
                    str(path),
                    f"{path} has shape {list(shape)} (one channel); expected channel "
                    f"{channel} in a 4D file",
                )
            return load_any(path, kind)
    except READ_ERRORS as exc:
        raise corrupt(path, exc) from exc
    return from_array(array, affine, kind, str(path))


def read(task: TaskSpec, files: CaseFiles) -> CaseInputs:
    """Load one case: the channel's image (split out of a 4D file if needed) and its mask."""
    layout = task.layout
    assert isinstance(layout, NnunetLayout)
    if files.image.name.startswith(f"{files.case_id}_{layout.channel:04d}"):
        image = load_any(files.image, "image")
    elif files.image.name.lower().endswith((".nii", ".nii.gz")):
        image = load_channel(files.image, layout.channel, "image")
    else:
        image = load_any(files.image, "image")
    labels = load_any(files.mask, "labels") if files.mask is not None else None
    return CaseInputs(image, labels, None)
