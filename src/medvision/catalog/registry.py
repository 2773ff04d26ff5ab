"""The built-in catalog: every ``catalog/datasets/*.yaml`` shipped with the package."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from medvision.catalog.spec import DatasetSpec, SpecError, load_spec

CATALOG_DIR = Path(__file__).parent / "datasets"


@cache
def catalog() -> dict[str, DatasetSpec]:
    """Load every built-in dataset spec, keyed by name (validated once, then cached)."""
    specs: dict[str, DatasetSpec] = {}
    for path in sorted(CATALOG_DIR.glob("*.yaml")):
        spec = load_spec(path)
        if spec.name in specs:
            raise SpecError(f"{path}: dataset name {spec.name!r} is defined twice")
        specs[spec.name] = spec
    return specs


def get_spec(name_or_path: str) -> DatasetSpec:
    """Return a built-in spec by name, or load a user spec from a YAML path.

    Raises:
        SpecError: If the name is unknown (the message lists the known names).
    """
    if name_or_path.endswith((".yaml", ".yml")):
        return load_spec(name_or_path)
    specs = catalog()
    if name_or_path not in specs:
        raise SpecError(f"unknown dataset {name_or_path!r}; known: {', '.join(sorted(specs))}")
    return specs[name_or_path]
