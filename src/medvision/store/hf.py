"""A built dataset the way HF ``datasets`` users expect it: an ``image`` column beside the samples.

* :func:`to_hf` gives a ``datasets.Dataset`` (one split) or ``DatasetDict`` (all splits) in
  memory: every column of the samples table plus ``image``, of feature ``datasets.Image()``,
  which decodes to a PIL image.
* :func:`export_hf` writes a Hub-ready folder that ``datasets.load_dataset(folder)`` loads,
  streaming one row group at a time::

      README.md                          dataset card: YAML (configs, features, licence), the
                                         source datasets' licences and citations, provenance
      data/<split>-0000i-of-0000n.parquet  samples with the image bytes embedded
      medvision_build.json               the build manifest (provenance)

  ``datasets.load_dataset(folder).push_to_hub("user/name")`` (or ``huggingface-cli upload
  user/name folder --repo-type dataset``) publishes it; both need the network.

The image is :func:`~medvision.store.model_image.model_image`: the 8-bit PNG a model is shown
under the default configuration (protocol ``paper-v1``), before the model's own resize.
``datasets`` is imported lazily (extra ``train``/``test``: ``datasets>=3.6``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from medvision.schema import Split
from medvision.store.hf_card import dataset_card
from medvision.store.model_image import DEFAULT_PROTOCOL, model_image
from medvision.store.reader import BuiltDataset
from medvision.store.schema import SAMPLES_SCHEMA, table_to_samples

__all__ = [
    "HF_BUILD_FILE",
    "IMAGE_COLUMN",
    "IMAGE_TYPE",
    "export_hf",
    "hf_features",
    "hf_schema",
    "to_hf",
]

#: Name of the image column.
IMAGE_COLUMN = "image"
#: Arrow storage of a ``datasets.Image()`` feature: PNG bytes and an (unused) path.
IMAGE_TYPE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
#: The build manifest, copied into an exported folder.
HF_BUILD_FILE = "medvision_build.json"
_BATCH_ROWS = 100  # rows per Parquet row group (HF's default for image data)
_SHARD_BYTES = 256 << 20  # image bytes per Parquet shard (the Hub's viewer likes < 500 MB)


def hf_features() -> Any:
    """The ``datasets.Features`` of a medvision HF dataset: ``image`` then the sample columns.

    Fixed-length lists (``image_hw``, ``spacing_mm_rc``, ``box_rc``) keep their length.
    """
    import datasets

    columns = datasets.Features.from_arrow_schema(SAMPLES_SCHEMA.remove_metadata())
    return datasets.Features({IMAGE_COLUMN: datasets.Image(), **columns})


def hf_schema() -> pa.Schema:
    """Arrow schema of the exported Parquet files, with the ``huggingface`` features metadata.

    ``datasets`` reads the features (``image`` is a ``datasets.Image()``) from this metadata.
    """
    features = hf_features()
    meta = {"huggingface": json.dumps({"info": {"features": features.to_dict()}})}
    fields = [pa.field(IMAGE_COLUMN, IMAGE_TYPE), *SAMPLES_SCHEMA]
    return pa.schema(fields, metadata=meta)


def _with_images(dataset: BuiltDataset, table: pa.Table, protocol: str) -> pa.Table:
    """``table`` with the ``image`` column first (PNG bytes of :func:`model_image`)."""
    pngs = [model_image(dataset, s, protocol=protocol) for s in table_to_samples(table)]
    images = pa.array([{"bytes": p, "path": None} for p in pngs], type=IMAGE_TYPE)
    return table.add_column(0, pa.field(IMAGE_COLUMN, IMAGE_TYPE), images)


def _batches(dataset: BuiltDataset, split: Split, protocol: str) -> Iterator[pa.Table]:
    for path in dataset.sample_files(split):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=_BATCH_ROWS):
            table = pa.Table.from_batches([batch]).cast(SAMPLES_SCHEMA)
            yield _with_images(dataset, table, protocol)


def to_hf(
    dataset: BuiltDataset, split: Split | None = None, *, protocol: str = DEFAULT_PROTOCOL
) -> Any:
    """The built dataset as HF ``datasets`` objects, images included (in memory).

    Args:
        dataset: An open built dataset.
        split: ``"train"`` or ``"test"``; ``None`` gives a ``DatasetDict`` of every split.
        protocol: The protocol whose rendering the images follow (default ``paper-v1``, the
            default configuration).

    Returns:
        A ``datasets.Dataset`` whose ``image`` column (``datasets.Image()``) decodes to PIL,
        beside every column of the samples table, rows in stored order; or a
        ``datasets.DatasetDict``. For builds larger than memory use :func:`export_hf` and
        ``datasets.load_dataset(folder)``, which memory-maps.

    Raises:
        ValueError: If ``split`` is not a split name.
    """
    import datasets
    from datasets.table import InMemoryTable

    if split is None:
        return datasets.DatasetDict(
            {s: to_hf(dataset, s, protocol=protocol) for s in dataset.splits}  # type: ignore[arg-type]
        )
    parts = list(_batches(dataset, split, protocol))
    table = pa.concat_tables(parts) if parts else hf_schema().empty_table()
    table = table.replace_schema_metadata(None)
    info = datasets.DatasetInfo(features=hf_features())
    return datasets.Dataset(InMemoryTable(table), info=info, split=datasets.NamedSplit(split))


def export_hf(
    dataset: BuiltDataset,
    out_dir: str | os.PathLike[str],
    *,
    protocol: str = DEFAULT_PROTOCOL,
    shard_bytes: int = _SHARD_BYTES,
    overwrite: bool = False,
) -> dict[str, list[Path]]:
    """Write a Hub-ready folder (see the module docstring); one row group in memory at a time.

    Args:
        dataset: An open built dataset.
        out_dir: The folder to write (created; must be empty unless ``overwrite``).
        protocol: The protocol whose rendering the images follow.
        shard_bytes: A shard is closed once it holds this many image bytes.
        overwrite: Replace an existing folder's ``data/``, card and manifest.

    Returns:
        The Parquet shards written, per split.

    Raises:
        FileExistsError: If ``out_dir`` holds files and ``overwrite`` is false.
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} is not empty; pass overwrite (--overwrite) or a new folder")
    data = out / "data"
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    schema = hf_schema()
    shards: dict[str, list[Path]] = {}
    counts: dict[str, tuple[int, int]] = {}
    for split in dataset.splits:
        shards[split], counts[split] = _write_split(
            dataset,
            split,  # type: ignore[arg-type]
            data,
            schema,
            protocol,
            shard_bytes,
        )
    (out / HF_BUILD_FILE).write_text(dataset.manifest.model_dump_json(indent=2) + "\n")
    card = dataset_card(dataset.manifest, hf_features(), counts, protocol=protocol)
    (out / "README.md").write_text(card)
    return shards


def _write_split(
    dataset: BuiltDataset,
    split: Split,
    data: Path,
    schema: pa.Schema,
    protocol: str,
    shard_bytes: int,
) -> tuple[list[Path], tuple[int, int]]:
    """Write one split's shards; return them and ``(rows, Arrow bytes)``."""
    partials: list[Path] = []
    writer: pq.ParquetWriter | None = None
    held = 0
    rows = 0
    nbytes = 0
    for table in _batches(dataset, split, protocol):
        if writer is None or held >= shard_bytes:
            if writer is not None:
                writer.close()
            partials.append(data / f".{split}-{len(partials):05d}.partial")
            writer = pq.ParquetWriter(partials[-1], schema, compression="zstd")
            held = 0
        writer.write_table(table.cast(schema), row_group_size=_BATCH_ROWS)
        images = table[IMAGE_COLUMN].combine_chunks()
        held += int(pc.sum(pc.binary_length(images.field("bytes"))).as_py() or 0)
        rows += table.num_rows
        nbytes += table.nbytes
    if writer is not None:
        writer.close()
    final = []
    for i, partial in enumerate(partials):
        path = data / f"{split}-{i:05d}-of-{len(partials):05d}.parquet"
        os.replace(partial, path)
        final.append(path)
    return final, (rows, nbytes)
