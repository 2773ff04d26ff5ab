"""The ``official`` rendering equals medvision-bm 1.2.1's own normalisation, run from its wheel.

``official_render_driver.py`` runs the published ``normalize_img`` (CT window by
``label_map_regroup`` group, ``Others`` / unlabelled / KiPA22 task 01 / non-CT to percentiles)
in the test-only venv; here the same synthetic CT slice is rendered by
:func:`medvision.volumes.render_slice` and compared pixel for pixel, and our window choice is
compared with the official one for every label name the official regroup table knows and for
every CT label of our catalog (with our own paper-v1 groups, not the official ones).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from tests.parity.driver_call import call_driver

from medvision.catalog.registry import catalog
from medvision.store.reader import normalisation_of
from medvision.volumes import CT_WINDOWS, official_ct_window, render_slice

DRIVER = Path(__file__).with_name("official_render_driver.py")


def _hu_slice() -> np.ndarray:
    """48 x 64 CT-like slice in HU: air, fat, soft tissue, lung, bone, plus noise."""
    rng = np.random.default_rng(11)
    rows, cols = np.mgrid[0:48, 0:64]
    hu = np.full((48, 64), -1000.0)
    hu[((rows - 24) / 20) ** 2 + ((cols - 32) / 28) ** 2 <= 1] = 40.0
    hu[((rows - 20) / 9) ** 2 + ((cols - 18) / 7) ** 2 <= 1] = -850.0
    hu[((rows - 20) / 9) ** 2 + ((cols - 46) / 7) ** 2 <= 1] = -850.0
    hu[(rows - 36) ** 2 + (cols - 32) ** 2 <= 16] = 900.0
    hu[4:8, 20:44] = -100.0
    return np.rint(hu + rng.normal(0, 30, hu.shape)).astype(np.float32)


#: (official doc, our render_slice keyword arguments) pairs covering every branch.
CASES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"image_modality": "CT", "label_name": "liver"}, {"label_group": "Liver"}),
    ({"image_modality": "CT", "label_name": "left lung"}, {"label_group": "Lung"}),
    ({"image_modality": "CT", "label_name": "brain"}, {"label_group": "Brain"}),
    ({"image_modality": "CT", "label_name": "vertebra L1"}, {"label_group": "Spine"}),
    (
        {"image_modality": "CT", "label_name": "right femur"},
        {"label_group": "Knee", "label_name": "right femur"},
    ),
    ({"image_modality": "CT", "label_name": "left scapula"}, {"label_group": "Others"}),
    ({"image_modality": "CT", "label_name": None}, {"label_group": "", "has_label": False}),
    (
        {
            "image_modality": "CT",
            "label_name": "kidney",
            "dataset_name": "KiPA22",
            "taskID": "01",
            "taskType": "Box-Size",
        },
        {"label_group": "Kidney", "dataset": "KiPA22", "task_id": "01"},
    ),
    ({"image_modality": "MRI", "label_name": "liver"}, {"label_group": "Liver"}),
    ({"image_modality": "X-ray", "label_name": None}, {"label_group": "", "has_label": False}),
]


@pytest.fixture(scope="module")
def official(official_python: str) -> dict[str, Any]:
    docs = [
        {"dataset_name": "X", "taskID": "01", "taskType": "Box-Size", **doc} for doc, _ in CASES
    ]
    request = {"slice": _hu_slice().tolist(), "docs": docs}
    out: dict[str, Any] = call_driver(official_python, request, DRIVER)
    return out


def _official_window(group: str, windows: dict[str, list[float]]) -> tuple[float, float] | None:
    """The official choice for a CT label of ``group``: (W, L), or None for percentiles."""
    if group.lower() == "others":
        return None
    w, lvl = windows[group]
    return (float(w), float(lvl))


def _ours(group: str, name: str = "") -> tuple[float, float] | None:
    window = official_ct_window(group, name)
    return None if window is None else CT_WINDOWS[window]


def test_rendered_pixels_equal_the_official_normalisation(official: dict[str, Any]) -> None:
    hu = _hu_slice()
    for (doc, kwargs), theirs in zip(CASES, official["rendered"], strict=True):
        kwargs = {"label_name": doc["label_name"] or "", **kwargs}
        ours = render_slice(hu, "official", modality=doc["image_modality"], **kwargs)
        np.testing.assert_array_equal(ours, np.asarray(theirs, dtype=np.uint8), err_msg=str(doc))


def test_window_of_every_official_group_and_label(official: dict[str, Any]) -> None:
    windows, regroup = official["windows"], official["groups"]
    for group in windows:
        assert _ours(group) == _official_window(group, windows), group
    # Every 1.2.1 label name, with its 1.2.1 group.
    for name, group in regroup.items():
        assert _ours(group, name) == _official_window(group, windows), (name, group)
    # The paper-v1 group "Knee" (split by 1.2.1) is resolved by the label name.
    knee = {n: g for n, g in regroup.items() if g in ("Knee Bone", "Knee Soft Tissue")}
    assert len(knee) >= 10
    for name, group in knee.items():
        assert _ours("Knee", name) == _official_window(group, windows), name


def test_our_catalog_ct_labels_get_the_official_window(official: dict[str, Any]) -> None:
    windows, regroup = official["windows"], official["groups"]
    checked, unknown = 0, []
    for spec_name, spec in catalog().items():
        for task in spec.tasks:
            if task.modality != "CT":
                continue
            for label in task.labels:
                if label.name not in regroup:
                    unknown.append(label.name)
                    continue
                want = _official_window(regroup[label.name], windows)
                if [spec_name, task.id] in official["forced"]:
                    want = None  # KiPA22 task 01: percentiles although CT
                # Through the reader's own path (catalog 1.2.1 class, then the window).
                subject = SimpleNamespace(
                    image_key="",
                    dataset=spec_name,
                    modality="CT",
                    label_group=label.group,
                    label_name=label.name,
                    label_kind=label.kind,
                    task_id=task.id,
                )
                norm = normalisation_of(subject, "official")
                ours = None if norm.window_name is None else CT_WINDOWS[norm.window_name]
                assert ours == want, (spec_name, label.name)
                checked += 1
    assert checked >= 200 and not unknown, (checked, unknown)
    assert ["KiPA22", "01"] in official["forced"]
