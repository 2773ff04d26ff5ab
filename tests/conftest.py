"""Shared fixtures: the mini sources and store are generated once per test session."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from medvision.builder.engine import BuildOptions, build_dataset
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


@pytest.fixture(scope="session")
def mini_store_precise(mini_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mini store built with the ``precise`` (sub-pixel) T/L ground truth."""
    out = tmp_path_factory.mktemp("mini_store_precise")
    build_dataset(get_spec("mini"), mini_source, out, BuildOptions(workers=1, annotation="precise"))
    return out


@pytest.fixture(scope="session")
def official_python() -> str:
    """Python of the test-only venv holding the official code (built once; fails loudly)."""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        ["bash", str(root / "scripts" / "official_env.sh"), str(root / ".venv-official")],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(
            "cannot build the official environment (scripts/official_env.sh):\n"
            f"{proc.stdout}\n{proc.stderr}"
        )
    return proc.stdout.strip().splitlines()[-1]
