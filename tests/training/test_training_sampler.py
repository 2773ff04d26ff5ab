"""Temperature task mixing against hand-computed weights and counts."""

from __future__ import annotations

from collections import Counter

import pytest

from medvision.training.sampler import mixing_counts, mixing_weights, temperature_mix


def test_v0_mixture_at_t5_matches_the_paper() -> None:
    # paper-results §6.2: 110K / 5.5K / 5.5K at T=5 gives about 47.7 / 26.2 / 26.2 %.
    w = mixing_weights({"detection": 110_000, "tl": 5_500, "ad": 5_500}, 5.0)
    a, b = 110_000**0.2, 5_500**0.2
    assert w["detection"] == pytest.approx(a / (a + 2 * b))
    assert round(w["detection"], 3) == 0.477
    assert round(w["tl"], 3) == round(w["ad"], 3) == 0.262


def test_t1_is_natural_and_large_t_is_uniform() -> None:
    counts = {"a": 90, "b": 10}
    assert mixing_weights(counts, 1.0) == pytest.approx({"a": 0.9, "b": 0.1})
    assert mixing_weights(counts, 1e9) == pytest.approx({"a": 0.5, "b": 0.5}, abs=1e-6)


def test_counts_sum_to_total_and_empty_pools_get_none() -> None:
    c = mixing_counts({"a": 100, "b": 3, "c": 0}, 50, 5.0)
    assert sum(c.values()) == 50 and c["c"] == 0
    w = mixing_weights({"a": 100, "b": 3}, 5.0)
    assert abs(c["a"] - 50 * w["a"]) < 1 and abs(c["b"] - 50 * w["b"]) < 1


def test_mix_repeats_only_after_a_pool_is_used_up_and_is_seeded() -> None:
    pools = {"big": [f"big{i}" for i in range(100)], "small": [f"small{i}" for i in range(3)]}
    drawn = temperature_mix(pools, temperature=5.0, total=50, seed=1)
    counts = Counter(drawn)
    smalls = [x for x in drawn if x.startswith("small")]
    n_small = mixing_counts({"big": 100, "small": 3}, 50, 5.0)["small"]
    assert len(smalls) == n_small > 3
    # every small item appears floor or ceil of n_small / 3 times: cycling, not i.i.d.
    assert {counts[f"small{i}"] for i in range(3)} <= {n_small // 3, -(-n_small // 3)}
    assert max(counts[x] for x in drawn if x.startswith("big")) == 1
    assert drawn == temperature_mix(pools, temperature=5.0, total=50, seed=1)
    assert drawn != temperature_mix(pools, temperature=5.0, total=50, seed=2)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_bad_temperature_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="temperature"):
        mixing_weights({"a": 1}, bad)


def test_all_empty_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        mixing_weights({"a": 0}, 5.0)
