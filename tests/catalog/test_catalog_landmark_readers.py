"""Ceph (BMP + two annotators' txt) and FeTA (BIDS + biometry masks + ITK transforms) readers,
and a build through the engine of layouts that need conversion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from catalog_layout_fixtures import image_array, make_brats, save
from PIL import Image

from medvision.builder.engine import BuildOptions, build_dataset
from medvision.catalog.layouts import LandmarkError, discover_cases, read_case
from medvision.catalog.registry import get_spec
from medvision.geometry import distance_mm
from medvision.store import open_dataset

H, W = 24, 20  # the real images are 2400 high x 1935 wide


def _ceph_points(seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    pts: list[tuple[int, int]] = []
    while len(pts) < 19:  # distinct 1-based (x, y) pixels
        p = (int(rng.integers(1, W + 1)), int(rng.integers(1, H + 1)))
        if p not in pts:
            pts.append(p)
    return pts


def make_ceph(root: Path, cases: dict[str, str]) -> dict[str, list[tuple[int, int]]]:
    """ISBI 2015 layout; each landmark pixel is drawn with value 100 + k in the BMP."""
    truth: dict[str, list[tuple[int, int]]] = {}
    for n, (case, sub) in enumerate(cases.items()):
        pts = _ceph_points(n)
        img = np.zeros((H, W), dtype=np.uint8)
        for k, (x, y) in enumerate(pts, start=1):
            img[y - 1, x - 1] = 100 + k
        d = root / "RawImage" / sub
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{case}.bmp")
        for who, shift in (("400_senior", 0), ("400_junior", 2)):
            a = root / "AnnotationsByMD" / who
            a.mkdir(parents=True, exist_ok=True)
            lines = [f"{x + shift},{y}" for x, y in pts] + ["1", "2", "3"]  # trailing class lines
            (a / f"{case}.txt").write_text("\n".join(lines) + "\n")
        truth[case] = pts
    return truth


def test_ceph_bmp_and_senior_landmarks_follow_the_official_transform(tmp_path: Path) -> None:
    truth = make_ceph(tmp_path, {"001": "TrainingData", "151": "Test1Data", "301": "Test2Data"})
    task = get_spec("Ceph-Biometrics-400").task("01")
    cases = discover_cases(task, tmp_path)
    assert [c.case_id for c in cases] == ["001", "151", "301"]
    inputs = read_case(task, cases[1])
    assert inputs.image.shape == (1, W, H)
    np.testing.assert_allclose(inputs.image.spacing_mm, (0.1, 0.1, 0.1))
    assert inputs.landmarks is not None and len(inputs.landmarks) == 19
    # Each landmark lands on the pixel that was drawn for it in the BMP.
    for k in range(1, 20):
        i, j, l_ = (int(v) for v in inputs.landmarks[f"P{k}"])
        assert inputs.image.array[i, j, l_] == 100 + k
    # Distances in mm are pixel distances x 0.1 (the transform is a rigid flip + swap).
    (x1, y1), (x2, y2) = truth["151"][0], truth["151"][1]
    want = 0.1 * float(np.hypot(x2 - x1, y2 - y1))
    got = distance_mm(inputs.landmarks["P1"], inputs.landmarks["P2"], inputs.image.spacing_mm)
    assert got == pytest.approx(want)


def test_ceph_mean_annotator_averages_both_files(tmp_path: Path) -> None:
    make_ceph(tmp_path, {"001": "TrainingData"})
    task = get_spec("Ceph-Biometrics-400").task("01")
    mean = task.model_copy(update={"layout": task.layout.model_copy(update={"annotator": "mean"})})
    senior = read_case(task, discover_cases(task, tmp_path)[0]).landmarks
    both = read_case(mean, discover_cases(mean, tmp_path)[0]).landmarks
    assert senior is not None and both is not None
    for k, p in senior.items():
        assert both[k] == pytest.approx((p[0], p[1] + 1.0, p[2]))  # junior is 2 px right


def test_ceph_short_landmark_file_is_a_named_error(tmp_path: Path) -> None:
    make_ceph(tmp_path, {"001": "TrainingData"})
    bad = tmp_path / "AnnotationsByMD" / "400_senior" / "001.txt"
    bad.write_text("1,2\n3,4\n")
    task = get_spec("Ceph-Biometrics-400").task("01")
    with pytest.raises(LandmarkError, match=r"expected 19 'x,y' lines, found 2") as err:
        read_case(task, discover_cases(task, tmp_path)[0])
    assert str(bad) in str(err.value)


def make_feta(root: Path, shift_lps: tuple[float, float, float] | None) -> dict[str, np.ndarray]:
    """FeTA 2.4 BIDS + biometry for two reconstructions; returns the T2w arrays."""
    arrays = {}
    for n, case in enumerate(["sub-001_rec-mial", "sub-002_rec-irtk"]):
        sub = case.split("_")[0]
        arr = image_array(n)
        arrays[case] = arr
        anat = root / "feta_2.4" / sub / "anat"
        save(anat / f"{case}_T2w.nii.gz", arr, np.eye(4))
        save(anat / f"{case}_dseg.nii.gz", (arr > 500).astype(np.uint8), np.eye(4))
        bio = root / "feta_2.4" / "derivatives" / "biometry" / sub / "anat"
        meas = np.zeros(arr.shape, dtype=np.uint8)
        # label k: two voxels; written in the "wrong" order so the reader must sort them.
        for k, (a, b) in enumerate(
            [
                ((2, 1, 3), (2, 8, 3)),
                ((5, 4, 1), (5, 4, 6)),
                ((1, 5, 4), (10, 5, 4)),
                ((0, 6, 2), (11, 6, 2)),
                ((3, 2, 5), (9, 3, 5)),
            ],
            start=1,
        ):
            meas[a] = k
            meas[b] = k
        save(bio / f"{case}_meas.nii.gz", meas, np.eye(4))
        if shift_lps is not None:
            import SimpleITK as sitk

            sitk.WriteTransform(
                sitk.TranslationTransform(3, shift_lps), str(bio / f"{case}_trf.txt")
            )
    return arrays


def test_feta_landmarks_from_measurement_mask_with_official_ordering(tmp_path: Path) -> None:
    make_feta(tmp_path, None)
    task = get_spec("FeTA24").task("02")
    plain = task.model_copy(update={"layout": task.layout.model_copy(update={"realign": False})})
    cases = discover_cases(plain, tmp_path)
    assert [c.case_id for c in cases] == ["sub-001_rec-mial", "sub-002_rec-irtk"]
    marks = read_case(plain, cases[0]).landmarks
    assert marks is not None
    assert marks["P1"] == (2.0, 8.0, 3.0) and marks["P2"] == (2.0, 1.0, 3.0)  # CC: anterior first
    assert marks["P3"] == (5.0, 4.0, 6.0) and marks["P4"] == (
        5.0,
        4.0,
        1.0,
    )  # vermis: superior first
    assert marks["P5"] == (10.0, 5.0, 4.0)  # diameters: right (larger axis 0) first
    assert marks["P9"] == (9.0, 3.0, 5.0)


def test_feta_realignment_applies_the_itk_transform(tmp_path: Path) -> None:
    pytest.importorskip("SimpleITK")
    arrays = make_feta(tmp_path, (1.0, 0.0, 2.0))
    task = get_spec("FeTA24").task("02")
    case = discover_cases(task, tmp_path)[0]
    assert case.extra[0].name == "sub-001_rec-mial_trf.txt"
    image = read_case(task, case).image
    src = arrays["sub-001_rec-mial"]
    # ITK maps output points to input points, in LPS: out(p) = in(p + t). With an identity
    # RAS affine, LPS (x, y, z) = (-i, -j, k), so out[i, j, k] = in[i - 1, j, k + 2].
    np.testing.assert_allclose(image.array[1:, :, :-2], src[:-1, :, 2:], rtol=1e-6)


def test_feta_excluded_cases_and_missing_transform(tmp_path: Path) -> None:
    make_feta(tmp_path, None)
    task = get_spec("FeTA24").task("02")
    gone = task.model_copy(
        update={"layout": task.layout.model_copy(update={"exclude_cases": ["sub-001_rec-mial"]})}
    )
    cases = discover_cases(gone, tmp_path)
    assert [c.case_id for c in cases] == ["sub-002_rec-irtk"]
    assert "expected one transform file" in cases[0].missing[0]


def test_build_engine_reads_layouts_and_skips_bad_cases(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_brats(src)
    make_ceph(src, {"001": "TrainingData", "002": "TrainingData"})
    (src / "BraTS24-GLI" / "BraTS-GLI-00002-000" / "BraTS-GLI-00002-000-seg.nii.gz").unlink()
    (src / "AnnotationsByMD" / "400_senior" / "002.txt").write_text("oops\n")
    brats = get_spec("BraTS24")
    only_gli = brats.model_copy(update={"tasks": [brats.task("03")]})
    m1 = build_dataset(only_gli, src, tmp_path / "b", BuildOptions(max_cases=None))
    assert {s.case_id for s in m1.skipped} == {"BraTS-GLI-00002-000"}
    assert "BraTS-GLI-00002-000-seg.nii.gz not found" in m1.skipped[0].reason
    # 3-voxel boxes fall under the 10 px single-instance floor; lesions still give T/L samples.
    assert m1.counts.by_family.get("tl", 0) > 0
    m2 = build_dataset(get_spec("Ceph-Biometrics-400"), src, tmp_path / "c", BuildOptions())
    assert [(s.case_id, "002.txt" in s.reason) for s in m2.skipped] == [("002", True)]
    samples = list(open_dataset(tmp_path / "c").samples())
    assert len(samples) == 19  # 11 distances + 8 angles of case 001
    assert {s.plane.letter for s in samples} == {"S"}
