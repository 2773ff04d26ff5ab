"""V0 rewards on crafted completions, against values computed by hand."""

from __future__ import annotations

import math

import pytest

from medvision.schema import TaskFamily
from medvision.training.rewards import (
    RewardTarget,
    answer_format_ok,
    complete_iou,
    make_reward,
    medvision_process_reward,
    medvision_reward,
    parse_reward_answer,
    rho,
    score_completion,
    structure_score,
)

TL = RewardTarget(
    family=TaskFamily.TUMOR_LESION_SIZE,
    target=(20.0, 10.0),
    metric_type="axes",
    steps=(((0.2, 0.5), (0.6, 0.5)), ((0.4, 0.4), (0.4, 0.6)), 20.0, 10.0),
)
DIST = RewardTarget(
    family=TaskFamily.ANGLE_DISTANCE,
    target=(30.0,),
    metric_type="distance",
    steps=(((0.1, 0.1),), ((0.5, 0.4),), 30.0),
)
DET = RewardTarget(family=TaskFamily.DETECTION, target=(0.2, 0.2, 0.6, 0.5))


def tl_text(
    major_pts: str = "(0.200, 0.500), (0.600, 0.500)",
    minor_pts: str = "(0.400, 0.400), (0.400, 0.600)",
    major: str = "20.000",
    minor: str = "10.000",
    answer: str = "<answer> (20.000, 10.000) </answer>",
) -> str:
    return (
        "<think> <step-1-reasoning> find the major axis </step-1-reasoning> "
        f"<step-1-answer> The endpoints of the major axis: {major_pts}. </step-1-answer> "
        "<step-2-reasoning> minor axis </step-2-reasoning> "
        f"<step-2-answer> The endpoints of the minor axis: {minor_pts}. </step-2-answer> "
        "<step-3-reasoning> compute </step-3-reasoning> "
        f"<step-3-answer> The major axis length: {major}. </step-3-answer> "
        "<step-4-reasoning> compute </step-4-reasoning> "
        f"<step-4-answer> The minor axis length: {minor}. </step-4-answer> </think> {answer}"
    )


def test_perfect_cot_scores_two() -> None:
    b = score_completion(tl_text(), TL)
    assert (b.format, b.process, b.answer) == (1.0, 1.0, 1.0)
    assert b.score == 2.0 and b.answer_error == 0.0 and b.localization_error == 0.0


def test_answer_reward_is_exp_of_minus_mre() -> None:
    b = score_completion(tl_text(answer="<answer> 30, 10 </answer>"), TL)
    assert b.answer_error == pytest.approx(0.25)  # (10/20 + 0/10) / 2
    assert b.answer == pytest.approx(math.exp(-0.25))
    assert b.score == pytest.approx(1.0 + 1.0 * math.exp(-0.25))


def test_process_reward_worst_point_over_sqrt2_and_either_order() -> None:
    # major endpoints swapped: full credit (best of both orders)
    swapped = score_completion(tl_text(major_pts="(0.600, 0.500), (0.200, 0.500)"), TL)
    assert swapped.process == 1.0
    # one minor endpoint 0.1 off in x: step error 0.1 / sqrt(2); other steps exact
    off = score_completion(tl_text(minor_pts="(0.500, 0.400), (0.400, 0.600)"), TL)
    assert off.process == pytest.approx((3 + math.exp(-0.1 / math.sqrt(2))) / 4)
    # measurement step off by 50 %: rho(0.5) for that step
    meas = score_completion(tl_text(major="30.0"), TL)
    assert meas.process == pytest.approx((3 + math.exp(-0.5)) / 4)
    assert meas.measurement_error == pytest.approx(0.25)  # mean of 0.5 and 0


def test_missing_step_scores_zero_and_multiplies_the_answer() -> None:
    text = tl_text().replace("<step-4-answer> The minor axis length: 10.000. </step-4-answer>", "")
    b = score_completion(text, TL)
    assert b.process == pytest.approx(0.75)
    assert b.score == pytest.approx(b.format + 0.75 * 1.0)
    add = score_completion(text, TL, composition="additive")
    assert add.score == pytest.approx(add.format + 0.75 + 1.0)


def test_coordinates_outside_0_1_do_not_parse() -> None:
    b = score_completion(tl_text(major_pts="(1.200, 0.500), (0.600, 0.500)"), TL)
    assert b.process == pytest.approx(0.75)


def test_format_soft_and_binary() -> None:
    bare = "<answer> 20, 10 </answer>"
    soft = score_completion(bare, TL)
    assert soft.format == pytest.approx(0.2)  # no <think>: structure 0, answer_ok 1
    assert score_completion(bare, TL, format_variant="binary").format == 1.0
    assert score_completion("20, 10", TL, format_variant="binary").format == 0.0
    # structure: max = think 1 + order 2 + 4 steps * (1 + 1 + values) with values 2,2,1,1 = 17
    one_step = "<think> <step-1-reasoning> r </step-1-reasoning> </think>"
    # think 1 + reasoning 1 + no numbers after it + order: 1 of 4 present -> 0
    assert structure_score(one_step, TL.points_per_step) == pytest.approx(2 / 17)


def test_answer_format_and_parse_rules() -> None:
    assert answer_format_ok("<answer> (6.338, 4.068) </answer>", 2)
    assert answer_format_ok("<answer>[1,2]</answer>", 2)
    assert not answer_format_ok("<answer> -1, 2 </answer>", 2)  # non-negative only
    assert not answer_format_ok("<answer> 1, 2, 3 </answer>", 2)
    assert parse_reward_answer("<answer> size 1, 2, 3 </answer>", 2) == (2.0, 3.0)
    assert parse_reward_answer("no tags 1, 2", 2) is None
    assert score_completion("no tags 20, 10", TL).answer == 0.0


def test_ciou_hand_values() -> None:
    assert complete_iou([0.2, 0.2, 0.6, 0.5], [0.2, 0.2, 0.6, 0.5]) == pytest.approx(1.0)
    # IoU 1/4, centre distance^2 0.5 over enclosing diagonal^2 8, same aspect ratio -> v = 0
    assert complete_iou([0, 0, 1, 1], [0, 0, 2, 2]) == pytest.approx(0.25 - 0.5 / 8)
    # corners given in the wrong order are sorted
    assert complete_iou([1, 1, 0, 0], [0, 0, 2, 2]) == pytest.approx(0.25 - 0.5 / 8)
    # disjoint boxes: negative, and lower the farther apart
    near = complete_iou([0, 0, 1, 1], [1.5, 0, 2.5, 1])
    far = complete_iou([0, 0, 1, 1], [5, 0, 6, 1])
    assert 0 > near > far
    # aspect term: a 1x1 box inside a 1x2 box
    iou = 0.5
    v = (4 / math.pi**2) * (math.atan(0.5) - math.atan(1.0)) ** 2
    d2, c2 = 0.5**2, 1 + 4
    got = complete_iou([0, 0, 1, 1], [0, 0, 2, 1])
    assert got == pytest.approx(iou - d2 / c2 - v / ((1 - iou) + v) * v, rel=1e-6)


def test_detection_reward_uses_ciou_and_binary_format() -> None:
    b = score_completion("<answer> 0.2, 0.2, 0.6, 0.5 </answer>", DET)
    assert (b.format, b.answer, b.process, b.score) == (1.0, 1.0, 0.0, 2.0)
    c = score_completion("<answer> 0, 0, 1, 1 </answer>", DET)
    expected = complete_iou([0, 0, 1, 1], [0.2, 0.2, 0.6, 0.5])
    assert c.answer_error == pytest.approx((1 - expected) / 2)
    assert c.answer == pytest.approx(math.exp(-(1 - expected) / 2))


def test_distance_steps() -> None:
    text = (
        "<think> <step-1-reasoning> a </step-1-reasoning> <step-1-answer> landmark 1: "
        "(0.1, 0.1). </step-1-answer> <step-2-reasoning> b </step-2-reasoning> <step-2-answer> "
        "landmark 2: (0.5, 0.4). </step-2-answer> <step-3-reasoning> c </step-3-reasoning> "
        "<step-3-answer> The distance: 30.0. </step-3-answer> </think> <answer> 30.0 </answer>"
    )
    assert score_completion(text, DIST).score == pytest.approx(2.0)


def test_rho_variants() -> None:
    assert rho(0.5, "scaled_sigmoid") == pytest.approx(0.5)
    assert rho(1.0, "gaussian_proxy") == pytest.approx(math.exp(-1.0))
    assert rho(math.nan) == 0.0


def test_trl_signature_messages_none_and_call_counting() -> None:
    calls: list[int] = []
    reward = make_reward("score", on_call=calls.append)
    assert reward.__name__ == "medvision_reward"
    completions = [
        [{"role": "assistant", "content": tl_text()}],
        [{"role": "assistant", "content": [{"type": "text", "text": "garbage"}]}],
    ]
    cols = [TL.to_json(), TL.to_json()]
    out = reward(
        prompts=["p", "p"], completions=completions, completion_ids=[[1], [2]], medvision=cols
    )
    assert out == [2.0, 0.0] and calls == [2]
    assert medvision_process_reward(completions=["x"], medvision=[DET.to_json()]) == [None]
    assert medvision_reward(completions=["<answer>30</answer>"], medvision=[DIST.to_json()])[0] == (
        pytest.approx(0.2 + 0.0)  # soft format 0.2 (answer ok, no think); process 0 x answer 1
    )
    with pytest.raises(KeyError, match="medvision"):
        medvision_reward(completions=["x"])


def test_reward_target_json_round_trip_and_validation() -> None:
    assert RewardTarget.from_json(TL.to_json()) == TL
    with pytest.raises(ValueError, match="needs 2 values"):
        RewardTarget(family=TaskFamily.TUMOR_LESION_SIZE, target=(1.0,))
    with pytest.raises(ValueError, match="not a medvision reward target"):
        RewardTarget.from_json('{"target": [1]}')
