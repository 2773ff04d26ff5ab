"""Download the openly downloadable source datasets; explain how to get the credentialed ones.

What it does, per file:

* **Resumable**: bytes go to ``<name>.part``; a rerun (or a retry after a dropped connection)
  asks the server for the rest with an HTTP ``Range`` request and appends. A server that
  ignores ``Range`` (status 200) restarts the file from zero.
* **Checksums where published**: sha256 or md5 from the registry or a catalog URL fragment
  (``https://host/file.zip#sha256=<hex>``, pip style), the md5 that the Zenodo and figshare
  APIs publish for every file, and the sha256 that the Hugging Face Hub sends for LFS files
  (``X-Linked-Etag``). A mismatch deletes the partial file and raises, naming the file and
  both digests. Files with no published checksum are reported as unverified.
* **Safe extraction** (:func:`~medvision.catalog.archives.safe_extract`): zip and tar
  members with an absolute path, a ``..`` component, or a path or link that resolves outside
  the target folder (through the links earlier members create, too) are refused before
  anything is written; tar device files and FIFOs are refused too. Any other extraction
  failure is an :class:`~medvision.catalog.archives.ExtractionError` naming the archive.
* **Credentialed sources** (Synapse, grand-challenge, SKM-TEA, ToothFairy2): nothing is
  downloaded; :class:`CredentialsRequired` carries step-by-step instructions.

Where sources come from: the ``source.download`` block of each dataset's YAML (the hosts and
records of reference dataset-construction.md section 2.1), the single source of truth; a
user spec without one falls back to its ``source.urls``.
Every network address is built from :class:`Endpoints`, so tests point them at a local server.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx

from medvision.catalog.archives import ExtractionError, UnsafeArchiveError, safe_extract
from medvision.catalog.download_spec import DownloadHost, DownloadSpec
from medvision.catalog.spec import DatasetSpec

__all__ = [
    "STEPS",
    "ChecksumError",
    "CredentialsRequired",
    "DatasetSource",
    "DownloadError",
    "DownloadedFile",
    "Endpoints",
    "ExtractionError",
    "RemoteFile",
    "UnsafeArchiveError",
    "download_dataset",
    "download_file",
    "resolve_files",
    "safe_extract",
    "source_for",
    "source_from_spec",
]

Host = DownloadHost
ChecksumAlgo = Literal["sha256", "md5"]

_CHUNK = 1 << 20
_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


class DownloadError(RuntimeError):
    """A download failed after its retries; the message names the URL and the file."""


class ChecksumError(DownloadError):
    """A downloaded file does not match its published checksum."""


class CredentialsRequired(RuntimeError):
    """The dataset needs an account, a token or a data-use agreement; holds the steps."""


@dataclass(frozen=True)
class Endpoints:
    """Base addresses of the hosts (override them to test against a local server)."""

    zenodo_api: str = "https://zenodo.org/api"
    figshare_api: str = "https://api.figshare.com/v2"
    huggingface: str = "https://huggingface.co"
    github: str = "https://github.com"


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch.

    Attributes:
        url: Absolute URL.
        name: File name to save as (no folders).
        checksum: ``(algorithm, hex digest)`` if published, else ``None``.
        size: Bytes, if published.
    """

    url: str
    name: str
    checksum: tuple[ChecksumAlgo, str] | None = None
    size: int | None = None


@dataclass(frozen=True)
class DatasetSource:
    """Where one dataset's raw files come from.

    Attributes:
        host: ``zenodo`` / ``figshare`` (record or article id), ``huggingface`` (dataset
            repo id), ``github`` (``owner/repo``), ``url`` (plain URLs), or ``credentialed``.
        ids: Record ids, article ids, repo ids or URLs, by host.
        files: Only these file names (empty = every file of the record/repo).
        revision: Hugging Face / GitHub revision.
        private_link: figshare private-link token, if the article is shared that way.
        instructions: What the user must do (credentialed sources) or run afterwards.
    """

    host: Host
    ids: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    revision: str = "main"
    private_link: str = ""
    instructions: str = ""


_SYNAPSE = (
    "1. Create a Synapse account (https://www.synapse.org) and accept the dataset's data-use "
    "terms on its Synapse page ({ids}).\n"
    "2. Create a personal access token (Account Settings > Personal Access Tokens) and export "
    "it: export SYNAPSE_TOKEN=...\n"
    "3. pip install synapseclient; then: synapse -p $SYNAPSE_TOKEN get -r {first} "
    "--downloadLocation DIR\n"
    "4. Build with: medvision build DIR --dataset {name} --out STORE"
)
_GRAND_CHALLENGE = (
    "1. Sign in at {ids} and join the challenge (accept its rules).\n"
    "2. Download the training data from the challenge's Data page into DIR.\n"
    "3. Build with: medvision build DIR --dataset {name} --out STORE"
)

#: Standard steps of the credentialed hosts (``steps`` of a YAML download block).
STEPS: dict[str, str] = {"synapse": _SYNAPSE, "grand-challenge": _GRAND_CHALLENGE}


def source_from_spec(download: DownloadSpec) -> DatasetSource:
    """The :class:`DatasetSource` a YAML ``source.download`` block describes."""
    steps = STEPS[download.steps] if download.steps else ""
    text = "\n".join(t for t in (steps, download.instructions) if t)
    return DatasetSource(
        download.host,
        tuple(download.ids),
        tuple(download.files),
        download.revision,
        download.private_link,
        text,
    )


def source_for(spec_or_name: DatasetSpec | str) -> DatasetSource:
    """The source of a dataset: its YAML's ``source.download`` block (the only registry).

    A user spec without that block falls back to its ``source.urls`` (see
    :func:`_source_from_urls`).

    Args:
        spec_or_name: A dataset spec, or the name of a built-in one.

    Raises:
        KeyError: If the dataset is unknown or has no download route (names the dataset).
    """
    if isinstance(spec_or_name, str):
        from medvision.catalog.registry import get_spec
        from medvision.catalog.spec import SpecError

        try:
            spec = get_spec(spec_or_name)
        except SpecError as exc:
            raise KeyError(f"no download source known for dataset {spec_or_name!r}: {exc}") from exc
    else:
        spec = spec_or_name
    src = spec.source
    if src.download is not None:
        return source_from_spec(src.download)
    if src.kind == "generator":
        raise KeyError(
            f"dataset {spec.name!r} is generated, not downloaded: run `medvision mini DIR`"
        )
    if src.kind == "download" and src.urls:
        return _source_from_urls(src.urls, src.instructions)
    if src.kind == "manual":
        return DatasetSource(
            "credentialed", tuple(src.urls), instructions=src.instructions or _GRAND_CHALLENGE
        )
    raise KeyError(
        f"no download source known for dataset {spec.name!r}: its YAML has no source.download block"
    )


def _source_from_urls(urls: list[str], instructions: str) -> DatasetSource:
    """A source from catalog URLs: file URLs as given; record and repository pages by host.

    ``zenodo.org/records/<id>`` becomes a Zenodo record, ``huggingface.co/datasets/<repo>``
    a Hub dataset, ``github.com/<owner>/<repo>`` a GitHub archive; any other page that is not
    a file (no file extension) cannot be fetched automatically and gives instructions.
    """
    import re

    files: list[str] = []
    for url in urls:
        base = url.partition("#")[0]
        if m := re.match(r"^https?://zenodo\.org/records?/(\d+)/?$", base):
            return DatasetSource("zenodo", (m.group(1),), instructions=instructions)
        if m := re.match(r"^https?://huggingface\.co/datasets/([^/]+/[^/]+)/?$", base):
            return DatasetSource("huggingface", (m.group(1),), instructions=instructions)
        if m := re.match(r"^https?://github\.com/([^/]+/[^/]+?)/?$", base):
            return DatasetSource("github", (m.group(1),), instructions=instructions)
        if "." in PurePosixPath(urlsplit(base).path).name:
            files.append(url)
    if files:
        return DatasetSource("url", tuple(files), instructions=instructions)
    steps = instructions or (
        "1. Open {ids} and follow the dataset's download steps (registration may be "
        "needed).\n2. Put the files in DIR.\n3. Build with: medvision build DIR --dataset "
        "{name} --out STORE"
    )
    return DatasetSource("credentialed", tuple(urls), instructions=steps)


def _instructions(name: str, source: DatasetSource) -> str:
    ids = ", ".join(source.ids) or "the dataset's website"
    first = source.ids[0].rsplit(":", 1)[-1] if source.ids else "<synapse id>"
    # Plain replacement, not str.format: a user spec's instructions may hold literal braces.
    text = source.instructions
    for key, value in (("{ids}", ids), ("{first}", first), ("{name}", name)):
        text = text.replace(key, value)
    return text


def _checksum_from_fragment(url: str) -> tuple[str, tuple[ChecksumAlgo, str] | None]:
    """Split ``url#sha256=<hex>`` (or ``#md5=``) into the URL and its checksum."""
    base, _, frag = url.partition("#")
    algo, _, digest = frag.partition("=")
    if algo in ("sha256", "md5") and digest:
        checked: ChecksumAlgo = "sha256" if algo == "sha256" else "md5"
        return base, (checked, digest.lower())
    return url, None


def _name_from_url(url: str) -> str:
    name = PurePosixPath(urlsplit(url).path).name
    if not name or name in (".", ".."):
        raise DownloadError(f"cannot derive a file name from URL {url}")
    return name


def _get_json(client: httpx.Client, url: str, params: dict[str, str] | None = None) -> Any:
    try:
        response = client.get(url, params=params, follow_redirects=True)
        response.raise_for_status()
        return response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise DownloadError(f"cannot list files at {url}: {type(exc).__name__}: {exc}") from exc


def _md5_field(value: object) -> tuple[ChecksumAlgo, str] | None:
    """``"md5:<hex>"`` (Zenodo) or ``"<hex>"`` (figshare) -> ``("md5", hex)``."""
    if not isinstance(value, str) or not value:
        return None
    algo, _, digest = value.partition(":")
    if not digest:
        return ("md5", algo.lower())
    if algo in ("md5", "sha256"):
        return ("md5" if algo == "md5" else "sha256", digest.lower())
    return None


def resolve_files(
    name: str, source: DatasetSource, client: httpx.Client, endpoints: Endpoints
) -> list[RemoteFile]:
    """List the files of a source with their published checksums (asks the host's API).

    Raises:
        CredentialsRequired: For a credentialed source (holds the instructions).
        DownloadError: If the host's file listing cannot be read.
    """
    if source.host == "credentialed":
        raise CredentialsRequired(
            f"{name} cannot be downloaded without credentials or a data-use agreement.\n"
            + _instructions(name, source)
        )
    files: list[RemoteFile] = []
    if source.host == "url":
        for raw in source.ids:
            url, checksum = _checksum_from_fragment(raw)
            files.append(RemoteFile(url, _name_from_url(url), checksum))
    elif source.host == "zenodo":
        for record in source.ids:
            data = _get_json(client, f"{endpoints.zenodo_api}/records/{record}")
            for f in data.get("files", []):
                key = str(f.get("key") or f.get("filename"))
                link = f.get("links", {}).get("self") or (
                    f"{endpoints.zenodo_api}/records/{record}/files/{quote(key)}/content"
                )
                files.append(
                    RemoteFile(str(link), key, _md5_field(f.get("checksum")), f.get("size"))
                )
    elif source.host == "figshare":
        for article in source.ids:
            params = {"private_link": source.private_link} if source.private_link else None
            url = f"{endpoints.figshare_api}/articles/{article}/files"
            for f in _get_json(client, url, params):
                files.append(
                    RemoteFile(
                        str(f["download_url"]),
                        str(f["name"]),
                        _md5_field(f.get("computed_md5") or f.get("supplied_md5")),
                        f.get("size"),
                    )
                )
    elif source.host == "huggingface":
        for repo in source.ids:
            api = f"{endpoints.huggingface}/api/datasets/{repo}/tree/{source.revision}"
            for f in _get_json(client, api, {"recursive": "true"}):
                if f.get("type") != "file":
                    continue
                path = str(f["path"])
                lfs = f.get("lfs") or {}
                lfs_sha: tuple[ChecksumAlgo, str] | None = (
                    ("sha256", str(lfs["oid"]).lower()) if lfs.get("oid") else None
                )
                url = f"{endpoints.huggingface}/datasets/{repo}/resolve/{source.revision}/"
                files.append(RemoteFile(url + quote(path), path, lfs_sha, f.get("size")))
    elif source.host == "github":
        for repo in source.ids:
            url = f"{endpoints.github}/{repo}/archive/refs/heads/{source.revision}.zip"
            files.append(RemoteFile(url, f"{repo.split('/')[-1]}-{source.revision}.zip"))
    if source.files:
        wanted = set(source.files)
        files = [f for f in files if f.name in wanted or PurePosixPath(f.name).name in wanted]
    return files


def _digest(path: Path, algo: ChecksumAlgo) -> str:
    h = hashlib.new(algo)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class DownloadedFile:
    """Outcome of one file.

    Attributes:
        path: Where the file now is.
        verified: ``"sha256"``/``"md5"`` if checked against a published digest, else ``""``.
        resumed_from: Bytes already on disk when this call started (0 = fresh download).
        skipped: True when a complete, verified file was already there.
    """

    path: Path
    verified: str
    resumed_from: int = 0
    skipped: bool = False


def _safe_name(name: str) -> str:
    """A relative path without ``..``: a host API must not choose folders outside ours.

    Sub-folders are allowed because hosts such as the HF Hub list files in them.
    """
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or any(p in ("..", ".") for p in parts) or "\\" in name:
        raise UnsafeArchiveError(f"refusing download file name {name!r} (not a relative path)")
    return name


def download_file(
    remote: RemoteFile,
    folder: str | Path,
    *,
    client: httpx.Client,
    retries: int = 3,
    backoff_s: float = 0.5,
    on_bytes: Callable[[int], None] | None = None,
) -> DownloadedFile:
    """Fetch one file into ``folder``, resuming a ``.part`` file, and verify its checksum.

    Args:
        remote: What to fetch.
        folder: Target folder (created).
        client: An ``httpx.Client`` (its timeouts and proxies apply).
        retries: Attempts after a dropped connection or a 5xx answer (each resumes).
        backoff_s: First wait between attempts (doubles each time).
        on_bytes: Called with the number of bytes of each chunk written (progress bars).

    Returns:
        The :class:`DownloadedFile`.

    Raises:
        ChecksumError: The file's digest differs from the published one (the partial file is
            deleted so the next run starts over).
        DownloadError: The server refused, or every attempt failed.
    """
    target = Path(folder) / _safe_name(remote.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    algo = remote.checksum[0] if remote.checksum else None
    if target.exists():
        if remote.checksum is None or _digest(target, remote.checksum[0]) == remote.checksum[1]:
            return DownloadedFile(target, algo or "", skipped=True)
        target.unlink()  # a stale or damaged file: fetch again
    part = target.with_name(target.name + ".part")
    resumed_from = part.stat().st_size if part.exists() else 0
    checksum = remote.checksum
    last_error: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        try:
            checksum = _stream_to_part(remote, part, client, checksum, on_bytes)
            break
        except (httpx.TransportError, _RetryableStatus) as exc:
            last_error = exc
    else:
        raise DownloadError(
            f"download of {remote.url} to {part} failed after {retries + 1} attempts "
            f"({type(last_error).__name__}: {last_error}); rerun to resume"
        )
    if remote.size is not None and part.stat().st_size != remote.size:
        found_size = part.stat().st_size
        # A wrong-sized .part would be "resumed" forever (the server answers 416): start over.
        part.unlink()
        raise DownloadError(
            f"{part}: expected {remote.size} bytes from {remote.url}, found {found_size}; "
            "the partial file was removed, rerun to download it again"
        )
    verified = ""
    if checksum is not None:
        found = _digest(part, checksum[0])
        if found != checksum[1]:
            part.unlink()
            raise ChecksumError(
                f"{target.name} from {remote.url}: {checksum[0]} mismatch, expected "
                f"{checksum[1]}, found {found} (partial file deleted; rerun to fetch again)"
            )
        verified = checksum[0]
    os.replace(part, target)
    return DownloadedFile(target, verified, resumed_from=resumed_from)


class _RetryableStatus(Exception):
    """A 5xx or 429 answer (worth another attempt)."""


def _stream_to_part(
    remote: RemoteFile,
    part: Path,
    client: httpx.Client,
    checksum: tuple[ChecksumAlgo, str] | None,
    on_bytes: Callable[[int], None] | None,
) -> tuple[ChecksumAlgo, str] | None:
    """One attempt: request the missing bytes and append them to ``part``.

    Returns the checksum to verify (the Hub's ``X-Linked-Etag`` sha256 when none was known).
    """
    offset = part.stat().st_size if part.exists() else 0
    # identity encoding: byte ranges and digests refer to the file itself, never to a
    # compressed transfer of it.
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with client.stream("GET", remote.url, headers=headers, follow_redirects=True) as response:
        if response.status_code == 416 and offset:
            return checksum  # nothing left to fetch: the part is complete
        if response.status_code == 429 or response.status_code >= 500:
            raise _RetryableStatus(f"HTTP {response.status_code}")
        if response.status_code not in (200, 206):
            raise DownloadError(
                f"{remote.url}: HTTP {response.status_code} (expected 200 or 206); "
                "check the URL or whether the file needs credentials"
            )
        if checksum is None:
            etag = response.headers.get("x-linked-etag", "").strip('"').lower()
            if len(etag) == 64 and all(c in "0123456789abcdef" for c in etag):
                checksum = ("sha256", etag)
        mode = "ab" if response.status_code == 206 else "wb"  # 200: server ignored Range
        with part.open(mode) as fh:
            # iter_raw yields bytes as they arrive, so a dropped connection keeps all it got.
            for chunk in response.iter_raw():
                fh.write(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
    return checksum


def _is_archive(name: str) -> bool:
    return name.lower().endswith(_ARCHIVE_SUFFIXES)


@dataclass
class DownloadReport:
    """What :func:`download_dataset` did."""

    dataset: str
    files: list[DownloadedFile] = field(default_factory=list)
    extracted: dict[str, int] = field(default_factory=dict)
    instructions: str = ""


def download_dataset(
    spec_or_name: DatasetSpec | str,
    dest: str | Path,
    *,
    endpoints: Endpoints | None = None,
    client: httpx.Client | None = None,
    extract: bool = True,
    only: tuple[str, ...] = (),
    on_bytes: Callable[[int], None] | None = None,
) -> DownloadReport:
    """Download (and extract) every file of an openly downloadable dataset into ``dest``.

    Archives are extracted into ``dest`` with :func:`safe_extract`; a marker file
    ``.extracted-<archive>`` makes a rerun skip archives already extracted, and downloaded
    files already complete and verified are not fetched again.

    Args:
        spec_or_name: Dataset spec or registry name.
        dest: Target folder.
        endpoints: Host addresses (tests point these at a local server).
        client: HTTP client; a default one (60 s read timeout) is made and closed otherwise.
        extract: Extract archives after download.
        only: Fetch only these file names.
        on_bytes: Progress callback (bytes per chunk).

    Returns:
        A :class:`DownloadReport`.

    Raises:
        CredentialsRequired: For credentialed datasets (the message holds the steps).
        DownloadError, ChecksumError, UnsafeArchiveError, ExtractionError: See
            :func:`download_file` and :func:`safe_extract`.
    """
    name = spec_or_name if isinstance(spec_or_name, str) else spec_or_name.name
    source = source_for(spec_or_name)
    endpoints = endpoints or Endpoints()
    own = client is None
    http = client or httpx.Client(timeout=httpx.Timeout(60.0, connect=20.0))
    report = DownloadReport(name, instructions=_instructions(name, source))
    folder = Path(dest)
    try:
        remotes = resolve_files(name, source, http, endpoints)
        if only:
            remotes = [r for r in remotes if r.name in only]
        for remote in remotes:
            got = download_file(remote, folder / ".downloads", client=http, on_bytes=on_bytes)
            report.files.append(got)
            if extract and _is_archive(got.path.name):
                # Keyed by the archive's relative path: two archives may share a base name.
                rel = got.path.relative_to(folder / ".downloads").as_posix()
                marker = folder / f".extracted-{rel.replace('/', '__')}"
                if not marker.exists():
                    report.extracted[got.path.name] = len(safe_extract(got.path, folder))
                    marker.write_text("ok\n")
    finally:
        if own:
            http.close()
    return report
