"""End to end on the mini store: baselines score what they must through prompt -> text -> parse."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from medvision.runs.records import read_records
from medvision.runs.runner import Runner, RunSpec
from medvision.store import open_dataset


def _run(store: Path, out: Path, backend: str, **kw) -> dict:
    spec = RunSpec(dataset_dir=str(store), backend=backend, protocol="paper-v1", **kw)
    return Runner(spec, out).run()


def test_oracle_is_perfect(mini_store: Path, tmp_path: Path) -> None:
    summary = _run(mini_store, tmp_path / "oracle", "oracle")
    det = summary["detection"]["all"]
    assert det["IoU"] == pytest.approx(1.0, abs=1e-6)
    assert det["SuccessRate"] == 1.0
    for fam in ("tl", "ad"):
        line = summary[fam]["model"]
        assert line["MAE"] == pytest.approx(0.0, abs=1e-3)
        assert line["SR"] == 1.0
    records = read_records(tmp_path / "oracle" / "records.jsonl")
    assert all(r.status == "ok" for r in records)
    # Every family, every plane of the test split is there.
    test = open_dataset(mini_store).samples(split="test")
    assert len(records) == len(test)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ix0 = np.maximum(a[:, 0], b[:, 0])
    iy0 = np.maximum(a[:, 1], b[:, 1])
    ix1 = np.minimum(a[:, 2], b[:, 2])
    iy1 = np.minimum(a[:, 3], b[:, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def test_random_matches_an_independent_simulation(mini_store: Path, tmp_path: Path) -> None:
    _run(mini_store, tmp_path / "random", "random", families=("detection",), seed=3)
    records = read_records(tmp_path / "random" / "records.jsonl")
    rng = np.random.default_rng(0)
    expected, got = [], []
    for r in records:
        h, w = r.image_hw
        n = 400
        bw = rng.integers(1, w + 1, n)
        bh = rng.integers(1, h + 1, n)
        x = rng.integers(0, w - bw + 1)
        y = rng.integers(0, h - bh + 1)
        boxes = np.stack([x / w, y / h, (x + bw) / w, (y + bh) / h], axis=1)
        expected.append(_iou(boxes, np.tile(np.array(r.target), (n, 1))).mean())
        got.append(r.metrics["iou"])
    # One draw per sample: the mean IoU over samples matches the expectation within noise.
    se = np.std(got) / math.sqrt(len(got))
    assert abs(np.mean(got) - np.mean(expected)) < 4 * se + 0.01
    assert 0.02 < np.mean(got) < 0.5


def test_prior_answers_the_train_mean(mini_store: Path, tmp_path: Path) -> None:
    summary = _run(mini_store, tmp_path / "prior", "prior", families=("tl", "ad"))
    ds = open_dataset(mini_store)
    sums: dict[tuple, list] = defaultdict(list)
    for s in ds.samples(split="train"):
        sums[(s.family.value, s.label_name, s.metric_key)].append(s.target)
    means = {k: np.mean(np.array(v), axis=0) for k, v in sums.items()}
    errs = defaultdict(list)
    for s in ds.samples(split="test"):
        if s.family.value == "detection":
            continue
        m = means[(s.family.value, s.label_name, s.metric_key)]
        errs[s.family.value].append(float(np.mean(np.abs(m - np.array(s.target)))))
    for fam in ("tl", "ad"):
        assert summary[fam]["model"]["MAE"] == pytest.approx(np.mean(errs[fam]), rel=2e-3)
    # And a prior knows more than chance but less than the oracle.
    assert 0.05 < summary["tl"]["model"]["MRE"] < 1.0


def test_prior_can_answer_the_train_median(mini_store: Path, tmp_path: Path) -> None:
    summary = _run(
        mini_store, tmp_path / "prior", "prior", families=("tl",),
        backend_options={"statistic": "median"},
    )  # fmt: skip
    ds = open_dataset(mini_store)
    train = np.array([s.target for s in ds.samples(split="train") if s.family.value == "tl"])
    med = np.median(train, axis=0)
    test = [s for s in ds.samples(split="test") if s.family.value == "tl"]
    expected = np.mean([np.mean(np.abs(med - np.array(s.target))) for s in test])
    assert summary["tl"]["model"]["MAE"] == pytest.approx(expected, rel=2e-3)


def test_random_boxes_cached_before_the_minimum_side_are_not_reused() -> None:
    """Answers of `random` are cached by settings hash; 1.2.1's 3 px minimum side must be in it.

    Before it was, a random run under `official` resumed in an old folder reused boxes drawn
    with 1 px sides (the paper code's rule), so its numbers mixed the two rules.
    """
    from dataclasses import asdict

    from medvision.runs.spec import RANDOM_MIN_SIDE, _hash

    def legacy(spec: RunSpec) -> str:  # the hash as computed before the minimum side was in it
        settings = {
            "generation": asdict(spec.generation),
            "backend": spec.backend,
            "image_policy": spec.image_policy,
            "backend_options": dict(spec.backend_options),
            "seed": spec.seed,
        }
        if spec.rendering_rule != "minmax":
            settings["rendering"] = spec.rendering_rule
        return _hash(settings)

    paper = RunSpec(dataset_dir="ds", backend="random", protocol="paper-v1")
    assert RANDOM_MIN_SIDE["paper-v1"] == 1
    assert paper.settings_hash() == legacy(paper)  # 1 px boxes: older caches stay valid
    for protocol in ("official", "strict"):
        spec = RunSpec(dataset_dir="ds", backend="random", protocol=protocol)
        assert RANDOM_MIN_SIDE[protocol] == 3
        assert spec.settings_hash() != legacy(spec), protocol
    # Other backends keep their hashes.
    oracle = RunSpec(dataset_dir="ds", backend="oracle", protocol="official")
    assert oracle.settings_hash() == legacy(oracle)
