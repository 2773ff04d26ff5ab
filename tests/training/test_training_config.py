"""Export and eval share one configuration: same prompts, same pixels, recorded and carried."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

from medvision.backends import ChatRequest, ChatResponse, ImagePart, TextPart
from medvision.cli import eval_cmds as app_mod
from medvision.cli.app import app
from medvision.store import open_dataset
from medvision.training.export import read_trl_rows

runner = CliRunner()
MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"  # a name: `auto` picks the qwen2.5-vl policy


class Recorder:
    """A backend that records what it is sent and answers nothing useful."""

    name = "recorder"

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        self.requests.extend(requests)
        return [ChatResponse(request_id=q.request_id, text="0") for q in requests]

    def close(self) -> None:
        pass


def _eval_requests(
    mini_store: Path, out: Path, monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[Any, Recorder]:
    """Run `medvision eval` with its CLI defaults, answering through a recorder."""
    from medvision.runs.runner import Runner

    recorder = Recorder()
    seen: dict[str, Any] = {}

    def fake_eval(spec: Any, out_dir: Path, overwrite: bool, *args: Any, **kw: Any) -> Any:
        seen["spec"] = spec
        return Runner(spec, out_dir, overwrite=overwrite).run(backend=recorder)

    monkeypatch.setattr(app_mod, "_eval_with_progress", fake_eval)
    result = runner.invoke(app, ["eval", str(mini_store), "-o", str(out), *args])
    assert result.exit_code == 0, result.output
    return seen["spec"], recorder


def _pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as img:
        return np.asarray(img.convert("RGB"))


def _turns(request: ChatRequest) -> list[dict[str, Any]]:
    """A request's turns in TRL's conversational form (images as their PNG bytes)."""
    out = []
    for m in request.messages:
        parts: list[dict[str, Any]] = [
            {"type": "text", "text": p.text} if isinstance(p, TextPart) else {"type": "image"}
            for p in m.content
        ]
        out.append({"role": m.role, "content": parts})
    return out


@pytest.mark.parametrize(
    ("model", "policy", "layout"),
    [
        (MODEL, "qwen2.5-vl", "qwen2.5-vl"),  # text then image
        ("google/medgemma-4b-it", "medgemma", "medgemma"),  # a system turn
        ("lingshu-medical-mllm/Lingshu-7B", "lingshu", "lingshu"),  # image then text
    ],
)
def test_default_export_and_default_eval_show_identical_prompts_and_pixels(
    mini_store: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    model: str,
    policy: str,
    layout: str,
) -> None:
    export = tmp_path / "export"
    result = runner.invoke(
        app,
        ["export", "sft", str(mini_store), "-o", str(export), "--model", model, "--split", "test"],
    )
    assert result.exit_code == 0, result.output
    spec, recorder = _eval_requests(
        mini_store, tmp_path / "run", monkeypatch, "--backend", "hf", "--model", model
    )
    assert (spec.protocol, spec.style.value, spec.image_policy, spec.chat_layout) == (
        "paper-v1",
        "paper-v1",
        policy,
        layout,
    )
    rows = {r["sample_id"]: r for r in read_trl_rows(export, allow_test_split=True)}
    sent = {q.request_id: q for q in recorder.requests}
    common = sorted(set(rows) & set(sent))
    assert len(common) >= 40  # every family, every plane of the mini test split
    for sid in common:
        row, request = rows[sid], sent[sid]
        assert row["prompt"] == _turns(request)  # same turns, same text, same image place
        (png,) = [p.png for m in request.messages for p in m.content if isinstance(p, ImagePart)]
        stored = Path(row["images"][0]).read_bytes()
        assert stored == png  # byte-identical files, so pixel-identical images
        assert np.array_equal(_pixels(stored), _pixels(png))
    manifest = json.loads((export / "export.json").read_text())
    assert manifest["config"] == {
        "protocol": "paper-v1",
        "prompt_style": None,
        "image_policy": "auto",
        "min_pixels": None,
        "max_pixels": None,
        "chat_layout": "auto",
    }
    assert manifest["resolved"]["image_policy"] == policy
    assert manifest["resolved"]["chat_layout"] == layout


def test_eval_uses_a_training_run_folders_configuration_and_warns_on_a_change(
    mini_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medvision.tasks.config import EvalConfig, write_run_config

    run_dir = tmp_path / "qwen2.5-vl-sft"
    trained = EvalConfig(protocol="official", image_policy="qwen2.5-vl", max_pixels=200704)
    write_run_config(run_dir, trained)
    spec, _ = _eval_requests(
        mini_store,
        tmp_path / "a",
        monkeypatch,
        "--backend",
        "hf",
        "--model",
        str(run_dir),
        "--families",
        "tl",
        "--limit",
        "1",
    )
    assert spec.protocol == "official" and spec.image_policy == "qwen2.5-vl:max_pixels=200704"
    assert spec.backend_options["processor_kwargs"] == {"max_pixels": 200704}

    monkeypatch.setattr(app_mod, "console", Console(width=200))
    result = runner.invoke(
        app,
        [
            "eval",
            str(mini_store),
            "-o",
            str(tmp_path / "b"),
            "--backend",
            "hf",
            "--model",
            str(run_dir),
            "--protocol",
            "paper-v1",
            "--families",
            "tl",
            "--limit",
            "1",
        ],
    )
    # The hf backend cannot load this bare folder, but the warning comes first.
    assert "trained with another configuration" in result.output
    assert "protocol: trained with 'official', evaluated with 'paper-v1'" in result.output


def test_train_refuses_a_test_split_export(mini_store: Path, tmp_path: Path) -> None:
    export = tmp_path / "test-export"
    result = runner.invoke(
        app,
        ["export", "sft", str(mini_store), "-o", str(export), "--model", MODEL, "--split", "test"],
    )
    assert result.exit_code == 0 and "refuses it" in result.output
    with pytest.raises(ValueError, match="'test' split"):
        read_trl_rows(export)
    refused = runner.invoke(
        app, ["train", "sft", "--model", MODEL, "--data", str(export), "-o", str(tmp_path / "r")]
    )
    assert refused.exit_code != 0 and "'test' split" in refused.output


def test_ad_decimals_image_root_and_mixing_counts(mini_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "ad"
    result = runner.invoke(
        app,
        [
            "export",
            "sft",
            str(mini_store),
            "-o",
            str(out),
            "--image-policy",
            "native",
            "--families",
            "ad",
            "--ad-decimals",
            "2",
            "--image-root",
            "/data/medvision-export",
        ],
    )
    assert result.exit_code == 0, result.output
    ds = open_dataset(mini_store)
    by_id = {s.sample_id: s for s in ds.samples(split="train")}
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert rows
    for row in rows:
        completion = row["completion"][0]["content"][0]["text"]
        assert re.fullmatch(r"-?\d+\.\d{2}", completion), completion
        assert completion == f"{by_id[row['sample_id']].target[0]:.2f}"
        assert row["images"][0].startswith("/data/medvision-export/images/")

    mixed = tmp_path / "mixed"
    result = runner.invoke(
        app,
        [
            "export",
            "sft",
            str(mini_store),
            "-o",
            str(mixed),
            "--image-policy",
            "native",
            "--temperature",
            "5",
            "--limit",
            "400",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((mixed / "export.json").read_text())["report"]
    rows = [json.loads(line) for line in (mixed / "train.jsonl").read_text().splitlines()]
    unique = {r["sample_id"] for r in rows}
    assert report["n_unique_samples"] == len(unique)
    assert report["n_repeated_rows"] == len(rows) - len(unique) > 0
    assert f"{len(unique)} unique samples" in result.output
