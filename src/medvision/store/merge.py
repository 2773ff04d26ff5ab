"""Merge a build's per-case files into the split shards and the image shards (finalize).

:meth:`medvision.store.writer.DatasetWriter.finalize` runs :func:`merge_images` on a second
thread while this one runs :func:`merge_samples` (Parquet I/O and sha256 release the GIL);
each shard's sha256 is taken while it is written (:class:`~medvision.store.shards.ShardWriter`).

Memory: a batch of cases' samples (about one row group; one case when it has more), the
images of the case being merged and of the next one (read ahead), and the set of image
digests already written (32 bytes each).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from medvision.schema import Plane
from medvision.store.manifest import BuildCounts
from medvision.store.schema import IMAGES_SCHEMA, SAMPLES_SCHEMA
from medvision.store.shards import ShardWriter, read_arrow, release_cached

__all__ = [
    "IMAGE_WRITE_OPTIONS",
    "SAMPLE_WRITE_OPTIONS",
    "SORT_KEYS",
    "SPLITS",
    "CaseFileSet",
    "merge_images",
    "merge_samples",
]

#: Parquet options of the samples shards.
SAMPLE_WRITE_OPTIONS: dict[str, Any] = {"compression": "zstd"}
#: Parquet options of images files: the slices are compressed already, so no compression;
#: no dictionary and no min/max statistics for the slice bytes (unique values of tens of kB:
#: both only cost time, and statistics that large are dropped anyway).
IMAGE_WRITE_OPTIONS: dict[str, Any] = {
    "compression": "none",
    "use_dictionary": ["encoding"],
    "write_statistics": [n for n in IMAGES_SCHEMA.names if n != "data"],
}

#: Split order of the merged files.
SPLITS: tuple[str, ...] = ("train", "test")

#: Row order inside a split (split itself is the file).
SORT_KEYS: tuple[str, ...] = (
    "family",
    "dataset",
    "case_id",
    "plane",
    "slice_index",
    "label_id",
    "label_name",
    "metric_key",
    "sample_id",
)


@dataclass(frozen=True)
class CaseFileSet:
    """The two files of one finished case in ``cases/<dataset>/``."""

    dataset: str
    case_id: str
    samples: Path
    images: Path


def merge_samples(
    cases: list[CaseFileSet], staging: Path, out: Path, *, group_rows: int, file_rows: int
) -> tuple[BuildCounts, list[tuple[str, Path]], dict[str, str]]:
    """Merge the cases' samples into sorted split shards in ``out``; count them.

    Args:
        cases: The cases to merge, in (dataset, case id) order.
        staging: Folder for the intermediate per-(split, family) part files.
        out: Folder of the split shards (``<split>-<i>-of-<n>.parquet``).
        group_rows: Rows per row group of the shards (also the sorting batch).
        file_rows: Most rows in one shard.

    Returns:
        The counts, ``(split, shard path)`` of each shard, and each shard's sha256 by
        file name.
    """
    counts, split_rows = _partition(cases, staging, group_rows)
    sample_files: list[tuple[str, Path]] = []
    digests: dict[str, str] = {}
    for split in SPLITS:
        parts = [staging / f"part-{split}-{fam}.arrow" for fam in split_rows.get(split, [])]
        shards = ShardWriter(
            out,
            split,
            SAMPLES_SCHEMA,
            group_rows=group_rows,
            group_bytes=1 << 62,  # samples groups are cut by rows only
            file_rows=file_rows,
            file_bytes=1 << 62,
            options=SAMPLE_WRITE_OPTIONS,
        )
        for part in parts:
            # One batch in memory at a time (read, not mapped: buffered rows outlive the file).
            with pa.OSFile(str(part)) as source:
                reader = pa.ipc.open_file(source)
                for i in range(reader.num_record_batches):
                    shards.add(pa.Table.from_batches([reader.get_batch(i)], schema=SAMPLES_SCHEMA))
            part.unlink()
        sample_files.extend((split, p) for p in shards.close())
        digests.update(shards.digests)
    return counts, sample_files, digests


def _partition(
    cases: list[CaseFileSet], staging: Path, batch_rows: int
) -> tuple[BuildCounts, dict[str, list[str]]]:
    """Stream cases into one sorted part file per (split, family); count samples.

    The part files are uncompressed Arrow IPC: written once and read once, right away.

    Cases are sorted and split in batches of about ``batch_rows`` rows (one case
    when it has more), not one by one: the same rows in the same order, with a few
    Arrow calls per batch instead of per case.
    """
    writers: dict[tuple[str, str], pa.ipc.RecordBatchFileWriter] = {}
    by_split: Counter[str] = Counter()
    by_family: Counter[str] = Counter()
    by_family_plane: Counter[tuple[str, str]] = Counter()
    by_family_label: Counter[tuple[str, str]] = Counter()
    pending: list[pa.Table] = []

    def flush() -> None:
        # Cases come in (dataset, case id) order and both are sort keys, so sorting a batch
        # of consecutive cases gives the rows of sorting each case on its own.
        table = pa.concat_tables(pending)
        pending.clear()
        table = table.take(_sort_indices(table))
        for row in (
            table.group_by(["split", "family", "plane", "label_name"])
            .aggregate([("sample_id", "count")])
            .to_pylist()
        ):
            n = int(row["sample_id_count"])
            by_split[row["split"]] += n
            by_family[row["family"]] += n
            by_family_plane[(row["family"], Plane(row["plane"]).name.lower())] += n
            by_family_label[(row["family"], row["label_name"])] += n
        for split, family in _distinct_pairs(table):
            mask = pc.and_(pc.equal(table["split"], split), pc.equal(table["family"], family))
            key = (split, family)
            if key not in writers:
                writers[key] = pa.ipc.new_file(
                    staging / f"part-{split}-{family}.arrow", SAMPLES_SCHEMA
                )
            writers[key].write_table(table.filter(mask))

    try:
        n_pending = 0
        for case in cases:
            table = _read_case_samples(case)
            if table.num_rows == 0:
                continue
            pending.append(table)
            n_pending += table.num_rows
            if n_pending >= batch_rows:  # a batch of cases: bounded memory
                flush()
                n_pending = 0
        if pending:
            flush()
    finally:
        for w in writers.values():
            w.close()
    counts = BuildCounts(
        by_split=dict(sorted(by_split.items())),
        by_family=dict(sorted(by_family.items())),
        by_family_plane=_nest(by_family_plane),
        by_family_label=_nest(by_family_label),
    )
    split_families: dict[str, list[str]] = {}
    for split, family in sorted(writers):
        split_families.setdefault(split, []).append(family)
    return counts, split_families


def _read_case_samples(case: CaseFileSet) -> pa.Table:
    """A case's samples, checked: schema, and rows of that dataset and case only."""
    where = f"case {case.dataset}/{case.case_id} ({case.samples})"
    table = read_arrow(case.samples)
    if table.schema.names != SAMPLES_SCHEMA.names:
        raise ValueError(
            f"{where}: expected columns {SAMPLES_SCHEMA.names}, found {table.schema.names}"
        )
    table = table.cast(SAMPLES_SCHEMA)
    if table.num_rows and not (
        pc.all(pc.equal(table["dataset"], case.dataset)).as_py()
        and pc.all(pc.equal(table["case_id"], case.case_id)).as_py()
    ):
        raise ValueError(f"{where}: holds rows of another dataset or case")
    return table


def merge_images(
    cases: list[CaseFileSet],
    out: Path,
    stop: threading.Event,
    *,
    group_rows: int,
    group_bytes: int,
    file_bytes: int,
) -> tuple[list[Path], int, dict[str, str]]:
    """Store each distinct slice once, in order of first appearance, in image shards.

    A case's images file that already has the shards' layout (see :func:`_adoptable`: at
    least one full row group, none over ``group_bytes``, the whole under ``file_bytes``) and
    holds no slice of an earlier case becomes a shard as it is, hard-linked instead of
    copied: a volume's slices are written once per build, not twice. Other cases (2D images,
    small crops, slices shared with an earlier case) are copied into merged shards.

    Also checks that every image a case's samples refer to is in its images file. Stops
    early (and returns what it has) once ``stop`` is set: finalize failed elsewhere. Each
    copied case's images file leaves the page cache once merged (:func:`release_cached`).

    Args:
        cases: The cases to merge, in (dataset, case id) order.
        out: Folder of the image shards (``images-<i>-of-<n>.parquet``).
        stop: Set by the caller to stop early.
        group_rows: Most images per row group.
        group_bytes: A row group is cut once it holds this many stored bytes.
        file_bytes: A shard is closed once it holds this many stored bytes.

    Returns:
        The shard paths, the number of distinct slices, and each shard's sha256 by file
        name.
    """
    seen: set[bytes] = set()  # raw 32-byte digests: half the memory of the hex keys
    shards = ShardWriter(
        out,
        "images",
        IMAGES_SCHEMA,
        group_rows=group_rows,
        group_bytes=group_bytes,
        file_rows=1 << 62,
        file_bytes=file_bytes,
        options=IMAGE_WRITE_OPTIONS,
    )

    def read(case: CaseFileSet) -> _CaseImages:
        return _read_case_images(case, group_rows, group_bytes, file_bytes)

    # The next case's file is read (keys, and the slices unless it can be adopted) on a
    # helper thread while this one writes.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-images") as reader:
        ahead = [reader.submit(read, c) for c in cases[:1]]
        for k, case in enumerate(cases):
            if stop.is_set():
                break
            found = ahead.pop(0).result()
            if k + 1 < len(cases):
                ahead.append(reader.submit(read, cases[k + 1]))
            digests = {bytes.fromhex(key) for key in found.keys}
            unique = len(digests) == len(found.keys)  # never repeated inside the file
            if found.batches is None and unique and seen.isdisjoint(digests):
                seen.update(digests)
                shards.adopt(case.images, len(digests))
                continue
            batches = found.batches
            if batches is None:  # adoptable, but it repeats a slice: copy the new ones
                batches = _read_batches(case.images, group_rows)
            _add_new_images(shards, batches, seen)
            release_cached(case.images)
    paths = shards.close()
    return paths, len(seen), shards.digests


@dataclass(frozen=True)
class _CaseImages:
    """A case's image keys, in file order, and its slices unless the file can be adopted."""

    keys: list[str]
    batches: list[pa.RecordBatch] | None


def _read_case_images(
    case: CaseFileSet, batch_rows: int, group_bytes: int, file_bytes: int
) -> _CaseImages:
    """A case's image keys, checked against its samples, and its slices when not adoptable."""
    pf = pq.ParquetFile(case.images)
    if pf.schema_arrow.names != IMAGES_SCHEMA.names:
        raise ValueError(
            f"case {case.dataset}/{case.case_id} ({case.images}): expected columns "
            f"{IMAGES_SCHEMA.names}, found {pf.schema_arrow.names}"
        )
    keys = pf.read(columns=["key"], use_threads=False)["key"]
    _check_image_keys(case, keys)
    if _adoptable(pf, batch_rows, group_bytes, file_bytes):
        return _CaseImages(keys.to_pylist(), None)
    return _CaseImages(keys.to_pylist(), _read_batches(pf, batch_rows))


def _read_batches(source: Path | pq.ParquetFile, batch_rows: int) -> list[pa.RecordBatch]:
    pf = source if isinstance(source, pq.ParquetFile) else pq.ParquetFile(source)
    return list(pf.iter_batches(batch_size=batch_rows, use_threads=False))


def _adoptable(pf: pq.ParquetFile, group_rows: int, group_bytes: int, file_bytes: int) -> bool:
    """Whether an images file has the layout :class:`ShardWriter` gives a shard of its rows.

    That is: the shards' exact schema, at least one full row group of ``group_rows`` rows,
    every row group full but the last, each under ``group_bytes`` and the whole under
    ``file_bytes`` (Parquet's uncompressed sizes, which include the keys: an upper bound of
    the stored bytes the shard writer counts). Smaller files are copied into merged shards,
    so a dataset of 2D images does not become one file per image.
    """
    meta = pf.metadata
    if not pf.schema_arrow.equals(IMAGES_SCHEMA, check_metadata=True):
        return False
    rows = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    sizes = [meta.row_group(g).total_byte_size for g in range(meta.num_row_groups)]
    return (
        bool(rows)
        and rows[0] == group_rows
        and all(n == group_rows for n in rows[:-1])
        and 0 < rows[-1] <= group_rows
        and max(sizes) < group_bytes
        and sum(sizes) < file_bytes
    )


def _add_new_images(shards: ShardWriter, batches: list[pa.RecordBatch], seen: set[bytes]) -> None:
    """Add the rows whose key is not in ``seen`` (and remember them), in order."""
    for batch in batches:
        keep: list[int] = []
        for i, key in enumerate(batch.column("key").to_pylist()):
            digest = bytes.fromhex(key)
            if digest not in seen:
                seen.add(digest)
                keep.append(i)
        if not keep:
            continue
        table = pa.Table.from_batches([batch])
        if len(keep) < table.num_rows:  # a slice already stored by an earlier case
            table = table.take(keep)
        table = table.cast(IMAGES_SCHEMA)
        nbytes = int(pc.sum(pc.binary_length(table["data"])).as_py())
        shards.add(table, nbytes)


def _check_image_keys(case: CaseFileSet, stored: pa.ChunkedArray) -> None:
    """Refuse a case whose samples refer to an image its images file lacks."""
    wanted = read_arrow(case.samples, ["image_key"])["image_key"]
    absent = pc.invert(pc.is_in(wanted, value_set=stored.combine_chunks()))
    if pc.any(absent).as_py():
        missing = set(wanted.filter(absent).to_pylist())
        raise ValueError(
            f"case {case.dataset}/{case.case_id} ({case.samples}): {len(missing)} image key(s) "
            f"missing from {case.images}, e.g. {sorted(missing)[:3]}"
        )


def _sort_indices(table: pa.Table) -> pa.Array:
    """Row order by :data:`SORT_KEYS`, a null ``label_id`` first.

    Nulls are ordered through an explicit validity column, which works on every supported
    pyarrow (per-key null placement only exists from pyarrow 25).
    """
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for key in SORT_KEYS:
        if key == "label_id":
            columns["_label_valid"] = pc.is_valid(table[key])
            columns[key] = pc.fill_null(table[key], 0)
        else:
            columns[key] = table[key]
    keys = pa.table(columns)
    return pc.sort_indices(keys, sort_keys=[(name, "ascending") for name in keys.column_names])


def _distinct_pairs(table: pa.Table) -> Iterator[tuple[str, str]]:
    pairs = table.group_by(["split", "family"]).aggregate([]).to_pylist()
    for row in sorted(pairs, key=lambda r: (r["split"], r["family"])):
        yield str(row["split"]), str(row["family"])


def _nest(counter: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
    nested: dict[str, dict[str, int]] = {}
    for (outer, inner), n in sorted(counter.items()):
        nested.setdefault(outer, {})[inner] = n
    return nested
