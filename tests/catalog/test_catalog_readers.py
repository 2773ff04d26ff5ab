"""Layout readers on generated fixtures that reproduce each release's folders and file names."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from catalog_layout_fixtures import (
    AFFINE,
    SHAPE,
    image_array,
    label_array,
    make_amos,
    make_brats,
    make_camus,
    make_kits23,
    make_msd,
    make_nnunet_v2,
    make_totalseg,
    save,
    write_json,
)

from medvision.catalog.layouts import (
    CaseFiles,
    LayoutError,
    ReaderError,
    discover_cases,
    read_case,
    read_landmarks_json,
)
from medvision.catalog.registry import get_spec
from medvision.catalog.spec import LabelSpec, TaskSpec
from medvision.volumes import load_volume


def _task(**kw: object) -> TaskSpec:
    base: dict[str, object] = {"id": "01", "modality": "CT", "image_description": "test"}
    return TaskSpec.model_validate(base | kw)


def _labels(ids: list[int], kind: str = "organ") -> list[dict[str, object]]:
    return [{"id": i, "name": f"s{i}", "kind": kind, "group": "G"} for i in ids]


def _case(cases: list[CaseFiles], case_id: str) -> CaseFiles:
    return next(c for c in cases if c.case_id == case_id)


# ----------------------------------------------------------------------------- nnU-Net / MSD


def test_msd_4d_channels_and_resource_forks(tmp_path: Path) -> None:
    make_msd(tmp_path)
    msd = get_spec("MSD")
    t1gd = msd.task("03")  # BrainTumour channel 2 (T1gd), the official T/L source
    cases = discover_cases(t1gd, tmp_path)
    assert [c.case_id for c in cases] == ["BRATS_001", "BRATS_002"]  # no ._BRATS_001
    inputs = read_case(t1gd, cases[1])
    np.testing.assert_array_equal(inputs.image.array, image_array(10 * 1 + 2))
    np.testing.assert_allclose(inputs.image.spacing_mm, (0.8, 0.9, 2.0))
    assert inputs.labels is not None
    np.testing.assert_array_equal(inputs.labels.array, label_array([1, 2, 3]))


def test_msd_missing_channel_is_a_named_error(tmp_path: Path) -> None:
    make_msd(tmp_path)
    files = discover_cases(get_spec("MSD").task("01"), tmp_path)[0]
    bad = _task(
        image_folder="Task01_BrainTumour/imagesTr",
        mask_folder="Task01_BrainTumour/labelsTr",
        layout={"kind": "nnunet", "channel": 7, "dataset_json": "x.json"},
    )
    with pytest.raises(ReaderError, match=r"BRATS_001\.nii\.gz has 4 channels"):
        read_case(bad, files)


def test_msd_4d_file_with_a_bad_checksum_is_refused(tmp_path: Path) -> None:
    from medvision.volumes import CorruptFileError

    make_msd(tmp_path)
    t1gd = get_spec("MSD").task("03")
    files = discover_cases(t1gd, tmp_path)[0]
    # Same length, damaged CRC32 trailer: only reading the stream to its end notices.
    data = bytearray(files.image.read_bytes())
    data[-8] ^= 0xFF
    files.image.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=r"BRATS_001\.nii\.gz"):
        read_case(t1gd, files)


def test_nnunet_v2_per_channel_files(tmp_path: Path) -> None:
    make_nnunet_v2(tmp_path)
    task = _task(
        image_folder="Dataset001_Test/imagesTr",
        mask_folder="Dataset001_Test/labelsTr",
        layout={"kind": "nnunet", "channel": 1},
        labels=_labels([1], "lesion"),
    )
    cases = discover_cases(task, tmp_path)
    assert [c.case_id for c in cases] == ["case_a", "case_b"]
    assert cases[0].image.name == "case_a_0001.nii.gz"
    inputs = read_case(task, cases[0])
    np.testing.assert_array_equal(inputs.image.array, image_array(101))


def test_nnunet_dataset_json_must_declare_the_spec_labels(tmp_path: Path) -> None:
    make_nnunet_v2(tmp_path)
    task = _task(
        image_folder="Dataset001_Test/imagesTr",
        mask_folder="Dataset001_Test/labelsTr",
        layout={"kind": "nnunet"},
        labels=_labels([1, 2]),
    )
    with pytest.raises(
        LayoutError, match=r"dataset\.json declares label ids \[0, 1\].*missing \[2\]"
    ):
        discover_cases(task, tmp_path)


def test_nnunet_mha_files_read_through_simpleitk(tmp_path: Path) -> None:
    sitk = pytest.importorskip("SimpleITK")  # the [itk] extra; installed in the test env
    make_nnunet_v2(tmp_path)
    ds = tmp_path / "Dataset001_Test"
    for sub in ("imagesTr", "labelsTr"):
        for f in sorted((ds / sub).glob("*.nii.gz")):
            sitk.WriteImage(sitk.ReadImage(str(f)), str(f).replace(".nii.gz", ".mha"))
            f.unlink()
    dj = json.loads((ds / "dataset.json").read_text()) | {"file_ending": ".mha"}
    (ds / "dataset.json").write_text(json.dumps(dj))
    task = _task(
        image_folder="Dataset001_Test/imagesTr",
        mask_folder="Dataset001_Test/labelsTr",
        layout={"kind": "nnunet"},
        labels=_labels([1]),
    )
    cases = discover_cases(task, tmp_path)
    assert cases[0].image.name == "case_a_0000.mha"
    inputs = read_case(task, cases[0])
    np.testing.assert_array_equal(inputs.image.array, image_array(100))
    np.testing.assert_allclose(inputs.image.affine, AFFINE, atol=1e-6)


# ----------------------------------------------------------------------------- case folders


def test_brats_gli_and_men_rt_naming(tmp_path: Path) -> None:
    make_brats(tmp_path)
    brats = get_spec("BraTS24")
    t2f = brats.task("03")
    cases = discover_cases(t2f, tmp_path)
    assert [c.case_id for c in cases] == [
        "BraTS-GLI-00000-000",
        "BraTS-GLI-00000-001",
        "BraTS-GLI-00002-000",
    ]
    inputs = read_case(t2f, cases[2])
    np.testing.assert_array_equal(inputs.image.array, image_array(40 + 2))  # t2f = seq 2
    men = discover_cases(brats.task("05"), tmp_path)
    assert men[0].image.name == "BraTS-MEN-RT-0000-1_t1c.nii.gz"
    assert men[0].mask is not None and men[0].mask.name == "BraTS-MEN-RT-0000-1_gtv.nii.gz"
    assert not men[0].missing


def test_brats_case_without_its_sequence_is_listed_missing(tmp_path: Path) -> None:
    make_brats(tmp_path)
    gone = tmp_path / "BraTS24-GLI" / "BraTS-GLI-00000-001" / "BraTS-GLI-00000-001-t2w.nii.gz"
    gone.unlink()
    cases = discover_cases(get_spec("BraTS24").task("04"), tmp_path)
    bad = _case(cases, "BraTS-GLI-00000-001")
    assert bad.missing == (f"image file {gone} not found",)


def test_kits23_case_folders(tmp_path: Path) -> None:
    make_kits23(tmp_path)
    task = get_spec("KiTS23").task("01")
    cases = discover_cases(task, tmp_path)
    assert [c.case_id for c in cases] == ["case_00000", "case_00001"]
    inputs = read_case(task, cases[1])
    np.testing.assert_array_equal(inputs.image.array, image_array(1))
    assert inputs.labels is not None
    assert set(np.unique(inputs.labels.array)) == {0, 1, 2, 3}


def test_abdomenatlas_case_folders(tmp_path: Path) -> None:
    d = tmp_path / "BDMAP_00000001"
    save(d / "ct.nii.gz", image_array(5))
    save(d / "combined_labels.nii.gz", label_array([1, 9]))
    (d / "segmentations").mkdir()
    task = get_spec("AbdomenAtlas1.0Mini").task("01")
    (case,) = discover_cases(task, tmp_path)
    assert case.case_id == "BDMAP_00000001" and not case.missing
    assert read_case(task, case).labels is not None


def test_amos_ct_and_mri_split_by_case_number(tmp_path: Path) -> None:
    make_amos(tmp_path)
    amos = get_spec("AMOS22")
    ct = [c.case_id for c in discover_cases(amos.task("01"), tmp_path)]
    mri = [c.case_id for c in discover_cases(amos.task("02"), tmp_path)]
    assert ct == ["amos_0001", "amos_0008"]  # imagesTs (no labels) is not read
    assert mri == ["amos_0540", "amos_0600"]


# ----------------------------------------------------------------------------- TotalSegmentator


def test_totalsegmentator_structures_are_merged_with_catalog_ids(tmp_path: Path) -> None:
    spec = get_spec("TotalSegmentator")
    task = spec.task("01")
    wanted = {"spleen": 1, "kidney_right": 2, "liver": 5, "vertebrae_L5": 27, "rib_right_12": 115}
    assert {lab.structure: lab.id for lab in task.labels if lab.structure in wanted} == wanted
    make_totalseg(tmp_path, {s: task.labels[i - 1].id for s, i in wanted.items()})
    # A case only needs the masks of the labels it is asked about: keep those in the task.
    small = task.model_copy(update={"labels": [task.label(i) for i in wanted.values()]})
    cases = discover_cases(small, tmp_path)
    assert [c.case_id for c in cases] == ["s0000", "s0001"]
    inputs = read_case(small, cases[0])
    assert inputs.labels is not None
    np.testing.assert_array_equal(inputs.labels.array, label_array(sorted(wanted.values())))


def test_totalsegmentator_missing_structure_names_the_file(tmp_path: Path) -> None:
    task = get_spec("TotalSegmentator").task("01")
    make_totalseg(tmp_path, {"spleen": 1})
    small = task.model_copy(update={"labels": [task.label(1), task.label(2)]})
    case = discover_cases(small, tmp_path)[0]
    with pytest.raises(ReaderError, match=r"segmentations/kidney_right\.nii\.gz not found"):
        read_case(small, case)


# ----------------------------------------------------------------------------- CAMUS


def test_camus_one_case_per_patient_and_view(tmp_path: Path) -> None:
    make_camus(tmp_path)
    task = get_spec("CAMUS").task("01")
    cases = discover_cases(task, tmp_path)
    assert [c.case_id for c in cases] == [
        "patient0001_2CH",
        "patient0001_4CH",
        "patient0002_2CH",
        "patient0002_4CH",
    ]
    assert cases[0].image.name == "patient0001_2CH_half_sequence.nii.gz"
    inputs = read_case(task, cases[0])
    assert inputs.image.shape == SHAPE  # (X, Y, T): axis 2 is time


# ----------------------------------------------------------------------------- flat folders


def test_folders_glob_masks_beside_and_excludes(tmp_path: Path) -> None:
    # ACDC release layout: frames, their _gt masks and the 4D cine in one patient folder.
    for split, pid in (("training", "patient001"), ("testing", "patient101")):
        d = tmp_path / "database" / split / pid
        for frame in ("01", "12"):
            save(d / f"{pid}_frame{frame}.nii.gz", image_array(int(frame)))
            save(d / f"{pid}_frame{frame}_gt.nii.gz", label_array([1, 2, 3]))
        save(d / f"{pid}_4d.nii.gz", image_array(0))
        (d / "Info.cfg").write_text("ED: 1\n")
    task = get_spec("ACDC").task("01")
    cases = discover_cases(task, tmp_path)
    assert [c.case_id for c in cases] == [
        "patient001_frame01",
        "patient001_frame12",
        "patient101_frame01",
        "patient101_frame12",
    ]
    assert all(c.mask is not None and c.mask.parent == c.image.parent for c in cases)
    assert not any(c.missing for c in cases)


def test_folders_duplicate_case_ids_are_refused(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        save(tmp_path / "imgs" / sub / "x.nii.gz", image_array(0))
    task = _task(image_folder="imgs/*")
    with pytest.raises(LayoutError, match="both give case id 'x'"):
        discover_cases(task, tmp_path)


def test_official_landmark_json_gz_is_read(tmp_path: Path) -> None:
    path = tmp_path / "case.json.gz"
    data = {
        "slice_landmarks_x": [{"slice_idx": 3, "landmarks": {"P1": [3, 4, 5], "P2": [3, 6, 7]}}],
        "slice_landmarks_y": [],
        "slice_landmarks_z": [{"slice_idx": 2, "landmarks": {"P1": [9, 9, 2], "P3": [1, 2, 2]}}],
    }
    with gzip.open(path, "wt") as fh:
        json.dump(data, fh)
    assert read_landmarks_json(path) == {
        "P1": (3.0, 4.0, 5.0),  # first occurrence wins
        "P2": (3.0, 6.0, 7.0),
        "P3": (1.0, 2.0, 2.0),
    }


# ----------------------------------------------------------------------------- SimpleITK formats


def test_mha_and_nrrd_match_the_nifti_they_were_converted_from(tmp_path: Path) -> None:
    sitk = pytest.importorskip("SimpleITK")
    # An oblique, LPS-like affine exercises the LPS -> RAS conversion and reorientation.
    c, s = np.cos(0.3), np.sin(0.3)
    affine = np.array(
        [[-0.8 * c, 0.9 * s, 0, 10], [-0.8 * s, -0.9 * c, 0, -5], [0, 0, 2.0, 3], [0, 0, 0, 1]]
    )
    nii = save(tmp_path / "a.nii.gz", image_array(3), affine)
    want = load_volume(nii, "image")
    from medvision.catalog.readers import load_any

    for ext in (".mha", ".nrrd"):
        out = tmp_path / f"a{ext}"
        sitk.WriteImage(sitk.ReadImage(str(nii)), str(out))
        got = load_any(out, "image")
        np.testing.assert_array_equal(got.array, want.array)
        np.testing.assert_allclose(got.affine, want.affine, atol=1e-4)


def test_missing_simpleitk_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "SimpleITK", None)  # import now raises ImportError
    from medvision.catalog.readers import load_any

    path = tmp_path / "x.mha"
    path.write_bytes(b"ObjectType = Image\n")
    with pytest.raises(ReaderError, match=r"pip install medvision-bench\[itk\]") as err:
        load_any(path, "image")
    assert str(path) in str(err.value)


def test_labelspec_structure_is_required_for_totalseg() -> None:
    with pytest.raises(ValueError, match="needs a 'structure'"):
        _task(image_folder=".", layout={"kind": "totalseg"}, labels=_labels([1]))
    assert LabelSpec(id=1, name="a", kind="organ", group="G").structure is None


def test_truncated_nifti_in_a_layout_is_a_volume_error(tmp_path: Path) -> None:
    make_kits23(tmp_path)
    f = tmp_path / "dataset" / "case_00001" / "segmentation.nii.gz"
    f.write_bytes(f.read_bytes()[:100])
    task = get_spec("KiTS23").task("01")
    from medvision.volumes import VolumeError

    with pytest.raises(VolumeError) as err:
        read_case(task, discover_cases(task, tmp_path)[1])
    assert str(f) in str(err.value)


def test_write_json_helper_roundtrip(tmp_path: Path) -> None:
    # Guards the fixture helper the layout tests rely on.
    p = write_json(tmp_path / "d" / "x.json", {"a": 1})
    assert json.loads(p.read_text()) == {"a": 1}
    assert nib.load(save(tmp_path / "v.nii.gz", image_array(0))).shape == SHAPE
