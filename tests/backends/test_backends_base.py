"""Backend protocol records, per-request error isolation, and the registry."""

from __future__ import annotations

import pytest

from medvision.backends import (
    BACKENDS,
    Backend,
    ChatRequest,
    ChatResponse,
    GenerationConfig,
    ImagePart,
    Message,
    OracleBaseline,
    PriorBaseline,
    RandomBaseline,
    TextPart,
    UnknownBackendError,
    create_backend,
)
from medvision.backends.base import answer_each, hint
from medvision.schema import TaskFamily


def test_records_validate_and_expose_parts() -> None:
    msg = Message("user", (TextPart("a "), ImagePart(b"png1"), TextPart("b"), ImagePart(b"p2")))
    assert msg.text == "a b" and msg.images == (b"png1", b"p2")
    with pytest.raises(ValueError, match="role"):
        Message("tool", ())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="str"):
        Message("user", ("plain text",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top_p"):
        GenerationConfig(top_p=0)
    with pytest.raises(ValueError, match="temperature"):
        GenerationConfig(temperature=-0.1)
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerationConfig(max_new_tokens=0)
    req = ChatRequest("r1", (msg,), GenerationConfig(), {"family": "ad"})
    assert req.generation == GenerationConfig(1024, 0.0, 1.0, 0)
    # Hashable (hints excluded from the hash) and comparable.
    assert hash(req) == hash(ChatRequest("r1", (msg,), GenerationConfig(), {"family": "tl"}))
    assert req != ChatRequest("r1", (msg,), GenerationConfig(), {"family": "tl"})
    assert ChatResponse("r1", "x") == ChatResponse("r1", "x", None, 0.0, None, None)


def test_hint_unwraps_enums_and_names_missing_hints() -> None:
    req = ChatRequest("r9", (), hints={"family": TaskFamily.TUMOR_LESION_SIZE})
    assert hint(req, "family") == "tl"
    with pytest.raises(ValueError, match=r"r9: missing hint 'target' \(present: \['family'\]\)"):
        hint(req, "target")


def test_answer_each_turns_exceptions_into_error_responses() -> None:
    def answer(r: ChatRequest) -> str:
        if r.request_id == "bad":
            raise RuntimeError("server said no")
        return r.request_id.upper()

    reqs = [ChatRequest(i, ()) for i in ("a", "bad", "c")]
    out = answer_each(reqs, answer)
    assert [(r.request_id, r.text, r.error) for r in out] == [
        ("a", "A", None),
        ("bad", "", "RuntimeError: server said no"),
        ("c", "C", None),
    ]
    assert all(r.latency_s >= 0 for r in out)

    def interrupted(r: ChatRequest) -> str:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # only Exception is caught, never interrupts
        answer_each(reqs, interrupted)


def test_registry_creates_known_backends_and_lists_names() -> None:
    assert set(BACKENDS) >= {"random", "prior", "oracle"}
    rnd = create_backend("random", seed=3, min_side=3)
    assert isinstance(rnd, RandomBaseline) and rnd.seed == 3 and rnd.min_side == 3
    assert isinstance(create_backend("oracle", noise=0.5), OracleBaseline)
    prior = create_backend("prior", priors={"k": [1.0]})
    assert isinstance(prior, PriorBaseline)
    for backend in (rnd, prior, create_backend("oracle")):
        assert isinstance(backend, Backend)
        assert backend.name in BACKENDS
        backend.close()
        backend.close()
    with pytest.raises(UnknownBackendError, match="'gpt9'; known backends: ") as info:
        create_backend("gpt9")
    assert all(name in str(info.value) for name in BACKENDS)
    with pytest.raises(TypeError, match="backend 'random' rejected options \\['temperature'\\]"):
        create_backend("random", temperature=1.0)
