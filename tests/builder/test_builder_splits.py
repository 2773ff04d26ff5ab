from __future__ import annotations

from medvision.builder.splits import split_cases, subject_of
from medvision.catalog.spec import SplitSpec


def test_split_is_deterministic_and_order_free() -> None:
    cases = [f"c{i:03d}" for i in range(50)]
    spec = SplitSpec(test_fraction=0.3, seed=7)
    a = split_cases(cases, spec)
    b = split_cases(list(reversed(cases)), spec)
    assert a == b
    assert sum(v == "test" for v in a.values()) == 15
    assert split_cases(cases, SplitSpec(test_fraction=0.3, seed=8)) != a


def test_subjects_never_straddle_the_split() -> None:
    cases = [f"sub{s:02d}_tp{t}" for s in range(20) for t in range(3)]
    spec = SplitSpec(test_fraction=0.25, seed=1, subject_regex=r"^(sub\d+)_")
    split = split_cases(cases, spec)
    for s in range(20):
        sides = {split[f"sub{s:02d}_tp{t}"] for t in range(3)}
        assert len(sides) == 1
    assert subject_of("sub03_tp1", spec.subject_regex) == "sub03"
    assert sum(v == "test" for v in split.values()) == 15  # 5 subjects x 3


def test_tiny_sets_keep_both_sides() -> None:
    split = split_cases(["a", "b"], SplitSpec(test_fraction=0.1))
    assert sorted(split.values()) == ["test", "train"]
