"""Tiny on-disk fixtures that reproduce the real release layouts and file names.

Volumes are 12 x 10 x 8 voxels; each mask holds a few labelled boxes at known places, so the
readers' outputs can be compared with what was written.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

SHAPE = (12, 10, 8)
AFFINE = np.diag([0.8, 0.9, 2.0, 1.0])


def image_array(seed: int) -> np.ndarray:
    """A deterministic float32 image whose voxels are all different."""
    rng = np.random.default_rng(seed)
    return (rng.random(SHAPE) * 1000).astype(np.float32)


def label_array(ids: list[int]) -> np.ndarray:
    """Labels: id k fills a 3 x 3 x 3 block starting at (k mod 4 * 2, k mod 3 * 2, 1)."""
    arr = np.zeros(SHAPE, dtype=np.uint8)
    for k in ids:
        i, j = (k % 4) * 2, (k % 3) * 2
        arr[i : i + 3, j : j + 3, 1 + (k % 2) * 3 : 4 + (k % 2) * 3] = k
    return arr


def save(path: Path, array: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), path)
    return path


def pair(img: Path, mask: Path | None, seed: int, ids: list[int]) -> None:
    save(img, image_array(seed))
    if mask is not None:
        save(mask, label_array(ids))


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def make_msd(root: Path) -> Path:
    """MSD Task01_BrainTumour: 4D images, a training list, macOS ``._`` forks."""
    task = root / "Task01_BrainTumour"
    training = []
    for n, case in enumerate(["BRATS_001", "BRATS_002"]):
        four = np.stack([image_array(10 * n + c) for c in range(4)], axis=-1)
        save(task / "imagesTr" / f"{case}.nii.gz", four)
        save(task / "labelsTr" / f"{case}.nii.gz", label_array([1, 2, 3]))
        training.append(
            {"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"}
        )
    (task / "imagesTr" / "._BRATS_001.nii.gz").write_bytes(b"\x00\x05\x16\x07 resource fork")
    write_json(
        task / "dataset.json",
        {
            "name": "BRATS",
            "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
            "labels": {
                "0": "background",
                "1": "edema",
                "2": "non-enhancing tumor",
                "3": "enhancing tumour",
            },
            "numTraining": 2,
            "training": training,
        },
    )
    return root


def make_nnunet_v2(root: Path, ending: str = ".nii.gz") -> Path:
    """nnU-Net v2 dataset: ``imagesTr/<case>_0000``/``_0001``, ``labelsTr``, dataset.json."""
    ds = root / "Dataset001_Test"
    for n, case in enumerate(["case_a", "case_b"]):
        for c in range(2):
            save(ds / "imagesTr" / f"{case}_{c:04d}{ending}", image_array(100 + 10 * n + c))
        save(ds / "labelsTr" / f"{case}{ending}", label_array([1]))
    write_json(
        ds / "dataset.json",
        {
            "channel_names": {"0": "CT", "1": "PET"},
            "labels": {"background": 0, "tumor": 1},
            "numTraining": 2,
            "file_ending": ending,
        },
    )
    return root


def make_brats(root: Path) -> Path:
    """BraTS 2024 GLI and MEN-RT case folders (note MEN-RT's ``_`` separator, ``_gtv``)."""
    for n, case in enumerate(["BraTS-GLI-00000-000", "BraTS-GLI-00000-001", "BraTS-GLI-00002-000"]):
        d = root / "BraTS24-GLI" / case
        for s, seq in enumerate(["t1c", "t1n", "t2f", "t2w"]):
            save(d / f"{case}-{seq}.nii.gz", image_array(20 * n + s))
        save(d / f"{case}-seg.nii.gz", label_array([1, 2, 3, 4]))
    d = root / "BraTS24-MEN-RT" / "BraTS-MEN-RT-0000-1"
    save(d / "BraTS-MEN-RT-0000-1_t1c.nii.gz", image_array(90))
    save(d / "BraTS-MEN-RT-0000-1_gtv.nii.gz", label_array([1]))
    return root


def make_kits23(root: Path) -> Path:
    for n in range(2):
        d = root / "dataset" / f"case_{n:05d}"
        pair(d / "imaging.nii.gz", d / "segmentation.nii.gz", n, [1, 2, 3])
    (root / "dataset" / "kits23.json").write_text("{}")  # a file beside the case folders
    return root


def make_amos(root: Path) -> Path:
    """AMOS22: CT numbers below 507, MRI from 507, in Tr and Va."""
    for subset, numbers in (("Tr", [1, 540]), ("Va", [8, 600])):
        for n in numbers:
            name = f"amos_{n:04d}.nii.gz"
            pair(
                root / "amos22" / f"images{subset}" / name,
                root / "amos22" / f"labels{subset}" / name,
                n,
                [1, 2],
            )
    save(root / "amos22" / "imagesTs" / "amos_0002.nii.gz", image_array(2))  # unlabelled
    return root


def make_totalseg(root: Path, structures: dict[str, int]) -> Path:
    """TotalSegmentator: ``s0000/ct.nii.gz`` + one binary mask per structure."""
    for n, case in enumerate(["s0000", "s0001"]):
        d = root / "Totalsegmentator_dataset_v201" / case
        save(d / "ct.nii.gz", image_array(n))
        full = label_array(sorted(structures.values()))
        for stem, label_id in structures.items():
            save(d / "segmentations" / f"{stem}.nii.gz", (full == label_id).astype(np.uint8))
    (root / "Totalsegmentator_dataset_v201" / "meta.csv").write_text("image_id;split\n")
    return root


def make_camus(root: Path) -> Path:
    for n in range(1, 3):
        p = f"patient{n:04d}"
        d = root / "database_nifti" / p
        for view in ("2CH", "4CH"):
            pair(
                d / f"{p}_{view}_half_sequence.nii.gz",
                d / f"{p}_{view}_half_sequence_gt.nii.gz",
                n,
                [1, 2, 3],
            )
            pair(d / f"{p}_{view}_ED.nii.gz", d / f"{p}_{view}_ED_gt.nii.gz", n, [1])
        (d / "Info_2CH.cfg").write_text("ED: 1\nES: 8\n")
    return root
