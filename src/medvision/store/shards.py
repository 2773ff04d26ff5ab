"""Files of a built dataset: atomic per-case files, numbered shards, file digests.

Used by :class:`medvision.store.writer.DatasetWriter`: :func:`write_parquet_atomic` and
:func:`write_arrow_atomic` write a case's files (temporary file, ``fsync``, ``os.replace``);
:class:`ShardWriter` streams tables into the merged shards with fixed row groups, or adopts a
finished case file as a shard; :func:`sha256_file` digests a file for the manifest and the
source fingerprints.
"""

from __future__ import annotations

import hashlib
import io
import os
import queue
import secrets
import shutil
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "ShardWriter",
    "read_arrow",
    "release_cached",
    "sha256_file",
    "write_arrow_atomic",
    "write_parquet_atomic",
]


def write_parquet_atomic(
    data: pa.Table | Iterable[pa.Table],
    path: Path,
    options: Mapping[str, Any],
    *,
    schema: pa.Schema | None = None,
) -> None:
    """Write rows to ``path`` atomically: temporary file, ``fsync``, ``os.replace``.

    Args:
        data: The rows: one table, or tables written one after the other (one row group
            each; only one of them need be in memory at a time).
        path: Final path (its folder is created).
        options: ``pyarrow.parquet.write_table`` options (compression, dictionary, ...).
        schema: The file's schema; required when ``data`` is not a single table.
    """
    if not isinstance(data, pa.Table) and schema is None:
        raise ValueError("write_parquet_atomic: a schema is needed to write batches")
    with _atomic(path) as tmp:
        if isinstance(data, pa.Table):
            pq.write_table(data, tmp, **options)
        else:
            with pq.ParquetWriter(tmp, schema, **options) as writer:
                for table in data:
                    writer.write_table(table)


def write_arrow_atomic(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` as an uncompressed Arrow IPC file, atomically.

    Per-case samples files use it: they are read back once, by finalize, where Arrow IPC
    costs a fraction of Parquet's decoding (about 0.2 ms against 3.5 ms for a case of 850
    samples and 28 columns).
    """
    with _atomic(path) as tmp, pa.ipc.new_file(tmp, table.schema) as writer:
        writer.write_table(table)


def read_arrow(path: Path, columns: list[str] | None = None) -> pa.Table:
    """Read an Arrow IPC file written by :func:`write_arrow_atomic` (``columns``: a subset)."""
    with pa.OSFile(str(path)) as fh:
        table = pa.ipc.open_file(fh).read_all()
    return table if columns is None else table.select(columns)


@contextmanager
def _atomic(path: Path) -> Iterator[str]:
    """A temporary path beside ``path``; once written, it is synced and renamed to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created with mode 0666 less the umask, as any new file (mkstemp's 0600 would make a
    # case images file, later adopted as a shard, unreadable to the group).
    tmp = str(path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        # The samples file marks a case as done: its bytes must be on disk before the name.
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def release_cached(path: Path) -> None:
    """Drop a file's pages from the OS page cache (the file stays as it is on disk).

    Finalize calls it on each case's images file once merged: the case files were synced
    when written, so their cached pages are clean and freed at once, and the merged shards
    written next reuse them instead of growing the page cache by the size of the dataset
    (on a virtual machine, fresh page-cache pages cost about 2.5 ms per MiB of system time;
    recycled ones a tenth of that, ``benchmarks/build.py``). Only caching changes: a
    finalize run again reads the case files from disk. A no-op where ``posix_fadvise`` is
    missing (not Linux) or the file cannot be opened.
    """
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    """sha256 hex digest of a file's bytes (read into one reused buffer, no copy per block)."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class _HashedFile(io.RawIOBase):
    """A new file, written sequentially, whose sha256 a background thread takes as it grows.

    Each :meth:`write` goes straight to the file; the hashing thread reads the bytes back
    from the page cache (no copy is queued) while the writer goes on, so a shard's digest is
    ready when it is closed instead of costing a second pass over the file.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._rd = os.open(path, os.O_RDONLY)
        self._pos = 0
        self._sha = hashlib.sha256()
        self._ranges: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._hash, name="shard-sha256", daemon=True)
        self._thread.start()

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            done += os.write(self._fd, view[done:])
        self._ranges.put((self._pos, done))
        self._pos += done
        return done

    def _hash(self) -> None:
        buf = memoryview(bytearray(1 << 20))
        try:
            while (item := self._ranges.get()) is not None:
                offset, size = item
                while size:
                    n = os.preadv(self._rd, [buf[: min(size, len(buf))]], offset)
                    if n == 0:
                        raise OSError(f"file shrank while being hashed (at byte {offset})")
                    self._sha.update(buf[:n])
                    offset += n
                    size -= n
        except OSError as exc:
            self._error = exc
            while self._ranges.get() is not None:  # drain so close() does not wait forever
                pass

    def close(self) -> None:
        if not self.closed:
            self._ranges.put(None)
            self._thread.join()
            os.close(self._fd)
            os.close(self._rd)
        super().close()

    def hexdigest(self) -> str:
        """sha256 hex digest of everything written (call after :meth:`close`)."""
        if self._error is not None:
            raise self._error
        return self._sha.hexdigest()


class ShardWriter:
    """Write tables into numbered Parquet shards with row groups of a fixed number of rows.

    A row group is cut early when its buffered bytes reach ``group_bytes``; a shard is closed
    once it holds ``file_rows`` rows or ``file_bytes`` bytes. Shards are named
    ``<prefix>-<i>-of-<n>.parquet`` when :meth:`close` knows ``n``; each shard's sha256 is
    taken while it is written (:attr:`digests`, by final file name, after :meth:`close`).
    :meth:`adopt` makes a finished file the next shard without copying it.
    """

    def __init__(
        self,
        directory: Path,
        prefix: str,
        schema: pa.Schema,
        *,
        group_rows: int,
        group_bytes: int,
        file_rows: int,
        file_bytes: int,
        options: Mapping[str, Any],
    ) -> None:
        self._dir = directory
        self._prefix = prefix
        self._schema = schema
        self._group_rows = group_rows
        self._group_bytes = group_bytes
        self._file_rows = file_rows
        self._file_bytes = file_bytes
        self._options = dict(options)
        self._buffer: list[pa.Table] = []
        self._buffer_rows = 0
        self._buffer_bytes = 0
        self._writer: pq.ParquetWriter | None = None
        self._sink: _HashedFile | None = None
        self._partial_digests: list[str | Future[str]] = []
        self._hasher: ThreadPoolExecutor | None = None
        self.digests: dict[str, str] = {}
        self._file_written_rows = 0
        self._file_written_bytes = 0
        self._partials: list[Path] = []
        self.n_rows = 0

    def add(self, table: pa.Table, nbytes: int | None = None) -> None:
        """Buffer ``table``'s rows, writing every full row group (``nbytes``: its bytes)."""
        if table.num_rows == 0:
            return
        self._buffer.append(table)
        self._buffer_rows += table.num_rows
        self._buffer_bytes += table.nbytes if nbytes is None else nbytes
        while self._buffer_rows >= self._group_rows:
            self._flush(self._group_rows)
        if self._buffer_bytes >= self._group_bytes:
            self._flush(self._buffer_rows)

    def _flush(self, n_rows: int) -> None:
        merged = pa.concat_tables(self._buffer)
        group = merged.slice(0, n_rows)
        rest = merged.slice(n_rows)
        # Bytes of the remainder are estimated proportionally: exact sizes only matter for
        # when to cut a group, not for correctness.
        rest_bytes = (self._buffer_bytes * rest.num_rows) // max(merged.num_rows, 1)
        group_bytes = self._buffer_bytes - rest_bytes
        self._buffer = [rest] if rest.num_rows else []
        self._buffer_rows = rest.num_rows
        self._buffer_bytes = rest_bytes
        if self._writer is not None and (
            self._file_written_rows >= self._file_rows
            or self._file_written_bytes >= self._file_bytes
        ):
            self._close_file()
        if self._writer is None:
            path = self._next_partial()
            self._sink = _HashedFile(path)
            self._writer = pq.ParquetWriter(self._sink, self._schema, **self._options)
            self._file_written_rows = 0
            self._file_written_bytes = 0
        self._writer.write_table(group.combine_chunks(), row_group_size=n_rows)
        self._file_written_rows += n_rows
        self._file_written_bytes += group_bytes
        self.n_rows += n_rows

    def adopt(self, path: Path, n_rows: int) -> None:
        """Make the finished Parquet file ``path`` the next shard as it is, without a copy.

        The caller vouches that the file has this writer's schema, options and row groups
        (:func:`medvision.store.merge._adoptable`). Rows buffered so far are written first,
        as the last row group of the current shard. The file is hard-linked (copied where the
        file system has no hard links), so ``path`` itself stays; its sha256 is taken on a
        helper thread while the caller goes on.

        Args:
            path: The file to adopt (left in place).
            n_rows: Its number of rows.
        """
        if self._buffer_rows:
            self._flush(self._buffer_rows)
        self._close_file()
        partial = self._next_partial()
        try:
            os.link(path, partial)
        except OSError:
            shutil.copyfile(path, partial)
        if self._hasher is None:
            self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-sha256")
        self._partial_digests.append(self._hasher.submit(sha256_file, partial))
        self.n_rows += n_rows

    def close(self) -> list[Path]:
        """Flush, close and rename the shards; return their final paths in order."""
        if self._buffer_rows:
            self._flush(self._buffer_rows)
        self._close_file()
        if self._hasher is not None:
            self._hasher.shutdown(wait=True)
            self._hasher = None
        n = len(self._partials)
        final: list[Path] = []
        for i, partial in enumerate(self._partials):
            path = self._dir / f"{self._prefix}-{i:05d}-of-{n:05d}.parquet"
            os.replace(partial, path)
            final.append(path)
            digest = self._partial_digests[i]
            self.digests[path.name] = digest if isinstance(digest, str) else digest.result()
        return final

    def _next_partial(self) -> Path:
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._dir / f"{self._prefix}-{len(self._partials):05d}.partial"
        self._partials.append(path)
        return path

    def _close_file(self) -> None:
        if self._writer is not None and self._sink is not None:
            self._writer.close()
            self._sink.close()
            self._partial_digests.append(self._sink.hexdigest())
            self._writer = None
            self._sink = None
