"""Finalize internals: batched sorting, the image-key check, shard digests, page-cache release."""

from __future__ import annotations

import hashlib
import os
import stat
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


def _images_case(
    writer: DatasetWriter, case: str, slices: list[StoredSlice]
) -> tuple[list[Sample], dict[str, StoredSlice]]:
    """A case whose samples refer to each of ``slices`` once, written to ``writer``."""
    samples = [
        Sample(
            sample_id=make_sample_id("a", case, i),
            dataset="a",
            case_id=case,
            split="train",
            family=TaskFamily.DETECTION,
            plane=Plane.AXIAL,
            slice_index=i,
            label_id=1,
            label_name="l",
            label_kind="organ",
            label_group="g",
            modality="CT",
            image_description="d",
            image_key=s.key,
            image_hw=(6, 5),
            spacing_mm_rc=(0.5, 0.5),
            target=(0.1, 0.1, 0.2, 0.2),
            unit="relative",
            box_rc=(1, 1, 2, 2),
        )
        for i, s in enumerate(slices)
    ]
    images = {s.key: s for s in slices}
    writer.write_case("a", case, samples, images)
    return samples, images


def test_case_images_files_with_the_shard_layout_become_shards_without_a_copy(
    tmp_path: Path,
) -> None:
    # Row groups of 2 images: c1 (5 images) and c4 (2) have the shards' layout and no slice
    # seen before: adopted. c2 repeats a slice of c1: its two new ones are copied. c3 has one
    # image (less than a row group): copied, merged with c2's into one shard.
    writer = DatasetWriter(tmp_path, image_group_rows=2)
    s = [_slice(100 + i) for i in range(10)]
    cases = {"c1": s[0:5], "c2": [s[0], s[5], s[6]], "c3": [s[7]], "c4": s[8:10]}
    old_umask = os.umask(0o022)
    try:
        for case, slices in cases.items():
            _images_case(writer, case, slices)
        manifest = writer.finalize(BuildManifest.create(datasets=["a"], seed=0))
    finally:
        os.umask(old_umask)
    shards = sorted((tmp_path / "images").glob("*.parquet"))
    assert [p.name for p in shards] == [f"images-{i:05d}-of-00003.parquet" for i in range(3)]
    for shard, case in ((shards[0], "c1"), (shards[2], "c4")):
        case_file = writer.case_paths("a", case)[1]
        assert shard.read_bytes() == case_file.read_bytes()
        assert shard.stat().st_ino == case_file.stat().st_ino  # a hard link, not a copy
    # Every shard, adopted or written, is readable as any new file is (0666 less the umask).
    assert {stat.S_IMODE(p.stat().st_mode) for p in shards} == {0o644}
    keys = [k for p in shards for k in pq.read_table(p, columns=["key"])["key"].to_pylist()]
    assert keys == [x.key for x in s]  # each slice once, in order of first appearance
    sizes = [pq.ParquetFile(shards[1]).metadata.row_group(g).num_rows for g in range(2)]
    assert sizes == [2, 1]
    digests = {f.path: f.sha256 for f in manifest.files if f.kind == "images"}
    assert digests == {
        f"images/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest() for p in shards
    }
    assert manifest.n_images == 10
    ds = open_dataset(tmp_path)
    assert all(ds.stored_slice(x.key) == x for x in s)
    # Removing the case files (the default after a build) leaves the adopted shards intact.
    before = [p.read_bytes() for p in shards]
    writer.remove_cases("a")
    assert [p.read_bytes() for p in shards] == before


def test_adoption_needs_the_exact_layout_and_falls_back_to_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = [_slice(200 + i) for i in range(5)]
    # The same case files, merged by writers that cannot adopt them: other row groups (3),
    # or no hard links on the file system. Both copy; every slice reads back the same.
    for name, group_rows, link_fails in (("rows", 3, False), ("nolink", 2, True)):
        root = tmp_path / name
        _images_case(DatasetWriter(root, image_group_rows=2), "c1", s)
        if link_fails:

            def no_link(src: object, dst: object) -> None:
                raise OSError("hard links not supported")

            monkeypatch.setattr("medvision.store.shards.os.link", no_link)
        writer = DatasetWriter(root, image_group_rows=group_rows)
        writer.finalize(BuildManifest.create(datasets=["a"], seed=0))
        monkeypatch.undo()
        (shard,) = (root / "images").glob("*.parquet")
        case_file = writer.case_paths("a", "c1")[1]
        assert shard.stat().st_ino != case_file.stat().st_ino
        meta = pq.ParquetFile(shard).metadata
        expected = [3, 2] if group_rows == 3 else [2, 2, 1]
        assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == expected
        ds = open_dataset(root)
        assert all(ds.stored_slice(x.key) == x for x in s)


def test_shard_writer_adopt_closes_the_current_shard_first(tmp_path: Path) -> None:
    slices = [_slice(300 + i) for i in range(5)]
    table = images_to_table({x.key: x for x in slices})
    ready = tmp_path / "ready.parquet"
    pq.write_table(table.slice(3), ready, row_group_size=2)
    shards = ShardWriter(
        tmp_path / "out",
        "images",
        IMAGES_SCHEMA,
        group_rows=2,
        group_bytes=1 << 40,
        file_rows=1 << 40,
        file_bytes=1 << 40,
        options={"compression": "none"},
    )
    shards.add(table.slice(0, 3))  # one full group written, one row still buffered
    shards.adopt(ready, 2)
    paths = shards.close()
    assert shards.n_rows == 5
    assert [pq.read_table(p)["key"].to_pylist() for p in paths] == [
        [x.key for x in slices[:3]],
        [x.key for x in slices[3:]],
    ]
    assert paths[1].read_bytes() == ready.read_bytes()
    assert shards.digests == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
