"""Checks of ``medvision`` commands that turn common mistakes into one line naming the fix.

* :func:`check_model_arg`: ``--model`` that looks like a folder but does not exist.
* :func:`missing_extra` : an optional package a command needs is not installed.
* :func:`backend_error_line`: a finished eval whose records still hold backend errors.

Exit codes of ``medvision eval`` (docs/evaluation.md): 0 every sample answered (or
``--allow-errors``); 1 the run could not start or was stopped (one ``error:`` line); 2 a bad
option (typer's usage error); 3 the run finished but some samples have backend errors.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

__all__ = [
    "EXIT_BACKEND_ERRORS",
    "backend_error_line",
    "check_model_arg",
    "finish_eval",
    "missing_extra",
]

#: Exit status of an eval that finished with backend errors left (without --allow-errors).
EXIT_BACKEND_ERRORS = 3

#: Top-level module -> the extra of medvision-bench that installs it.
EXTRAS: dict[str, str] = {
    "torch": "hf",
    "transformers": "hf",
    "accelerate": "hf",
    "peft": "hf",
    "tokenizers": "hf",
    "torchvision": "hf",
    "trl": "train",
    "datasets": "train",
    "bitsandbytes": "train",
    "vllm": "vllm",
    "ray": "ray",
    "SimpleITK": "itk",
}


def check_model_arg(model: str, flag: str = "--model") -> None:
    """Refuse a ``--model`` that names a local folder which does not exist.

    A value that starts with ``/``, ``./``, ``../`` or ``~``, or has more than one ``/``,
    is a path (hub ids are ``org/name``); it must exist.

    Raises:
        typer.BadParameter: Naming the value and what to pass instead.
    """
    if not model or Path(model).expanduser().exists():
        return
    if model.startswith(("/", "./", "../", "~")) or model.count("/") > 1:
        raise typer.BadParameter(
            f"{flag} {model}: no such folder; pass an existing model folder (e.g. the output "
            "of `medvision train sft`) or a hub id such as Qwen/Qwen2.5-VL-3B-Instruct"
        )


def missing_extra(exc: ModuleNotFoundError, argv: Sequence[str] | None = None) -> str | None:
    """The one-line message for a missing optional package, or ``None`` if not an extra.

    Args:
        exc: The import error.
        argv: The command line (``sys.argv`` by default): ``train`` commands name the
            ``train`` extra for the packages it shares with ``hf``.
    """
    top = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        return None
    args = list(sys.argv[1:] if argv is None else argv)
    if extra == "hf" and args[:1] == ["train"]:
        extra = "train"
    return (
        f"this command needs the optional package {top!r}, which is not installed: "
        f'pip install "medvision-bench[{extra}]"'
    )


def backend_error_line(summary: Mapping[str, Any]) -> str | None:
    """The error line of a finished run with backend errors left, else ``None``."""
    outcomes = summary.get("outcomes") or {}
    errors = int(outcomes.get("backend_error", 0) or 0)
    if not errors:
        return None
    total = int(outcomes.get("total", 0) or 0)
    return (
        f"{errors} of {total} samples got no answer from the backend (backend errors, left "
        "out of every metric); fix the backend and resume with --retry-errors, or pass "
        "--allow-errors to accept the run as it is"
    )


def finish_eval(summary: Mapping[str, Any], allow_errors: bool, console: Console) -> None:
    """Print the backend-error line of a finished eval; exit 3 unless ``allow_errors``.

    Raises:
        typer.Exit: With :data:`EXIT_BACKEND_ERRORS` when backend errors remain.
    """
    line = backend_error_line(summary)
    if line is None:
        return
    tag = "[bold yellow]note:[/]" if allow_errors else "[bold red]error:[/]"
    console.print(f"{tag} {escape(line)}", highlight=False)
    if not allow_errors:
        raise typer.Exit(EXIT_BACKEND_ERRORS)
