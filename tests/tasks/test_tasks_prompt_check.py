"""Which task configurations have the paper's prompt text (catalog ``prompt_text`` flags)."""

from __future__ import annotations

import pytest

from medvision.catalog.registry import catalog
from medvision.tasks.prompt_check import check_task_prompt, prompt_check, prompt_verified
from medvision.tasks.prompts import PromptStyle


def test_only_tasks_whose_description_and_names_the_reference_quotes_are_verified() -> None:
    verified = sorted(
        (name, t.id)
        for name, spec in catalog().items()
        for t in spec.tasks
        if check_task_prompt(t).verified
    )
    # dataset-construction 2.2 quotes these descriptions and every label name of the task.
    assert verified == [("SKM-TEA", "01"), ("SKM-TEA", "02"), ("autoPET-III", "01")]


@pytest.mark.parametrize(
    ("dataset", "task_id", "reason"),
    [
        ("BraTS24", "01", "image description is not quoted"),
        ("Ceph-Biometrics-400", "01", "label/landmark names are not all quoted"),
        ("AMOS22", "01", "label/landmark names are not all quoted"),
    ],
)
def test_unverified_tasks_say_why(dataset: str, task_id: str, reason: str) -> None:
    check = prompt_check(dataset, task_id)
    assert not check.verified
    assert any(reason in r for r in check.reasons)


def test_our_prompt_styles_are_never_the_paper_text() -> None:
    assert prompt_verified("SKM-TEA", "01", PromptStyle.OFFICIAL)
    check = prompt_check("SKM-TEA", "01", PromptStyle.JSON)
    assert not check.verified
    assert check.reasons == ("prompt style 'json' is ours, not an official template",)
