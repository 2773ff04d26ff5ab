"""The 31 MedVision source datasets in the catalog (the paper's 22 plus the nine of official
releases 1.2.0 and 1.3.0): every entry and cross-reference checked against the reference and
the official release notes (task numbering, label vocabulary and parent groups)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medvision.catalog.readers import READERS
from medvision.catalog.registry import catalog
from medvision.cli.app import app

OFFICIAL_22 = {
    "AbdomenAtlas1.0Mini", "AbdomenCT-1K", "ACDC", "AMOS22", "autoPET-III", "BCV15", "BraTS24",
    "CAMUS", "Ceph-Biometrics-400", "CrossMoDA", "FeTA24", "FLARE22", "HNTSMRG24", "ISLES24",
    "KiPA22", "KiTS23", "MSD", "OAIZIB-CM", "SKM-TEA", "ToothFairy2", "TopCoW24",
    "TotalSegmentator",
}  # fmt: skip

# The datasets added by official releases 1.2.0 (eight) and 1.3.0 (MSWAL).
RELEASE_12_13 = {
    "AFIDs", "DEEP-PSMA", "LIDC-IDRI", "LNQ2023", "MAMA-MIA", "PDDCA", "PI-CAI", "VerSe", "MSWAL",
}  # fmt: skip
OFFICIAL_31 = OFFICIAL_22 | RELEASE_12_13

# Parent classes of the official label_map_regroup (official-eval-protocol section 9, paper v1)
# plus the 1.2.1 names used for labels v1 lacked.
PARENT_CLASSES = {
    "Artery", "Vein", "Brain", "Brain Tumor/Lesion", "Heart", "Lung", "Lung Tumor/Lesion", "Liver",
    "Liver Tumor/Lesion", "Kidney", "Kidney Tumor/Lesion", "Pancreas", "Pancreas Tumor/Lesion",
    "Gallbladder", "Spleen", "Adrenal Gland", "Colon", "Colon Tumor/Lesion", "Intestine",
    "Esophagus", "Stomach", "Urinary System", "Uterus", "Prostate", "Head-Neck",
    "Head-Neck Tumor/Lesion", "Hip", "Rib", "Spine", "Knee", "Metastatic Lymph Node",
    "Miscellaneous Tumor/Lesion", "Jawbone", "Tooth", "Others",
}  # fmt: skip
# Groups new in the official 1.2.x/1.3.0 label_map_regroup (reference official-versions 6).
PARENT_CLASSES_12 = {"Breast Tumor/Lesion", "Prostate Tumor/Lesion", "Calculus"}

# Official task numbers per family (reference dataset-construction 2.1 / eval-protocol 9).
OFFICIAL_TASKS: dict[str, tuple[int, int, int]] = {  # (n Box, n T/L, n A/D)
    "AbdomenAtlas1.0Mini": (1, 0, 0), "AbdomenCT-1K": (1, 0, 0), "ACDC": (1, 0, 0),
    "AMOS22": (2, 0, 0), "autoPET-III": (2, 1, 0), "BCV15": (2, 0, 0), "BraTS24": (13, 12, 0),
    "CAMUS": (1, 0, 0), "Ceph-Biometrics-400": (0, 0, 1), "CrossMoDA": (1, 0, 0),
    "FeTA24": (1, 0, 1), "FLARE22": (1, 0, 0), "HNTSMRG24": (2, 4, 0), "ISLES24": (2, 0, 0),
    "KiPA22": (1, 1, 0), "KiTS23": (1, 1, 0), "MSD": (14, 8, 0), "OAIZIB-CM": (1, 0, 0),
    "SKM-TEA": (2, 0, 0), "ToothFairy2": (1, 0, 0), "TopCoW24": (2, 0, 0),
    "TotalSegmentator": (2, 0, 0),
    # Official ConfigurationsList v1.3.0. The A/D tasks of AFIDs, PDDCA and VerSe exist
    # officially (paused plans, measurement definitions unpublished) and are not numbered.
    "AFIDs": (0, 0, 0), "DEEP-PSMA": (2, 2, 0), "LIDC-IDRI": (1, 1, 0), "LNQ2023": (1, 1, 0),
    "MAMA-MIA": (1, 1, 0), "PDDCA": (1, 0, 0), "PI-CAI": (1, 1, 0), "VerSe": (1, 0, 0),
    "MSWAL": (1, 5, 0),
}  # fmt: skip

# Official T/L target labels (reference 2.2): dataset -> {official T/L task: label name}.
TL_TARGETS = {
    "KiTS23": {"01": "kidney tumor"},
    "KiPA22": {"01": "kidney tumor"},
    "autoPET-III": {"01": "tumor"},
    "HNTSMRG24": {"01": "primary gross tumor volume (head & neck)", "04": "metastatic lymph node"},
    "BraTS24": {"01": "non-enhancing brain tumor core", "05": "gross tumor volume of brain",
                "08": "enhancing brain tumor tissue", "12": "peritumoral edema of brain"},
    "MSD": {"03": "enhancing brain tumor", "04": "colon cancer primaries", "05": "liver tumor",
            "06": "liver cancer", "07": "lung cancer", "08": "pancreas cancer"},
    # Release note v1.3.0: labels 3-7, in its listing order [R for the order].
    "MSWAL": {"01": "liver tumor", "02": "kidney tumor", "03": "pancreatic cancer",
              "04": "liver cyst", "05": "kidney cyst"},
    # medvision-bm 1.2.1 label maps (the only candidate names of these datasets).
    "DEEP-PSMA": {"01": "total tumor burden", "02": "total tumor burden"},
    "PI-CAI": {"01": "clinically significant prostate cancer lesion"},
    "LNQ2023": {"01": "mediastinal lymph node"},
    "LIDC-IDRI": {"01": "lung nodule"}, "MAMA-MIA": {"01": "breast tumor"},
}  # fmt: skip


def _numbers(name: str) -> tuple[list[str], list[str], list[str]]:
    spec = catalog()[name]
    box = [
        t.detection.official_task for t in spec.tasks if t.detection and t.detection.official_task
    ]
    tl = [o.task for t in spec.tasks if t.tl for o in t.tl.official]
    ad = [t.official.ad for t in spec.tasks if t.official.ad]
    return sorted(box), sorted(tl), sorted(ad)


def test_the_31_official_datasets_are_in_the_catalog() -> None:
    assert len(OFFICIAL_31) == 31
    assert set(catalog()) == OFFICIAL_31 | {"mini"}


@pytest.mark.parametrize("name", sorted(OFFICIAL_31))
def test_entry_is_complete_and_numbered_like_the_official_tasks(name: str) -> None:
    spec = catalog()[name]
    assert spec.licence and spec.citation and spec.source.urls and spec.homepage
    n_box, n_tl, n_ad = OFFICIAL_TASKS[name]
    box, tl, ad = _numbers(name)
    assert box == [f"{i:02d}" for i in range(1, n_box + 1)]
    assert tl == [f"{i:02d}" for i in range(1, n_tl + 1)]
    assert ad == [f"{i:02d}" for i in range(1, n_ad + 1)]
    for task in spec.tasks:
        assert task.layout.kind in READERS
        groups = PARENT_CLASSES | (PARENT_CLASSES_12 if name in RELEASE_12_13 else set())
        for lab in task.labels:
            assert lab.group in groups, (name, lab.name, lab.group)
            is_tl_group = "Tumor/Lesion" in lab.group or "Metastatic" in lab.group
            assert is_tl_group == (lab.kind in ("tumour", "lesion")), (name, lab.name)


@pytest.mark.parametrize("name", sorted(TL_TARGETS))
def test_tl_targets_are_the_official_labels(name: str) -> None:
    spec = catalog()[name]
    found = {o.task: t.label(o.label).name for t in spec.tasks if t.tl for o in t.tl.official}
    for number, label in TL_TARGETS[name].items():
        assert found[number] == label


def test_ceph_and_feta_measurements_match_the_reference() -> None:
    ceph = catalog()["Ceph-Biometrics-400"].task("01")
    kinds = [m.type for m in ceph.measurements]
    assert kinds.count("distance") == 11 and kinds.count("angle") == 8
    anb = next(m for m in ceph.measurements if m.key == "A-L_2_5-L_2_6")
    assert [ceph.landmarks[p] for p in anb.points][:2] == ["nasion", "subspinale"]
    # The reference's landmark lists (dataset-construction 2.2 / 3.7), verbatim.
    assert (ceph.landmarks["P16"], ceph.landmarks["P17"], ceph.landmarks["P18"]) == (
        "soft-tissue pogonion",
        "PNS",
        "ANS",
    )
    assert {m.plane for m in ceph.measurements} == {"S"}
    feta = catalog()["FeTA24"].task("02")
    assert [(m.key, m.plane) for m in feta.measurements] == [
        ("L-1-2", "S"), ("L-3-4", "S"), ("L-5-6", "A"), ("L-7-8", "A"), ("L-9-10", "C"),
    ]  # fmt: skip


def _official_regroup(python: str) -> dict[str, str]:
    """The official ``label_map_regroup``, read in the official code's own venv."""
    code = (
        "import importlib.util, json, pathlib, sys, medvision_bm;"
        "f = pathlib.Path(medvision_bm.__file__).parent / 'utils' / 'configs.py';"
        "s = importlib.util.spec_from_file_location('c', f);"
        "m = importlib.util.module_from_spec(s); s.loader.exec_module(m);"
        "print(json.dumps(m.label_map_regroup))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    data: dict[str, str] = json.loads(out.stdout)
    return data


def test_label_names_and_groups_equal_the_official_label_map_regroup(official_python: str) -> None:
    regroup = _official_regroup(official_python)
    knee_v1 = {"Knee Bone": "Knee", "Knee Soft Tissue": "Knee"}  # paper-v1 parent class
    for name in sorted(OFFICIAL_22):
        for task in catalog()[name].tasks:
            for lab in task.labels:
                assert lab.name in regroup, (name, lab.name)
                assert lab.group == knee_v1.get(regroup[lab.name], regroup[lab.name]), (
                    name,
                    lab.name,
                )


def test_cli_lists_and_shows_datasets() -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["datasets", "list"], terminal_width=200)
    assert out.exit_code == 0, out.output
    for name in ("KiTS23", "MSD", "CAMUS"):  # short names: the table wraps long ones
        assert name in out.output
    info = runner.invoke(app, ["datasets", "info", "KiTS23"])
    assert info.exit_code == 0, info.output
    data = json.loads(info.output)
    assert data["tasks"][0]["layout"] == {"kind": "kits23", "case_glob": "case_*"}
    assert data["tasks"][0]["tl"]["official"][0]["label"] == 2


def test_docs_catalog_page_is_generated_from_the_yamls() -> None:
    import sys

    script = Path(__file__).resolve().parents[2] / "scripts" / "catalog_table.py"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True)
    assert done.returncode == 0, "docs/datasets.md is stale: run python scripts/catalog_table.py"


@pytest.mark.parametrize("name", sorted(RELEASE_12_13))
def test_release_12_13_entries_name_their_mirror_and_say_what_is_reconstructed(name: str) -> None:
    spec = catalog()[name]
    assert spec.source.mirror == f"YongchengYAO/{name}-Lite"
    assert spec.unverified, name  # every one of them has reconstructed facts, listed
    assert all("[R]" in u or "ours" in u for u in spec.unverified), name


def test_release_12_13_landmark_tasks() -> None:
    afids = catalog()["AFIDs"].task("01")
    assert len(afids.landmarks) == 32 and afids.landmarks["P1"] == "anterior commissure"
    # Six measurements per case, like the official 432 A/D annotations over 72 cases.
    assert len(afids.measurements) == 6
    assert {m.plane for m in afids.measurements} == {"S", "A"}  # official planes
    verse = catalog()["VerSe"].task("02")
    assert len(verse.measurements) == 6  # official: 1,500 annotations over 250 scans
    assert {m.plane for m in verse.measurements} == {"S"}
    assert [t.modality for t in catalog()["DEEP-PSMA"].tasks] == ["PET", "PET"]


def test_cli_lists_31_datasets_plus_mini() -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["datasets", "list"], terminal_width=300)
    assert out.exit_code == 0, out.output
    for name in ("AFIDs", "VerSe", "PDDCA", "MSWAL", "LNQ2023", "PI-CAI"):
        assert name in out.output
