"""Random, prior and oracle baselines: official random box, determinism, exact oracle text."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import stats

from medvision.backends import (
    ChatRequest,
    Message,
    OracleBaseline,
    PriorBaseline,
    RandomBaseline,
    TextPart,
    fit_priors,
    format_answer,
    random_boxes_rel,
)

MSG = (Message("user", (TextPart("question"),)),)


def _req(rid: str, **hints: object) -> ChatRequest:
    return ChatRequest(request_id=rid, messages=MSG, hints=hints)


def _numbers(text: str) -> list[float]:
    # The official parser's number regex, applied independently of our code.
    return [float(x) for x in re.findall(r"-?\d+\.?\d*", text)]


def test_random_box_matches_the_official_distribution() -> None:
    h, w = 7, 13
    backend = RandomBaseline(seed=11)
    reqs = [_req(f"s{i}", family="detection", image_hw=(h, w)) for i in range(8000)]
    out = backend.generate(reqs)
    assert all(r.error is None for r in out)
    assert all(re.fullmatch(r"\d\.\d{4}, \d\.\d{4}, \d\.\d{4}, \d\.\d{4}", r.text) for r in out)
    boxes = np.array([_numbers(r.text) for r in out])
    assert boxes.min() >= 0 and boxes.max() <= 1
    widths = (boxes[:, 2] - boxes[:, 0]) * w
    heights = (boxes[:, 3] - boxes[:, 1]) * h
    x1 = boxes[:, 0] * w
    # Integer pixel sides and offsets (4-decimal text is within 1e-3 px of an integer here).
    for arr in (widths, heights, x1):
        assert np.abs(arr - np.round(arr)).max() < 2e-3
    widths, heights, x1 = np.round(widths), np.round(heights), np.round(x1)
    assert widths.min() == 1 and widths.max() == w and heights.min() == 1 and heights.max() == h
    # E[w] = (W+1)/2 for w ~ U{1..W}; SE ~ 3.74/sqrt(8000) = 0.04.
    assert abs(widths.mean() - (w + 1) / 2) < 0.15
    assert abs(heights.mean() - (h + 1) / 2) < 0.1
    # E[x1] = E[(W-w)/2] = (W-1)/4 and x1 + w <= W always.
    assert abs(x1.mean() - (w - 1) / 4) < 0.15
    assert (x1 + widths).max() <= w
    # Widths uniform over 1..W.
    counts = np.bincount(widths.astype(int), minlength=w + 1)[1:]
    assert stats.chisquare(counts).pvalue > 1e-3


def test_random_box_min_side_three_variant() -> None:
    rng = np.random.default_rng(0)
    boxes = random_boxes_rel((20, 9), 20000, rng, min_side=3)
    widths = np.round((boxes[:, 2] - boxes[:, 0]) * 9)
    heights = np.round((boxes[:, 3] - boxes[:, 1]) * 20)
    assert widths.min() == 3 and widths.max() == 9 and heights.min() == 3
    assert abs(widths.mean() - (9 + 3) / 2) < 0.05
    assert abs(heights.mean() - (20 + 3) / 2) < 0.15
    with pytest.raises(ValueError, match=r"\(H, W\) = \(2, 9\)"):
        random_boxes_rel((2, 9), 1, rng, min_side=3)
    out = RandomBaseline(min_side=3).generate([_req("a", family="detection", image_hw=(2, 9))])
    assert out[0].text == "" and out[0].error is not None and "min_side=3" in out[0].error


def test_random_is_deterministic_per_request_id_not_batch_order() -> None:
    reqs = [_req(f"id{i}", family="detection", image_hw=(64, 48)) for i in range(20)]
    a = RandomBaseline(seed=5).generate(reqs)
    b = RandomBaseline(seed=5).generate(list(reversed(reqs)))
    assert [r.text for r in a] == [r.text for r in reversed(b)]
    assert [r.request_id for r in b] == [r.request_id for r in reversed(reqs)]
    single = RandomBaseline(seed=5).generate([reqs[7]])
    assert single[0].text == a[7].text
    other_seed = RandomBaseline(seed=6).generate(reqs)
    assert sum(x.text != y.text for x, y in zip(a, other_seed, strict=True)) >= 18
    assert len({r.text for r in a}) >= 18


def test_random_values_for_size_and_angle() -> None:
    backend = RandomBaseline(seed=1)
    tl = backend.generate([_req(f"t{i}", family="tl", value_range=(5, 50)) for i in range(300)])
    vals = np.array([_numbers(r.text) for r in tl])
    assert vals.shape == (300, 2)
    assert vals.min() >= 5 and vals.max() <= 50 and (vals[:, 0] >= vals[:, 1]).all()
    ad = backend.generate([_req(f"a{i}", family="ad", value_range=(0, 180)) for i in range(2000)])
    angles = np.array([_numbers(r.text)[0] for r in ad])
    assert abs(angles.mean() - 90) < 4 and angles.min() >= 0 and angles.max() <= 180
    bad = backend.generate(
        [_req("x", family="tl"), _req("y", family="ad", value_range=(3, 1)), _req("z")]
    )
    assert "value_range" in (bad[0].error or "")
    assert "low <= high" in (bad[1].error or "")
    assert "'family'" in (bad[2].error or "")


def test_oracle_without_noise_writes_the_target_exactly() -> None:
    targets = {
        "detection": (0.1, 0.30000000000000004, 0.7, 0.00001),
        "tl": (12.5, 7.125),
        "ad": (123.456789,),
    }
    reqs = [_req(f, family=f, target=t) for f, t in targets.items()]
    out = OracleBaseline().generate(reqs)
    assert [r.text for r in out] == [
        "0.1, 0.30000000000000004, 0.7, 0.00001",
        "12.5, 7.125",
        "123.456789",
    ]
    for r, t in zip(out, targets.values(), strict=True):
        assert tuple(_numbers(r.text)) == t
    fixed = OracleBaseline(decimals=4).generate(reqs[:1])
    assert fixed[0].text == "0.1000, 0.3000, 0.7000, 0.0000"
    tagged = OracleBaseline().generate([_req("ad", family="ad", target=[2.0], answer_tags=True)])
    assert tagged[0].text == "<answer>2</answer>"
    wrong = OracleBaseline().generate([_req("w", family="tl", target=[1.0])])
    assert "needs 2 values, found 1" in (wrong[0].error or "")


def test_oracle_noise_is_relative_for_values_and_absolute_for_boxes() -> None:
    n = 4000
    backend = OracleBaseline(noise=0.1, seed=3)
    ad = backend.generate([_req(f"a{i}", family="ad", target=[40.0]) for i in range(n)])
    rel = np.array([_numbers(r.text)[0] for r in ad]) / 40.0 - 1
    assert abs(rel.mean()) < 0.006 and abs(rel.std() - 0.1) < 0.006
    target = [0.2, 0.3, 0.6, 0.9]
    det = backend.generate([_req(f"d{i}", family="detection", target=target) for i in range(n)])
    diff = np.array([_numbers(r.text) for r in det]) - np.array(target)
    # Negative coordinates are written with a sign, so the regex reads them back.
    assert abs(diff.mean()) < 0.006 and np.allclose(diff.std(axis=0), 0.1, atol=0.006)
    one = [_req("d5", family="ad", target=[1.0])]
    first = OracleBaseline(noise=0.1, seed=3).generate(one)[0].text
    assert OracleBaseline(noise=0.1, seed=3).generate(one)[0].text == first
    assert OracleBaseline(noise=0.1, seed=4).generate(one)[0].text != first
    with pytest.raises(ValueError, match="noise"):
        OracleBaseline(noise=-1)


def test_fit_priors_mean_and_median() -> None:
    items = [
        ("mini|tl|lesion", [10.0, 4.0]),
        ("mini|tl|lesion", [20.0, 6.0]),
        ("mini|tl|lesion", [60.0, 5.0]),
        ("mini|ad|angle", [30.0]),
    ]
    assert fit_priors(items, "mean") == {"mini|ad|angle": [30.0], "mini|tl|lesion": [30.0, 5.0]}
    assert fit_priors(items, "median") == {
        "mini|ad|angle": [30.0],
        "mini|tl|lesion": [20.0, 5.0],
    }
    with pytest.raises(ValueError, match=r"'k'.*different lengths \[1, 2\]"):
        fit_priors([("k", [1.0]), ("k", [1.0, 2.0])])
    with pytest.raises(ValueError, match="'k': non-finite"):
        fit_priors([("k", [float("nan")])])
    with pytest.raises(ValueError, match="statistic"):
        fit_priors(items, "mode")  # type: ignore[arg-type]


def test_prior_baseline_answers_and_isolates_errors() -> None:
    backend = PriorBaseline({"mini|detection|wm": [0.25, 0.5, 0.75, 1.0], "mini|ad|d": [42.0]})
    out = backend.generate(
        [
            _req("1", prior_key="mini|detection|wm"),
            _req("2", prior_key="mini|detection|nope"),
            _req("3", prior_key="mini|ad|d"),
            _req("4"),
        ]
    )
    assert [r.request_id for r in out] == ["1", "2", "3", "4"]
    assert out[0].text == "0.2500, 0.5000, 0.7500, 1.0000" and out[0].error is None
    assert out[1].text == "" and "'mini|detection|nope'" in (out[1].error or "")
    assert out[2].text == "42.0000"
    assert "'prior_key'" in (out[3].error or "")


def test_format_answer() -> None:
    assert format_answer([0.5, 1, 2.25]) == "0.5000, 1.0000, 2.2500"
    assert format_answer([1e-7, 12345678.5], decimals=None) == "0.0000001, 12345678.5"
    assert format_answer([-0.125], decimals=2) == "-0.12"
    with pytest.raises(ValueError, match="non-finite"):
        format_answer([float("inf")])
