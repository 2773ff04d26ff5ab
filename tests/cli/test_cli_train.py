"""``medvision train``: mistakes give one line that names the fix, before any data is read."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from medvision.cli.app import app


@pytest.mark.parametrize("command", ["sft", "grpo"])
def test_qlora_without_cuda_is_one_line_before_loading_data(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medvision.training.sft as sft

    monkeypatch.setattr(sft, "cuda_available", lambda: False)
    read: list[str] = []
    monkeypatch.setattr(sft, "read_trl_rows", lambda path: read.append(path) or [])
    args = ["train", command, "--model", str(tmp_path / "m"), "--data", str(tmp_path / "d")]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o"), "--qlora"])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    text = " ".join(result.output.split())
    assert len(lines) <= 2 and "CUDA" in text and "drop --qlora" in text
    assert read == []  # refused before the data was touched
    assert not (tmp_path / "o").exists()


def test_qlora_check_runs_before_the_data_in_the_python_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medvision.training.sft as sft

    monkeypatch.setattr(sft, "cuda_available", lambda: False)
    settings = sft.SftSettings(
        model="m", data=str(tmp_path / "missing"), output_dir=str(tmp_path / "o"), qlora=True
    )
    with pytest.raises(RuntimeError, match="CUDA"):
        sft.training_inputs(settings, ("prompt", "completion", "images"))
