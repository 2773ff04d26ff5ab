"""``medvision judge``: re-parse a run's answers with an LLM judge (and ``eval --parser judge``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from medvision.cli.common import progress_bar
from medvision.runs.judge import JudgeSpec

__all__ = ["check_parser", "judge_spec", "judge_with_progress", "register"]

_PARSERS = ("protocol", "judge")


def judge_spec(
    parser: str, judge_model: str | None, judge_base_url: list[str] | None
) -> JudgeSpec | None:
    """The judge of ``eval --parser judge``, or ``None`` for the protocol's own parser.

    Raises:
        typer.BadParameter: An unknown parser, a judge without model or URL, or judge
            options without ``--parser judge``.
    """
    if parser not in _PARSERS:
        raise typer.BadParameter(f"--parser must be one of {', '.join(_PARSERS)}; found {parser!r}")
    if parser == "protocol":
        if judge_model is not None or judge_base_url:
            raise typer.BadParameter("--judge-model and --judge-base-url need --parser judge")
        return None
    if not judge_model or not judge_base_url:
        raise typer.BadParameter("--parser judge needs --judge-model and --judge-base-url")
    return JudgeSpec(model=judge_model, base_url=tuple(judge_base_url))


def check_parser(out: Path, judge: JudgeSpec | None, overwrite: bool) -> None:
    """Refuse to extend a judged run with the regex parser (records would mix parsers).

    With ``overwrite`` the run's ``judge.json`` goes with its records (the judge cache stays:
    its keys name the judged text).

    Raises:
        RunError: ``out`` holds a judged run and no judge is given (and no ``--overwrite``).
    """
    from medvision.runs.judge import JUDGE_MANIFEST_NAME
    from medvision.runs.spec import RunError

    manifest = out / JUDGE_MANIFEST_NAME
    if overwrite:
        manifest.unlink(missing_ok=True)  # the records it described are discarded too
    elif judge is None and manifest.exists():
        raise RunError(
            f"{out} was parsed by an LLM judge ({JUDGE_MANIFEST_NAME}); pass --parser judge "
            "with its judge, a new output folder or --overwrite"
        )


def judge_with_progress(out: Path, spec: JudgeSpec, console: Console) -> dict[str, Any]:
    """Run the judge pass over a run folder with a progress bar; return the new summary."""
    from medvision.runs.judge import judge_run

    with progress_bar(console) as progress:
        task = progress.add_task(f"judge {spec.model}", total=None)

        def tick(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return judge_run(out, spec, on_progress=tick)


def judge(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    judge_model: Annotated[str, typer.Option(help="Served model name of the judge.")],
    judge_base_url: Annotated[
        list[str],
        typer.Option(help="OpenAI-compatible base URL of the judge, ending in /v1; repeatable."),
    ],
) -> None:
    """Re-parse a run's answers with an LLM judge (cached in judge-cache.jsonl, resumable)."""
    from medvision.reports import leaderboard, print_leaderboard

    console = Console()
    spec = JudgeSpec(model=judge_model, base_url=tuple(judge_base_url))
    summary = judge_with_progress(run_dir, spec, console)
    print_leaderboard(leaderboard({run_dir.name: summary}), console)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("judge")(judge)
