"""Fingerprints of each case's source files: a build is identified by its data.

Each built case keeps ``cases/<dataset>/<case>.source.json`` beside its Parquet files: every
source file it was built from (image, mask, landmarks, extras; the files inside a DICOM or
per-structure mask folder) with its path relative to the data folder, size, modification
time (ns) and sha256. The hash is taken in the worker, just before the case is read; it is
always taken because it is cheap beside the load the build does anyway
(``benchmarks/source_fingerprint.py``: 0.044 s to hash vs 0.70 s to load four 256x256x96
int16 ``.nii.gz`` files, a ratio of 0.06).

On a rebuild into the same folder (:func:`plan_resume`), a finished case is kept only when
its files still match: same list of files and, per file, the same size and mtime, or, when
those moved, the same sha256 (a ``touch`` or a copy keeps the case). Otherwise its files are
deleted and it is rebuilt. Finished cases whose source case is gone are deleted (full builds
only). The manifest records each case's digest (:func:`case_digest`, over roles, paths and
sha256, not times) and the build's data digest (:func:`data_digest`), which enters the build
id.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from medvision.store.writer import CASE_SAMPLES_SUFFIX, DatasetWriter, sha256_file

__all__ = [
    "CaseSources",
    "Fingerprinting",
    "HasSources",
    "ResumePlan",
    "SourceFile",
    "case_digest",
    "case_digests",
    "data_digest",
    "fingerprint",
    "plan_resume",
    "read_sources",
    "remove_case",
    "sources_path",
    "stats_path",
]


class HasSources(Protocol):
    """A build job that names its case's source files."""

    @property
    def key(self) -> str:
        """Case id in the store."""
        ...

    def source_paths(self) -> list[tuple[str, Path]]:
        """``(role, path)`` of each source file or folder of the case."""
        ...


_J = TypeVar("_J", bound=HasSources)
_R = TypeVar("_R")


@dataclass(frozen=True)
class SourceFile:
    """One source file of a case.

    Attributes:
        role: ``"image"``, ``"mask"``, ``"landmarks"``, ``"extra"`` (``role/name`` for a file
            inside a source folder).
        path: Path relative to the data folder (``/``-separated), absolute if outside it.
        size: Bytes.
        mtime_ns: Modification time, ns since the epoch.
        sha256: sha256 hex digest of the bytes.
    """

    role: str
    path: str
    size: int
    mtime_ns: int
    sha256: str


CaseSources = list[SourceFile]


def sources_path(samples_path: Path) -> Path:
    """The fingerprint file beside a case's samples file."""
    return samples_path.with_name(samples_path.name.replace(CASE_SAMPLES_SUFFIX, ".source.json"))


def stats_path(samples_path: Path) -> Path:
    """The planner-counters file beside a case's samples file."""
    return samples_path.with_name(samples_path.name.replace(CASE_SAMPLES_SUFFIX, ".stats.json"))


def _expand(paths: Iterable[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """Folders become the sorted files inside them (``role/relative name``)."""
    out: list[tuple[str, Path]] = []
    for role, path in paths:
        if path.is_dir():
            for f in sorted(p for p in path.rglob("*") if p.is_file()):
                out.append((f"{role}/{f.relative_to(path).as_posix()}", f))
        else:
            out.append((role, path))
    return out


def _rel(path: Path, data_dir: Path) -> str:
    try:
        return path.relative_to(data_dir).as_posix()
    except ValueError:
        return str(path)


def fingerprint(paths: Iterable[tuple[str, Path]], data_dir: Path) -> CaseSources:
    """Size, mtime and sha256 of each source file (folders expanded).

    Raises:
        OSError: A file cannot be read (the build then skips or rebuilds the case).
    """
    out: CaseSources = []
    for role, path in _expand(paths):
        st = path.stat()
        out.append(
            SourceFile(role, _rel(path, data_dir), st.st_size, st.st_mtime_ns, sha256_file(path))
        )
    return out


def case_digest(files: CaseSources) -> str:
    """16 hex of the sha256 over the roles, paths and contents (not sizes or times)."""
    text = json.dumps([[f.role, f.path, f.sha256] for f in files], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def data_digest(cases: Mapping[str, str]) -> str:
    """16 hex of the sha256 over every ``case key -> case digest`` pair (sorted)."""
    text = json.dumps(sorted(cases.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_sources(path: Path, files: CaseSources) -> None:
    """Write a case's fingerprint file atomically (temporary file, then ``os.replace``).

    Not synced to disk: after a power loss the file may be missing or empty, which
    :func:`read_sources` reads as "no fingerprints", so resume rebuilds the case; a sync per
    case would only buy back that rebuild.
    """
    data = json.dumps({"files": [asdict(f) for f in files]}).encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_sources(path: Path) -> CaseSources | None:
    """A case's recorded fingerprints, or ``None`` when absent or unreadable."""
    try:
        data: Any = json.loads(path.read_text())
        return [SourceFile(**f) for f in data["files"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_case(writer: DatasetWriter, dataset: str, key: str) -> None:
    """Delete a finished case's files, its done marker (the samples file) first."""
    samples, images = writer.case_paths(dataset, key)
    for path in (samples, images, stats_path(samples), sources_path(samples)):
        path.unlink(missing_ok=True)


def _still_matches(recorded: CaseSources, job: HasSources, data_dir: Path) -> CaseSources | None:
    """The up-to-date fingerprints when the case's files are unchanged, else ``None``."""
    try:
        current = _expand(job.source_paths())
    except OSError:
        return None
    if [(r, _rel(p, data_dir)) for r, p in current] != [(f.role, f.path) for f in recorded]:
        return None
    fresh: CaseSources = []
    for (_, path), old in zip(current, recorded, strict=True):
        try:
            st = path.stat()
        except OSError:
            return None
        if (st.st_size, st.st_mtime_ns) == (old.size, old.mtime_ns):
            fresh.append(old)
            continue
        if st.st_size != old.size or sha256_file(path) != old.sha256:
            return None
        fresh.append(SourceFile(old.role, old.path, st.st_size, st.st_mtime_ns, old.sha256))
    return fresh


@dataclass(frozen=True)
class ResumePlan:
    """What a rebuild into an existing folder does.

    Attributes:
        todo: Jobs to build (new, changed, or never finished).
        kept: Finished cases whose source files are unchanged.
        rebuilt: Keys of finished cases whose source files changed (their files deleted).
        removed: Keys of finished cases with no source case any more (deleted).
    """

    todo: list[Any]
    kept: int
    rebuilt: list[str]
    removed: list[str]


def plan_resume(
    writer: DatasetWriter, dataset: str, jobs: list[_J], data_dir: Path, *, prune: bool
) -> ResumePlan:
    """Split jobs into finished-and-unchanged (kept) and to-build; drop stale cases.

    Args:
        writer: The store.
        dataset: Dataset name in the store.
        jobs: Every (nameable) case of this build.
        data_dir: The source folder.
        prune: Delete finished cases whose key is not among ``jobs`` (full builds only: a
            ``max_cases`` build lists fewer cases than the source holds).
    """
    todo: list[_J] = []
    rebuilt: list[str] = []
    kept = 0
    for job in jobs:
        samples, _ = writer.case_paths(dataset, job.key)
        if not writer.case_done(dataset, job.key):
            todo.append(job)
            continue
        recorded = read_sources(sources_path(samples))
        fresh = _still_matches(recorded, job, data_dir) if recorded is not None else None
        if fresh is None:
            remove_case(writer, dataset, job.key)
            rebuilt.append(job.key)
            todo.append(job)
            continue
        if fresh != recorded:
            write_sources(sources_path(samples), fresh)
        kept += 1
    removed: list[str] = []
    folder = writer.root / "cases" / dataset
    if prune and folder.is_dir():
        keys = {j.key for j in jobs}
        for path in sorted(folder.glob(f"*{CASE_SAMPLES_SUFFIX}")):
            key = path.name[: -len(CASE_SAMPLES_SUFFIX)]
            if key not in keys and not key.startswith("."):
                remove_case(writer, dataset, key)
                removed.append(key)
    return ResumePlan(todo, kept, rebuilt, removed)


def case_digests(writer: DatasetWriter, dataset: str, keys: Iterable[str]) -> dict[str, str]:
    """``key -> case digest`` of the finished cases among ``keys`` that have fingerprints."""
    out: dict[str, str] = {}
    for key in keys:
        samples, _ = writer.case_paths(dataset, key)
        if not writer.case_done(dataset, key):
            continue
        files = read_sources(sources_path(samples))
        if files is not None:
            out[key] = case_digest(files)
    return dict(sorted(out.items()))


class Fingerprinting(Generic[_J, _R]):
    """Wrap a per-case build function: fingerprint the sources, build, record them.

    Picklable (it holds a module-level function and strings), so it runs in pool workers
    and Ray tasks. The fingerprint file is written after the case is, so a case killed in
    between has none and is rebuilt on resume.
    """

    def __init__(self, fn: Callable[[_J], _R], dataset: str, out_dir: str, data_dir: str):
        self.fn = fn
        self.dataset = dataset
        self.out_dir = out_dir
        self.data_dir = data_dir

    def __call__(self, job: _J) -> _R:
        """Build one case and record its source fingerprints when it was written."""
        try:
            files: CaseSources | None = fingerprint(job.source_paths(), Path(self.data_dir))
        except OSError:
            files = None  # unreadable: the build skips the case and names the file
        result = self.fn(job)
        writer = DatasetWriter(self.out_dir)
        if files is not None and writer.case_done(self.dataset, job.key):
            samples, _ = writer.case_paths(self.dataset, job.key)
            write_sources(sources_path(samples), files)
        return result
