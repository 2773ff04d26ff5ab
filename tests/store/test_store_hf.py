"""HF datasets with images: `to_hf` and `medvision export hf`, checked by loading with datasets."""

from __future__ import annotations

import io
import json
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medvision.catalog.registry import get_spec
from medvision.cli.app import app
from medvision.store import SAMPLES_SCHEMA, open_dataset, sample_from_row


def _pixels(image: Image.Image | bytes) -> np.ndarray:
    if isinstance(image, bytes):
        with Image.open(io.BytesIO(image)) as img:
            return np.asarray(img)
    return np.asarray(image)


def test_to_hf_has_an_image_column_beside_every_sample_column(mini_store: Path) -> None:
    ds = open_dataset(mini_store)
    hf = ds.to_hf("test")
    assert isinstance(hf, datasets.Dataset)
    assert hf.column_names == ["image", *SAMPLES_SCHEMA.names]
    assert isinstance(hf.features["image"], datasets.Image)
    samples = ds.samples(split="test")
    assert len(hf) == len(samples)
    for i in (0, len(hf) // 2, len(hf) - 1):
        row = hf[i]
        assert isinstance(row["image"], Image.Image)
        assert sample_from_row(row) == samples[i]
        stored = ds.image(samples[i].image_key)
        assert np.array_equal(_pixels(row["image"]), _pixels(stored))
        assert row["image"].size == samples[i].image_hw[::-1]  # PIL: (width, height)
    both = ds.to_hf()
    assert isinstance(both, datasets.DatasetDict) and set(both) == {"train", "test"}


def test_export_hf_writes_a_folder_datasets_loads_with_images(
    mini_store: Path, tmp_path: Path
) -> None:
    out = tmp_path / "hub"
    result = CliRunner().invoke(app, ["export", "hf", str(mini_store), str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "data", "medvision_build.json"]
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    ds = open_dataset(mini_store)
    assert {k: v.num_rows for k, v in loaded.items()} == {
        s: len(ds.samples(split=s))
        for s in ("train", "test")  # type: ignore[arg-type]
    }
    test = loaded["test"]
    assert isinstance(test.features["image"], datasets.Image)
    samples = ds.samples(split="test")
    for i in range(0, len(test), 17):
        row = test[i]
        assert sample_from_row(row) == samples[i]
        assert np.array_equal(_pixels(row["image"]), _pixels(ds.image(samples[i].image_key)))

    card = (out / "README.md").read_text()
    front = card.split("---")[1]
    assert "dtype: image" in front and "path: data/test-*.parquet" in front
    spec = get_spec("mini")
    assert " ".join(spec.citation.split()) in card and " ".join(spec.licence.split()) in card
    assert ds.manifest.build_id in card and "push_to_hub" in card
    build = json.loads((out / "medvision_build.json").read_text())
    assert build["build_id"] == ds.manifest.build_id

    again = CliRunner(env={"COLUMNS": "250"}).invoke(
        app, ["export", "hf", str(mini_store), str(out)]
    )
    assert again.exit_code != 0 and "not empty" in again.output
    forced = CliRunner().invoke(app, ["export", "hf", str(mini_store), str(out), "--overwrite"])
    assert forced.exit_code == 0, forced.output


@pytest.mark.parametrize(
    ("licences", "expected"),
    [
        (["CC BY-NC-SA 4.0"], "cc-by-nc-sa-4.0"),
        (["CC BY 4.0", "CC-BY 4.0"], "cc-by-4.0"),
        (["CC BY 4.0", "CC BY-SA 4.0"], "other"),
        (["custom terms"], "other"),
    ],
)
def test_hub_license_is_one_cc_id_or_other(licences: list[str], expected: str) -> None:
    from medvision.store.hf_card import hub_license

    assert hub_license(licences) == expected
