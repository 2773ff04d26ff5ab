"""Finalize internals: batched sorting, the image-key check, shard digests, page-cache release."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medvision.schema import Plane, Sample, TaskFamily, make_sample_id
from medvision.store import BuildManifest, DatasetWriter, open_dataset
from medvision.store.schema import IMAGES_SCHEMA, images_to_table
from medvision.store.shards import ShardWriter, release_cached
from medvision.volumes import StoredSlice, encode_slice


def _slice(seed: int) -> StoredSlice:
    rng = np.random.default_rng(seed)
    return encode_slice(rng.integers(-1000, 1000, (6, 5)).astype(np.float32))


def _case(dataset: str, case: str, seed: int) -> tuple[list[Sample], dict[str, StoredSlice]]:
    rng = np.random.default_rng(seed)
    images = {s.key: s for s in (_slice(seed * 10 + i) for i in range(3))}
    keys = list(images)
    samples = []
    for i in range(int(rng.integers(3, 9))):
        family = list(TaskFamily)[int(rng.integers(2))]
        samples.append(
            Sample(
                sample_id=make_sample_id(dataset, case, i),
                dataset=dataset,
                case_id=case,
                split="train" if rng.random() < 0.5 else "test",
                family=family,
                plane=Plane(int(rng.integers(3))),
                slice_index=int(rng.integers(4)),
                label_id=int(rng.integers(1, 4)),
                label_name=f"label{int(rng.integers(1, 3))}",
                label_kind="organ",
                label_group="g",
                modality="CT",
                image_description="d",
                image_key=keys[int(rng.integers(3))],
                image_hw=(6, 5),
                spacing_mm_rc=(0.5, 0.5),
                target=tuple(float(v) for v in rng.random(family.n_values)),
                unit="relative",
                box_rc=(1, 1, 2, 2) if family is TaskFamily.DETECTION else None,
            )
        )
    return samples, images


def _write(root: Path, row_group_size: int) -> list[Sample]:
    writer = DatasetWriter(root, row_group_size=row_group_size, image_group_rows=2)
    everything: list[Sample] = []
    for dataset in ("b", "a"):
        for k, case in enumerate(("c3", "c10", "c1", "c2")):
            samples, images = _case(dataset, case, 17 * k + len(dataset) + ord(dataset))
            writer.write_case(dataset, case, samples, images)
            everything += samples
    writer.finalize(BuildManifest.create(datasets=["a", "b"], seed=0))
    return everything


def test_sorting_many_cases_per_batch_gives_the_rows_of_one_case_at_a_time(
    tmp_path: Path,
) -> None:
    # row_group_size 1 sorts every case on its own; 10,000 sorts all eight cases at once.
    one = _write(tmp_path / "one", row_group_size=1)
    many = _write(tmp_path / "many", row_group_size=10_000)
    assert one == many
    a, b = open_dataset(tmp_path / "one"), open_dataset(tmp_path / "many")
    assert a.samples() == b.samples()
    assert a.manifest.counts == b.manifest.counts
    assert a.manifest.n_images == b.manifest.n_images == len({s.image_key for s in many})
    expected = sorted(
        many,
        key=lambda s: (
            s.split != "train",
            s.family.value,
            s.dataset,
            s.case_id,
            int(s.plane),
            s.slice_index,
            s.label_id,
            s.label_name,
            s.metric_key,
            s.sample_id,
        ),
    )
    assert b.samples() == expected


def test_finalize_refuses_a_case_whose_images_file_lacks_a_referenced_key(
    tmp_path: Path,
) -> None:
    writer = DatasetWriter(tmp_path)
    samples, images = _case("a", "c1", 3)
    writer.write_case("a", "c1", samples, images)
    used = samples[0].image_key
    _, images_path = writer.case_paths("a", "c1")
    pq.write_table(images_to_table({k: v for k, v in images.items() if k != used}), images_path)
    with pytest.raises(ValueError, match=r"case a/c1 .*image key\(s\) missing from"):
        writer.finalize(BuildManifest.create(datasets=["a"], seed=0))
    assert not (tmp_path / "manifest.json").exists()


def test_shard_digests_are_the_sha256_of_each_file(tmp_path: Path) -> None:
    slices = [_slice(i) for i in range(7)]
    table = images_to_table({s.key: s for s in slices})
    shards = ShardWriter(
        tmp_path,
        "images",
        IMAGES_SCHEMA,
        group_rows=2,
        group_bytes=1 << 40,
        file_rows=3,  # several shards, each closed after 3 or 4 rows
        file_bytes=1 << 40,
        options={"compression": "none"},
    )
    for start in range(0, table.num_rows, 3):
        shards.add(table.slice(start, 3))
    paths = shards.close()
    assert len(paths) > 1
    assert shards.digests == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    merged = pa.concat_tables(pq.read_table(p) for p in paths)
    assert merged.column("key").to_pylist() == [s.key for s in slices]


def test_release_cached_keeps_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    data = np.random.default_rng(0).bytes(1 << 16)
    path.write_bytes(data)
    release_cached(path)
    assert path.read_bytes() == data
    release_cached(tmp_path / "missing.bin")  # no error: only caching is affected
