"""Records a researcher can audit: the prompt text, why generation stopped, what was used."""

from __future__ import annotations

import json
from pathlib import Path

from medvision.backends import GenerationConfig
from medvision.backends.hf import finish_reason
from medvision.runs.records import RECORDS_NAME, read_records
from medvision.runs.runner import RUN_NAME, Runner, RunSpec
from medvision.store import open_dataset
from medvision.tasks import get_policy, prompt_hash, render_prompt
from medvision.testing.fake_openai import FakeOpenAIServer


def _spec(store: Path, **kw: object) -> RunSpec:
    base: dict[str, object] = dict(
        dataset_dir=str(store), backend="oracle", protocol="official", limit=2
    )
    base.update(kw)
    return RunSpec(**base)  # type: ignore[arg-type]


def test_records_keep_the_prompt_text_unless_told_not_to(mini_store: Path, tmp_path: Path) -> None:
    Runner(_spec(mini_store), tmp_path / "on").run()
    records = read_records(tmp_path / "on" / RECORDS_NAME)
    samples = {s.sample_id: s for s in open_dataset(mini_store).samples(split="test")}
    native = get_policy("native")
    assert records
    for r in records:
        s = samples[r.sample_id]
        expected = render_prompt(
            s,
            "official",
            seen_hw=native.seen_hw(s.image_hw),
            seen_spacing_mm_rc=native.seen_spacing(s.spacing_mm_rc, s.image_hw),
        )
        assert r.prompt == expected and prompt_hash(expected) == r.prompt_hash

    Runner(_spec(mini_store, log_prompts=False), tmp_path / "off").run()
    off = read_records(tmp_path / "off" / RECORDS_NAME)
    assert len(off) == len(records) and all(r.prompt is None for r in off)
    # Same answers, same scores: the prompt only adds text to the record.
    assert [r.metrics for r in off] == [r.metrics for r in records]


def test_hf_finish_reason_rule() -> None:
    assert finish_reason(8, stopped=False, max_new_tokens=8) == "length"
    assert finish_reason(8, stopped=True, max_new_tokens=8) == "stop"  # eos as the last token
    assert finish_reason(3, stopped=True, max_new_tokens=8) == "stop"
    # Ran out with padding before the limit (another row of the batch went on): not cut.
    assert finish_reason(5, stopped=False, max_new_tokens=8) == "stop"


def test_run_json_keeps_the_generation_settings_sent(mini_store: Path, tmp_path: Path) -> None:
    with FakeOpenAIServer(model="fake-vlm", answer="<answer>1.0</answer>") as server:
        spec = _spec(
            mini_store,
            backend="openai",
            model="fake-vlm",
            generation=GenerationConfig(max_new_tokens=64, temperature=0.0, top_p=0.95, seed=7),
            backend_options={"base_url": server.url},
        )
        Runner(spec, tmp_path / "run").run()
        body = server.requests[0].body
    used = json.loads((tmp_path / "run" / RUN_NAME).read_text())["backend_settings"]
    assert used["generation_used"] == {
        "max_tokens": 64,
        "temperature": 0.0,
        "top_p": 0.95,
        "n": 1,
        "stream": False,
        "seed": 7,
    }
    assert {k: body[k] for k in used["generation_used"]} == used["generation_used"]
