"""A resumed run notices a store rebuilt from other data at the same path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from medvision.builder.engine import BuildOptions, build_dataset
from medvision.catalog.registry import get_spec
from medvision.mini.generate import generate_mini
from medvision.runs.integrity import stale_records
from medvision.runs.records import RECORDS_NAME, read_records
from medvision.runs.runner import RUN_NAME, RunError, Runner, RunSpec


def _build(tmp: Path, store: Path, seed: int) -> None:
    src = generate_mini(tmp / f"src{seed}", n_cases=3, seed=seed)
    if store.exists():
        shutil.rmtree(store)
    build_dataset(get_spec("mini"), src, store, BuildOptions(workers=1))


def test_resume_against_a_rebuilt_store_refuses_or_rescores(tmp_path: Path) -> None:
    store = tmp_path / "store"
    out = tmp_path / "run"
    spec = RunSpec(dataset_dir=str(store), backend="oracle", protocol="official", limit=4)
    _build(tmp_path, store, seed=0)
    first = Runner(spec, out).run()
    old = read_records(out / RECORDS_NAME)
    assert json.loads((out / RUN_NAME).read_text())["selection_digest"]

    _build(tmp_path, store, seed=1)  # same path, other sources
    with pytest.raises(RunError, match=r"changed since this run started|holds a different run"):
        Runner(spec, out).run()
    assert read_records(out / RECORDS_NAME) == old  # nothing touched

    runner = Runner(spec, out, rescore_changed=True)
    summary = runner.run()
    now = read_records(out / RECORDS_NAME)
    current = runner.samples()
    assert not stale_records(now, current)  # every record describes the store as it is
    assert sorted(r.sample_id for r in now) == sorted(s.sample_id for s in current)
    assert summary["num_records"] == len(current)
    assert stale_records(old, current)  # the old records did not
    # Oracle answers are exact, so the re-scored run is perfect again (no stale target).
    assert summary["detection"]["all"]["IoU"] == pytest.approx(1.0)
    assert first["detection"]["all"]["IoU"] == pytest.approx(1.0)


def test_summary_counts_only_the_current_selection(mini_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    wide = RunSpec(dataset_dir=str(mini_store), backend="oracle", protocol="official", limit=5)
    Runner(wide, out).run()
    narrow = RunSpec(**{**wide.__dict__, "limit": 2})
    runner = Runner(narrow, out)
    summary = runner.run()
    assert summary["num_records"] == len(runner.samples())
