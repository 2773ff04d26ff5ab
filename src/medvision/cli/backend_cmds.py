"""CLI commands of the backends area; :func:`register` adds them to the ``medvision`` app."""

from __future__ import annotations

import time
from typing import Annotated

import typer


def serve_fake(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 = any free port).")] = 8000,
    model: Annotated[str, typer.Option(help="Model name the server answers to.")] = "fake-vlm",
    latency: Annotated[float, typer.Option(help="Seconds per completion.")] = 0.0,
    answer: Annotated[str | None, typer.Option(help="Fixed answer text.")] = None,
) -> None:
    """Serve a fake OpenAI-compatible chat server for demos and tests (Ctrl-C stops it)."""
    from medvision.testing.fake_openai import DEFAULT_ANSWER, FakeOpenAIServer

    server = FakeOpenAIServer(
        model=model, latency_s=latency, answer=answer or DEFAULT_ANSWER, port=port
    )
    typer.echo(f"fake OpenAI server for model {model!r} at {server.url} (Ctrl-C stops it)")
    server.start()
    try:
        while True:
            time.sleep(3600)  # the server runs in its own thread
    except KeyboardInterrupt:
        typer.echo("stopped")
    finally:
        server.stop()


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("serve-fake")(serve_fake)
