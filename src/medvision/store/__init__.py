"""Built datasets on disk: Parquet samples and images (by content hash), manifest, reader.

Write with :class:`DatasetWriter` (per case, resumable; then :meth:`DatasetWriter.finalize`),
read with :func:`open_dataset`. The samples files load directly with HF ``datasets``::

    ds = open_dataset(root)
    hf = datasets.load_dataset("parquet", data_files=ds.hf_data_files())
"""

from medvision.store.manifest import BuildCounts, BuildManifest, ManifestFile, SkippedCase
from medvision.store.reader import BuiltDataset, open_dataset
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
