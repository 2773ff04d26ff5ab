"""Built datasets on disk: Parquet samples and images (by content hash), manifest, reader.

Write with :class:`DatasetWriter` (per case, resumable; then :meth:`DatasetWriter.finalize`),
read with :func:`open_dataset`. The samples files load directly with HF ``datasets``::

    ds = open_dataset(root)
    hf = datasets.load_dataset("parquet", data_files=ds.hf_data_files())
"""

from typing import TYPE_CHECKING, Any

from medvision.store.manifest import BuildCounts, BuildManifest, ManifestFile, SkippedCase
from medvision.store.schema import (
    IMAGES_SCHEMA,
    SAMPLES_SCHEMA,
    image_key,
    png_size_hw,
    sample_from_row,
    sample_to_row,
    samples_to_table,
    table_to_samples,
)
from medvision.store.writer import DatasetWriter

if TYPE_CHECKING:
    from medvision.store.reader import BuiltDataset, open_dataset


def __getattr__(name: str) -> Any:
    # The reader pulls pyarrow.dataset (and pandas with it, ~60 MB): build workers only write,
    # so it is imported on first use, not with the package.
    if name in ("BuiltDataset", "open_dataset"):
        from medvision.store import reader

        return getattr(reader, name)
    raise AttributeError(f"module 'medvision.store' has no attribute {name!r}")


__all__ = [
    "IMAGES_SCHEMA",
    "SAMPLES_SCHEMA",
    "BuildCounts",
    "BuildManifest",
    "BuiltDataset",
    "DatasetWriter",
    "ManifestFile",
    "SkippedCase",
    "image_key",
    "open_dataset",
    "png_size_hw",
    "sample_from_row",
    "sample_to_row",
    "samples_to_table",
    "table_to_samples",
]
