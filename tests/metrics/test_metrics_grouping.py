"""The official grouping rules (one module): label maps from the catalog, per protocol."""

from __future__ import annotations

import math

from medvision.metrics import get_protocol, summarize_detection, summarize_tl
from medvision.metrics.grouping import catalog_label_maps, classify_detection_group
from medvision.metrics.headline import headline, prepare
from medvision.schema import Record
from record_factory import make_record

# official-versions.md section 6: 1.2.1 splits Knee into Knee Bone (femur x3, tibia) and Knee
# Soft Tissue (4 cartilages, 2 menisci).
KNEE_BONE = {"femur", "left femur", "right femur", "tibia"}
KNEE_SOFT = {
    "femoral cartilage", "medial tibial cartilage", "lateral tibial cartilage",
    "patellar cartilage", "medial meniscus", "lateral meniscus",
}  # fmt: skip


def _det(name: str, n: int, iou_box: tuple[float, ...], **kw: object) -> list[Record]:
    target = (0.2, 0.2, 0.6, 0.6)
    return [
        make_record(
            "detection",
            iou_box,
            target,
            dataset="OAIZIB-CM",
            label_name=name,
            label_group="Knee",
            modality="MRI",
            **kw,
        )
        for _ in range(n)
    ]


def test_catalog_declares_the_knee_split() -> None:
    regroup = catalog_label_maps().regroup_1_2_1
    knee = {name: group for (ds, name), group in regroup.items()}
    assert {n for n, g in knee.items() if g == "Knee Bone"} == KNEE_BONE
    assert {n for n, g in knee.items() if g == "Knee Soft Tissue"} == KNEE_SOFT
    assert set(knee.values()) == {"Knee Bone", "Knee Soft Tissue"}


def test_knee_is_one_group_under_paper_v1_and_two_under_official() -> None:
    recs = _det("femur", 30, (0.2, 0.2, 0.6, 0.6)) + _det("femoral cartilage", 30, (0.0,) * 4)
    v1 = summarize_detection(recs, get_protocol("paper-v1"))
    assert set(v1["groups"]) == {"Knee @ MR (A)"}
    assert v1["anatomy"]["regions"] == ["Knee @ MR (A)"]  # 60 samples: kept
    assert v1["anatomy"]["mean_metrics"]["IoU"] == 0.5
    new = summarize_detection(recs, get_protocol("official"))
    assert set(new["groups"]) == {"Knee Bone @ MR (A)", "Knee Soft Tissue @ MR (A)"}
    assert new["groups"]["Knee Bone @ MR (A)"]["IoU"] == 1.0
    # 30 each: both fall under the N >= 50 floor, so the anatomy line is empty.
    assert new["anatomy"]["regions"] == [] and len(new["excluded"]) == 2
    # The headline numbers take the same groups.
    assert headline(prepare(recs, get_protocol("paper-v1")))["det_anatomy_IoU"] == 0.5
    assert math.isnan(headline(prepare(recs, get_protocol("official")))["det_anatomy_IoU"])


def test_tl_groups_pool_official_synonyms_and_keep_unknown_names() -> None:
    proto = get_protocol("paper-v1")
    recs = [
        make_record("tl", (10.0, 5.0), (10.0, 5.0), dataset="MSD", label_name=name,
                    label_kind="tumour", metric_type="axes")
        for name in ("liver cancer", "liver tumor", "liver cancer")
    ] + [
        make_record("tl", (10.0, 5.0), (20.0, 5.0), dataset="BraTS24",
                    label_name="gross tumor volume of brain", label_kind="tumour",
                    modality="MRI", metric_type="axes"),
        make_record("tl", (10.0, 5.0), (20.0, 5.0), dataset="elsewhere",
                    label_name="liver cancer", label_kind="tumour", metric_type="axes"),
    ]  # fmt: skip
    groups = summarize_tl(recs, proto)["groups"]
    assert {k: m["num_samples"] for k, m in groups.items()} == {
        "liver tumor @ CT (A)": 3,  # MSD liver cancer + liver tumor pooled
        "brain tumor @ MR (A)": 1,
        "liver cancer @ CT (A)": 1,  # a dataset the catalog does not know keeps its name
    }
    assert headline(prepare(recs, proto))["tl_MRE"] == summarize_tl(recs, proto)["model"]["MRE"]


def test_classify_detection_group() -> None:
    proto = get_protocol("official")
    assert classify_detection_group("Others @ CT (A)", 500, False, proto)[0] == "excluded"
    assert classify_detection_group("Liver @ CT (A)", 49, False, proto) == (
        "excluded",
        "num_samples 49 < 50",
    )
    assert classify_detection_group("Liver @ CT (A)", 50, False, proto) == ("anatomy", "")
    assert classify_detection_group("Kidney Tumor/Lesion @ CT (A)", 50, False, proto)[0] == (
        "tumor_lesion"
    )
    assert classify_detection_group("Odd @ CT (A)", 50, True, proto)[0] == "tumor_lesion"


def test_protocol_states_its_label_maps() -> None:
    assert get_protocol("paper-v1").switches()["label_maps"] == "c221615"
    assert get_protocol("official").switches()["label_maps"] == "1.2.1"


def test_metrics_modules_import_no_private_helper_of_another_module() -> None:
    """The grouping rules are public (one module); nobody re-implements them on private names."""
    import ast
    from pathlib import Path

    import medvision.metrics as metrics

    for path in Path(metrics.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("medvision."):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name} imports {private} from {node.module}"
