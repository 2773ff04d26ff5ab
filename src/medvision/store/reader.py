"""Read a built dataset: filtered samples, lazy image access, HF ``datasets`` data files.

Images are stored losslessly (:mod:`medvision.volumes.stored`) and rendered to 8-bit grey
PNGs when read, by a rendering rule (:data:`medvision.volumes.RENDERINGS`):
:meth:`BuiltDataset.image` is the one entry point the runner, the reports and the exports use.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from medvision.schema import Plane, Sample, Split, TaskFamily
from medvision.store.manifest import MANIFEST_NAME, BuildManifest
from medvision.store.schema import (
    SAMPLES_SCHEMA,
    SCHEMA_VERSION,
    stored_slice_from_row,
    table_to_samples,
)
from medvision.store.writer import SPLITS
from medvision.volumes.png import encode_png
from medvision.volumes.render import Normalisation, normalisation_for
from medvision.volumes.stored import StoredSlice, decode_slice

__all__ = ["BuiltDataset", "ImageSubject", "normalisation_of", "open_dataset"]

#: Rules whose rendering depends on the slice alone (no sample needed).
_SLICE_ONLY_RULES = ("minmax", "percentile")


class ImageSubject(Protocol):
    """What rendering reads of a sample: a :class:`~medvision.schema.Sample` or a ``Record``."""

    @property
    def image_key(self) -> str:
        """Content key of the stored slice."""
        ...

    @property
    def dataset(self) -> str:
        """Source dataset name."""
        ...

    @property
    def modality(self) -> str:
        """Image modality."""
        ...

    @property
    def label_group(self) -> str:
        """Report group of the label."""
        ...

    @property
    def label_name(self) -> str:
        """Label name."""
        ...

    @property
    def label_kind(self) -> str:
        """Label kind (``"landmark"`` for A/D samples, which have no segmentation label)."""
        ...


def normalisation_of(subject: ImageSubject, rendering: str) -> Normalisation:
    """The normalisation ``rendering`` gives this sample or record.

    Under ``official`` the CT window follows the label's medvision-bm 1.2.1 class: the
    catalog's ``group_1_2_1`` where it declares one (the Knee split), else the stored
    ``label_group``. A record carries no task id; it is taken as the catalog's only task of
    its dataset where that matters (KiPA22 task 01 is forced to percentiles by 1.2.1).
    """
    task_id = str(getattr(subject, "task_id", "") or "01")
    group = subject.label_group
    if rendering == "official" and subject.modality == "CT":
        group = _classes_1_2_1().get((subject.dataset, subject.label_name), group)
    return normalisation_for(
        rendering,
        modality=subject.modality,
        label_group=group,
        label_name=subject.label_name,
        has_label=subject.label_kind != "landmark",
        dataset=subject.dataset,
        task_id=task_id,
    )


@cache
def _classes_1_2_1() -> dict[tuple[str, str], str]:
    """(dataset, label name) -> the 1.2.1 class where the catalog declares one (read once)."""
    from medvision.catalog.registry import catalog  # lazy: only the official rule needs it

    return {
        (spec.name, lab.name): lab.group_1_2_1
        for spec in catalog().values()
        for task in spec.tasks
        for lab in task.labels
        if lab.group_1_2_1 is not None
    }


_ROW_GROUP_CACHE = 4  # decoded image row groups kept; sequential access hits the last one


class _ImageGroup:
    """One decoded row group of an images file: the slice bytes stay in Arrow.

    The small columns (key, encoding, rescale, size) are converted to Python lists once per
    group, so reading one slice converts only its bytes.
    """

    def __init__(self, table: pa.Table) -> None:
        self._data = table.column("data")
        self._small = {
            name: table.column(name).to_pylist() for name in table.column_names if name != "data"
        }

    def stored_slice(self, i: int) -> StoredSlice:
        row: dict[str, Any] = {name: values[i] for name, values in self._small.items()}
        row["data"] = self._data[i].as_py()
        return stored_slice_from_row(row)


#: Rendered images kept per dataset, by (slice key, normalisation): consecutive samples
#: (labels of one slice) often show the same image.
_RENDER_CACHE = 32
#: zlib level of rendered PNGs: they are sent, not stored, so speed beats size (the pixels
#: are the same at every level).
RENDERED_PNG_LEVEL = 1
#: Schema versions whose images were rendered 8-bit PNGs (before lossless slices).
_RENDERED_SCHEMAS = ("1", "2", "3")


class BuiltDataset:
    """A finished build (see :mod:`medvision.store.writer` for the layout).

    Use :func:`open_dataset` to get one. Samples are read on demand with Parquet filters;
    images are read one row group at a time through a key index built on first use (the
    index holds the keys, never the stored bytes).

    Attributes:
        root: The dataset directory.
        manifest: Its build manifest.
    """

    def __init__(self, root: Path, manifest: BuildManifest) -> None:
        self.root = root
        self.manifest = manifest
        self._sample_files: dict[str, list[Path]] = {s: [] for s in SPLITS}
        self._image_files: list[Path] = []
        for entry in manifest.files:
            path = root / entry.path
            if entry.kind == "samples" and entry.split is not None:
                self._sample_files[entry.split].append(path)
            elif entry.kind == "images":
                self._image_files.append(path)
        self._index_keys: npt.NDArray[np.bytes_] | None = None
        self._index_file: npt.NDArray[np.int32] = np.zeros(0, np.int32)
        self._index_row: npt.NDArray[np.int64] = np.zeros(0, np.int64)
        self._group_starts: list[npt.NDArray[np.int64]] = []
        self._cache: OrderedDict[tuple[int, int], _ImageGroup] = OrderedDict()
        self._rendered: OrderedDict[tuple[str, str], bytes] = OrderedDict()

    def __repr__(self) -> str:
        return (
            f"BuiltDataset(root={str(self.root)!r}, build_id={self.manifest.build_id!r}, "
            f"n_samples={self.manifest.n_samples}, n_images={self.manifest.n_images})"
        )

    def __len__(self) -> int:
        return self.manifest.n_samples

    @property
    def splits(self) -> tuple[str, ...]:
        """Splits that have at least one sample, in order train, test."""
        return tuple(s for s in SPLITS if self._sample_files[s])

    def sample_files(self, split: Split | None = None) -> list[Path]:
        """Merged samples files of one split, or of all splits (train first)."""
        if split is None:
            return [p for s in SPLITS for p in self._sample_files[s]]
        if split not in self._sample_files:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return list(self._sample_files[split])

    def hf_data_files(self) -> dict[str, list[str]]:
        """Samples files per split for ``datasets.load_dataset("parquet", data_files=...)``.

        Returns:
            ``{"train": [...], "test": [...]}`` with absolute paths; splits without samples are
            left out.
        """
        return {s: [str(p.resolve()) for p in self._sample_files[s]] for s in self.splits}

    def to_hf(self, split: Split | None = None, *, protocol: str = "paper-v1") -> Any:
        """The samples with an ``image`` column, as HF ``datasets`` (needs ``datasets``).

        Args:
            split: ``"train"`` or ``"test"`` for a ``datasets.Dataset``; ``None`` for a
                ``datasets.DatasetDict`` of every split.
            protocol: The protocol whose rendering the images follow (default: the default
                configuration's).

        Returns:
            See :func:`medvision.store.hf.to_hf`: every samples column plus ``image``
            (``datasets.Image()``, decodes to PIL).
        """
        from medvision.store.hf import to_hf

        return to_hf(self, split, protocol=protocol)

    # -- samples --------------------------------------------------------------------------

    def table(
        self,
        *,
        split: Split | None = None,
        families: Iterable[TaskFamily | str] | None = None,
        planes: Iterable[Plane | int] | None = None,
        datasets: Iterable[str] | None = None,
    ) -> pa.Table:
        """The samples table, filtered; rows in stored order (split, family, dataset, ...)."""
        expr = _filter(families, planes, datasets)
        parts = [
            pq.read_table(p, filters=expr, schema=SAMPLES_SCHEMA) for p in self.sample_files(split)
        ]
        if not parts:
            return SAMPLES_SCHEMA.empty_table()
        return pa.concat_tables(parts)

    def samples(
        self,
        *,
        split: Split | None = None,
        families: Iterable[TaskFamily | str] | None = None,
        planes: Iterable[Plane | int] | None = None,
        datasets: Iterable[str] | None = None,
    ) -> list[Sample]:
        """Samples matching every given filter (``None`` = no filter on that field).

        Args:
            split: ``"train"`` or ``"test"``.
            families: Task families to keep.
            planes: Planes to keep.
            datasets: Source dataset names to keep.

        Returns:
            Samples in stored order.
        """
        return table_to_samples(
            self.table(split=split, families=families, planes=planes, datasets=datasets)
        )

    def iter_samples(
        self,
        *,
        split: Split | None = None,
        families: Iterable[TaskFamily | str] | None = None,
        planes: Iterable[Plane | int] | None = None,
        datasets: Iterable[str] | None = None,
        batch_size: int = 10_000,
    ) -> Iterator[Sample]:
        """Like :meth:`samples`, streamed: at most ``batch_size`` rows are decoded at a time."""
        expr = _filter(families, planes, datasets)
        for path in self.sample_files(split):
            for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
                table = pa.Table.from_batches([batch])
                if expr is not None:
                    table = table.filter(expr)
                yield from table_to_samples(table)

    # -- images ---------------------------------------------------------------------------

    def _build_index(self) -> npt.NDArray[np.bytes_]:
        keys: list[npt.NDArray[np.bytes_]] = []
        files: list[npt.NDArray[np.int32]] = []
        rows: list[npt.NDArray[np.int64]] = []
        self._group_starts = []
        for i, path in enumerate(self._image_files):
            pf = pq.ParquetFile(path)
            sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
            self._group_starts.append(np.cumsum([0, *sizes[:-1]], dtype=np.int64))
            col = pf.read(columns=["key"])["key"]
            keys.append(np.asarray(col.to_pylist(), dtype="S64"))
            files.append(np.full(len(col), i, np.int32))
            rows.append(np.arange(len(col), dtype=np.int64))
        all_keys = np.concatenate(keys) if keys else np.zeros(0, "S64")
        order = np.argsort(all_keys, kind="stable")
        self._index_file = (np.concatenate(files) if files else np.zeros(0, np.int32))[order]
        self._index_row = (np.concatenate(rows) if rows else np.zeros(0, np.int64))[order]
        sorted_keys: npt.NDArray[np.bytes_] = all_keys[order]
        self._index_keys = sorted_keys
        return sorted_keys

    def _locate(self, key: str) -> tuple[int, int] | None:
        keys = self._index_keys if self._index_keys is not None else self._build_index()
        needle = key.encode("ascii", errors="replace")
        pos = int(np.searchsorted(keys, needle))
        if len(needle) != 64 or pos >= len(keys) or keys[pos] != needle:
            return None
        return int(self._index_file[pos]), int(self._index_row[pos])

    def has_image(self, key: str) -> bool:
        """Whether an image with this content key is stored."""
        return self._locate(key) is not None

    def stored_slice(self, key: str) -> StoredSlice:
        """The slice stored under ``key`` (sha256 hex of its bytes), still encoded.

        Raises:
            KeyError: If no image has this key (the message names the dataset root).
        """
        where = self._locate(key)
        if where is None:
            raise KeyError(f"no image with key {key!r} in {self.root}")
        file_idx, row = where
        starts = self._group_starts[file_idx]
        group = int(np.searchsorted(starts, row, side="right")) - 1
        cache_key = (file_idx, group)
        rows = self._cache.get(cache_key)
        if rows is None:
            pf = pq.ParquetFile(self._image_files[file_idx])
            rows = _ImageGroup(pf.read_row_group(group).combine_chunks())
            self._cache[cache_key] = rows
            while len(self._cache) > _ROW_GROUP_CACHE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(cache_key)
        return rows.stored_slice(row - int(starts[group]))

    def slice_values(self, key: str) -> npt.NDArray[np.float32]:
        """The float32 values of the slice stored under ``key`` (HU for CT), (H, W).

        Raises:
            KeyError: If no image has this key.
        """
        values: npt.NDArray[np.float32] = decode_slice(self.stored_slice(key))
        return values

    def image(self, subject: str | ImageSubject, rendering: str = "minmax") -> bytes:
        """An image rendered to an 8-bit grey PNG by a rendering rule: what a model is shown.

        Args:
            subject: A sample or a record (any rule), or a bare image key (only the rules that
                depend on the slice alone: ``"minmax"``, ``"percentile"``).
            rendering: A rule of :data:`medvision.volumes.RENDERINGS`; the default
                ``"minmax"`` is the paper-v1 rendering.

        Returns:
            PNG bytes (mode ``"L"``), identical for identical input.

        Raises:
            KeyError: If no image has the key.
            ValueError: Unknown rule, or a sample-dependent rule (``"official"``) given a bare
                key.
        """
        if isinstance(subject, str):
            if rendering not in _SLICE_ONLY_RULES:
                raise ValueError(
                    f"rendering {rendering!r} depends on the sample (modality, label group): "
                    "pass the sample or record, not its image key"
                )
            key = subject
            norm = normalisation_for(rendering, modality="", label_group="")
        else:
            key = subject.image_key
            norm = normalisation_of(subject, rendering)
        cache_key = (key, norm.name)
        png = self._rendered.get(cache_key)
        if png is None:
            png = encode_png(norm.apply(self.slice_values(key)), compress_level=RENDERED_PNG_LEVEL)
            self._rendered[cache_key] = png
            while len(self._rendered) > _RENDER_CACHE:
                self._rendered.popitem(last=False)
        else:
            self._rendered.move_to_end(cache_key)
        return png


def _filter(
    families: Iterable[TaskFamily | str] | None,
    planes: Iterable[Plane | int] | None,
    datasets: Iterable[str] | None,
) -> pc.Expression | None:
    terms: list[pc.Expression] = []
    if families is not None:
        values = [TaskFamily(f).value for f in families]
        terms.append(pads.field("family").isin(values))
    if planes is not None:
        terms.append(pads.field("plane").isin([int(Plane(p)) for p in planes]))
    if datasets is not None:
        terms.append(pads.field("dataset").isin([str(d) for d in datasets]))
    if not terms:
        return None
    expr = terms[0]
    for term in terms[1:]:
        expr = expr & term
    return expr


def open_dataset(root: str | os.PathLike[str]) -> BuiltDataset:
    """Open a dataset directory written by :meth:`DatasetWriter.finalize`.

    Args:
        root: The dataset directory.

    Returns:
        The built dataset.

    Raises:
        FileNotFoundError: If ``root`` is not a directory, has no ``manifest.json`` (the build
            was never finalized, or finalize was interrupted) or lacks a file the manifest
            lists; the message names the path and what is missing.
        ValueError: If the manifest is invalid or from another schema version.
    """
    path = Path(root)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a built medvision dataset: no such directory")
    manifest_path = path / MANIFEST_NAME
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"{path} is not a built medvision dataset: missing {MANIFEST_NAME} "
            "(the build did not finish: run `medvision build` into this folder again)"
        )
    manifest = BuildManifest.load(manifest_path)
    if manifest.schema_version != SCHEMA_VERSION:
        if manifest.schema_version in _RENDERED_SCHEMAS:
            raise ValueError(
                f"{manifest_path}: schema version {manifest.schema_version!r} stores images "
                "already rendered to 8-bit at build time; this medvision stores slices "
                f"losslessly and renders them per protocol (schema {SCHEMA_VERSION!r}): "
                "rebuild the dataset with `medvision build` (no --render option any more)"
            )
        raise ValueError(
            f"{manifest_path}: schema version {manifest.schema_version!r}, this medvision reads "
            f"{SCHEMA_VERSION!r}; rebuild the dataset"
        )
    missing = [f.path for f in manifest.files if not (path / f.path).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{path} is an incomplete medvision dataset: {len(missing)} file(s) listed in "
            f"{MANIFEST_NAME} are missing, e.g. {missing[:3]}"
        )
    return BuiltDataset(path, manifest)
