"""vLLM engine options and the hf device reach the backend from `medvision eval`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from medvision.cli.app import app
from medvision.cli.eval_cmds import vllm_engine_options

runner = CliRunner()


def _model(tmp_path: Path) -> Path:
    folder = tmp_path / "qwen-ckpt"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    return folder


def test_vllm_engine_flags_reach_the_backend_options(mini_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["eval", str(mini_store), "-o", str(out), "--backend", "vllm"]
    args += ["--model", str(_model(tmp_path)), "--families", "ad", "--limit", "1"]
    args += ["--tensor-parallel-size", "2", "--max-model-len", "8192"]
    args += ["--gpu-memory-utilization", "0.75", "--limit-mm-per-prompt", "2"]
    args += ["--mm-processor-kwargs", '{"max_pixels": 1003520}', "--min-pixels", "3136"]
    runner.invoke(app, args)  # vLLM is not installed here: the backend itself cannot start
    spec = json.loads((out / "run.json").read_text())["spec"]
    options = spec["backend_options"]
    assert options["tensor_parallel_size"] == 2
    assert options["max_model_len"] == 8192
    assert options["gpu_memory_utilization"] == 0.75
    assert options["limit_images"] == 2
    # The explicit kwargs and the configuration's pixel bounds are merged.
    assert options["mm_processor_kwargs"] == {"max_pixels": 1003520, "min_pixels": 3136}


def test_vllm_flags_are_refused_for_other_backends(mini_store: Path, tmp_path: Path) -> None:
    args = ["eval", str(mini_store), "-o", str(tmp_path / "r"), "--tensor-parallel-size", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "--tensor-parallel-size applies to the vllm backend" in result.output


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tensor_parallel_size": 0}, "--tensor-parallel-size"),
        ({"gpu_memory_utilization": 1.5}, "--gpu-memory-utilization"),
        ({"mm_processor_kwargs": "[1, 2]"}, "JSON object"),
        ({"mm_processor_kwargs": "{oops"}, "not JSON"),
    ],
)
def test_bad_engine_values(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {
        "tensor_parallel_size": None,
        "max_model_len": None,
        "gpu_memory_utilization": None,
        "limit_mm_per_prompt": None,
        "mm_processor_kwargs": None,
    }
    with pytest.raises(typer.BadParameter, match=message):
        vllm_engine_options(**{**base, **kwargs})  # type: ignore[arg-type]


def test_hf_device_defaults_to_auto(mini_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["eval", str(mini_store), "-o", str(out), "--backend", "hf"]
    args += ["--model", str(_model(tmp_path)), "--families", "ad", "--limit", "1"]
    runner.invoke(app, args)  # the folder holds no weights: loading fails after run.json
    options = json.loads((out / "run.json").read_text())["spec"]["backend_options"]
    assert options["device"] == "auto"


def test_help_fits_80_columns() -> None:
    result = runner.invoke(app, ["eval", "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.output
    for flag in ("--prior-statistic", "--structured-outputs", "--requests-per-call"):
        assert flag in result.output
    assert "[default: (1000)]" in result.output  # --limit shows its default
    assert "[default: (auto)]" in result.output  # --device, --dtype
