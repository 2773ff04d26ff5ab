"""SFT export: the evaluation renderer's prompts, images once per key, the three formats."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from medvision.schema import Sample
from medvision.store import open_dataset
from medvision.tasks import get_policy, render_prompt
from medvision.tasks.config import EvalConfig
from medvision.training import export as export_mod
from medvision.training.export import ExportOptions, export_sft, read_trl_rows
from medvision.training.rewards import RewardTarget, score_completion
from medvision.training.targets import TargetError

OFFICIAL_QWEN = EvalConfig(protocol="official", image_policy="qwen2.5-vl")
COT_QWEN = EvalConfig(prompt_style="cot", image_policy="qwen2.5-vl")


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_trl_rows_use_the_eval_prompt_and_images_once(mini_store: Path, tmp_path: Path) -> None:
    report = export_sft(mini_store, tmp_path, ExportOptions(config=OFFICIAL_QWEN, limit=40))
    ds = open_dataset(mini_store)
    by_id = {s.sample_id: s for s in ds.samples(split="train")}
    rows = _rows(tmp_path / "train.jsonl")
    assert len(rows) == report.n_rows == 40
    policy = get_policy("qwen2.5-vl")
    for row in rows:
        s = by_id[row["sample_id"]]
        expected = render_prompt(
            s,
            "official",
            seen_hw=policy.seen_hw(s.image_hw),
            seen_spacing_mm_rc=policy.seen_spacing(s.spacing_mm_rc, s.image_hw),
        )
        text, image = row["prompt"][0]["content"]  # evaluation order: text, then image
        assert text == {"type": "text", "text": expected} and image == {"type": "image"}
        completion = row["completion"][0]["content"][0]["text"]
        assert completion.startswith("<answer> ") and completion.endswith(" </answer>")
        target = RewardTarget.from_json(row["medvision"])
        assert target.target == pytest.approx(s.target)
        assert score_completion(completion, target, format_variant="binary").format == 1.0
        png = tmp_path / row["images"][0]
        assert png.read_bytes() == ds.image(s, "official")  # the protocol's rendering
    pngs = list((tmp_path / "images").rglob("*.png"))
    assert len(pngs) == report.n_images == len({r["images"][0] for r in rows})
    assert all(s.split == "train" for s in (by_id[r["sample_id"]] for r in rows))
    manifest = json.loads((tmp_path / "export.json").read_text())
    assert manifest["report"]["n_rows"] == 40 and manifest["resolved"]["prompt_style"] == "official"
    assert manifest["config"] == OFFICIAL_QWEN.to_dict() and manifest["split"] == "train"
    # Absolute image paths: plain trainers read them from any working directory.
    assert all(Path(r["images"][0]).is_absolute() for r in rows)


def test_llamafactory_and_swift_layouts(mini_store: Path, tmp_path: Path) -> None:
    lf = tmp_path / "lf"
    export_sft(
        mini_store,
        lf,
        ExportOptions(
            format="llamafactory", config=OFFICIAL_QWEN, limit=10, image_position="before"
        ),
    )
    info = json.loads((lf / "dataset_info.json").read_text())["medvision_sft"]
    assert info["formatting"] == "sharegpt" and info["columns"]["images"] == "images"
    for row in _rows(lf / info["file_name"]):
        human, gpt = row["conversations"]
        assert human["from"] == "human" and human["value"].startswith("<image>Task:")
        assert human["value"].count("<image>") == len(row["images"]) == 1
        assert (lf / row["images"][0]).is_file() and gpt["from"] == "gpt"
    sw = tmp_path / "swift"
    export_sft(mini_store, sw, ExportOptions(format="swift", config=COT_QWEN, limit=10))
    for row in _rows(sw / "train.jsonl"):
        user, assistant = row["messages"]
        assert user["content"].endswith("<image>") and "Reasoning steps:" in user["content"]
        assert assistant["content"] == row["solution"] and "<think>" in assistant["content"]


def test_temperature_mixing_and_repeats(mini_store: Path, tmp_path: Path) -> None:
    report = export_sft(
        mini_store, tmp_path, ExportOptions(config=COT_QWEN, temperature=5.0, limit=300)
    )
    ds = open_dataset(mini_store)
    natural = Counter(s.family.value for s in ds.samples(split="train"))
    rows = _rows(tmp_path / "train.jsonl")
    got = Counter(r["family"] for r in rows)
    assert sum(got.values()) == 300 and report.skipped == {}
    for fam, w in report.mixing_weights.items():
        assert abs(got[fam] - 300 * w) <= 1
    # A/D is rarer than 1/3 naturally and gets more than its natural share at T=5
    assert got["ad"] / 300 > natural["ad"] / sum(natural.values())
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids)  # repeats get their own row ids


def test_skipped_samples_are_counted(
    mini_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = export_mod.build_example

    def flaky(sample: Sample, options: ExportOptions, **kw: Any) -> Any:
        if sample.family.value == "tl":
            raise TargetError(f"sample {sample.sample_id}: no landmarks")
        return real(sample, options, **kw)

    monkeypatch.setattr(export_mod, "build_example", flaky)
    report = export_sft(
        mini_store, tmp_path, ExportOptions(config=OFFICIAL_QWEN, families=("tl", "ad"))
    )
    n_tl = len(open_dataset(mini_store).samples(split="train", families=["tl"]))
    assert report.skipped == {"TargetError": n_tl} and report.rows_by_family.keys() == {"ad"}
    assert "no landmarks" in report.skipped_examples[0]


def test_read_trl_rows_refuses_other_formats(mini_store: Path, tmp_path: Path) -> None:
    export_sft(mini_store, tmp_path, ExportOptions(format="swift", config=OFFICIAL_QWEN, limit=2))
    with pytest.raises(ValueError, match="'swift' export"):
        read_trl_rows(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a medvision SFT export"):
        read_trl_rows(tmp_path / "nowhere")


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown export format"):
        ExportOptions(format="alpaca", config=OFFICIAL_QWEN)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="unknown image policy"):
        ExportOptions(config=EvalConfig(image_policy="nope"))
    with pytest.raises(KeyError, match="--model"):
        ExportOptions()  # the default policy is auto: it needs the model to train


def test_cli_export_sft(mini_store: Path, tmp_path: Path) -> None:
    from medvision.cli.app import app

    out = tmp_path / "cli"
    result = CliRunner().invoke(
        app,
        [
            "export",
            "sft",
            str(mini_store),
            "--format",
            "trl",
            "--out",
            str(out),
            "--cot",
            "--image-policy",
            "qwen2.5-vl",
            "--limit",
            "30",
            "--temperature",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "wrote 30 rows" in result.output and "task mixing T=5.0" in result.output
    rows = _rows(out / "train.jsonl")
    assert len(rows) == 30 and all(
        "<think>" in r["completion"][0]["content"][0]["text"] for r in rows
    )
    bad = CliRunner().invoke(
        app,
        ["export", "sft", str(mini_store), "--out", str(out), "--cot", "--prompt-style", "json"],
    )
    assert bad.exit_code != 0


def test_a_layouts_system_prompt_reaches_every_format(mini_store: Path, tmp_path: Path) -> None:
    from medvision.tasks.model_families import get_layout

    system = get_layout("medgemma").system_prompt
    assert system
    model = "google/medgemma-4b-it"
    trl = tmp_path / "trl"
    export_sft(mini_store, trl, ExportOptions(model=model, limit=3))
    for row in _rows(trl / "train.jsonl"):
        assert row["prompt"][0] == {"role": "system", "content": [{"type": "text", "text": system}]}
    lf = tmp_path / "lf"
    export_sft(mini_store, lf, ExportOptions(format="llamafactory", model=model, limit=3))
    info = json.loads((lf / "dataset_info.json").read_text())["medvision_sft"]
    assert info["columns"]["system"] == "system"
    assert all(r["system"] == system for r in _rows(lf / info["file_name"]))
    sw = tmp_path / "swift"
    export_sft(mini_store, sw, ExportOptions(format="swift", model=model, limit=3))
    for row in _rows(sw / "train.jsonl"):
        assert row["messages"][0] == {"role": "system", "content": system}


def test_export_renders_by_its_protocol(mini_store: Path, tmp_path: Path) -> None:
    from medvision.tasks.config import EvalConfig

    ds = open_dataset(mini_store)
    by_id = {s.sample_id: s for s in ds.samples(split="train")}
    paper = EvalConfig(protocol="paper-v1", image_policy="native")
    default = export_sft(mini_store, tmp_path / "a", ExportOptions(limit=12, config=paper))
    official = export_sft(
        mini_store,
        tmp_path / "b",
        ExportOptions(limit=12, config=EvalConfig(protocol="official", image_policy="native")),
    )
    assert default.n_rows == official.n_rows == 12
    rows_a = _rows(tmp_path / "a" / "train.jsonl")
    rows_b = _rows(tmp_path / "b" / "train.jsonl")
    differ = 0
    for row_a, row_b in zip(rows_a, rows_b, strict=True):
        s = by_id[row_a["sample_id"]]
        assert row_b["sample_id"] == s.sample_id
        # Default (paper-v1): min-max, as eval shows; official: mini is MRI/X-ray: percentiles.
        assert row_a["images"][0].endswith(f"{s.image_key}-minmax.png")
        assert row_b["images"][0].endswith(f"{s.image_key}-percentile.png")
        a = Path(row_a["images"][0]).read_bytes()
        b = Path(row_b["images"][0]).read_bytes()
        assert a == ds.image(s) == ds.image(s, "minmax")
        assert b == ds.image(s, "official")
        differ += a != b
    assert differ > 0
