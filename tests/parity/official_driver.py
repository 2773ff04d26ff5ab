"""Runs the official medvision-bm 1.2.1 functions on JSON input (stdin) -> JSON (stdout).

Executed by the official test-only virtual environment (``scripts/official_env.sh``), never
imported by medvision-bench. It only *calls* the official parse, per-sample metric and summary
functions; no official code is copied.

``medvision_bm.utils``' package ``__init__`` (which star-imports HF ``datasets`` helpers) is
skipped; its submodules load from their own files. The official summarizers import one
helper (``_compute_physical_diagonal``, used only for
nMAE) from the lmms-eval harness module, whose package pulls torch, transformers and the
dataset package ``medvision_ds``. That module chain is replaced by an empty stand-in whose
helper raises, so the nMAE path (which we do not compare) reports NaN and everything else is
the official code path.
"""

from __future__ import annotations

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

    def _compute_physical_diagonal(*args: Any, **kwargs: Any) -> float:
        raise RuntimeError("harness helper not available in the parity driver (nMAE only)")

    sys.modules[_HARNESS]._compute_physical_diagonal = _compute_physical_diagonal  # type: ignore[attr-defined]


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


def evaluate(items: list[dict[str, Any]]) -> dict[str, Any]:
    resps = [pu.extract_last_k_nums_within_answer_tag(it["raw"], K[it["family"]]) for it in items]
    out: dict[str, Any] = {
        "parsed": resps,
        "per_sample": [per_sample(it, r) for it, r in zip(items, resps, strict=True)],
    }
    with tempfile.TemporaryDirectory() as tmp:
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
        tl_groups = tl.calculate_summary_metrics_per_anatomy_TL_task(
            pu.group_by_label_modality_slice(tl_data)
        )
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
            }
            for it, r in zip(items, resps, strict=True)
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
    return out


def main() -> None:
    request = json.load(sys.stdin)
    # The official functions print progress; keep stdout for the JSON answer only.
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    try:
        op = request["op"]
        answer = maps(request["labels"]) if op == "maps" else evaluate(request["items"])
    finally:
        sys.stdout = real_stdout
    json.dump(_plain(answer), sys.stdout)


if __name__ == "__main__":
    main()
