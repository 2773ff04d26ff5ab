"""The extras install together with the one torch these machines hold (torch==2.13.0)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _extras() -> dict[str, list[Requirement]]:
    data = tomllib.loads(PYPROJECT.read_text())
    return {
        name: [Requirement(r) for r in reqs]
        for name, reqs in data["project"]["optional-dependencies"].items()
    }


def test_every_torch_requirement_is_the_pinned_cpu_build() -> None:
    torch = [(extra, r) for extra, reqs in _extras().items() for r in reqs if r.name == "torch"]
    assert torch, "no extra names torch"
    for extra, req in torch:
        assert str(req.specifier) == "==2.13.0", f"extra {extra!r} asks torch{req.specifier}"


def test_vllm_extra_pins_the_release_built_for_that_torch() -> None:
    # vllm 0.32.0 requires torch==2.13.0; a range admits releases built for other torches.
    reqs = {r.name: r for r in _extras()["vllm"]}
    assert str(reqs["vllm"].specifier) == "==0.32.0"
    assert str(reqs["torch"].specifier) == "==2.13.0"
