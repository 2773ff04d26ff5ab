"""DatasetWriter (per-case files, resume, finalize) and the BuiltDataset reader, incl. HF."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from medvision.schema import Plane, Sample, TaskFamily, make_sample_id
from medvision.store import (
    BuildManifest,
    DatasetWriter,
    open_dataset,
    sample_from_row,
)
from medvision.volumes import StoredSlice, decode_png, decode_slice, encode_slice, to_uint8

ROW_GROUP = 7
PER_FILE = 21


def _png(seed: int, h: int = 12, w: int = 10) -> StoredSlice:
    """A stored slice: integer HU-like values (u16-zlib), or floats (f32-zlib) for odd seeds."""
    rng = np.random.default_rng(seed)
    values = rng.integers(-1024, 3000, (h, w)).astype(np.float32)
    if seed % 2:
        values = values * np.float32(0.37)
    return encode_slice(values)


def _case(
    dataset: str, case: str, rng: np.random.Generator, shared: StoredSlice
) -> tuple[list[Sample], dict[str, StoredSlice]]:
    """Samples of one case over all families/planes/splits; images shared within and across."""
    own = [_png(int(rng.integers(1 << 30)), 8 + i, 9) for i in range(3)]
    pool = [shared, *own]
    images = {p.key: p for p in pool}
    out: list[Sample] = []
    for i in range(int(rng.integers(8, 16))):
        family = TaskFamily(list(TaskFamily)[int(rng.integers(3))])
        plane = Plane(int(rng.integers(3)))
        png = pool[int(rng.integers(len(pool)))]
        label = None if family is TaskFamily.ANGLE_DISTANCE else int(rng.integers(1, 4))
        sl = int(rng.integers(0, 5))
        out.append(
            Sample(
                sample_id=make_sample_id(dataset, case, i),
                dataset=dataset,
                case_id=case,
                split="train" if rng.random() < 0.6 else "test",
                family=family,
                plane=plane,
                slice_index=sl,
                label_id=label,
                label_name=f"label{label}" if label else "sella-nasion",
                label_kind="organ" if label else "landmark",
                label_group="g",
                modality="MRI",
                image_description="desc",
                image_key=png.key,
                image_hw=(png.height, png.width),
                spacing_mm_rc=(float(rng.random()), 0.5),
                target=tuple(float(v) for v in rng.random(family.n_values)),
                unit="relative",
                box_rc=(1, 2, 3, 4) if family is TaskFamily.DETECTION else None,
                extras={"v": float(rng.random())},
            )
        )
    return out, images


def _sort_key(s: Sample) -> tuple[Any, ...]:
    return (
        s.family.value,
        s.dataset,
        s.case_id,
        int(s.plane),
        s.slice_index,
        s.label_id is not None,
        s.label_id or 0,
        s.label_name,
        s.metric_key,
        s.sample_id,
    )


def _build(
    root: Path, *, image_file_bytes: int = 512 << 20
) -> tuple[list[Sample], dict[str, StoredSlice], BuildManifest]:
    rng = np.random.default_rng(0)
    shared = _png(99)
    writer = DatasetWriter(
        root,
        row_group_size=ROW_GROUP,
        samples_per_file=PER_FILE,
        image_group_rows=3,
        image_file_bytes=image_file_bytes,
    )
    all_samples: list[Sample] = []
    all_images: dict[str, StoredSlice] = {}
    for dataset in ("beta", "alpha"):  # written out of order on purpose
        for case in ("c2", "c10", "c1"):
            samples, images = _case(dataset, case, rng, shared)
            writer.write_case(dataset, case, samples, images)
            all_samples += samples
            all_images.update(images)
    manifest = writer.finalize(BuildManifest.create(datasets=["alpha", "beta"], seed=3))
    referenced = {s.image_key for s in all_samples}
    assert len(referenced) < len(all_images)  # some images were given but never referenced
    return all_samples, {k: v for k, v in all_images.items() if k in referenced}, manifest


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, list[Sample], dict[str, StoredSlice]]:
    root = tmp_path_factory.mktemp("built")
    # Small image files force several image shards.
    samples, images, _ = _build(root, image_file_bytes=400)
    return root, samples, images


def test_case_files_are_atomic_and_resumable(tmp_path: Path) -> None:
    writer = DatasetWriter(tmp_path)
    rng = np.random.default_rng(1)
    samples, images = _case("mini", "case000", rng, _png(5))
    assert not writer.case_done("mini", "case000")
    # A build killed between the two writes leaves only the images file: not done.
    s_path, i_path = writer.case_paths("mini", "case000")
    i_path.parent.mkdir(parents=True)
    i_path.write_bytes(b"partial")
    assert not writer.case_done("mini", "case000")
    writer.write_case("mini", "case000", samples, {**images, _png(6).key: _png(6)})
    assert writer.case_done("mini", "case000")
    assert s_path.name == "case000.samples.arrow" and i_path.name == "case000.images.parquet"
    assert sorted(p.name for p in s_path.parent.iterdir()) == [i_path.name, s_path.name]
    # Only referenced images are kept (the extra one is dropped).
    stored = pq.read_table(i_path).to_pylist()
    assert {r["key"] for r in stored} == {s.image_key for s in samples}
    assert all(r["data"] == images[r["key"]].data for r in stored)
    # An empty case still counts as done.
    writer.write_case("mini", "empty", [], {})
    assert writer.case_done("mini", "empty")


def test_write_case_refuses_bad_input(tmp_path: Path) -> None:
    writer = DatasetWriter(tmp_path)
    samples, images = _case("mini", "c", np.random.default_rng(2), _png(5))
    with pytest.raises(ValueError, match="belongs to dataset 'mini' case 'c'"):
        writer.write_case("mini", "other", samples, images)
    with pytest.raises(ValueError, match="missing from `images`"):
        writer.write_case("mini", "c", samples, {})
    k = samples[0].image_key
    with pytest.raises(ValueError, match="not the sha256"):
        writer.write_case("mini", "c", samples, {**images, k: _png(1234)})
    with pytest.raises(ValueError, match="duplicate sample_id"):
        writer.write_case("mini", "c", [samples[0], samples[0]], images)
    for bad in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(ValueError, match="cannot be used as a file name"):
            writer.case_done("mini", bad)
    assert not (tmp_path / "cases" / "mini").exists() or not any(
        (tmp_path / "cases" / "mini").iterdir()
    )


def test_finalize_layout_order_and_row_groups(
    built: tuple[Path, list[Sample], dict[str, StoredSlice]],
) -> None:
    root, samples, _ = built
    for split in ("train", "test"):
        expected = sorted((s for s in samples if s.split == split), key=_sort_key)
        n_files = -(-len(expected) // PER_FILE)
        files = sorted((root / "data").glob(f"{split}-*.parquet"))
        assert [f.name for f in files] == [
            f"{split}-{i:05d}-of-{n_files:05d}.parquet" for i in range(n_files)
        ]
        rows: list[Sample] = []
        for f in files:
            pf = pq.ParquetFile(f)
            sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
            # Every row group is full except possibly the very last one of the split.
            assert all(n == ROW_GROUP for n in sizes[:-1])
            assert sum(sizes) <= PER_FILE
            rows += [sample_from_row(r) for r in pf.read().to_pylist()]
        assert rows == expected
    assert sorted(p.name for p in root.iterdir()) == [
        "README.md",
        "cases",
        "data",
        "images",
        "manifest.json",
    ]


def test_manifest_counts_match_an_independent_count(
    built: tuple[Path, list[Sample], dict[str, StoredSlice]],
) -> None:
    root, samples, images = built
    m = open_dataset(root).manifest
    assert m.n_samples == len(samples)
    assert m.n_images == len({s.image_key for s in samples}) == len(images)
    assert m.counts.by_split == dict(sorted(Counter(s.split for s in samples).items()))
    assert m.counts.by_family == dict(Counter(s.family.value for s in samples))
    fp = Counter((s.family.value, s.plane.name.lower()) for s in samples)
    assert {(f, p): n for f, d in m.counts.by_family_plane.items() for p, n in d.items()} == fp
    fl = Counter((s.family.value, s.label_name) for s in samples)
    assert {(f, lab): n for f, d in m.counts.by_family_label.items() for lab, n in d.items()} == fl
    assert m.datasets == ["alpha", "beta"] and m.seed == 3
    by_path = {f.path: f for f in m.files}
    assert sum(f.n_rows for f in m.files if f.kind == "samples") == len(samples)
    assert sum(f.n_rows for f in m.files if f.kind == "images") == m.n_images
    assert len([f for f in m.files if f.kind == "images"]) > 1
    for path, entry in by_path.items():
        data = (root / path).read_bytes()
        assert entry.n_bytes == len(data)
        assert entry.sha256 == __import__("hashlib").sha256(data).hexdigest()


def test_reader_filters_and_streaming(
    built: tuple[Path, list[Sample], dict[str, StoredSlice]],
) -> None:
    root, samples, _ = built
    ds = open_dataset(root)
    assert len(ds) == len(samples) and ds.splits == ("train", "test")
    order = [*sorted((s for s in samples if s.split == "train"), key=_sort_key)]
    order += sorted((s for s in samples if s.split == "test"), key=_sort_key)
    assert ds.samples() == order
    assert list(ds.iter_samples(batch_size=4)) == order
    cases: list[dict[str, Any]] = [
        {"split": "test"},
        {"families": [TaskFamily.DETECTION, "ad"]},
        {"planes": [Plane.AXIAL]},
        {"planes": [0, 1], "datasets": ["beta"], "split": "train"},
        {"families": ["tl"], "datasets": ["nope"]},
    ]
    for kw in cases:
        fams = {TaskFamily(f) for f in kw.get("families", list(TaskFamily))}
        planes = {Plane(p) for p in kw.get("planes", list(Plane))}
        dsets = set(kw.get("datasets", ["alpha", "beta"]))
        want = [
            s
            for s in order
            if s.family in fams
            and s.plane in planes
            and s.dataset in dsets
            and s.split == kw.get("split", s.split)
        ]
        assert ds.samples(**kw) == want, kw
        assert list(ds.iter_samples(batch_size=5, **kw)) == want, kw


def test_reader_images_by_key(built: tuple[Path, list[Sample], dict[str, StoredSlice]]) -> None:
    root, _, images = built
    ds = open_dataset(root)
    keys = sorted(images)
    rng = np.random.default_rng(0)
    for k in [*keys, *rng.permutation(keys)]:
        assert ds.stored_slice(k) == images[k]
        np.testing.assert_array_equal(ds.slice_values(k), decode_slice(images[k]))
        grey = decode_png(ds.image(k))  # the paper-v1 min-max of the stored values
        np.testing.assert_array_equal(grey, to_uint8(decode_slice(images[k])))
        assert ds.has_image(k)
    with pytest.raises(KeyError, match=re.escape(str(root))):
        ds.image("0" * 64)
    assert not ds.has_image("zz")


def test_hf_datasets_loads_the_same_rows(
    built: tuple[Path, list[Sample], dict[str, StoredSlice]], tmp_path: Path
) -> None:
    import datasets

    datasets.disable_progress_bars()
    root, _, _ = built
    ds = open_dataset(root)
    files = ds.hf_data_files()
    assert set(files) == {"train", "test"}
    hf = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "c1"))
    for split in ("train", "test"):
        assert [sample_from_row(r) for r in hf[split]] == ds.samples(split=split)
    assert hf["train"].features["plane"].dtype == "int8"
    # The README's `configs` make the directory itself loadable, ignoring cases/ and images/.
    hf2 = datasets.load_dataset(str(root), cache_dir=str(tmp_path / "c2"))
    assert {k: v.num_rows for k, v in hf2.items()} == {
        s: len(ds.samples(split=s)) for s in ("train", "test")
    }


def test_open_dataset_errors_name_path_and_missing_part(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such directory"):
        open_dataset(tmp_path / "absent")
    writer = DatasetWriter(tmp_path / "ds")
    samples, images = _case("mini", "c", np.random.default_rng(3), _png(5))
    writer.write_case("mini", "c", samples, images)
    with pytest.raises(FileNotFoundError, match=r"ds is not a built .*missing manifest\.json"):
        open_dataset(tmp_path / "ds")
    writer.finalize(BuildManifest.create(datasets=["mini"], seed=0))
    victim = next((tmp_path / "ds" / "images").iterdir())
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=f"images/{victim.name}"):
        open_dataset(tmp_path / "ds")


def test_finalize_refuses_unlisted_dataset_and_reruns_cleanly(tmp_path: Path) -> None:
    writer = DatasetWriter(tmp_path, row_group_size=5, samples_per_file=5)
    rng = np.random.default_rng(4)
    s1, i1 = _case("mini", "a", rng, _png(5))
    writer.write_case("mini", "a", s1, i1)
    with pytest.raises(ValueError, match=r"\['mini'\] are not in the manifest"):
        writer.finalize(BuildManifest.create(datasets=["other"], seed=0))
    first = writer.finalize(BuildManifest.create(datasets=["mini"], seed=0))
    assert first.n_samples == len(s1)
    # Leftovers of a killed write are ignored by the merge.
    (tmp_path / "cases" / "mini" / ".b.samples.arrow.123.tmp").write_bytes(b"junk")
    s2, i2 = _case("mini", "b", rng, _png(5))
    writer.write_case("mini", "b", s2, i2)
    second = writer.finalize(BuildManifest.create(datasets=["mini"], seed=0))
    ds = open_dataset(tmp_path)
    assert second.n_samples == len(s1) + len(s2) == len(ds.samples())
    listed = {f.path for f in second.files}
    on_disk = {p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("[di]*/*.parquet")}
    assert listed == on_disk  # old shards with stale -of-N names are gone
    assert not (tmp_path / ".finalize-tmp").exists()


def test_stores_of_rendered_8_bit_images_are_refused_with_the_reason(tmp_path: Path) -> None:
    writer = DatasetWriter(tmp_path)
    samples, images = _case("mini", "c", np.random.default_rng(5), _png(5))
    writer.write_case("mini", "c", samples, images)
    writer.finalize(BuildManifest.create(datasets=["mini"], seed=0))
    assert open_dataset(tmp_path).manifest.schema_version == "4"
    path = tmp_path / "manifest.json"
    manifest = json.loads(path.read_text())
    for old, message in (("2", "already rendered to 8-bit"), ("9", "rebuild the dataset")):
        path.write_text(json.dumps({**manifest, "schema_version": old}))
        with pytest.raises(ValueError, match=message):
            open_dataset(tmp_path)
