from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from medvision.catalog.registry import CATALOG_DIR, catalog, get_spec
from medvision.catalog.spec import SpecError, load_spec


def test_every_builtin_spec_validates_and_cross_references_resolve() -> None:
    specs = catalog()
    assert "mini" in specs
    assert len(specs) == len(list(CATALOG_DIR.glob("*.yaml")))
    for spec in specs.values():
        for task in spec.tasks:
            ids = {lab.id for lab in task.labels}
            for fam in (task.detection, task.tl):
                if fam is not None:
                    assert set(fam.labels) <= ids
            for m in task.measurements:
                assert all(p in task.landmarks for p in m.points)


def _mini_dict() -> dict:
    return yaml.safe_load((CATALOG_DIR / "mini.yaml").read_text())


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["tasks"][0]["detection"]["labels"].append(9), "unknown label ids [9]"),
        (lambda d: d["tasks"][0]["tl"].update(labels=[1]), "not tumour/lesion"),
        (lambda d: d["tasks"][1]["measurements"][0].update(points=["P1", "P9"]), "P9"),
        (lambda d: d["tasks"][1]["measurements"][0].update(points=["P1"]), "needs 2 points"),
        (lambda d: d["tasks"][0]["labels"].append(d["tasks"][0]["labels"][0]), "duplicate label"),
        (lambda d: d["tasks"][0].update(modality="MRI scan"), "modality"),
        (lambda d: d.update(colour="blue"), "colour"),
        (lambda d: d["tasks"][0]["tl"].update(planes=["A", "A"]), "planes repeat"),
    ],
)
def test_invalid_specs_are_refused_with_file_and_field(
    tmp_path: Path, mutate, message: str
) -> None:
    data = _mini_dict()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_unknown_dataset_lists_known_names() -> None:
    with pytest.raises(SpecError, match=r"known: .*mini"):
        get_spec("no-such-dataset")


def test_user_spec_path_loads(tmp_path: Path) -> None:
    path = _write(tmp_path, _mini_dict() | {"name": "my-data"})
    assert get_spec(str(path)).name == "my-data"


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path)
