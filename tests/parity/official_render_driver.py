"""Runs the official medvision-bm 1.2.1 image normalisation on JSON input (stdin) -> JSON.

Executed by the official test-only virtual environment (``scripts/official_env.sh``), never
imported by medvision-bench; no official code is copied. ``medvision_bm/sft/sft_utils.py``
imports torch, accelerate and HF ``datasets`` at module level, so its three normalisation
functions (``normalize_img``, ``normalize_ct_img``, ``normalize_general_img``) are read from
the installed file and executed alone with ``numpy``. ``normalize_img`` looks up a doc's
modality and label name through the dataset package (``medvision_ds``); the stand-in
``get_image_info_for_medvision_dataset`` returns the two values the request names, so the
official decision (CT window by ``label_map_regroup`` group, ``Others`` and forced tasks to
percentiles) runs as published. ``medvision_bm.utils.configs`` is imported from its own file
(the package ``__init__`` star-imports HF ``datasets`` helpers and is skipped).

Request: ``{"slice": [[HU...]...], "docs": [{"image_modality", "label_name" (or null),
"dataset_name", "taskID", "taskType"}...]}``. Response: the rendered uint8 slice per doc,
``label_map_regroup`` (label name -> group), ``CT_HU_windows_WL`` (group -> (W, L)) and the
(dataset, task) pairs of ``TASK_LIST_FORCE_STANDARD_IMAGE_NORMALIZATION``.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import json
import os
import sys
import types
from typing import Any

import numpy as np


def _load() -> tuple[dict[str, Any], Any]:
    spec = importlib.util.find_spec("medvision_bm")
    assert spec is not None and spec.submodule_search_locations is not None
    root = spec.submodule_search_locations[0]
    utils = types.ModuleType("medvision_bm.utils")
    utils.__path__ = [os.path.join(root, "utils")]  # type: ignore[attr-defined]
    sys.modules["medvision_bm.utils"] = utils
    from medvision_bm.utils import configs

    path = os.path.join(root, "sft", "sft_utils.py")
    with open(path) as f:
        tree = ast.parse(f.read())
    wanted = {"normalize_img", "normalize_ct_img", "normalize_general_img"}
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in wanted]
    assert {n.name for n in funcs} == wanted, "normalisation functions not found"

    def get_image_info_for_medvision_dataset(doc: dict[str, Any]) -> tuple[str, str | None]:
        return doc["image_modality"], doc["label_name"]

    namespace: dict[str, Any] = {
        "np": np,
        "get_image_info_for_medvision_dataset": get_image_info_for_medvision_dataset,
    }
    exec(compile(ast.Module(body=funcs, type_ignores=[]), path, "exec"), namespace)
    return namespace, configs


def main() -> None:
    request = json.load(sys.stdin)
    namespace, configs = _load()
    image = np.asarray(request["slice"], dtype=np.float32)  # get_fdata().astype("float32")
    with contextlib.redirect_stdout(sys.stderr):  # normalize_img prints "[Info] ..." lines
        rendered = [namespace["normalize_img"](doc, image).tolist() for doc in request["docs"]]
    groups = dict(configs.label_map_regroup)
    windows = {k: list(v) for k, v in configs.CT_HU_windows_WL.items()}
    forced = sorted(
        {
            (t["dataset_name"], t["taskID"])
            for t in configs.TASK_LIST_FORCE_STANDARD_IMAGE_NORMALIZATION
        }
    )
    out = {"rendered": rendered, "groups": groups, "windows": windows, "forced": forced}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
