"""Runs the official medvision-bm 1.2.1 functions on JSON input (stdin) -> JSON (stdout).

Executed by the official test-only virtual environment (``scripts/official_env.sh``), never
imported by medvision-bench. It only *calls* the official parse, per-sample metric and summary
functions; no official code is copied.

``medvision_bm.utils``' package ``__init__`` (which star-imports HF ``datasets`` helpers) is
skipped; its submodules load from their own files. The official summarizers import one
helper (``_compute_physical_diagonal``, used only for nMAE) from the lmms-eval harness
module, whose package pulls torch, transformers and the dataset package ``medvision_ds``.
That module chain is replaced by a stand-in that holds the harness's own
``_compute_physical_diagonal`` and ``_read_nifti_zooms``: their source is read from the
installed harness file and executed alone (with ``numpy``, ``nibabel``, ``functools``, ``os``),
so nMAE runs the official code. Each T/L and A/D item carries the metadata that code reads:
``image_size_2d`` ``[H, W]`` and the volume's voxel size ``zooms``, written here as the header
of a tiny NIfTI file (``image_file``) per distinct voxel size.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import tempfile
import types
from typing import Any

_HARNESS = "medvision_bm.medvision_lmms_eval.lmms_eval.tasks.medvision.medvision_utils"


def _stub_harness() -> None:
    # ``medvision_bm.utils/__init__`` star-imports data helpers that need HF ``datasets``;
    # load the package without running it (its submodules still load from their files).
    import importlib.util

    spec = importlib.util.find_spec("medvision_bm")
    assert spec is not None and spec.submodule_search_locations is not None
    utils = types.ModuleType("medvision_bm.utils")
    utils.__path__ = [os.path.join(p, "utils") for p in spec.submodule_search_locations]  # type: ignore[attr-defined]
    sys.modules["medvision_bm.utils"] = utils
    parts = _HARNESS.split(".")
    for i in range(2, len(parts) + 1):
        name = ".".join(parts[:i])
        module = types.ModuleType(name)
        module.__path__ = []  # type: ignore[attr-defined]
        sys.modules[name] = module

    harness = sys.modules[_HARNESS]
    path = os.path.join(
        spec.submodule_search_locations[0], *_HARNESS.split(".")[1:]
    )  # .../medvision_bm/medvision_lmms_eval/.../medvision_utils
    with open(path + ".py") as f:
        tree = ast.parse(f.read())
    wanted = {"_read_nifti_zooms", "_compute_physical_diagonal"}
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in wanted]
    assert {n.name for n in funcs} == wanted, "harness helpers not found"
    import functools

    import nibabel
    import numpy

    namespace = harness.__dict__
    namespace.update({"functools": functools, "nib": nibabel, "np": numpy, "os": os})
    exec(compile(ast.Module(body=funcs, type_ignores=[]), path + ".py", "exec"), namespace)


_stub_harness()

import numpy as np  # noqa: E402
from medvision_bm.benchmark import summarize_AD_task as ad  # noqa: E402
from medvision_bm.benchmark import summarize_detection_task as det  # noqa: E402
from medvision_bm.benchmark import summarize_TL_task as tl  # noqa: E402
from medvision_bm.utils import configs  # noqa: E402
from medvision_bm.utils import parse_utils as pu  # noqa: E402

K = {"detection": 4, "tl": 2, "ad": 1}


def _plain(obj: Any) -> Any:
    """numpy -> Python, NaN/inf -> None (so both sides compare the same JSON)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.bool_ | bool):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating | float):
        f = float(obj)
        return f if np.isfinite(f) else None
    return obj


def _capture_locals(func_name: str, call: Any) -> dict[str, Any]:
    """Run ``call`` and return the locals of ``func_name``'s frame when it returns."""
    seen: dict[str, Any] = {}

    def profiler(frame: Any, event: str, arg: Any) -> None:
        if event == "return" and frame.f_code.co_name == func_name:
            seen.update(frame.f_locals)

    sys.setprofile(profiler)
    try:
        call()
    finally:
        sys.setprofile(None)
    return seen


def maps(labels: list[str]) -> dict[str, Any]:
    return {
        "regroup": {n: configs.label_map_regroup.get(n) for n in labels},
        "rename": {n: configs.label_map_rename.get(n) for n in labels},
        "excluded_keys": list(configs.EXCLUDED_KEYS),
        "tumor_lesion_keys": list(configs.TUMOR_LESION_GROUP_KEYS),
        "minimum_group_size": configs.MINIMUM_GROUP_SIZE,
        "ad_near_zero": configs.AD_NEAR_ZERO_GT_THRESHOLD,
    }


def per_sample(item: dict[str, Any], resp: str) -> dict[str, Any]:
    results = {"filtered_resps": [resp], "target": str(item["target"])}
    fam = item["family"]
    if fam == "detection":
        m = pu.cal_metrics_detection_task(results)
        return {
            "success": m["SuccessRate"]["success"],
            "mae": m["avgMAE"]["MAE"],
            "iou": m["avgIoU"]["IoU"],
            "f1": m["F1"]["F1"],
            "precision": m["Precision"]["Precision"],
            "recall": m["Recall"]["Recall"],
        }
    m = (tl.cal_metrics_TL_task if fam == "tl" else ad.cal_metrics_AD_task)(results)
    # parse_outputs' generic cal_metrics must agree with the summarizer's own function.
    generic = pu.cal_metrics(results, "TL" if fam == "tl" else "AD")
    return {
        "success": m["SuccessRate"]["success"],
        "mae": m["avgMAE"]["MAE"],
        "mre": m["avgMRE"]["MRE"],
        "generic_mae": generic["avgMAE"]["MAE"],
        "generic_mre": generic["avgMRE"]["MRE"],
    }


def _doc_metas(items: list[dict[str, Any]], tmp: str) -> list[dict[str, Any] | None]:
    """The ``doc_meta`` the official readers build, with a NIfTI file per voxel size."""
    import nibabel

    files: dict[tuple[float, ...], str] = {}
    metas: list[dict[str, Any] | None] = []
    for it in items:
        if "zooms" not in it:
            metas.append(None)
            continue
        zooms = tuple(float(z) for z in it["zooms"])
        if zooms not in files:
            files[zooms] = os.path.join(tmp, f"vol{len(files)}.nii.gz")
            img = nibabel.Nifti1Image(np.zeros((2, 2, 2), dtype=np.float32), np.eye(4))
            img.header.set_zooms(zooms)
            nibabel.save(img, files[zooms])
        metas.append(
            {
                "image_file": files[zooms],
                "slice_dim": it["plane"],
                "slice_idx": 0,
                "image_size_2d": list(it["image_size_2d"]),
                "metric_type": it.get("metric_type", ""),
                "scale_mode": None,
                "nmae_precomputed": None,
                "taskID": "01",
                "label": it["label"],
                "pixel_size_scale": None,
            }
        )
    return metas


def evaluate(items: list[dict[str, Any]]) -> dict[str, Any]:
    resps = [pu.extract_last_k_nums_within_answer_tag(it["raw"], K[it["family"]]) for it in items]
    out: dict[str, Any] = {
        "parsed": resps,
        "per_sample": [per_sample(it, r) for it, r in zip(items, resps, strict=True)],
    }
    with tempfile.TemporaryDirectory() as tmp:
        metas = _doc_metas(items, tmp)
        # Detection: group by regrouped anatomy @ modality (plane), then anatomy vs T/L.
        det_data = [
            (it["modality"], it["label"], str(it["target"]), [r], None, it["plane"])
            for it, r in zip(items, resps, strict=True)
            if it["family"] == "detection"
        ]
        groups = det.calculate_summary_metrics_per_anatomy_detection_task(
            pu.group_by_anatomy_modality_slice(det_data)
        )
        out["detection_groups"] = groups
        model_dir = os.path.join(tmp, "det_model")
        os.makedirs(model_dir)
        with open(os.path.join(model_dir, configs.SUMMARY_FILENAME_DETECT_METRICS), "w") as f:
            json.dump(pu.convert_numpy_to_python(groups), f)
        det.group_anatomy_vs_tumor_lesion(model_dir)
        name = configs.SUMMARY_FILENAME_GROUPED_ANATOMY_VS_TUMOR_LESION_DETECT_METRICS
        with open(os.path.join(model_dir, name)) as f:
            split = json.load(f)
        out["detection_split"] = {k: v["mean_metrics"] for k, v in split.items()}

        # T/L: group by renamed label @ modality (plane); model line from print_model_summaries.
        tl_data = [
            (it["modality"], it["label"], str(it["target"]), [r], None, it["plane"])
            for it, r in zip(items, resps, strict=True)
            if it["family"] == "tl"
        ]
        grouped = pu.group_by_label_modality_slice(tl_data)
        # Parallel doc_metas, keyed as the official TL reader keys them.
        mods = {"MRI": "MR", "CT": "CT", "ultrasound": "US", "X-ray": "XR", "PET": "PET"}
        for it, meta in zip(items, metas, strict=True):
            if it["family"] != "tl":
                continue
            name = configs.label_map_rename.get(it["label"])
            key = f"{name} @ {mods.get(it['modality'], it['modality'])} ({'SCA'[it['plane']]})"
            if name is not None and key in grouped:
                grouped[key].setdefault("doc_metas", []).append(meta)
        tl_groups = tl.calculate_summary_metrics_per_anatomy_TL_task(grouped)
        out["tl_groups"] = tl_groups
        task_dir = os.path.join(tmp, "tl_task")
        parsed = os.path.join(task_dir, "model", "parsed")
        os.makedirs(parsed)
        with open(os.path.join(parsed, configs.SUMMARY_FILENAME_TL_METRICS), "w") as f:
            json.dump(pu.convert_numpy_to_python(tl_groups), f)
        local = _capture_locals("print_model_summaries", lambda: tl.print_model_summaries(task_dir))
        out["tl_model"] = next(iter(local["model_summaries"].values()))

        # A/D: label = dataset_metricType_metricKey; near-zero GT dropped inside.
        ad_data = [
            {
                "label": f"{it['dataset']}_{it['metric_type']}_{it['metric_key']}",
                "targets": str(it["target"]),
                "responses": [r],
                "doc_meta": meta,
            }
            for it, r, meta in zip(items, resps, metas, strict=True)
            if it["family"] == "ad"
        ]
        ad_labels = ad.calculate_summary_metrics_per_anatomy_AD_task(ad_data)
        out["ad_labels"] = ad_labels
        task_dir = os.path.join(tmp, "ad_task")
        parsed = os.path.join(task_dir, "model", "parsed")
        os.makedirs(parsed)
        with open(os.path.join(parsed, configs.SUMMARY_FILENAME_AD_METRICS), "w") as f:
            json.dump(pu.convert_numpy_to_python(ad_labels), f)
        local = _capture_locals("print_model_summaries", lambda: ad.print_model_summaries(task_dir))
        out["ad_model"] = next(iter(local["model_summaries"].values()))
        out["ad_groups"] = local["group_averages"]
    return out


def parse_outputs_file(path: str, task_type: str) -> dict[str, Any]:
    """The official ``parse_outputs`` on one lmms-eval sample log: per-line metrics and sums."""
    from medvision_bm.benchmark import parse_outputs as po

    with tempfile.TemporaryDirectory() as tmp:
        temp = os.path.join(tmp, "parsed.jsonl")
        sums, count = po._process_jsonl_file(path, temp, task_type, None, False)
        with open(temp) as f:
            lines = [json.loads(line) for line in f]
    per_line = [
        {
            "doc_id": d["doc_id"],
            "parsed": d["filtered_resps"][0],
            "success": d["SuccessRate"]["success"],
            "mae": d["avgMAE"]["MAE"],
            "mre": d.get("avgMRE", {}).get("MRE"),
            "iou": d.get("avgIoU", {}).get("IoU"),
            "box_img_ratio": d.get("box_img_ratio"),
        }
        for d in lines
    ]
    return {"sums": sums, "count": count, "lines": per_line}


def main() -> None:
    request = json.load(sys.stdin)
    # The official functions print progress; keep stdout for the JSON answer only.
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    try:
        op = request["op"]
        if op == "maps":
            answer = maps(request["labels"])
        elif op == "parse_outputs":
            answer = parse_outputs_file(request["path"], request["task_type"])
        else:
            answer = evaluate(request["items"])
    finally:
        sys.stdout = real_stdout
    json.dump(_plain(answer), sys.stdout)


if __name__ == "__main__":
    main()
