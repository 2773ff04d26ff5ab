"""Extract zip and tar archives without letting any member escape the target folder.

Every member is checked before the first byte is written. Paths are resolved the way the
file system will resolve them once extracted: through the symbolic links that earlier
members of the same archive create (and links already in the target folder), component by
component, so a chain such as ``q -> .`` then ``p -> q/..`` is seen to leave the target
even though each link looks harmless on its own. Anything that fails while extracting
(damaged archive, full disk) becomes :class:`ExtractionError` naming the archive.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

__all__ = ["ExtractionError", "UnsafeArchiveError", "safe_extract"]

_CHUNK = 1 << 20
#: Most symbolic links followed while resolving one path (Linux's own limit is 40).
_MAX_HOPS = 40


class UnsafeArchiveError(ValueError):
    """An archive member would be written outside the target folder (or is a device)."""


class ExtractionError(RuntimeError):
    """An archive could not be extracted (damaged, not an archive, disk full...)."""


class _LinkTree:
    """The symbolic links an archive creates, to resolve member paths before extracting.

    Paths are tuples of components relative to ``root``; resolution is lexical over the
    archive's links plus the links already on disk under ``root``.
    """

    def __init__(self, root: Path, archive: Path) -> None:
        self.root = root
        self.archive = archive
        self.links: dict[tuple[str, ...], str] = {}

    def _link_at(self, parts: list[str]) -> str | None:
        if tuple(parts) in self.links:
            return self.links[tuple(parts)]
        disk = self.root.joinpath(*parts)
        if disk.is_symlink():
            target = os.readlink(disk)
            if os.path.isabs(target):
                # An existing absolute link: allowed only when it points inside the root.
                try:
                    inside = Path(target).relative_to(self.root).parts
                except ValueError:
                    raise UnsafeArchiveError(
                        f"{self.archive}: existing link {disk} -> {target} leaves {self.root}"
                    ) from None
                return _relative_from(parts[:-1], inside)
            return target
        return None

    def resolve(self, parts: tuple[str, ...], member: str) -> tuple[str, ...]:
        """Where ``parts`` lands after following every link; refuse leaving the root."""
        out: list[str] = []
        todo = list(parts)
        hops = 0
        while todo:
            part = todo.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if not out:
                    raise UnsafeArchiveError(
                        f"{self.archive}: member {member!r} resolves outside {self.root} "
                        "(through the archive's links)"
                    )
                out.pop()
                continue
            out.append(part)
            link = self._link_at(out)
            if link is None:
                continue
            hops += 1
            if hops > _MAX_HOPS:
                raise UnsafeArchiveError(f"{self.archive}: member {member!r} is in a link loop")
            if link.startswith("/") or (len(link) > 1 and link[1] == ":"):
                raise UnsafeArchiveError(f"{self.archive}: link {member!r} -> {link!r} is absolute")
            out.pop()  # a link's target is relative to the folder holding it
            todo = list(PurePosixPath(link.replace("\\", "/")).parts) + todo
        return tuple(out)


def _relative_from(folder: list[str], target: tuple[str, ...]) -> str:
    """``target`` (from the root) as a path relative to ``folder`` (from the root)."""
    return os.path.relpath("/" + "/".join(target), "/" + "/".join(folder))


def _member_parts(name: str, archive: Path) -> tuple[str, ...]:
    """A member name's components, refusing absolute names and ``..``."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} contains '..'")
    return tuple(p for p in parts if p != ".")


def _check_tar(tf: tarfile.TarFile, root: Path, archive: Path) -> list[tarfile.TarInfo]:
    """Check every member of a tar, in order, through the links earlier members make."""
    tree = _LinkTree(root, archive)
    members = tf.getmembers()
    for m in members:
        parts = _member_parts(m.name, archive)
        if not parts:
            continue
        parent = tree.resolve(parts[:-1], m.name)
        where = (*parent, parts[-1])
        if m.issym():
            link = m.linkname
            if link.startswith("/") or (len(link) > 1 and link[1] == ":"):
                raise UnsafeArchiveError(f"{archive}: link {m.name!r} -> {link!r} is absolute")
            try:
                tree.resolve((*parent, *PurePosixPath(link.replace("\\", "/")).parts), m.name)
            except UnsafeArchiveError as exc:
                raise UnsafeArchiveError(
                    f"{archive}: link {m.name!r} -> {link!r} leaves {root} ({exc})"
                ) from None
            tree.links[where] = link
        elif m.islnk():  # hard links name a member path from the archive root
            tree.resolve(_member_parts(m.linkname, archive), m.name)
            tree.links.pop(where, None)
        elif m.isfile() or m.isdir():
            tree.links.pop(where, None)  # a file or folder replaces a link of that name
        else:
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a device or FIFO")
    return members


def _zip_members(archive: Path, root: Path) -> Iterator[tuple[zipfile.ZipInfo, Path]]:
    tree = _LinkTree(root, archive)
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            parts = _member_parts(info.filename, archive)
            resolved = tree.resolve(parts, info.filename) if parts else ()
            if stat.S_ISLNK(info.external_attr >> 16):
                # zipfile writes links as small regular files; still refuse escaping ones.
                link = zf.read(info).decode("utf-8", "replace")
                try:
                    tree.resolve((*parts[:-1], *PurePosixPath(link).parts), info.filename)
                except UnsafeArchiveError as exc:
                    raise UnsafeArchiveError(
                        f"{archive}: link {info.filename!r} -> {link!r} leaves {root} ({exc})"
                    ) from None
            yield info, root.joinpath(*resolved)


def _extract(src: Path, root: Path) -> list[Path]:
    out: list[Path] = []
    if zipfile.is_zipfile(src):
        checked = list(_zip_members(src, root))
        with zipfile.ZipFile(src) as zf:
            for info, dest in checked:
                if info.is_dir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as fin, dest.open("wb") as fout:
                    for block in iter(lambda: fin.read(_CHUNK), b""):
                        fout.write(block)
                out.append(dest)
        return out
    if not tarfile.is_tarfile(src):
        raise ExtractionError(f"cannot extract {src}: neither a zip nor a tar archive")
    with tarfile.open(src) as tf:
        members = _check_tar(tf, root, src)
        tf.extractall(root, members=members, filter="data")
    return [root / m.name for m in members if m.isfile()]


def safe_extract(archive: str | Path, target: str | Path) -> list[Path]:
    """Extract a zip or tar archive into ``target``, refusing anything that would escape it.

    Every member is checked before the first byte is written: absolute paths, ``..``
    components, members or links resolving outside ``target`` (through the links earlier
    members create and the links already on disk), link loops, and tar device files or
    FIFOs raise :class:`UnsafeArchiveError`. Zip symlinks are written as regular files
    (``zipfile`` never creates links); tar extraction also uses Python's ``"data"`` filter.

    Args:
        archive: ``.zip``, ``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2`` or ``.tar.xz``.
        target: Folder to extract into (created).

    Returns:
        The extracted file paths.

    Raises:
        UnsafeArchiveError: On any unsafe member (nothing has been extracted then).
        ExtractionError: The file is not a zip or tar archive, is damaged, or cannot be
            written (the message names the archive and the cause).
    """
    src = Path(archive)
    root = Path(target)
    try:
        root.mkdir(parents=True, exist_ok=True)
        root = root.resolve()
        return _extract(src, root)
    except (UnsafeArchiveError, ExtractionError):
        raise
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise ExtractionError(
            f"cannot extract {src} into {root}: {type(exc).__name__}: {exc}; delete the "
            "archive and rerun to fetch it again"
        ) from exc
