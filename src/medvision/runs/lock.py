"""One writer per run folder: an exclusive ``flock`` on ``<run>/.lock``.

Two ``medvision eval`` processes appending to one ``records.jsonl`` would both ask every
sample and write it twice. Each process that writes into a run folder (eval, score) takes an
exclusive, non-blocking :func:`fcntl.flock` on ``.lock`` first; the second one refuses with a
clear line. The kernel drops the lock when its process dies, ``kill -9`` included, so a
crashed run never leaves the folder locked. The file holds the owner's pid (for the message
only: the lock, not the file, is what counts).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from medvision.runs.spec import RunError

__all__ = ["LOCK_NAME", "RunLock"]

LOCK_NAME = ".lock"


class RunLock:
    """A re-entrant (within one object) exclusive lock on a run folder.

    Args:
        run_dir: The run folder (created if missing).

    Use ``with lock:``; nested ``with`` blocks on the same object hold it once.

    Raises:
        RunError: On entry, if another process holds the folder's lock.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None
        self._depth = 0

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock (or count one more nesting level).

        Raises:
            RunError: If another process (or another lock object) holds it.
        """
        if self._fd is not None:
            self._depth += 1
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise RunError(
                f"{self.path.parent} is in use by another medvision process (pid {owner}); "
                "wait for it to finish, or write to another --out folder"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd
        self._depth = 1

    def release(self) -> None:
        """Leave one nesting level; the last one releases the lock."""
        if self._fd is None:
            return
        self._depth -= 1
        if self._depth > 0:
            return
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
