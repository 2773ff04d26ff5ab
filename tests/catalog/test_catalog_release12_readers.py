"""Readers of the official 1.2.0 layouts: VerSe centroid JSON, AFIDs Slicer fcsv, PDDCA NRRD
structures. Fixtures are written from the documented formats, in non-RAS orientations, and
every landmark is checked against the world position it was written at."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medvision.builder.engine import BuildOptions, build_dataset
from medvision.catalog.layouts import LandmarkError, discover_cases, read_case
from medvision.catalog.readers.fcsv import read_fcsv
from medvision.catalog.registry import get_spec
from medvision.store import open_dataset

# VerSe'20 scans are often stored P-I-R: index axis 0 -> Posterior, 1 -> Inferior, 2 -> Right.
PIR = np.array([[0, 0, 0.8, 10], [-1.0, 0, 0, 20], [0, -1.5, 0, 30], [0, 0, 0, 1]])
LAS = np.diag([-1.2, 1.0, 2.0, 1.0])
NATIVE_SHAPE = (7, 9, 6)


def _world(affine: np.ndarray, ijk: tuple[float, ...]) -> np.ndarray:
    return (affine @ np.array([*ijk, 1.0]))[:3]


def _lumbar(shift: int) -> dict[int, tuple[int, int, int]]:
    """Native voxel of each lumbar centroid (labels 20..24 = L1..L5), all distinct."""
    return {20 + n: (1 + n, 2 + n, (1 + 2 * n + shift) % 6) for n in range(5)}


def make_verse_case(
    root: Path, dataset: str, stem: str, affine: np.ndarray, codes: list[str], *, drop: int = 0
) -> dict[int, tuple[int, int, int]]:
    """One VerSe scan: CT, vertebra mask (one voxel per centroid), centroid JSON."""
    sub = stem.split("_")[0]
    cents = _lumbar(len(stem))
    ct = np.arange(np.prod(NATIVE_SHAPE), dtype=np.float32).reshape(NATIVE_SHAPE)
    msk = np.zeros(NATIVE_SHAPE, dtype=np.uint8)
    for label, ijk in cents.items():
        msk[ijk] = label
    raw = root / dataset / "rawdata" / sub
    der = root / dataset / "derivatives" / sub
    raw.mkdir(parents=True, exist_ok=True)
    der.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(ct, affine), raw / f"{stem}_ct.nii.gz")
    nib.save(nib.Nifti1Image(msk, affine), der / f"{stem}_seg-vert_msk.nii.gz")
    entries: list[dict[str, object]] = [{"direction": codes}]
    entries.append({"label": 19, "X": float("nan"), "Y": float("nan"), "Z": float("nan")})
    for label, (i, j, k) in cents.items():
        if label != drop:
            entries.append({"label": label, "X": i, "Y": j, "Z": k})
    (der / f"{stem}_seg-subreg_ctd.json").write_text(json.dumps(entries))
    return cents


def test_verse_centroids_land_on_their_vertebra_in_ras(tmp_path: Path) -> None:
    c20 = make_verse_case(tmp_path, "dataset-01training", "sub-verse500_dir-ax", PIR, list("PIR"))
    c19 = make_verse_case(tmp_path, "dataset-verse19training", "sub-verse004", LAS, list("LAS"))
    task = get_spec("VerSe").task("02")
    cases = discover_cases(task, tmp_path)
    assert [c.case_id for c in cases] == ["sub-verse004", "sub-verse500_dir-ax"]
    for files, cents, affine in ((cases[0], c19, LAS), (cases[1], c20, PIR)):
        inputs = read_case(task, files)
        assert inputs.landmarks is not None and inputs.labels is None  # A/D task: no mask
        mask = read_case(get_spec("VerSe").task("01"), files).labels
        assert mask is not None
        for n, label in enumerate(range(20, 25), start=1):
            idx = inputs.landmarks[f"P{n}"]
            # Same world point as the native voxel the centroid was written at ...
            np.testing.assert_allclose(
                _world(inputs.image.affine, idx), _world(affine, cents[label]), atol=1e-6
            )
            # ... and on the voxel of its vertebra in the RAS+ label volume.
            assert mask.array[tuple(round(v) for v in idx)] == label


def test_verse_excludes_and_missing_files(tmp_path: Path) -> None:
    make_verse_case(tmp_path, "d", "sub-verse500_dir-ax", PIR, list("PIR"))
    make_verse_case(tmp_path, "d", "sub-gl003", PIR, list("PIR"))
    make_verse_case(tmp_path, "d", "sub-verse401_split-verse290", PIR, list("PIR"))
    make_verse_case(tmp_path, "d", "sub-verse600", PIR, list("PIR"))
    (tmp_path / "d" / "derivatives" / "sub-verse600" / "sub-verse600_seg-subreg_ctd.json").unlink()
    ad, box = get_spec("VerSe").task("02"), get_spec("VerSe").task("01")
    ad_cases = {c.case_id: c.missing for c in discover_cases(ad, tmp_path)}
    assert sorted(ad_cases) == ["sub-verse500_dir-ax", "sub-verse600"]  # gl and split left out
    assert "sub-verse600_seg-subreg_ctd.json not found" in ad_cases["sub-verse600"][0]
    # The detection task does not need the centroid file.
    assert all(not c.missing for c in discover_cases(box, tmp_path))


def test_verse_subject_based_copy_with_files_in_one_folder(tmp_path: Path) -> None:
    make_verse_case(tmp_path, "d", "sub-verse012", LAS, list("LAS"))
    flat = tmp_path / "verse19" / "sub-verse012"
    flat.mkdir(parents=True)
    for part in ("rawdata", "derivatives"):
        for f in (tmp_path / "d" / part / "sub-verse012").iterdir():
            f.rename(flat / f.name)
    task = get_spec("VerSe").task("02")
    task = task.model_copy(
        update={
            "image_folder": "verse19",
            "layout": task.layout.model_copy(update={"derivatives": "."}),
        }
    )
    (case,) = discover_cases(task, tmp_path)
    assert not case.missing
    marks = read_case(task, case).landmarks
    assert marks is not None and len(marks) == 5


def test_verse_missing_lumbar_centroid_or_direction_is_a_named_error(tmp_path: Path) -> None:
    make_verse_case(tmp_path, "d", "sub-verse500", PIR, list("PIR"), drop=24)
    task = get_spec("VerSe").task("02")
    (case,) = discover_cases(task, tmp_path)
    with pytest.raises(LandmarkError, match=r"no centroid for vertebra labels \[24\]"):
        read_case(task, case)
    assert case.landmarks is not None
    case.landmarks.write_text(json.dumps([{"label": 20, "X": 1, "Y": 2, "Z": 3}]))
    with pytest.raises(LandmarkError, match="direction"):
        read_case(task, case)


def test_verse_lumbar_measurements_build_with_world_distances(tmp_path: Path) -> None:
    src = tmp_path / "src"
    cents = make_verse_case(src, "d", "sub-verse500", PIR, list("PIR"))
    make_verse_case(src, "d", "sub-verse501", PIR, list("PIR"))
    verse = get_spec("VerSe")
    only_ad = verse.model_copy(update={"tasks": [verse.task("02")]})
    build_dataset(only_ad, src, tmp_path / "out", BuildOptions())
    samples = [s for s in open_dataset(tmp_path / "out").samples() if s.case_id == "sub-verse500"]
    assert sorted(s.metric_key for s in samples) == sorted(
        m.key for m in verse.task("02").measurements
    )
    l12 = next(s for s in samples if s.metric_key == "L-1-2")
    want = float(np.linalg.norm(_world(PIR, cents[20]) - _world(PIR, cents[21])))
    assert l12.target == pytest.approx((want,), rel=1e-4)
    assert {s.plane.letter for s in samples} == {"S"}


# ---------------------------------------------------------------------------------- AFIDs

AFIDS_AFFINE = np.array([[-0.9, 0, 0, 40], [0, -1.1, 0, 50], [0, 0, 1.2, -30], [0, 0, 0, 1]])
AFIDS_SHAPE = (12, 14, 10)


def make_afids(root: Path, case: str, system: str, seed: int) -> dict[str, tuple[int, ...]]:
    """An image with a unique marker at each fiducial's voxel, and its fcsv file."""
    rng = np.random.default_rng(seed)
    img = np.zeros(AFIDS_SHAPE, dtype=np.float32)
    voxels: dict[str, tuple[int, ...]] = {}
    rows = []
    for n in range(1, 33):
        while True:
            ijk = tuple(int(rng.integers(0, s)) for s in AFIDS_SHAPE)
            if img[ijk] == 0:
                break
        img[ijk] = 100 + n
        voxels[f"P{n}"] = ijk
        x, y, z = _world(AFIDS_AFFINE, ijk)
        if system in ("1", "LPS"):
            x, y = -x, -y
        rows.append(f"vtkMRMLMarkupsFiducialNode_{n},{x},{y},{z},0,0,0,1,1,1,1,{n},AFID{n},")
    anat = root / "ds004471" / case.split("_")[0] / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(img, AFIDS_AFFINE), anat / f"{case}_T1w.nii.gz")
    header = [
        "# Markups fiducial file version = 4.6",
        f"# CoordinateSystem = {system}",
        "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID",
    ]
    (root / "afids-fcsv").mkdir(exist_ok=True)
    gt = root / "afids-fcsv" / f"{case}_space-T1w_desc-groundtruth_afids.fcsv"
    gt.write_text("\n".join(header + rows) + "\n")
    return voxels


@pytest.mark.parametrize("system", ["0", "RAS", "1", "LPS"])
def test_afids_fcsv_points_land_on_their_marked_voxel(tmp_path: Path, system: str) -> None:
    voxels = make_afids(tmp_path, "sub-C001", system, seed=3)
    task = get_spec("AFIDs").task("01")
    (case,) = discover_cases(task, tmp_path)
    assert case.case_id == "sub-C001" and not case.missing
    inputs = read_case(task, case)
    assert inputs.landmarks is not None and len(inputs.landmarks) == 32
    for key, ijk in voxels.items():
        idx = inputs.landmarks[key]
        np.testing.assert_allclose(
            _world(inputs.image.affine, idx), _world(AFIDS_AFFINE, ijk), atol=1e-4
        )
        assert inputs.image.array[tuple(round(v) for v in idx)] == 100 + int(key[1:])


def test_afids_bad_fcsv_files_are_named_errors(tmp_path: Path) -> None:
    path = tmp_path / "a.fcsv"
    path.write_text("# CoordinateSystem = IJK\nn1,1,2,3,0,0,0,1,1,1,1,1,AC,\n")
    with pytest.raises(LandmarkError, match="CoordinateSystem 'IJK'"):
        read_fcsv(path)
    path.write_text("n1,1,2,3,0,0,0,1,1,1,1,1,AC,\nn2,4,5,6,0,0,0,1,1,1,1,1,AC,\n")
    with pytest.raises(LandmarkError, match="'P1' repeats"):
        read_fcsv(path)
    path.write_text("n1,1,oops,3,0,0,0,1,1,1,1,1,AC,\n")
    with pytest.raises(LandmarkError, match="no numeric x, y, z"):
        read_fcsv(path)


def test_afids_build_gives_the_six_measurements(tmp_path: Path) -> None:
    src = tmp_path / "src"
    voxels = make_afids(src, "sub-C001", "0", seed=5)
    make_afids(src, "sub-C002", "0", seed=6)
    build_dataset(get_spec("AFIDs"), src, tmp_path / "out", BuildOptions())
    samples = [s for s in open_dataset(tmp_path / "out").samples() if s.case_id == "sub-C001"]
    assert len(samples) == 6
    ac_pc = next(s for s in samples if s.metric_key == "L-1-2")
    want = np.linalg.norm(_world(AFIDS_AFFINE, voxels["P1"]) - _world(AFIDS_AFFINE, voxels["P2"]))
    assert ac_pc.target == pytest.approx((float(want),), rel=1e-4)


# ---------------------------------------------------------------------------------- PDDCA

STRUCTURES = {"BrainStem": 1, "Chiasm": 2, "OpticNerve_L": 4, "Parotid_R": 7}


def test_pddca_nrrd_structures_merge_and_absent_ones_are_skipped(tmp_path: Path) -> None:
    sitk = pytest.importorskip("SimpleITK")  # the [itk] extra; installed in the test env
    case = tmp_path / "PDDCA-1.4.1_part1" / "0522c0001"  # found at any depth
    (case / "structures").mkdir(parents=True)
    shape_zyx = (5, 6, 7)
    img = sitk.GetImageFromArray(np.arange(210, dtype=np.int16).reshape(shape_zyx))
    img.SetSpacing((0.9, 0.8, 2.5))
    img.SetOrigin((-50.0, -60.0, 10.0))  # identity direction: +i Left, +j Posterior (LPS)
    sitk.WriteImage(img, str(case / "img.nrrd"))
    where: dict[str, tuple[int, int, int]] = {}
    for n, name in enumerate(STRUCTURES):  # Mandible etc. absent, as in many PDDCA cases
        arr = np.zeros(shape_zyx, dtype=np.uint8)
        zyx = (n, n + 1, n + 2)
        arr[zyx] = 1
        m = sitk.GetImageFromArray(arr)
        m.CopyInformation(img)
        sitk.WriteImage(m, str(case / "structures" / f"{name}.nrrd"))
        where[name] = (zyx[2], zyx[1], zyx[0])  # ITK index (x, y, z)
    shutil.copytree(case, tmp_path / "0522c0002")  # a zip unpacked without its part folder
    task = get_spec("PDDCA").task("01")
    found = discover_cases(task, tmp_path)
    assert [c.case_id for c in found] == ["0522c0001", "0522c0002"]
    files = found[0]
    inputs = read_case(task, files)
    assert inputs.labels is not None
    assert sorted(int(v) for v in np.unique(inputs.labels.array)) == [0, 1, 2, 4, 7]
    inv = np.linalg.inv(inputs.labels.affine)
    for name, xyz in where.items():
        lps = np.array(img.TransformIndexToPhysicalPoint(xyz))
        ras = np.array([-lps[0], -lps[1], lps[2], 1.0])
        ijk = tuple(round(v) for v in (inv @ ras)[:3])
        assert inputs.labels.array[ijk] == STRUCTURES[name]


# ------------------------------------------------------------------------------ DEEP-PSMA


def test_deep_psma_tracers_are_two_tasks_with_one_split(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for n in range(1, 5):
        for t, tracer in enumerate(("PSMA", "FDG")):
            d = src / "CHALLENGE_DATA" / f"train_{n:04d}" / tracer
            d.mkdir(parents=True)
            pet = np.full((14, 14, 12), 100.0 * n + t, dtype=np.float32)
            ttb = np.zeros((14, 14, 12), dtype=np.uint8)
            ttb[2:13, 2:13, 3:8] = 1  # one lesion big enough for the 10 px box floor
            nib.save(nib.Nifti1Image(pet, np.eye(4)), d / "PET.nii.gz")
            nib.save(nib.Nifti1Image(ttb, np.eye(4)), d / "TTB.nii.gz")
    spec = get_spec("DEEP-PSMA")
    psma, fdg = spec.task("01"), spec.task("02")
    cases = discover_cases(psma, src)
    assert [c.case_id for c in cases] == [f"train_{n:04d}" for n in range(1, 5)]
    assert float(read_case(psma, cases[1]).image.array.max()) == 200.0  # PSMA PET
    assert float(read_case(fdg, discover_cases(fdg, src)[1]).image.array.max()) == 201.0
    build_dataset(spec, src, tmp_path / "out", BuildOptions())
    split: dict[tuple[str, str], set[str]] = {}
    for s in open_dataset(tmp_path / "out").samples():
        case = s.case_id.removeprefix(f"{s.task_id}-")  # stored ids carry the task
        split.setdefault((s.task_id, case), set()).add(s.split)
    assert {k[0] for k in split} == {"01", "02"}
    for n in range(1, 5):  # a patient's two tracers sit on one side of the split
        case = f"train_{n:04d}"
        assert split[("01", case)] == split[("02", case)] and len(split[("01", case)]) == 1
    assert {s for v in split.values() for s in v} == {"train", "test"}


def test_mama_mia_reads_the_first_post_contrast_phase_and_the_expert_mask(tmp_path: Path) -> None:
    for case in ("DUKE_001", "ISPY2_100899"):
        d = tmp_path / "images" / case
        d.mkdir(parents=True)
        for phase in range(3):
            img = np.full((6, 6, 4), 10.0 * phase, dtype=np.float32)
            nib.save(nib.Nifti1Image(img, np.eye(4)), d / f"{case}_000{phase}.nii.gz")
    seg = tmp_path / "segmentations" / "expert"
    seg.mkdir(parents=True)
    nib.save(nib.Nifti1Image(np.ones((6, 6, 4), np.uint8), np.eye(4)), seg / "DUKE_001.nii.gz")
    task = get_spec("MAMA-MIA").task("01")
    cases = discover_cases(task, tmp_path)
    assert [(c.case_id, bool(c.missing)) for c in cases] == [
        ("DUKE_001", False),
        ("ISPY2_100899", True),  # no expert mask: listed, then skipped by the build
    ]
    inputs = read_case(task, cases[0])
    assert float(inputs.image.array.max()) == 10.0  # phase _0001
    assert inputs.labels is not None and int(inputs.labels.array.sum()) == 6 * 6 * 4


# ---------------------------------------------------------------- official mirror layouts


@pytest.mark.parametrize("name", ["LIDC-IDRI", "LNQ2023", "PI-CAI", "MSWAL"])
def test_mirror_layout_entries_read_images_and_masks(tmp_path: Path, name: str) -> None:
    task = get_spec(name).tasks[0]
    ids = [lab.id for lab in task.labels]
    for n, case in enumerate(("case_a", "case_b")):
        msk = np.zeros((16, 16, 10), dtype=np.uint8)
        for k, label in enumerate(ids):  # one 12 x 12 blob per label on its own slice
            msk[2:14, 2:14, k % 10] = label
        img = np.full(msk.shape, float(n), dtype=np.float32)
        (tmp_path / "Images").mkdir(exist_ok=True)
        (tmp_path / "Masks").mkdir(exist_ok=True)
        nib.save(nib.Nifti1Image(img, np.eye(4)), tmp_path / "Images" / f"{case}.nii.gz")
        nib.save(nib.Nifti1Image(msk, np.eye(4)), tmp_path / "Masks" / f"{case}.nii.gz")
    cases = discover_cases(task, tmp_path)
    assert [(c.case_id, c.missing) for c in cases] == [("case_a", ()), ("case_b", ())]
    labels = read_case(task, cases[1]).labels
    assert labels is not None and sorted(np.unique(labels.array).tolist()) == [0, *ids]


def test_mswal_stones_feed_detection_and_the_five_lesions_feed_tl(tmp_path: Path) -> None:
    for n in range(3):
        msk = np.zeros((16, 16, 10), dtype=np.uint8)
        for label in range(1, 8):
            msk[2:14, 2:14, label] = label
        nib.save(
            nib.Nifti1Image(np.ones(msk.shape, np.float32), np.eye(4)), _p(tmp_path, "Images", n)
        )
        nib.save(nib.Nifti1Image(msk, np.eye(4)), _p(tmp_path, "Masks", n))
    build_dataset(get_spec("MSWAL"), tmp_path, tmp_path / "out", BuildOptions())
    samples = list(open_dataset(tmp_path / "out").samples())
    det = {s.label_name for s in samples if s.family.value == "detection"}
    tl = {s.label_name for s in samples if s.family.value == "tl"}
    assert {"gallstone", "kidney stone"} <= det
    assert tl == {"liver tumor", "kidney tumor", "pancreatic cancer", "liver cyst", "kidney cyst"}


def _p(root: Path, folder: str, n: int) -> Path:
    (root / folder).mkdir(exist_ok=True)
    return root / folder / f"mswal_{n:03d}.nii.gz"
