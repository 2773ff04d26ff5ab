"""Built datasets on disk: Parquet samples and lossless slices (by content hash), manifest, reader.

Write with :class:`DatasetWriter` (per case, resumable; then :meth:`DatasetWriter.finalize`),
read with :func:`open_dataset`. The samples files load directly with HF ``datasets``::

    ds = open_dataset(root)
    hf = datasets.load_dataset("parquet", data_files=ds.hf_data_files())
    png = ds.image(ds.samples()[0], "official")  # the image a model is shown, per protocol
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
    stored_slice_from_row,
    table_to_samples,
)
from medvision.store.writer import DatasetWriter

if TYPE_CHECKING:
    from medvision.store.reader import BuiltDataset, ImageSubject, normalisation_of, open_dataset


def __getattr__(name: str) -> Any:
    # The reader pulls pyarrow.dataset (and pandas with it, ~60 MB): build workers only write,
    # so it is imported on first use, not with the package.
    if name in ("BuiltDataset", "ImageSubject", "normalisation_of", "open_dataset"):
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
    "ImageSubject",
    "ManifestFile",
    "SkippedCase",
    "image_key",
    "normalisation_of",
    "open_dataset",
    "png_size_hw",
    "sample_from_row",
    "sample_to_row",
    "samples_to_table",
    "stored_slice_from_row",
    "table_to_samples",
]
