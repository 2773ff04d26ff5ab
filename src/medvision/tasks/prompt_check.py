"""Whether a task configuration's prompt text is the paper's, as far as the reference shows.

An official prompt is a fixed template (official-eval-protocol section 2; official-versions
section 7) filled with the task's ``image_description`` and its label or landmark names. The
templates of the ``paper-v1`` and ``official`` styles are transcribed from the reference; the
fill-ins come from the official dataset package, which is not in the official code, so they
are the paper's only where the reference quotes them (the catalog's per-task
``prompt_text: {description, names}`` flags). Everything else is our closest reading and is
reported as unverified, e.g. by ``medvision benchmarks show``.

Use :func:`prompt_verified` for a yes/no and :func:`prompt_check` for the reasons.
"""

from __future__ import annotations

from dataclasses import dataclass

from medvision.catalog.registry import get_spec
from medvision.catalog.spec import DatasetSpec, TaskSpec
from medvision.tasks.prompts import PromptStyle

__all__ = ["OFFICIAL_STYLES", "PromptCheck", "check_task_prompt", "prompt_check", "prompt_verified"]

#: Styles whose template is the official text (the others are ours by design).
OFFICIAL_STYLES = frozenset({PromptStyle.PAPER_V1, PromptStyle.OFFICIAL})


@dataclass(frozen=True)
class PromptCheck:
    """The verdict on one task's prompt text.

    Attributes:
        verified: ``True`` when template, image description and names are all the reference's.
        reasons: One short sentence per part that is not (empty when verified).
    """

    verified: bool
    reasons: tuple[str, ...]


def check_task_prompt(
    task: TaskSpec, style: PromptStyle | str = PromptStyle.PAPER_V1
) -> PromptCheck:
    """Check one catalog task's prompt text under a prompt style.

    Args:
        task: The catalog task (its ``prompt_text`` flags say what the reference quotes).
        style: The prompt style of the run (``paper-v1`` by default).

    Returns:
        The verdict with its reasons.
    """
    reasons: list[str] = []
    st = PromptStyle(style)
    if st not in OFFICIAL_STYLES:
        reasons.append(f"prompt style {st.value!r} is ours, not an official template")
    if not task.prompt_text.description:
        reasons.append("image description is not quoted by the reference")
    if not task.prompt_text.names:
        reasons.append("label/landmark names are not all quoted by the reference")
    return PromptCheck(verified=not reasons, reasons=tuple(reasons))


def prompt_check(
    dataset: str | DatasetSpec, task_id: str, style: PromptStyle | str = PromptStyle.PAPER_V1
) -> PromptCheck:
    """Check the prompt text of a dataset's task (our task id, e.g. ``"01"``).

    Args:
        dataset: Catalog name (or spec path), or a loaded :class:`DatasetSpec`.
        task_id: Our task id within the dataset.
        style: The prompt style of the run.

    Raises:
        SpecError: Unknown dataset (the message lists the known ones).
        KeyError: Unknown task (the message lists the dataset's task ids).
    """
    spec = get_spec(dataset) if isinstance(dataset, str) else dataset
    return check_task_prompt(spec.task(task_id), style)


def prompt_verified(
    dataset: str | DatasetSpec, task_id: str, style: PromptStyle | str = PromptStyle.PAPER_V1
) -> bool:
    """Whether the prompt text of a dataset's task is the paper's (see :func:`prompt_check`).

    Example:
        >>> prompt_verified("SKM-TEA", "01")
        True
        >>> prompt_verified("BraTS24", "01")
        False
    """
    return prompt_check(dataset, task_id, style).verified
