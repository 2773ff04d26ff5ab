"""Deterministic, seeded, subject-level train/test splits."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable

from medvision.catalog.spec import SplitSpec
from medvision.schema import Split


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
