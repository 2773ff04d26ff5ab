"""`medvision eval` takes image policy, chat layout and token limit from the model's family."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medvision.cli.app import app
from medvision.cli.eval_setup import model_settings
from medvision.runs.records import read_records
from medvision.tasks.model_families import ModelFamilyError, family_for_model_dir
from medvision.testing.fake_openai import FakeOpenAIServer

runner = CliRunner()


def _eval(store: Path, out: Path, url: str, model: str, *extra: str) -> object:
    args = ["eval", str(store), "-o", str(out), "--backend", "openai", "--model", model]
    args += ["--base-url", url, "--families", "tl", "--limit", "1", *extra]
    return runner.invoke(app, args)


def test_unknown_model_stops_before_the_first_request(mini_store: Path, tmp_path: Path) -> None:
    with FakeOpenAIServer(model="my-own-vlm", answer="1, 2") as server:
        result = _eval(mini_store, tmp_path / "run", server.url, "my-own-vlm")
        sent = len(server.requests)
    assert result.exit_code != 0  # type: ignore[attr-defined]
    exc = result.exception  # type: ignore[attr-defined]
    assert isinstance(exc, ModelFamilyError)
    message = str(exc)
    assert "\n" not in message and "--image-policy" in message
    assert sent == 0
    assert not (tmp_path / "run" / "records.jsonl").exists()


def test_family_row_sets_layout_policy_and_tokens(mini_store: Path, tmp_path: Path) -> None:
    # A served MedGemma: system turn, [text, image], 896 x 896 policy, 2048 tokens (paper-v1).
    model = "google/medgemma-4b-it"
    with FakeOpenAIServer(model=model, answer="12.5, 8.0") as server:
        result = _eval(mini_store, tmp_path / "run", server.url, model)
        bodies = [r.body for r in server.requests]
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert bodies
    for body in bodies:
        system, user = body["messages"]
        assert system == {"role": "system", "content": "You are an expert radiologist."}
        assert [p["type"] for p in user["content"]] == ["text", "image_url"]
        assert body["max_tokens"] == 2048
    records = read_records(tmp_path / "run" / "records.jsonl")
    assert {r.seen_hw for r in records} == {(896, 896)}
    manifest = json.loads((tmp_path / "run" / "run.json").read_text())
    assert manifest["spec"]["chat_layout"] == "medgemma"
    assert manifest["spec"]["image_policy"] == "medgemma"


def test_lingshu_puts_the_image_first(mini_store: Path, tmp_path: Path) -> None:
    model = "lingshu-medical-mllm/Lingshu-7B"
    with FakeOpenAIServer(model=model, answer="12.5, 8.0") as server:
        result = _eval(mini_store, tmp_path / "run", server.url, model, "--protocol", "official")
        bodies = [r.body for r in server.requests]
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    (user,) = bodies[0]["messages"]
    assert [p["type"] for p in user["content"]] == ["image_url", "text"]
    assert bodies[0]["max_tokens"] == 4096  # official: 1.2.1's limit for every model


def test_auto_reads_model_type_of_a_local_folder(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint-1200"  # a name that says nothing
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    settings = model_settings(
        "hf", str(folder), "paper-v1", image_policy=None, chat_layout=None, max_new_tokens=None
    )
    assert settings.image_policy == "qwen2.5-vl"
    assert settings.chat_layout.name == "qwen2.5-vl"
    # A LoRA / training-run folder names its base model in adapter_config.json.
    run = tmp_path / "sft-run"
    run.mkdir()
    (run / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "google/medgemma-4b-it"})
    )
    family = family_for_model_dir(run)
    assert family is not None and family.name == "medgemma"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFamilyError, match="--image-policy"):
        model_settings(
            "vllm",
            str(tmp_path / "empty"),
            "paper-v1",
            image_policy=None,
            chat_layout=None,
            max_new_tokens=None,
        )


def test_baselines_keep_native_and_generic() -> None:
    settings = model_settings(
        "oracle", "", "paper-v1", image_policy=None, chat_layout=None, max_new_tokens=None
    )
    assert (settings.image_policy, settings.chat_layout.name) == ("native", "generic")
    assert settings.max_new_tokens == 1024


def test_lingshu_leaves_decoding_to_the_checkpoint_under_paper_v1_only() -> None:
    kw: dict[str, object] = {"image_policy": None, "chat_layout": None, "max_new_tokens": None}
    v1 = model_settings("hf", "lingshu-medical-mllm/Lingshu-32B", "paper-v1", **kw)  # type: ignore[arg-type]
    assert v1.model_generation_config and v1.max_new_tokens == 1024
    off = model_settings("hf", "lingshu-medical-mllm/Lingshu-32B", "official", **kw)  # type: ignore[arg-type]
    assert not off.model_generation_config and off.max_new_tokens == 4096
