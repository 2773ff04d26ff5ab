"""Shared fixtures: the mini sources and store are generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from medvision.build.engine import BuildOptions, build_dataset
from medvision.catalog.registry import get_spec
from medvision.mini.generate import generate_mini


@pytest.fixture(scope="session")
def mini_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_mini(tmp_path_factory.mktemp("mini_src"), n_cases=4, seed=0)


@pytest.fixture(scope="session")
def mini_store(mini_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mini_store")
    build_dataset(get_spec("mini"), mini_source, out, BuildOptions(workers=1))
    return out
