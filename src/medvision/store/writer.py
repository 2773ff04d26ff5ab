"""Write a built dataset: per-case files while building, merged shards at the end.

Layout of a dataset root (``/``-separated, relative to the root)::

    cases/<dataset>/<case_id>.samples.arrow     one case's samples, Arrow IPC (written last =
                                                done marker)
    cases/<dataset>/<case_id>.images.parquet    that case's slices (lossless), by content key
                                                (cases/ is removed after a build unless kept)
    data/train-00000-of-0000N.parquet           merged samples of the train split
    data/test-00000-of-0000N.parquet            merged samples of the test split
    images/images-00000-of-0000M.parquet        all slices, each key once
    README.md                                   HF ``configs`` front matter (train/test splits)
    manifest.json                               written last by :meth:`DatasetWriter.finalize`

Per-case files are written atomically (temporary file, then ``os.replace``), the images file
before the samples file, so a killed build resumes with :meth:`DatasetWriter.case_done`.
Splits are separate files so ``datasets.load_dataset("parquet", data_files=...)`` (or
``load_dataset(root)`` through the README) yields ``train`` and ``test`` splits. Within a split
rows are sorted by family, dataset, case, plane, slice, label id, label name, metric key,
sample id; row groups hold :attr:`DatasetWriter.row_group_size` rows.

Merging streams the case files (:mod:`medvision.store.merge`: what it holds in memory, and
the images merged on a second thread while the samples are). A case's images file that
already has the shards' layout becomes an image shard as it is (hard-linked, not copied).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq

from medvision.schema import Sample
from medvision.store.manifest import (
    MANIFEST_NAME,
    BuildManifest,
    ManifestFile,
    atomic_write_bytes,
)
from medvision.store.merge import (
    IMAGE_WRITE_OPTIONS,
    SORT_KEYS,
    SPLITS,
    CaseFileSet,
    merge_images,
    merge_samples,
)
from medvision.store.schema import IMAGES_SCHEMA, check_images, images_to_table, samples_to_table
from medvision.store.shards import sha256_file, write_arrow_atomic, write_parquet_atomic
from medvision.volumes.stored import StoredSlice

__all__ = [
    "CASES_DIR",
    "CASE_IMAGES_SUFFIX",
    "CASE_SAMPLES_SUFFIX",
    "DATA_DIR",
    "IMAGES_DIR",
    "SORT_KEYS",
    "SPLITS",
    "DatasetWriter",
    "sha256_file",
]

CASES_DIR = "cases"
DATA_DIR = "data"
IMAGES_DIR = "images"
_STAGING_DIR = ".finalize-tmp"
#: File name endings of a case's samples (the done marker) and images in ``cases/<dataset>/``.
CASE_SAMPLES_SUFFIX = ".samples.arrow"
CASE_IMAGES_SUFFIX = ".images.parquet"


def _check_name(what: str, value: str) -> None:
    """Refuse names that cannot be one path component (they become file and folder names)."""
    bad = (
        not value
        or value in (".", "..")
        or value.startswith(".")  # hidden names collide with our temporary files
        or any(ch in value for ch in ("/", "\\", "\0"))
    )
    if bad:
        raise ValueError(
            f"{what} {value!r} cannot be used as a file name: expected a non-empty name "
            "without '/', '\\', NUL or a leading '.'"
        )


class DatasetWriter:
    """Write a built dataset under ``root`` (see the module docstring for the layout).

    Args:
        root: Dataset directory (created if missing).
        row_group_size: Rows per row group of the merged samples files.
        samples_per_file: Most rows in one merged samples file.
        image_group_rows: Most images per row group (HF uses 100 for image data; a random
            read of one image decodes one row group).
        image_group_bytes: A row group of images is cut once it holds this many stored bytes.
        image_file_bytes: A merged images file is closed once it holds this many stored bytes.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        row_group_size: int = 10_000,
        samples_per_file: int = 1_000_000,
        image_group_rows: int = 100,
        image_group_bytes: int = 64 << 20,
        image_file_bytes: int = 512 << 20,
    ) -> None:
        if min(row_group_size, samples_per_file, image_group_rows) < 1:
            raise ValueError("row/file sizes must be positive")
        self.root = Path(root)
        self.row_group_size = row_group_size
        self.samples_per_file = samples_per_file
        self.image_group_rows = image_group_rows
        self.image_group_bytes = image_group_bytes
        self.image_file_bytes = image_file_bytes

    # -- per-case files -------------------------------------------------------------------

    def case_paths(self, dataset: str, case_id: str) -> tuple[Path, Path]:
        """Return the ``(samples, images)`` file paths of one case."""
        _check_name("dataset", dataset)
        _check_name("case_id", case_id)
        folder = self.root / CASES_DIR / dataset
        return folder / f"{case_id}{CASE_SAMPLES_SUFFIX}", folder / f"{case_id}{CASE_IMAGES_SUFFIX}"

    def case_done(self, dataset: str, case_id: str) -> bool:
        """Whether both files of a case exist (a killed build skips such cases on resume)."""
        samples, images = self.case_paths(dataset, case_id)
        return samples.is_file() and images.is_file()

    def write_case(
        self,
        dataset: str,
        case_id: str,
        samples: Sequence[Sample],
        images: Mapping[str, StoredSlice],
    ) -> None:
        """Write one case's samples and the slices they reference, atomically.

        A case with no samples is written too (empty tables), so it counts as done.
        Images not referenced by any sample are not stored.

        Args:
            dataset: Catalog name; every sample must have it.
            case_id: Case identifier; every sample must have it.
            samples: The case's samples.
            images: ``image_key -> stored slice`` (:func:`medvision.volumes.encode_slice`);
                must cover every ``sample.image_key``.

        Raises:
            ValueError: On a sample of another dataset/case, a duplicated sample id, a missing
                image, a key that is not the sha256 of its bytes, or a bad stored slice.
        """
        samples_path, images_path = self.case_paths(dataset, case_id)
        where = f"dataset {dataset!r} case {case_id!r}"
        seen_ids: set[str] = set()
        referenced: dict[str, None] = {}  # ordered set: first reference order
        for s in samples:
            if s.dataset != dataset or s.case_id != case_id:
                raise ValueError(
                    f"{where}: sample {s.sample_id} belongs to dataset {s.dataset!r} "
                    f"case {s.case_id!r}"
                )
            if s.sample_id in seen_ids:
                raise ValueError(f"{where}: duplicate sample_id {s.sample_id}")
            seen_ids.add(s.sample_id)
            referenced[s.image_key] = None
        missing = [k for k in referenced if k not in images]
        if missing:
            raise ValueError(
                f"{where}: {len(missing)} referenced image(s) missing from `images`, "
                f"e.g. {missing[:3]}"
            )
        try:
            check_images({k: images[k] for k in referenced})
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from exc
        samples_table = samples_to_table(samples)
        # Slices are already compressed; the images file is written first, the samples file last,
        # so a samples file on disk implies its images file is complete. The images go in row
        # groups of ``image_group_rows`` (as the merged shards), one small table at a time: a
        # few MiB that Arrow reuses, not one table of the whole case.
        keys = list(referenced)
        step = self.image_group_rows
        groups = (
            images_to_table({k: images[k] for k in keys[i : i + step]})
            for i in range(0, len(keys), step)
        )
        write_parquet_atomic(groups, images_path, IMAGE_WRITE_OPTIONS, schema=IMAGES_SCHEMA)
        write_arrow_atomic(samples_table, samples_path)

    def _case_files(self) -> list[CaseFileSet]:
        cases_dir = self.root / CASES_DIR
        found: list[CaseFileSet] = []
        if not cases_dir.is_dir():
            return found
        for ds_dir in sorted(p for p in cases_dir.iterdir() if p.is_dir()):
            entries: list[CaseFileSet] = []
            for path in ds_dir.iterdir():
                name = path.name
                if name.startswith(".") or not name.endswith(CASE_SAMPLES_SUFFIX):
                    continue
                case_id = name[: -len(CASE_SAMPLES_SUFFIX)]
                images = ds_dir / f"{case_id}{CASE_IMAGES_SUFFIX}"
                if not images.is_file():
                    raise FileNotFoundError(
                        f"case {ds_dir.name}/{case_id}: {path} exists but its images file "
                        f"{images} is missing; delete {path} and rebuild the case"
                    )
                entries.append(CaseFileSet(ds_dir.name, case_id, path, images))
            # Sort by the case id string (the sort key), not by file name.
            found.extend(sorted(entries, key=lambda c: c.case_id))
        return found

    # -- merge ----------------------------------------------------------------------------

    def finalize(
        self, manifest: BuildManifest, *, only: set[tuple[str, str]] | None = None
    ) -> BuildManifest:
        """Merge all case files into the split shards and the image shards; write the manifest.

        ``manifest.json`` is removed first and written last, so an interrupted finalize leaves
        a directory that :func:`medvision.store.reader.open_dataset` refuses; run it again.

        Args:
            manifest: Provenance from :meth:`BuildManifest.create`; its ``datasets`` must cover
                every dataset under ``cases/``.
            only: ``(dataset, case_id)`` pairs to merge (default: every case file); a build of
                fewer cases into a folder that holds more must not publish the others.

        Returns:
            The manifest as written, with ``counts``, ``n_samples``, ``n_images`` and ``files``
            computed from the merged data.

        Raises:
            ValueError: If a case file has the wrong schema, holds rows of another case, refers
                to an image its images file lacks, or its dataset is not in the manifest.
        """
        cases = self._case_files()
        if only is not None:
            cases = [c for c in cases if (c.dataset, c.case_id) in only]
        unknown = sorted({c.dataset for c in cases} - set(manifest.datasets))
        if unknown:
            raise ValueError(
                f"{self.root}: case folders for datasets {unknown} are not in the manifest's "
                f"datasets {manifest.datasets}"
            )
        (self.root / MANIFEST_NAME).unlink(missing_ok=True)
        staging = self.root / _STAGING_DIR
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)

        # The images (most of the bytes) are merged and hashed on a second thread while this
        # one merges the samples: Parquet I/O and sha256 release the GIL, so finalize runs on
        # two cores. Each thread writes its own files; the merged bytes are the same.
        stop = threading.Event()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="merge-images") as pool:
            images_job = pool.submit(
                merge_images,
                cases,
                staging / IMAGES_DIR,
                stop,
                group_rows=self.image_group_rows,
                group_bytes=self.image_group_bytes,
                file_bytes=self.image_file_bytes,
            )
            try:
                counts, sample_files, digests = merge_samples(
                    cases,
                    staging,
                    staging / DATA_DIR,
                    group_rows=self.row_group_size,
                    file_rows=self.samples_per_file,
                )
            except BaseException:
                stop.set()  # the images thread stops at its next case
                raise
            image_paths, n_images, image_digests = images_job.result()
        digests.update(image_digests)

        for name in (DATA_DIR, IMAGES_DIR):
            old = self.root / name
            if old.exists():
                shutil.rmtree(old)
            new = staging / name
            if new.exists():
                os.replace(new, old)
            else:
                old.mkdir()
        shutil.rmtree(staging)

        files = [
            self._file_entry(self.root / DATA_DIR / p.name, "samples", split, digests[p.name])
            for split, p in sample_files
        ]
        files += [
            self._file_entry(self.root / IMAGES_DIR / p.name, "images", None, digests[p.name])
            for p in image_paths
        ]
        self._write_readme(manifest, [s for s in SPLITS if any(f[0] == s for f in sample_files)])
        final = manifest.model_copy(
            update={
                "counts": counts,
                "n_samples": sum(counts.by_split.values()),
                "n_images": n_images,
                "files": files,
            }
        )
        final.save(self.root / MANIFEST_NAME)
        return final

    def remove_cases(self, dataset: str) -> None:
        """Delete one dataset's per-case files (and ``cases/`` once it is empty).

        Call it after :meth:`finalize`: the merged shards hold everything; the case files only
        serve a build that is resumed or extended.
        """
        _check_name("dataset", dataset)
        cases = self.root / CASES_DIR
        folder = cases / dataset
        if folder.is_dir():
            shutil.rmtree(folder)
        if cases.is_dir() and not any(cases.iterdir()):
            cases.rmdir()

    def _file_entry(self, path: Path, kind: str, split: str | None, sha256: str) -> ManifestFile:
        return ManifestFile.model_validate(
            {
                "path": path.relative_to(self.root).as_posix(),
                "kind": kind,
                "split": split,
                "n_rows": pq.ParquetFile(path).metadata.num_rows,
                "n_bytes": path.stat().st_size,
                "sha256": sha256,
            }
        )

    def _write_readme(self, manifest: BuildManifest, splits: list[str]) -> None:
        # HF `datasets` reads the `configs` front matter, so `load_dataset(root)` finds the
        # splits and ignores cases/ and images/.
        lines = ["---", "configs:", "- config_name: default", "  data_files:"]
        for split in splits:
            lines += [f"  - split: {split}", f"    path: {DATA_DIR}/{split}-*.parquet"]
        if not splits:
            lines = ["---"]
        lines += [
            "---",
            "",
            f"# medvision-bench build {manifest.build_id}",
            "",
            "Samples (one row per image-annotation pair) are in `data/<split>-*.parquet`;",
            "Slices, stored losslessly and keyed by sha256, in `images/*.parquet` (rendered to",
            "8-bit grey per protocol when read); provenance in `manifest.json`.",
            "",
        ]
        atomic_write_bytes(self.root / "README.md", "\n".join(lines).encode())
