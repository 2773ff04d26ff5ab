"""Runs through the ``openai`` backend against the fake server: records, faults, cache, manifest."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from medvision.backends import GenerationConfig
from medvision.runs.cache import CACHE_NAME, read_cache
from medvision.runs.records import RECORDS_NAME, read_records
from medvision.runs.runner import (
    DEFAULT_LIMIT,
    RunError,
    Runner,
    RunSpec,
    config_key,
    select_samples,
)
from medvision.store import open_dataset
from medvision.testing.fake_openai import (
    IMAGE_TOKENS,
    FakeOpenAIServer,
    FakeRequest,
    Fault,
    FaultKind,
)


def _spec(store: Path, url: str, **kw: object) -> RunSpec:
    options = {"base_url": url, "concurrency": 4, "backoff_s": 0.01, "max_retries": 1}
    options.update(kw.pop("options", {}))  # type: ignore[arg-type]
    base: dict[str, object] = {
        "dataset_dir": str(store),
        "backend": "openai",
        "model": "fake-vlm",
        "protocol": "official",
        "limit": 3,
        "backend_options": options,
        "batch_size": 4,
    }
    base.update(kw)
    return RunSpec(**base)  # type: ignore[arg-type]


def _ids(out: Path) -> list[str]:
    return [r.sample_id for r in read_records(out / RECORDS_NAME)]


def test_official_run_records_usage_and_states_its_protocol(
    mini_store: Path, tmp_path: Path
) -> None:
    answer = "I think <answer>0.1, 0.2, 0.6, 0.7</answer>"
    with FakeOpenAIServer(answer=answer) as srv:
        spec = _spec(mini_store, srv.url, generation=GenerationConfig(max_new_tokens=64, seed=3))
        summary = Runner(spec, tmp_path / "run").run()
        sent = list(srv.requests)
    records = read_records(tmp_path / "run" / RECORDS_NAME)
    expected = select_samples(open_dataset(mini_store).samples(split="test"), spec)
    assert sorted(r.sample_id for r in records) == sorted(s.sample_id for s in expected)
    assert len(sent) == len(records)  # one request per sample, no retries needed
    assert all(b.body["max_tokens"] == 64 and b.body["seed"] == 3 for b in sent)
    # The official 1.2.1 parser takes the last k numbers inside <answer>.
    last_k = {"detection": (0.1, 0.2, 0.6, 0.7), "tl": (0.6, 0.7), "ad": (0.7,)}
    for r in records:
        assert r.status == "ok" and r.parsed == pytest.approx(last_k[r.family])
        assert r.raw_output.startswith("I think") and r.model == "fake-vlm"
    assert summary["protocol"]["name"] == "official" and summary["run"]["protocol"] == "official"
    assert summary["run"]["selection"] == "first-n" and summary["run"]["limit_per_config"] == 3
    usage = summary["run"]["usage"]
    assert usage["prompt_tokens"] == sum(len(b.text.split()) + IMAGE_TOKENS for b in sent)
    assert usage["completion_tokens"] == len(answer.split()) * len(sent)
    assert usage["answers_with_usage"] == len(records)


def test_run_manifest_describes_the_run(mini_store: Path, tmp_path: Path) -> None:
    with FakeOpenAIServer() as srv:
        spec = _spec(mini_store, srv.url, families=("ad",), options={"concurrency": 7})
        Runner(spec, tmp_path / "run").run()
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    import medvision

    assert meta["medvision_version"] == medvision.__version__
    assert meta["dataset_build_id"] == open_dataset(mini_store).manifest.build_id
    assert meta["protocol"]["name"] == "official"
    assert meta["selection"]["rule"] == "first-n" and meta["selection"]["limit_per_config"] == 3
    backend = meta["backend_settings"]
    assert backend["name"] == "openai" and backend["model"] == "fake-vlm"
    assert backend["base_urls"] == [srv.url] and backend["concurrency"] == 7
    assert backend["api_key_env"] == "OPENAI_API_KEY" and "api_key" not in backend


def test_each_faulty_sample_fails_with_a_reason_and_the_run_completes(
    mini_store: Path, tmp_path: Path
) -> None:
    ds = open_dataset(mini_store)
    samples = select_samples(
        ds.samples(split="test"),
        _spec(mini_store, "http://x", families=("detection",)),
    )
    # The server sees the rendered PNG (official rendering), not the stored slice.
    sent = {s.sample_id: hashlib.sha256(ds.image(s, "official")).hexdigest() for s in samples}
    images = sorted(set(sent.values()))
    plan = {
        images[0]: (Fault(FaultKind.HTTP_ERROR, status=500), "HTTP 500"),
        images[1]: (Fault(FaultKind.MALFORMED_JSON), "malformed JSON"),
        images[2]: (Fault(FaultKind.EMPTY_CHOICES), "no choices"),
        images[3]: (Fault(FaultKind.DELAY, delay_s=1.5), "timeout"),
        images[4]: (Fault(FaultKind.HUGE_ANSWER, size_bytes=3_000_000), "max_response_bytes"),
        images[5]: (Fault(FaultKind.DROP_CONNECTION), "connection error"),
    }

    def faults(r: FakeRequest) -> Fault | None:
        return plan[r.image_sha256[0]][0] if r.image_sha256[0] in plan else None

    out = tmp_path / "run"
    spec = _spec(
        mini_store,
        "",
        families=("detection",),
        options={"timeout_s": 0.5, "max_response_bytes": 1_000_000},
    )
    with FakeOpenAIServer(faults=faults) as srv:
        spec = dataclasses.replace(
            spec, backend_options={**spec.backend_options, "base_url": srv.url}
        )
        summary = Runner(spec, out).run()
        records = read_records(out / RECORDS_NAME)
        assert len(records) == len(samples)
        for r in records:
            assert r.rendering == "official"
            if sent[r.sample_id] in plan:
                assert r.status == "backend_error"
                assert plan[sent[r.sample_id]][1] in (r.reason or "")
                assert r.raw_output == ""
            else:
                assert r.status == "ok"
        n_bad = sum(sent[r.sample_id] in plan for r in records)
        assert (
            summary["status_counts"]["backend_error"] == summary["run"]["n_backend_errors"] == n_bad
        )
        # Failed answers are not cached; a retry run asks exactly those again.
        assert len(read_cache(out / CACHE_NAME)) == len(samples) - n_bad
        srv.faults = None
        srv.requests.clear()
        summary = Runner(spec, out).run(retry_errors=True)
        assert len(srv.requests) == n_bad
    assert summary["status_counts"] == {"ok": len(samples)}
    assert sorted(_ids(out)) == sorted(s.sample_id for s in samples)


def test_server_down_refuses_before_the_first_sample(mini_store: Path, tmp_path: Path) -> None:
    with FakeOpenAIServer() as srv:
        url = srv.url
    with pytest.raises(RunError, match=r"cannot connect to .*is the server running"):
        Runner(_spec(mini_store, url, families=("ad",)), tmp_path / "run").run()
    assert read_records(tmp_path / "run" / RECORDS_NAME) == []


def test_changed_settings_re_ask_only_what_changed(mini_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    test = open_dataset(mini_store).samples(split="test")
    with FakeOpenAIServer() as srv:

        def run(**kw: object) -> tuple[int, RunSpec]:
            spec = _spec(mini_store, srv.url, **kw)
            srv.requests.clear()
            Runner(spec, out).run()
            assert sorted(_ids(out)) == sorted(s.sample_id for s in select_samples(test, spec))
            return len(srv.requests), spec

        n_first, spec2 = run(families=("detection",), limit=2)
        assert n_first == len(select_samples(test, spec2))
        # One more sample per configuration: only those are asked.
        n, spec3 = run(families=("detection",), limit=3)
        assert n == len(select_samples(test, spec3)) - n_first
        # A new family: only its samples.
        n, spec4 = run(families=("detection", "ad"), limit=3)
        assert n == sum(s.family.value == "ad" for s in select_samples(test, spec4))
        # Another generation setting changes every answer.
        n, _ = run(
            families=("detection", "ad"), limit=3, generation=GenerationConfig(max_new_tokens=9)
        )
        assert n == len(select_samples(test, spec4))
        # Back to the first setting, and a concurrency change (execution only): all cached.
        n, _ = run(families=("detection", "ad"), limit=3, options={"concurrency": 2})
        assert n == 0
        # A changed prompt style re-asks exactly the samples whose prompt text changed.
        from medvision.tasks import render_prompt

        old = {
            s.sample_id: render_prompt(
                s, "official", seen_hw=s.image_hw, seen_spacing_mm_rc=s.spacing_mm_rc
            )
            for s in select_samples(test, spec4)
        }
        new = {
            s.sample_id: render_prompt(
                s, "paper-v1+size", seen_hw=s.image_hw, seen_spacing_mm_rc=s.spacing_mm_rc
            )
            for s in select_samples(test, spec4)
        }
        n, _ = run(families=("detection", "ad"), limit=3, prompt_style="paper-v1+size")
        assert n == sum(old[k] != new[k] for k in old) > 0


def test_runner_keeps_an_async_backend_busy(mini_store: Path, tmp_path: Path) -> None:
    with FakeOpenAIServer(latency_s=0.05) as srv:
        spec = _spec(
            mini_store, srv.url, families=("detection",), limit=10, options={"concurrency": 8}
        )
        Runner(spec, tmp_path / "run").run()  # spec batch_size is 4, below the concurrency
        assert srv.max_in_flight == 8


def _fake_samples(mini_store: Path, sizes: dict[str, int]) -> list:
    proto = open_dataset(mini_store).samples(split="test", families=["detection"])[0]
    out = []
    for label, n in sizes.items():
        for i in range(n):
            out.append(dataclasses.replace(proto, sample_id=f"{label}-{i:04d}", label_name=label))
    # Interleave labels so "first N" and "stratified" differ.
    return sorted(out, key=lambda s: (int(s.sample_id.split("-")[1]), s.label_name))


def test_official_default_limit_is_the_first_1000(mini_store: Path) -> None:
    samples = _fake_samples(mini_store, {"liver": 900, "spleen": 400})
    spec = RunSpec(dataset_dir="", backend="oracle", protocol="official", families=("detection",))
    chosen = select_samples(samples, spec)
    assert DEFAULT_LIMIT == 1000 and chosen == samples[:1000]
    everything = dataclasses.replace(spec, limit=0)
    assert select_samples(samples, everything) == samples


def test_strict_subsample_is_seeded_and_stratified_by_label(mini_store: Path) -> None:
    samples = _fake_samples(mini_store, {"liver": 600, "spleen": 300, "tiny": 3})
    spec = RunSpec(
        dataset_dir="",
        backend="oracle",
        protocol="strict",
        families=("detection",),
        limit=90,
        seed=1,
    )
    chosen = select_samples(samples, spec)
    counts = Counter(s.label_name for s in chosen)
    # One each, then 87 shared by 599 : 299 : 2 spare samples: ideal 57.90, 28.90, 0.19;
    # floors 57 + 28 + 0 leave 2 for the two largest remainders (liver and spleen).
    assert counts == {"liver": 59, "spleen": 30, "tiny": 1}
    assert select_samples(samples, spec) == chosen  # seeded
    other = select_samples(samples, dataclasses.replace(spec, seed=2))
    assert {s.sample_id for s in other} != {s.sample_id for s in chosen}
    ids = [s.sample_id for s in samples]
    assert [s.sample_id for s in chosen] == sorted((s.sample_id for s in chosen), key=ids.index)
    assert len({config_key(s) for s in chosen}) == 1
