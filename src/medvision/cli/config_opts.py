"""The options of :class:`~medvision.tasks.config.EvalConfig`, shared by eval and export sft.

Both commands take the same six flags with the same defaults (those of ``EvalConfig``), so
a default export and a default evaluation show a model byte-identical prompts. A flag left
out is ``None`` here: the value then comes from the model's training run folder (its
``medvision_config.json``) when there is one, else from the defaults.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from medvision.runs.spec import RunError
from medvision.tasks.config import EvalConfig, config_mismatches, read_run_config

__all__ = [
    "ChatLayoutOpt",
    "ImagePolicyOpt",
    "MaxPixelsOpt",
    "MinPixelsOpt",
    "PromptStyleOpt",
    "ProtocolOpt",
    "resolve_config",
]

_DEFAULT = EvalConfig()

ProtocolOpt = Annotated[
    str | None,
    typer.Option(help=f"paper-v1 | official | strict (default {_DEFAULT.protocol})."),
]
PromptStyleOpt = Annotated[
    str | None,
    typer.Option(
        help="paper-v1 | paper-v1+size | official | cot | json (default: the protocol's own)."
    ),
]
ImagePolicyOpt = Annotated[
    str | None,
    typer.Option(
        help="How the model resizes images: auto (the model family's), native, qwen2.5-vl, "
        f"fixed:HxW, ... (default {_DEFAULT.image_policy})."
    ),
]
MinPixelsOpt = Annotated[
    int | None,
    typer.Option(help="Qwen-style min_pixels for the prompt's size and the processor."),
]
MaxPixelsOpt = Annotated[
    int | None,
    typer.Option(help="Qwen-style max_pixels for the prompt's size and the processor."),
]
ChatLayoutOpt = Annotated[
    str | None,
    typer.Option(
        help="Chat layout: auto (the model family's row: system prompt, image placement, "
        f"text template), generic, or a family name (default {_DEFAULT.chat_layout})."
    ),
]


def resolve_config(
    *,
    protocol: str | None,
    prompt_style: str | None,
    image_policy: str | None,
    min_pixels: int | None,
    max_pixels: int | None,
    chat_layout: str | None = None,
    model_dirs: tuple[str | Path | None, ...] = (),
    console: Console | None = None,
) -> EvalConfig:
    """The configuration of a command: given flags over a run folder's over the defaults.

    Args:
        protocol: ``--protocol`` or ``None``.
        prompt_style: ``--prompt-style`` or ``None``.
        image_policy: ``--image-policy`` or ``None``.
        min_pixels: ``--min-pixels`` or ``None``.
        max_pixels: ``--max-pixels`` or ``None``.
        chat_layout: ``--chat-layout`` or ``None``.
        model_dirs: Folders the model comes from (``--model``, ``--adapter``); the first
            holding a ``medvision_config.json`` gives the trained configuration.
        console: Where the mismatch warning goes (default: stderr).

    Returns:
        The configuration in effect.

    Raises:
        RunError: If a value is unknown or invalid (one line naming it).
        typer.BadParameter: If the run folder's configuration file is broken.
    """
    given: dict[str, Any] = {
        k: v
        for k, v in (
            ("protocol", protocol),
            ("prompt_style", prompt_style),
            ("image_policy", image_policy),
            ("min_pixels", min_pixels),
            ("max_pixels", max_pixels),
            ("chat_layout", chat_layout),
        )
        if v is not None
    }
    trained: EvalConfig | None = None
    source = ""
    for folder in model_dirs:
        if folder is not None and Path(folder).is_dir():
            try:
                trained = read_run_config(folder)
            except ValueError as exc:
                raise typer.BadParameter(str(exc)) from exc
            if trained is not None:
                source = str(folder)
                break
    try:
        config = replace(trained or _DEFAULT, **given)
    except (ValueError, KeyError) as exc:
        # An unknown name: one error line, exit status 1 (as the run's own checks).
        raise RunError(str(exc.args[0] if exc.args else exc)) from exc
    if trained is not None:
        out = console or Console(stderr=True)
        lines = config_mismatches(trained, config)
        if lines:
            out.print(
                f"[bold yellow]warning:[/] {source} was trained with another configuration: "
                + "; ".join(lines),
                highlight=False,
            )
        else:
            out.print(f"using the configuration {source} was trained with", highlight=False)
    return config
