"""Downloads against a local HTTP server started by the test (no internet here)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from medvision.catalog.download import (
    ChecksumError,
    CredentialsRequired,
    DatasetSource,
    DownloadError,
    Endpoints,
    RemoteFile,
    UnsafeArchiveError,
    download_dataset,
    download_file,
    resolve_files,
    safe_extract,
)
from medvision.catalog.spec import DatasetSpec


class _Server:
    """Serves ``files`` (path -> bytes) with Range support and scripted failures."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.headers: dict[str, dict[str, str]] = {}
        self.drop_first: set[str] = set()  # cut the connection halfway on the first GET
        self.ignore_range: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                rng = self.headers.get("Range")
                server.requests.append((path, rng))
                body = server.files.get(path)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                start = 0
                if rng and path not in server.ignore_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                for k, v in server.headers.get(path, {}).items():
                    self.send_header(k, v)
                part = body[start:]
                self.send_header("Content-Length", str(len(part)))
                self.end_headers()
                if path in server.drop_first:
                    server.drop_first.discard(path)
                    self.wfile.write(part[: len(part) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the client sees a truncated body
                    return
                self.wfile.write(part)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.close()


@pytest.fixture()
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as c:
        yield c


def _spec(name: str, source: dict[str, object]) -> DatasetSpec:
    return DatasetSpec.model_validate(
        {
            "name": name,
            "title": "t",
            "description": "d",
            "licence": "l",
            "citation": "c",
            "source": source,
            "tasks": [
                {"id": "01", "modality": "CT", "image_description": "x", "image_folder": "I"}
            ],
        }
    )


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _payload(n: int, seed: int = 0) -> bytes:
    return hashlib.sha256(str(seed).encode()).digest() * (n // 32)


def test_zenodo_record_is_listed_verified_and_extracted(
    server: _Server, client: httpx.Client, tmp_path: Path
) -> None:
    archive = _zip_bytes({"Images/a.nii.gz": b"image-a", "Masks/a.nii.gz": b"mask-a"})
    server.files["/files/data.zip"] = archive
    server.files["/files/readme.txt"] = b"hello"
    server.files["/api/records/123"] = json.dumps(
        {
            "files": [
                {
                    "key": "data.zip",
                    "size": len(archive),
                    "checksum": "md5:" + hashlib.md5(archive).hexdigest(),
                    "links": {"self": server.url + "/files/data.zip"},
                },
                {
                    "key": "readme.txt",
                    "checksum": "md5:" + hashlib.md5(b"hello").hexdigest(),
                    "links": {"self": server.url + "/files/readme.txt"},
                },
            ]
        }
    ).encode()
    endpoints = Endpoints(zenodo_api=server.url + "/api")
    spec_source = DatasetSource("zenodo", ("123",))
    files = resolve_files("X", spec_source, client, endpoints)
    assert [f.name for f in files] == ["data.zip", "readme.txt"]
    assert files[0].checksum == ("md5", hashlib.md5(archive).hexdigest())

    spec = _spec("TestZenodo", {"kind": "download", "download": {"host": "zenodo", "ids": ["123"]}})
    report = download_dataset(spec, tmp_path, endpoints=endpoints, client=client)
    again = download_dataset(spec, tmp_path, endpoints=endpoints, client=client)
    assert [f.verified for f in report.files] == ["md5", "md5"]
    assert (tmp_path / "Images" / "a.nii.gz").read_bytes() == b"image-a"
    assert report.extracted == {"data.zip": 2}
    assert all(f.skipped for f in again.files) and again.extracted == {}


def test_dropped_connection_resumes_with_a_range_request(
    server: _Server, client: httpx.Client, tmp_path: Path
) -> None:
    body = _payload(200_000, 1)
    server.files["/big.bin"] = body
    server.drop_first.add("/big.bin")
    remote = RemoteFile(
        server.url + "/big.bin", "big.bin", ("sha256", hashlib.sha256(body).hexdigest())
    )
    got = download_file(remote, tmp_path, client=client, backoff_s=0.0)
    assert got.path.read_bytes() == body and got.verified == "sha256"
    ranges = [r for p, r in server.requests if p == "/big.bin"]
    assert ranges[0] is None
    assert ranges[1] == f"bytes={len(body) // 2}-"  # asked only for the missing half
    assert not (tmp_path / "big.bin.part").exists()


def test_partial_file_from_an_earlier_run_is_resumed(
    server: _Server, client: httpx.Client, tmp_path: Path
) -> None:
    body = _payload(64_000, 2)
    server.files["/f.bin"] = body
    (tmp_path / "f.bin.part").write_bytes(body[:10_000])
    got = download_file(RemoteFile(server.url + "/f.bin", "f.bin"), tmp_path, client=client)
    assert got.resumed_from == 10_000 and got.path.read_bytes() == body
    assert server.requests == [("/f.bin", "bytes=10000-")]


def test_server_ignoring_range_restarts_the_file(
    server: _Server, client: httpx.Client, tmp_path: Path
) -> None:
    body = _payload(32_000, 3)
    server.files["/g.bin"] = body
    server.ignore_range.add("/g.bin")
    (tmp_path / "g.bin.part").write_bytes(b"garbage-prefix")
    got = download_file(RemoteFile(server.url + "/g.bin", "g.bin"), tmp_path, client=client)
    assert got.path.read_bytes() == body


def test_checksum_mismatch_raises_and_deletes_the_partial_file(
    server: _Server, client: httpx.Client, tmp_path: Path
) -> None:
    server.files["/h.bin"] = b"tampered content"
    remote = RemoteFile(server.url + "/h.bin", "h.bin", ("md5", "0" * 32))
    with pytest.raises(ChecksumError, match=r"h\.bin.*md5 mismatch"):
        download_file(remote, tmp_path, client=client)
    assert not (tmp_path / "h.bin").exists() and not (tmp_path / "h.bin.part").exists()


def test_hub_lfs_sha256_is_verified(server: _Server, client: httpx.Client, tmp_path: Path) -> None:
    body = _payload(5_000, 4)
    sha = hashlib.sha256(body).hexdigest()
    server.files["/datasets/org/ds/resolve/main/Images.zip"] = body
    server.files["/api/datasets/org/ds/tree/main"] = json.dumps(
        [
            {"type": "directory", "path": "sub"},
            {"type": "file", "path": "Images.zip", "size": len(body), "lfs": {"oid": sha}},
        ]
    ).encode()
    files = resolve_files(
        "ds", DatasetSource("huggingface", ("org/ds",)), client, Endpoints(huggingface=server.url)
    )
    assert [(f.name, f.checksum) for f in files] == [("Images.zip", ("sha256", sha))]
    assert download_file(files[0], tmp_path, client=client).verified == "sha256"
    # Without a listed digest, the Hub's X-Linked-Etag header is used.
    server.headers["/datasets/org/ds/resolve/main/Images.zip"] = {"X-Linked-Etag": f'"{"1" * 64}"'}
    bare = RemoteFile(files[0].url, "copy.zip")
    with pytest.raises(ChecksumError):
        download_file(bare, tmp_path, client=client)


def test_catalog_urls_with_checksum_fragment(
    server: _Server, client: httpx.Client, tmp_path: Path
) -> None:
    server.files["/x/data.bin"] = b"abc"
    spec = DatasetSpec.model_validate(
        {
            "name": "UrlDs",
            "title": "t",
            "description": "d",
            "licence": "l",
            "citation": "c",
            "source": {
                "kind": "download",
                "urls": [server.url + "/x/data.bin#sha256=" + hashlib.sha256(b"abc").hexdigest()],
            },
            "tasks": [
                {"id": "01", "modality": "CT", "image_description": "x", "image_folder": "I"}
            ],
        }
    )
    report = download_dataset(spec, tmp_path, client=client)
    assert report.files[0].verified == "sha256"
    assert (tmp_path / ".downloads" / "data.bin").read_bytes() == b"abc"


@pytest.mark.parametrize("name", ["FeTA24", "BraTS24", "SKM-TEA", "ToothFairy2", "FLARE22"])
def test_credentialed_sources_explain_what_to_do(name: str, tmp_path: Path) -> None:
    with pytest.raises(CredentialsRequired) as info:
        download_dataset(name, tmp_path)
    text = str(info.value)
    assert name in text and "medvision build" in text
    if name in ("FeTA24", "BraTS24"):
        assert "SYNAPSE_TOKEN" in text
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("member", ["/etc/evil", "../evil", "a/../../evil", "C:/evil"])
def test_zip_with_escaping_member_is_refused(member: str, tmp_path: Path) -> None:
    archive = tmp_path / "bad.zip"
    archive.write_bytes(_zip_bytes({"ok.txt": b"fine", member: b"x"}))
    target = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError):
        safe_extract(archive, target)
    assert not any(target.iterdir())  # refused before anything was written
    assert not (tmp_path / "evil").exists()


def _tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tf:
        for m in members:
            payload = data.get(m.name)
            if payload is not None:
                m.size = len(payload)
                tf.addfile(m, io.BytesIO(payload))
            else:
                tf.addfile(m)


def test_tar_symlink_escaping_is_refused_and_inside_link_allowed(tmp_path: Path) -> None:
    good = tarfile.TarInfo("data/a.txt")
    link_in = tarfile.TarInfo("data/alias.txt")
    link_in.type, link_in.linkname = tarfile.SYMTYPE, "a.txt"
    ok = tmp_path / "ok.tar.gz"
    _tar(ok, [good, link_in], {"data/a.txt": b"A"})
    out = tmp_path / "ok"
    safe_extract(ok, out)
    assert (out / "data" / "alias.txt").read_bytes() == b"A"

    escape = tarfile.TarInfo("data/escape")
    escape.type, escape.linkname = tarfile.SYMTYPE, "../../outside"
    bad = tmp_path / "bad.tar.gz"
    _tar(bad, [good, escape], {"data/a.txt": b"A"})
    target = tmp_path / "bad"
    with pytest.raises(UnsafeArchiveError, match="leaves"):
        safe_extract(bad, target)
    assert not any(target.iterdir())


def test_tar_dotdot_and_device_members_are_refused(tmp_path: Path) -> None:
    dotdot = tarfile.TarInfo("../up.txt")
    bad = tmp_path / "b.tar.gz"
    _tar(bad, [dotdot], {"../up.txt": b"x"})
    with pytest.raises(UnsafeArchiveError, match=r"\.\."):
        safe_extract(bad, tmp_path / "o1")
    dev = tarfile.TarInfo("dev0")
    dev.type = tarfile.CHRTYPE
    devtar = tmp_path / "d.tar.gz"
    _tar(devtar, [dev], {})
    with pytest.raises(UnsafeArchiveError, match="device"):
        safe_extract(devtar, tmp_path / "o2")


def test_catalog_page_urls_map_to_hosts_or_instructions() -> None:
    from medvision.catalog.download import source_for

    def spec(urls: list[str]) -> DatasetSpec:
        return DatasetSpec.model_validate(
            {
                "name": "PageDs",
                "title": "t",
                "description": "d",
                "licence": "l",
                "citation": "c",
                "source": {"kind": "download", "urls": urls},
                "tasks": [
                    {"id": "01", "modality": "CT", "image_description": "x", "image_folder": "I"}
                ],
            }
        )

    assert source_for(spec(["https://zenodo.org/records/42"])).ids == ("42",)
    assert source_for(spec(["https://huggingface.co/datasets/a/b"])).host == "huggingface"
    portal = source_for(spec(["https://example.org/database/#collection/1"]))
    assert portal.host == "credentialed"  # a web page, not a file: instructions only


def test_cli_download_of_a_credentialed_dataset_exits_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from medvision.cli.app import app

    result = CliRunner().invoke(app, ["datasets", "download", "SKM-TEA", str(tmp_path)])
    assert result.exit_code == 2
    assert "data-use" in result.output and "medvision build" in result.output


def test_wrong_sized_partial_file_is_removed_so_a_rerun_starts_over(
    server: _Server, client: httpx.Client, tmp_path: Path
) -> None:
    server.files["/s.bin"] = b"short"
    remote = RemoteFile(server.url + "/s.bin", "s.bin", size=999)
    with pytest.raises(DownloadError, match=r"expected 999 bytes.*found 5"):
        download_file(remote, tmp_path, client=client)
    assert not (tmp_path / "s.bin.part").exists()  # a rerun will not ask for bytes 5- forever


def test_instructions_with_literal_braces_are_not_formatted() -> None:
    from medvision.catalog.download import _instructions

    source = DatasetSource(
        "credentialed", ("syn:123",), instructions="run {name} with {ids} {json}"
    )
    assert _instructions("X", source) == "run X with syn:123 {json}"


def test_every_download_route_comes_from_its_yaml() -> None:
    import medvision.catalog.download as dl
    from medvision.catalog.registry import catalog

    assert not hasattr(dl, "REGISTRY")  # no second registry in Python to contradict the YAML
    for name, spec in catalog().items():
        if spec.source.kind == "generator":
            assert spec.source.download is None
            continue
        block = spec.source.download
        assert block is not None, f"{name}: no source.download block in its YAML"
        source = dl.source_for(name)
        assert source == dl.source_from_spec(block)
        assert (source.host, source.ids, source.files) == (
            block.host,
            tuple(block.ids),
            tuple(block.files),
        )
        assert (source.host == "credentialed") == (spec.source.kind == "manual"), name


def test_the_four_contradictions_are_resolved_by_layout() -> None:
    """The route is the one whose files the YAML's layout reads (reference section 2.1)."""
    from medvision.catalog.download import source_for

    assert source_for("autoPET-III").ids == (
        "https://it-portal.med.uni-muenchen.de/autopet/Autopet_v1.1.tgz",
    )
    assert source_for("ISLES24").ids == ("YongchengYAO/ISLES24-MR-Lite",)  # mirror layout
    assert source_for("KiPA22").ids == ("YongchengYAO/KiPA22",)  # mirror layout
    acdc = source_for("ACDC")  # release layout (database/...), not the mirror's
    assert acdc.host == "credentialed" and "database/training" in acdc.instructions


def test_yaml_kind_must_agree_with_the_download_host() -> None:
    with pytest.raises(ValueError, match="contradicts"):
        _spec(
            "Bad",
            {
                "kind": "download",
                "download": {"host": "credentialed", "ids": ["x"], "steps": "synapse"},
            },
        )


def _tar_with_links(path: Path, links: list[tuple[str, str]], files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tf:
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_two_step_tar_link_chain_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    archive = tmp_path / "chain.tar"
    _tar_with_links(archive, [("q", "."), ("p", "q/..")], {"p/evil.txt": b"x"})
    target = tmp_path / "deep" / "out"
    with pytest.raises(UnsafeArchiveError, match="leaves"):
        safe_extract(archive, target)
    assert not any(target.iterdir())
    assert not (tmp_path / "deep" / "evil.txt").exists()


def test_link_chains_that_stay_inside_are_extracted(tmp_path: Path) -> None:
    archive = tmp_path / "ok.tar"
    _tar_with_links(archive, [("q", "."), ("d/p", "../q/d")], {"d/a.txt": b"A"})
    out = tmp_path / "out"
    safe_extract(archive, out)
    assert (out / "d" / "a.txt").read_bytes() == b"A"
    assert (out / "q").is_symlink() and (out / "d" / "p").is_symlink()


def test_cli_download_shows_an_extraction_failure_as_one_clean_line(
    server: _Server, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from medvision.cli.app import app

    good = io.BytesIO()
    with tarfile.open(fileobj=good, mode="w") as tf:
        info = tarfile.TarInfo("Images/a.nii.gz")
        info.size = 40_000
        tf.addfile(info, io.BytesIO(_payload(40_000)))
    server.files["/d/data.tar"] = good.getvalue()[:20_000]  # cut inside the member
    spec_yaml = tmp_path / "ds.yaml"
    spec_yaml.write_text(
        json.dumps(
            {
                "name": "Broken",
                "title": "t",
                "description": "d",
                "licence": "l",
                "citation": "c",
                "source": {
                    "kind": "download",
                    "download": {"host": "url", "ids": [server.url + "/d/data.tar"]},
                },
                "tasks": [
                    {"id": "01", "modality": "CT", "image_description": "x", "image_folder": "I"}
                ],
            }
        )
    )
    result = CliRunner().invoke(app, ["datasets", "download", str(spec_yaml), str(tmp_path / "d")])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    text = " ".join(result.output.split())
    assert "cannot extract" in text and "ReadError" in text and "rerun" in text
    assert "Traceback" not in result.output
