"""Rendering belongs to the protocol: one lossless build serves paper-v1 and official images."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medvision.backends import ChatRequest, ChatResponse, ImagePart, OracleBaseline
from medvision.runs.records import RECORDS_NAME, read_records
from medvision.runs.report import write_reports
from medvision.runs.runner import RUN_NAME, RunError, Runner, RunSpec
from medvision.schema import Plane, Sample, TaskFamily, make_sample_id
from medvision.store import BuildManifest, DatasetWriter, open_dataset
from medvision.volumes import encode_slice

#: (group, label name, expected window (W, L)) of the two CT labels on the shared slice.
LABELS = {1: ("Liver", "liver", (400.0, 40.0)), 2: ("Spine", "vertebrae L1", (1800.0, 400.0))}


def _hu_slice() -> np.ndarray:
    rng = np.random.default_rng(5)
    hu = rng.integers(-1000, 1500, (24, 32)).astype(np.float32)
    hu[10:14, 10:20] = 60.0
    return hu


def _sample(label: int, key: str, hw: tuple[int, int]) -> Sample:
    group, name, _ = LABELS[label]
    return Sample(
        sample_id=make_sample_id("ctset", "c0", label),
        dataset="ctset",
        case_id="c0",
        split="test",
        family=TaskFamily.DETECTION,
        plane=Plane.AXIAL,
        slice_index=3,
        label_id=label,
        label_name=name,
        label_kind="organ",
        label_group=group,
        modality="CT",
        image_description="abdomen CT",
        image_key=key,
        image_hw=hw,
        spacing_mm_rc=(0.8, 0.8),
        target=(0.1, 0.2, 0.5, 0.6),
        unit="relative",
        box_rc=(10, 10, 14, 20),
        task_id="01",
    )


@pytest.fixture(scope="module")
def ct_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two CT samples of different label groups sharing one stored slice."""
    root = tmp_path_factory.mktemp("ct_store")
    stored = encode_slice(_hu_slice())
    samples = [_sample(label, stored.key, (stored.height, stored.width)) for label in LABELS]
    writer = DatasetWriter(root)
    writer.write_case("ctset", "c0", samples, {stored.key: stored})
    writer.finalize(BuildManifest.create(datasets=["ctset"], seed=0))
    return root


class _Capture:
    """Oracle that keeps the grey pixels of every image it was sent, by sample id."""

    name = "capture"

    def __init__(self) -> None:
        self.inner = OracleBaseline()
        self.pixels: dict[str, np.ndarray] = {}

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        for r in requests:
            (image,) = [p for m in r.messages for p in m.content if isinstance(p, ImagePart)]
            with Image.open(io.BytesIO(image.png)) as im:
                assert im.mode == "L"
                self.pixels[r.request_id] = np.array(im)
        return self.inner.generate(requests)

    def close(self) -> None:
        pass


def _expected_window(hu: np.ndarray, width: float, level: float) -> np.ndarray:
    lo, hi = np.float32(level - width / 2), np.float32(level + width / 2)
    return ((np.clip(hu, lo, hi) - lo) / (hi - lo) * 255).astype(np.uint8)


def _expected_minmax(hu: np.ndarray) -> np.ndarray:
    lo, hi = hu.min(), hu.max()
    return ((hu - lo) / (hi - lo) * 255).astype(np.uint8)


def _run(store: Path, out: Path, **kw: object) -> tuple[_Capture, dict[str, object]]:
    spec = RunSpec(dataset_dir=str(store), backend="oracle", limit=0, **kw)  # type: ignore[arg-type]
    backend = _Capture()
    summary = Runner(spec, out).run(backend=backend)
    return backend, summary


def test_one_build_serves_each_protocol_its_rendering(ct_store: Path, tmp_path: Path) -> None:
    hu = _hu_slice()
    paper, paper_summary = _run(ct_store, tmp_path / "paper", protocol="paper-v1")
    official, official_summary = _run(ct_store, tmp_path / "official", protocol="official")
    strict, strict_summary = _run(ct_store, tmp_path / "strict", protocol="strict")
    for label, (_, _, window) in LABELS.items():
        sid = make_sample_id("ctset", "c0", label)
        np.testing.assert_array_equal(paper.pixels[sid], _expected_minmax(hu))
        np.testing.assert_array_equal(official.pixels[sid], _expected_window(hu, *window))
        np.testing.assert_array_equal(strict.pixels[sid], official.pixels[sid])
    # The same stored slice is shown in two windows: the liver's and the spine's.
    liver, spine = (official.pixels[make_sample_id("ctset", "c0", k)] for k in LABELS)
    assert not np.array_equal(liver, spine)
    for summary, rule, folder in (
        (paper_summary, "minmax", "paper"),
        (official_summary, "official", "official"),
        (strict_summary, "official", "strict"),
    ):
        assert summary["run"]["rendering"] == rule  # type: ignore[index]
        assert json.loads((tmp_path / folder / RUN_NAME).read_text())["rendering"] == rule
        records = read_records(tmp_path / folder / RECORDS_NAME)
        assert {r.rendering for r in records} == {rule}
        # The report draws the image the record's model saw.
        ds = open_dataset(ct_store)
        for r in records:
            with Image.open(io.BytesIO(ds.image(r, rule))) as im:
                seen = {"minmax": paper, "official": official}[rule].pixels[r.sample_id]
                np.testing.assert_array_equal(np.array(im), seen)


def test_cached_answers_are_not_reused_across_renderings(ct_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first, _ = _run(ct_store, out, protocol="official")
    assert len(first.pixels) == 2
    again, _ = _run(ct_store, out, protocol="official")
    assert again.pixels == {}  # same rendering: every answer is on record
    hybrid, summary = _run(ct_store, out, protocol="official", rendering="minmax")
    assert len(hybrid.pixels) == 2  # another rendering: asked again, not read from the cache
    assert summary["run"]["rendering"] == "minmax"  # type: ignore[index]
    assert {r.rendering for r in read_records(out / RECORDS_NAME)} == {"minmax"}
    spec = RunSpec(dataset_dir=str(ct_store), backend="oracle", protocol="official")
    other = RunSpec(
        dataset_dir=str(ct_store), backend="oracle", protocol="official", rendering="minmax"
    )
    assert spec.settings_hash() != other.settings_hash()


def test_official_rendering_needs_the_sample_and_unknown_rules_are_refused(
    ct_store: Path, tmp_path: Path
) -> None:
    ds = open_dataset(ct_store)
    key = ds.samples()[0].image_key
    with pytest.raises(ValueError, match="depends on the sample"):
        ds.image(key, "official")
    assert ds.image(key) == ds.image(key, "minmax")
    with pytest.raises(RunError, match="unknown rendering 'windows'"):
        Runner(
            RunSpec(dataset_dir=str(ct_store), backend="oracle", rendering="windows"),
            tmp_path / "bad",
        )


def test_report_draws_each_run_with_its_rendering(ct_store: Path, tmp_path: Path) -> None:
    _run(ct_store, tmp_path / "paper", protocol="paper-v1")
    _run(ct_store, tmp_path / "official", protocol="official")
    write_reports(
        [tmp_path / "paper", tmp_path / "official"],
        tmp_path / "rep",
        bootstrap=0,
        formats=("html",),
    )
    html = (tmp_path / "rep" / "report.html").read_text()
    ds = open_dataset(ct_store)
    for folder, rule in (("paper", "minmax"), ("official", "official")):
        assert f"Image rendering: <b>{rule}</b>" in html
        for r in read_records(tmp_path / folder / RECORDS_NAME):
            assert base64.b64encode(ds.image(r, rule)).decode() in html
    # The official run's two samples share a slice but were shown (and drawn) in two windows.
    official = read_records(tmp_path / "official" / RECORDS_NAME)
    assert len({ds.image(r, "official") for r in official}) == 2
