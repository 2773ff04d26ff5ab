"""Runs with ``structured_outputs``: each family's request carries its own JSON schema, and
turning the option on or off re-asks (it is part of the settings hash)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from medvision.backends.openai_compat import json_schema_format
from medvision.runs.records import RECORDS_NAME, read_records
from medvision.runs.runner import RunError, Runner, RunSpec, select_samples
from medvision.store import open_dataset
from medvision.tasks import PromptStyle, get_policy, render_prompt
from medvision.tasks.prompts import response_schema
from medvision.testing.fake_openai import FakeOpenAIServer, FakeRequest


def _spec(store: Path, url: str, structured: bool | None, style: str = "json") -> RunSpec:
    options: dict[str, Any] = {"base_url": url, "concurrency": 4, "max_retries": 0}
    if structured is not None:
        options["structured_outputs"] = structured
    return RunSpec(
        dataset_dir=str(store),
        backend="openai",
        model="fake-vlm",
        protocol="strict",
        prompt_style=style,
        limit=2,
        backend_options=options,
        batch_size=8,
    )


def _schema_answer(req: FakeRequest) -> str:
    """What a constrained decoder would return: exactly the schema's keys."""
    fmt = req.body.get("response_format")
    if fmt is None:
        return '{"box": [0.1, 0.2, 0.6, 0.7], "major_mm": 9, "minor_mm": 4, "value": 5}'
    props = fmt["json_schema"]["schema"]["properties"]
    return json.dumps({k: [0.1, 0.2, 0.6, 0.7] if k == "box" else 5.0 for k in props})


def test_each_family_request_carries_its_own_schema(mini_store: Path, tmp_path: Path) -> None:
    with FakeOpenAIServer(answer=_schema_answer) as srv:
        spec = _spec(mini_store, srv.url, True)
        Runner(spec, tmp_path / "run").run()
        sent = list(srv.requests)
    samples = select_samples(open_dataset(mini_store).samples(split="test"), spec)
    native = get_policy("native")
    family_of_prompt = {
        render_prompt(
            s,
            PromptStyle.JSON,
            seen_hw=native.seen_hw(s.image_hw),
            seen_spacing_mm_rc=native.seen_spacing(s.spacing_mm_rc, s.image_hw),
        ): s.family.value
        for s in samples
    }
    assert {s.family.value for s in samples} == {"detection", "tl", "ad"}
    assert len(sent) == len(samples)
    for req in sent:
        family = family_of_prompt[req.text]
        assert req.body["response_format"] == json_schema_format(response_schema(family))
    records = read_records(tmp_path / "run" / RECORDS_NAME)
    assert Counter(r.status for r in records) == Counter({"ok": len(samples)})
    n_values = {"detection": 4, "tl": 2, "ad": 1}
    assert all(len(r.parsed or ()) == n_values[r.family] for r in records)


def test_toggling_structured_outputs_re_asks_and_off_equals_absent(
    mini_store: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    with FakeOpenAIServer(answer=_schema_answer) as srv:
        Runner(_spec(mini_store, srv.url, None), out).run()
        first = len(srv.requests)
        assert all("response_format" not in r.body for r in srv.requests)
        # Off is the same run as absent: same hashes, nothing re-asked.
        off = _spec(mini_store, srv.url, False)
        assert off.settings_hash() == _spec(mini_store, srv.url, None).settings_hash()
        assert off.fingerprint() == _spec(mini_store, srv.url, None).fingerprint()
        Runner(off, out).run()
        assert len(srv.requests) == first
        # On changes the answers' settings: every sample is asked again, with its schema.
        on = _spec(mini_store, srv.url, True)
        assert on.settings_hash() != off.settings_hash()
        Runner(on, out).run()
        assert len(srv.requests) == 2 * first
        assert all("response_format" in r.body for r in list(srv.requests)[first:])
        Runner(on, out).run()  # resumed: nothing left to ask
        assert len(srv.requests) == 2 * first
    assert len(read_records(out / RECORDS_NAME)) == first


def test_structured_outputs_need_the_json_style(mini_store: Path, tmp_path: Path) -> None:
    with pytest.raises(RunError, match=r"needs prompt style 'json'.*found 'official'"):
        Runner(_spec(mini_store, "http://127.0.0.1:9/v1", True, "official"), tmp_path / "r")
