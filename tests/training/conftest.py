"""Training fixtures: the tiny local VLM and TRL exports of the mini store (built once)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medvision.tasks.config import EvalConfig
from medvision.training.export import ExportOptions, export_sft

#: The exports the trainer tests use: 1.2.1 (`official`) prompts, native image size.
OFFICIAL_NATIVE = EvalConfig(protocol="official", image_policy="native")


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medvision.testing.tiny_vlm import build_tiny_qwen2_vl

    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("tiny_vlm"), seed=0)


@pytest.fixture(scope="session")
def trl_export(mini_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Non-CoT official-style rows, native image policy (the tiny model resizes itself)."""
    out = tmp_path_factory.mktemp("trl_export")
    export_sft(mini_store, out, ExportOptions(config=OFFICIAL_NATIVE, limit=12, seed=3))
    return out


@pytest.fixture(scope="session")
def cot_export(mini_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CoT rows mixed at T=5 (every family present)."""
    out = tmp_path_factory.mktemp("cot_export")
    export_sft(
        mini_store,
        out,
        ExportOptions(
            config=EvalConfig(prompt_style="cot", image_policy="native"),
            temperature=5.0,
            limit=24,
        ),
    )
    return out
