"""LIDC-IDRI reader: a CT series written slice by slice with SimpleITK and a reader XML written
from the documented LidcReadMessage format; the consensus mask is checked voxel by voxel
against the HU values of the outlined pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import test_catalog_dicom as dcm  # the series writer; a module import collects no tests

from medvision.catalog.layouts import discover_cases, read_case
from medvision.catalog.readers.base import ReaderError
from medvision.catalog.spec import TaskSpec

sitk = pytest.importorskip("SimpleITK")  # the [itk] extra; installed in the test env

NS = "http://www.nih.gov"
Rect = tuple[int, int, int, int]  # col0, row0, col1, row1 (inclusive)


def _task() -> TaskSpec:
    return TaskSpec.model_validate(
        {
            "id": "01",
            "modality": "CT",
            "image_description": "chest CT",
            "image_folder": "LIDC-IDRI",
            "layout": {"kind": "lidc"},
            "labels": [
                {"id": 1, "name": "lung nodule", "kind": "lesion", "group": "Lung Tumor/Lesion"}
            ],
            "detection": {"labels": [1]},
        }
    )


def _uids(files: list[Path]) -> list[str]:
    reader = sitk.ImageFileReader()
    out = []
    for f in files:
        reader.SetFileName(str(f))
        reader.ReadImageInformation()
        out.append(reader.GetMetaData("0008|0018").strip())
    return out


def _roi(uid: str, z: float, rect: Rect, inclusion: bool = True) -> str:
    c0, r0, c1, r1 = rect
    corners = [(c0, r0), (c1, r0), (c1, r1), (c0, r1)]
    edges = "".join(
        f"<edgeMap><xCoord>{c}</xCoord><yCoord>{r}</yCoord></edgeMap>" for c, r in corners
    )
    uid_tag = f"<imageSOP_UID>{uid}</imageSOP_UID>" if uid else ""
    return (
        f"<roi><imageZposition>{z:.6f}</imageZposition>{uid_tag}"
        f"<inclusion>{'TRUE' if inclusion else 'FALSE'}</inclusion>{edges}</roi>"
    )


def _session(nodules: list[str]) -> str:
    body = "".join(
        f"<unblindedReadNodule><noduleID>N{i}</noduleID>{rois}</unblindedReadNodule>"
        for i, rois in enumerate(nodules)
    )
    return f"<readingSession>{body}</readingSession>"


def _z(k: int) -> float:
    return dcm.ORIGIN_LPS[2] + k * dcm.SPACING[2]


A, B, D = (2, 1, 5, 4), (3, 2, 6, 5), (2, 1, 4, 3)  # three readers outline one nodule
C = (7, 6, 8, 7)  # a fourth reader's separate nodule


def make_lidc(root: Path) -> tuple[np.ndarray, Path]:
    """One patient with a CT series and its XML; returns the HU volume and the series folder."""
    hu = (np.arange(np.prod(dcm.SHAPE)).reshape(dcm.SHAPE) * 2 - 1024).astype(np.int16)
    series = root / "LIDC-IDRI" / "LIDC-IDRI-0001" / "1.2.3" / "1.2.3.4"
    files = dcm.write_series(series, hu)
    uid = _uids(files)
    xml = (
        f'<?xml version="1.0"?><LidcReadMessage xmlns="{NS}"><ResponseHeader/>'
        + _session(
            [
                _roi(uid[2], _z(2), A)
                + _roi(uid[3], _z(3), A)
                + _roi(uid[3], _z(3), (3, 2, 4, 3), inclusion=False)
            ]
        )
        + _session([_roi(uid[2], _z(2), B)])
        + _session([_roi(uid[2], _z(2), D)])
        # Reader 4: a nodule matched by z only (no UID), and a < 3 mm nodule (one point).
        + _session(
            [
                _roi("", _z(4), C),
                f"<roi><imageSOP_UID>{uid[1]}</imageSOP_UID><inclusion>TRUE</inclusion>"
                "<edgeMap><xCoord>1</xCoord><yCoord>1</yCoord></edgeMap></roi>",
            ]
        )
        + "</LidcReadMessage>"
    )
    (series / "069.xml").write_text(xml)
    return hu, series


def _count(rects: list[Rect]) -> np.ndarray:
    """How many of ``rects`` hold each (column, row) pixel of a slice."""
    n = np.zeros(dcm.SHAPE[:2], dtype=int)
    for c0, r0, c1, r1 in rects:
        n[c0 : c1 + 1, r0 : r1 + 1] += 1
    return n


def test_lidc_consensus_mask_holds_exactly_the_agreed_pixels(tmp_path: Path) -> None:
    hu, _ = make_lidc(tmp_path)
    task = _task()
    (case,) = discover_cases(task, tmp_path)
    assert case.case_id == "LIDC-IDRI-0001"
    inputs = read_case(task, case)
    assert inputs.labels is not None
    # Expected, in source (column, row, slice) pixels: slice 2 = pixels held by >= 1.5 of
    # the three outlines A, B, D; slice 3 = A alone in its group of three -> nothing;
    # slice 4 = C, alone in its group of one -> all of it; the one-point nodule -> nothing.
    want = np.zeros(dcm.SHAPE, dtype=bool)
    want[:, :, 2] = _count([A, B, D]) >= 2
    want[:, :, 4] = _count([C]) >= 1
    got_values = np.sort(inputs.image.array[inputs.labels.array == 1])
    np.testing.assert_array_equal(got_values, np.sort(hu[want].astype(np.float32)))
    assert int(inputs.labels.array.sum()) == int(want.sum())


def test_lidc_single_reader_keeps_its_outline_minus_holes(tmp_path: Path) -> None:
    hu, _ = make_lidc(tmp_path)
    task = _task()
    low = task.model_copy(update={"layout": task.layout.model_copy(update={"consensus": 0.25})})
    inputs = read_case(low, discover_cases(low, tmp_path)[0])
    assert inputs.labels is not None
    want = np.zeros(dcm.SHAPE, dtype=bool)
    want[:, :, 2] = _count([A, B, D]) >= 1
    want[:, :, 3] = _count([A]) >= 1
    want[3:5, 2:4, 3] = False  # A's exclusion polygon on slice 3
    want[:, :, 4] = _count([C]) >= 1
    got_values = np.sort(inputs.image.array[inputs.labels.array == 1])
    np.testing.assert_array_equal(got_values, np.sort(hu[want].astype(np.float32)))


def test_lidc_discovery_skips_radiographs_and_numbers_two_ct_series(tmp_path: Path) -> None:
    base = tmp_path / "LIDC-IDRI"
    for name, root_tag in (
        ("LIDC-IDRI-0002/s/ct1", "LidcReadMessage"),
        ("LIDC-IDRI-0002/s/ct2", "LidcReadMessage"),
        ("LIDC-IDRI-0003/s/cr", "IdriReadMessage"),
    ):
        (base / name).mkdir(parents=True)
        (base / name / "001.xml").write_text(f'<{root_tag} xmlns="{NS}"/>')
    cases = discover_cases(_task(), tmp_path)
    assert [c.case_id for c in cases] == ["LIDC-IDRI-0002_1", "LIDC-IDRI-0002_2"]


def test_lidc_roi_on_no_slice_is_a_named_error(tmp_path: Path) -> None:
    _, series = make_lidc(tmp_path)
    xml = series / "069.xml"
    text = xml.read_text()
    xml.write_text(text.replace(f"{_z(4):.6f}", "999.000000"))
    with pytest.raises(ReaderError, match="matches no slice"):
        read_case(_task(), discover_cases(_task(), tmp_path)[0])
    xml.write_text(text.replace("<xCoord>7</xCoord>", "<xCoord>seven</xCoord>", 1))
    with pytest.raises(ReaderError, match="malformed"):
        read_case(_task(), discover_cases(_task(), tmp_path)[0])
