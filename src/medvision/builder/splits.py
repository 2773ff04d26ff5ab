"""Deterministic, seeded, subject-level train/test splits, or an official plan's."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import replace

from medvision.catalog.layouts import CaseFiles
from medvision.catalog.spec import DatasetSpec, SplitSpec, TaskSpec
from medvision.schema import Split
from medvision.store.plan_stream import PlanIndex, index_plan


def subject_of(case_id: str, subject_regex: str | None) -> str:
    r"""Return the subject a case belongs to (the regex's first group, else the case id).

    Example:
        >>> subject_of("BraTS-GLI-00005-101", r"^(BraTS-\w+-\d+)")
        'BraTS-GLI-00005'
    """
    if subject_regex is None:
        return case_id
    match = re.match(subject_regex, case_id)
    return match.group(1) if match else case_id


def split_cases(case_ids: Iterable[str], spec: SplitSpec) -> dict[str, Split]:
    """Assign every case to train or test, keeping all cases of a subject together.

    Subjects are sorted, then shuffled with ``random.Random(spec.seed)`` (so the result does
    not depend on file-system order), and the first ``round(n * test_fraction)`` subjects go
    to test (at least one when there are two or more subjects and the fraction is positive).

    Args:
        case_ids: Case identifiers.
        spec: Fraction, seed and subject regex.

    Returns:
        Case id -> ``"train"`` or ``"test"``.
    """
    cases = sorted(set(case_ids))
    subjects = sorted({subject_of(c, spec.subject_regex) for c in cases})
    random.Random(spec.seed).shuffle(subjects)
    n_test = round(len(subjects) * spec.test_fraction)
    if spec.test_fraction > 0 and len(subjects) >= 2:
        n_test = min(max(n_test, 1), len(subjects) - 1)
    test = set(subjects[:n_test])
    return {c: ("test" if subject_of(c, spec.subject_regex) in test else "train") for c in cases}


def assign_splits(
    spec: DatasetSpec,
    task: TaskSpec,
    cases: list[CaseFiles],
    split_from: str | None,
    shared: dict[str, Split] | None,
) -> list[tuple[CaseFiles, Split]]:
    """Each case with its split: the spec's seeded subject-level split, or an official plan's.

    With an official plan, a case is matched by ``case_ID`` or by image file name; a case the
    plan does not list keeps a reason in ``missing`` so the build skips and reports it.
    """
    if split_from is None:
        assert shared is not None
        return [(c, shared[c.case_id]) for c in cases]
    plan = _cached_plan(split_from)
    try:
        by_id = plan.split(task.id)
        by_image = plan.split_by_image(task.id)
    except KeyError as exc:
        raise ValueError(f"--split-from {split_from}: {exc.args[0]} (spec {spec.name})") from exc
    out: list[tuple[CaseFiles, Split]] = []
    for c in cases:
        split = by_id.get(c.case_id) or by_image.get(c.image.name)
        if split is None:
            reason = (
                f"case {c.case_id} is in neither train_cases nor test_cases of task {task.id} "
                f"of the official plan {split_from}"
            )
            c = replace(c, missing=(*c.missing, reason))
            split = "test"
        out.append((c, split))
    return out


_PLANS: dict[str, PlanIndex] = {}


def _cached_plan(path: str) -> PlanIndex:
    """Index an official plan once per process (a plan is read for every task of a spec).

    Only case ids, splits and image files are kept (streamed: plans run to hundreds of MB).
    """
    if path not in _PLANS:
        _PLANS.clear()
        _PLANS[path] = index_plan(path)
    return _PLANS[path]
