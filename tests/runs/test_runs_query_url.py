"""A base URL's query string travels as parameters and its values never reach disk or screen."""

from __future__ import annotations

from pathlib import Path

import pyarrow.ipc as ipc
import pytest
from typer.testing import CliRunner

from medvision.backends.base import is_secret_name
from medvision.cli.app import app
from medvision.runs.runner import RunError, Runner, RunSpec
from medvision.testing.fake_openai import FakeOpenAIServer, FakeRequest, Fault, FaultKind

SECRET = "S3cretSignatureValue"
SHORT = "k9Z"  # a short value under a secret name


def _text(path: Path) -> str:
    if path.suffix == ".arrow":  # the column file is compressed: read its values
        return str(ipc.open_file(path).read_all().to_pylist())
    return path.read_text()


def _everything_written(folder: Path) -> str:
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    assert any(p.suffix == ".arrow" for p in files)  # the column file is searched too
    return "\n".join(_text(p) for p in files)


def test_query_params_stay_params_and_are_redacted_everywhere(
    mini_store: Path, tmp_path: Path
) -> None:
    # A careless server echoes what it was sent into its error messages.
    def echo(req: FakeRequest) -> Fault | None:
        if req.index % 2:
            return None
        return Fault(FaultKind.HTTP_ERROR, status=400, message=f"bad request ?sig={SECRET}")

    out = tmp_path / "run"
    with FakeOpenAIServer(faults=echo) as srv:
        url = f"{srv.url}?sig={SECRET}&api-version=2024-06-01&code={SHORT}"
        args = ["eval", str(mini_store), "--out", str(out), "--backend", "openai"]
        args += ["--model", "fake-vlm", "--base-url", url, "--families", "ad", "--limit", "2"]
        args += ["--image-policy", "native"]  # "fake-vlm" is no model family
        result = CliRunner().invoke(app, [*args, "--allow-errors"], env={"COLUMNS": "200"})
        paths = list(srv.paths)
    assert result.exit_code == 0, result.output
    # Before: "/v1?sig=.../chat/completions" (the query inside the path).
    completions = [p for p in paths if p.startswith("/v1/chat/completions")]
    assert completions and all(f"sig={SECRET}" in p and "code=" in p for p in completions)
    assert any(p.startswith("/v1/models?") for p in paths)  # the preflight kept them too
    written = _everything_written(out)
    assert "bad request" in written  # the echoed error was recorded...
    for text in (written, result.output):
        assert SECRET not in text and f"code={SHORT}" not in text  # ...without the secret
        assert "2024-06-01" not in text


def test_preflight_error_with_an_echoing_server_prints_no_query_value(
    mini_store: Path, tmp_path: Path
) -> None:
    with FakeOpenAIServer() as srv:
        url = f"{srv.url.removesuffix('/v1')}?sig={SECRET}"  # no /v1: the 404 echoes the path
        spec = RunSpec(
            dataset_dir=str(mini_store),
            backend="openai",
            model="fake-vlm",
            families=("ad",),
            limit=1,
            backend_options={"base_url": url},
        )
        with pytest.raises(RunError) as err:
            Runner(spec, tmp_path / "run").run()
    assert "/v1" in str(err.value) and SECRET not in str(err.value)


@pytest.mark.parametrize("name", ["sig", "signature", "code", "token", "client_secret", "password"])
def test_signature_style_names_are_secret(name: str) -> None:
    assert is_secret_name(name)
