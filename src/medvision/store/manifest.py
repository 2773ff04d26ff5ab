"""The build manifest: what a built dataset holds, how it was made, and what was skipped.

``manifest.json`` sits at the root of a built dataset and is written last by
:meth:`medvision.store.writer.DatasetWriter.finalize`, so its presence marks a finished build.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from medvision.store.schema import SCHEMA_VERSION

__all__ = [
    "MANIFEST_NAME",
    "BuildCounts",
    "BuildManifest",
    "ManifestFile",
    "SkippedCase",
    "atomic_write_bytes",
    "compute_build_id",
    "library_versions",
]

MANIFEST_NAME = "manifest.json"

#: Distributions whose versions can change the built data (import name differs for skimage).
_VERSIONED = {
    "numpy": "numpy",
    "scipy": "scipy",
    "nibabel": "nibabel",
    "pyarrow": "pyarrow",
    "skimage": "scikit-image",
    "cv2": "opencv-python-headless",
}


def library_versions() -> dict[str, str]:
    """Return the installed versions of medvision and the libraries that shape the data.

    Returns:
        ``{"medvision": ..., "numpy": ..., "scipy": ..., "nibabel": ..., "pyarrow": ...,
        "skimage": ..., "cv2": ...}``; ``"not installed"`` for a missing distribution.
    """
    from medvision import __version__

    versions = {"medvision": __version__}
    for name, dist in _VERSIONED.items():
        try:
            versions[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def compute_build_id(
    *,
    datasets: list[str],
    seed: int,
    options: dict[str, Any],
    versions: dict[str, str],
) -> str:
    """Hash the inputs of a build into a short stable identifier.

    Args:
        datasets: Catalog names of the source datasets (order-insensitive).
        seed: Build seed.
        options: Build options; must be JSON-serialisable.
        versions: Library versions (see :func:`library_versions`).

    Returns:
        16 hex characters of the sha256 of the canonical JSON of the inputs.
    """
    payload = {
        "datasets": sorted(datasets),
        "seed": seed,
        "options": options,
        "versions": versions,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class SkippedCase(BaseModel):
    """A case (or one file of it) left out of the build, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: str
    case_id: str
    file: str = ""
    reason: str


class ManifestFile(BaseModel):
    """One Parquet file of the finished build.

    Attributes:
        path: Path relative to the dataset root, ``/``-separated.
        kind: ``"samples"`` or ``"images"``.
        split: The split of a samples file; ``None`` for images.
        n_rows: Number of rows.
        n_bytes: File size in bytes.
        sha256: sha256 hex of the file's bytes.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    kind: Literal["samples", "images"]
    split: Literal["train", "test"] | None = None
    n_rows: int
    n_bytes: int
    sha256: str


class BuildCounts(BaseModel):
    """Sample counts of a build (keys are strings so the JSON is plain).

    Attributes:
        by_split: ``{"train": n, "test": n}``.
        by_family: ``{family value: n}``.
        by_family_plane: ``{family value: {plane name lower-case ("axial"...): n}}``.
        by_family_label: ``{family value: {label_name: n}}``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    by_split: dict[str, int] = Field(default_factory=dict)
    by_family: dict[str, int] = Field(default_factory=dict)
    by_family_plane: dict[str, dict[str, int]] = Field(default_factory=dict)
    by_family_label: dict[str, dict[str, int]] = Field(default_factory=dict)


class BuildManifest(BaseModel):
    """Provenance and contents of a built dataset (``manifest.json``).

    Create one with :meth:`create` before building; :meth:`DatasetWriter.finalize
    <medvision.store.writer.DatasetWriter.finalize>` fills ``counts``, ``n_samples``,
    ``n_images`` and ``files`` from the data it merged.

    Attributes:
        build_id: Hash of the inputs and library versions (:func:`compute_build_id`).
        created_utc: ISO-8601 UTC time the manifest was created.
        medvision_version: Version of this package.
        versions: Versions of numpy, scipy, nibabel, pyarrow, skimage, cv2 (OpenCV).
        seed: Build seed.
        datasets: Catalog names of the source datasets.
        counts: Sample counts.
        n_samples: Total samples.
        n_images: Distinct images.
        skipped: Cases left out, with the reason.
        options: Build options as given.
        files: The Parquet files of the build.
        schema_version: :data:`medvision.store.schema.SCHEMA_VERSION` of the tables.
        annotation: Ground-truth version of the T/L targets (``"official-1.0.0"``,
            ``"official-1.4.0"``, ``"precise"``); an official-plan build records its plan
            file's version when the name states 1.0.0 or 1.4.0, else ``None``; ``None`` also
            for builds made before the field existed.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    build_id: str
    created_utc: str
    medvision_version: str
    versions: dict[str, str]
    seed: int
    datasets: list[str]
    counts: BuildCounts = Field(default_factory=BuildCounts)
    n_samples: int = 0
    n_images: int = 0
    skipped: list[SkippedCase] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)
    files: list[ManifestFile] = Field(default_factory=list)
    schema_version: str = SCHEMA_VERSION
    annotation: str | None = None

    @classmethod
    def create(
        cls,
        *,
        datasets: list[str],
        seed: int,
        options: dict[str, Any] | None = None,
        skipped: list[SkippedCase] | None = None,
        annotation: str | None = None,
    ) -> BuildManifest:
        """Start a manifest for a build: stamps versions, time and the build id.

        Args:
            datasets: Catalog names of the source datasets.
            seed: Build seed.
            options: JSON-serialisable build options.
            skipped: Cases already known to be skipped.
            annotation: Ground-truth version (it is also in ``options``, hence in the id).

        Returns:
            A manifest with empty counts.
        """
        opts = dict(options or {})
        all_versions = library_versions()
        medvision_version = all_versions.pop("medvision")
        build_id = compute_build_id(
            datasets=datasets,
            seed=seed,
            options=opts,
            versions={"medvision": medvision_version, **all_versions},
        )
        return cls(
            build_id=build_id,
            created_utc=datetime.now(UTC).isoformat(timespec="seconds"),
            medvision_version=medvision_version,
            versions=all_versions,
            seed=seed,
            datasets=list(datasets),
            options=opts,
            skipped=list(skipped or []),
            annotation=annotation,
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the manifest as indented JSON, atomically (temporary file then rename).

        Args:
            path: A ``.json`` file path, or a directory (then ``manifest.json`` inside it).

        Returns:
            The path written.
        """
        target = Path(path)
        if target.is_dir():
            target = target / MANIFEST_NAME
        atomic_write_bytes(target, (self.model_dump_json(indent=2) + "\n").encode())
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BuildManifest:
        """Read a manifest written by :meth:`save`.

        Args:
            path: The JSON file, or the dataset directory holding ``manifest.json``.

        Raises:
            FileNotFoundError: If the file does not exist (the message names the path).
            ValueError: If the file is not a valid manifest (the message names the path).
        """
        source = Path(path)
        if source.is_dir():
            source = source / MANIFEST_NAME
        if not source.is_file():
            raise FileNotFoundError(f"no build manifest at {source}")
        try:
            return cls.model_validate_json(source.read_bytes())
        except ValueError as exc:
            raise ValueError(f"invalid build manifest {source}: {exc}") from exc


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``.

    A reader never sees a half-written file: it sees the old file or the new one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
