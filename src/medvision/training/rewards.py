r"""GRPO rewards for MedVision answers, as MedVision-V0 defines them, with TRL's signature.

The definitions follow the V0 reward (``medvision_general.compute_score`` of the authors' verl
fork, branch ``medvision-rl``; official-versions §9, paper-results §6.2). Every component is in
``[0, 1]``; errors map to rewards through ``rho`` (``exp(-e)`` by default, or
``expit(-10 (e - 0.5))`` / ``exp(-e^2)``); a NaN error (nothing parsed) gives 0.

* **r_format**. ``soft`` (default): ``0.8 * structure + 0.2 * answer_ok``; ``binary``:
  ``answer_ok``. Detection always uses ``answer_ok``. ``answer_ok`` is 1 when
  ``<answer>\s*[\(\[]?\s*V(\s*,\s*V)*\s*[\)\]]?\s*</answer>`` holds exactly ``n`` values
  ``V = \d+(?:\.\d+)?`` (so non-negative). ``structure`` is 0 without ``<think>...</think>``;
  otherwise a weighted score over: the think block (1), each step's reasoning tag (1), each
  step's well-formed answer tag (1), the numbers found in the step (2 pro rata for a
  coordinate step, 1 for a scalar step) and the step order (2; half when one step is
  missing), divided by the maximum (:func:`structure_score`).
* **r_answer**. T/L and A/D: ``rho(MRE)`` with ``MRE = mean |p - t| / (t + 1e-15)``.
  Detection: ``rho((1 - CIoU) / 2)`` with corners sorted (:func:`complete_iou`). Values come
  from the strict ``answer_ok`` pattern, else the last ``n`` numbers of the first
  ``<answer>`` block by the paper-v1 number rule (:func:`medvision.parsing.parse_last_k`).
* **r_process** (T/L and A/D with CoT steps): the mean over steps of ``rho(step error)``; a
  missing or malformed step scores 0. Localisation steps: the worst point's displacement in
  relative coordinates divided by ``sqrt(2)``, the better of the two point orders for
  two-point steps; coordinates must match ``(?:0(?:\.\d+)?|1(?:\.0+)?)`` inside ``(x, y)``.
  Measurement steps: relative error. T/L steps: major endpoints, minor endpoints, major,
  minor; distance: point, point, distance; angle: line 1, line 2, angle.
* **score** = ``r_format + r_process * r_answer`` (``multiplicative``, default) or
  ``r_format + r_process + r_answer`` (``additive``); detection ``r_format + r_answer``.

Differences from the fork, all deliberate: ground truth is the sample's exact target (the fork
reads a ``%.3f`` string); the IoU inside CIoU is :func:`medvision.geometry.detection.score_box`
(zero for a non-positive union, where the fork uses ``union > 1e-7``); and a T/L or A/D row
exported **without** CoT steps (no ``--cot``) is scored like detection, ``r_format`` (binary)
``+ r_answer``, instead of failing.

TRL's reward-function contract: called with keyword arguments ``prompts``, ``completions``
(strings, or lists of chat messages), ``completion_ids``, ``trainer_state`` and every dataset
column; returns one float (or ``None`` = not applicable) per completion. The export stores the
ground truth of each row as one JSON string column, :data:`REWARD_COLUMN`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from medvision.geometry.detection import score_box
from medvision.metrics.per_sample import RE_EPS  # one epsilon for every relative error
from medvision.parsing import parse_last_k
from medvision.schema import TaskFamily

__all__ = [
    "REWARD_COLUMN",
    "Composition",
    "FormatVariant",
    "RewardBreakdown",
    "RewardTarget",
    "RhoName",
    "answer_format_ok",
    "complete_iou",
    "make_reward",
    "medvision_answer_reward",
    "medvision_format_reward",
    "medvision_process_reward",
    "medvision_reward",
    "parse_reward_answer",
    "parse_step",
    "rho",
    "score_completion",
    "structure_score",
]

REWARD_COLUMN = "medvision"
"""Dataset column holding each row's :class:`RewardTarget` as a JSON string."""

RhoName = Literal["exp_decay", "scaled_sigmoid", "gaussian_proxy"]
FormatVariant = Literal["soft", "binary"]
Composition = Literal["multiplicative", "additive"]

SOFT_FORMAT_ALPHA = 0.8
"""Weight of the reasoning-structure score in the soft format reward."""
_CIOU_EPS = 1e-7

_FLAGS = re.DOTALL
_REAL = r"\d+(?:\.\d+)?"
_REAL_G = rf"({_REAL})"
_REL = r"(?:0(?:\.\d+)?|1(?:\.0+)?)"
_COORD = rf"\(\s*{_REL}\s*,\s*{_REL}\s*\)"
_COORD_G = rf"\(\s*({_REL})\s*,\s*({_REL})\s*\)"
_THINK = re.compile(r"<think>(.*?)</think>", _FLAGS)
_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", _FLAGS)


def rho(error: float, name: RhoName = "exp_decay") -> float:
    """Map an error (>= 0, lower is better) to a reward; NaN gives 0.

    Args:
        error: The error (unitless).
        name: ``exp_decay`` ``exp(-e)``, ``scaled_sigmoid`` ``expit(-10 (e - 1/2))`` or
            ``gaussian_proxy`` ``exp(-e^2)``.

    Returns:
        The reward.

    Example:
        >>> rho(0.0), rho(float("nan"))
        (1.0, 0.0)
    """
    if math.isnan(error):
        return 0.0
    if name == "exp_decay":
        return math.exp(-error)
    if name == "scaled_sigmoid":
        z = -10.0 * (error - 0.5)
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
    if name == "gaussian_proxy":
        return math.exp(-0.5 * error**2 / 0.5)
    raise ValueError(f"unknown rho {name!r}; expected exp_decay, scaled_sigmoid or gaussian_proxy")


def complete_iou(pred: Sequence[float], target: Sequence[float]) -> float:
    """Complete IoU of two boxes ``[x0, y0, x1, y1]`` (any consistent frame), corners sorted.

    ``CIoU = IoU - d^2 / c^2 - alpha * v`` with ``d`` the centre distance, ``c`` the diagonal
    of the enclosing box, ``v = (4 / pi^2) (atan(gw / gh) - atan(pw / ph))^2`` and
    ``alpha = v / ((1 - IoU) + v)``. Unlike IoU it keeps decreasing as disjoint boxes move
    apart, so it gives a learning signal everywhere.

    Args:
        pred: Predicted box.
        target: Ground-truth box.

    Returns:
        CIoU in ``[-1, 1]`` (1 for identical boxes); NaN if a box does not have 4 finite values.
    """
    if len(pred) != 4 or len(target) != 4:
        return math.nan
    p = [float(v) for v in pred]
    g = [float(v) for v in target]
    if not all(math.isfinite(v) for v in (*p, *g)):
        return math.nan
    px1, px2 = sorted((p[0], p[2]))
    py1, py2 = sorted((p[1], p[3]))
    gx1, gx2 = sorted((g[0], g[2]))
    gy1, gy2 = sorted((g[1], g[3]))
    iou = score_box(p, g, sort_corners=True).iou
    pw, ph, gw, gh = px2 - px1, py2 - py1, gx2 - gx1, gy2 - gy1
    centre_d2 = ((px1 + px2) / 2 - (gx1 + gx2) / 2) ** 2 + ((py1 + py2) / 2 - (gy1 + gy2) / 2) ** 2
    enclose_d2 = (max(px2, gx2) - min(px1, gx1)) ** 2 + (max(py2, gy2) - min(py1, gy1)) ** 2
    centre = centre_d2 / enclose_d2 if enclose_d2 > _CIOU_EPS else 0.0
    v = (4.0 / math.pi**2) * (
        math.atan(gw / (gh + _CIOU_EPS)) - math.atan(pw / (ph + _CIOU_EPS))
    ) ** 2
    denom = (1.0 - iou) + v
    alpha = v / denom if denom > _CIOU_EPS else 0.0
    return iou - centre - alpha * v


# --- parsing -------------------------------------------------------------------------------


def _answer_pattern(n: int, *, group: bool) -> re.Pattern[str]:
    values = r"\s*,\s*".join([_REAL_G if group else _REAL] * n)
    return re.compile(rf"<answer>\s*[\(\[]?\s*{values}\s*[\)\]]?\s*</answer>", _FLAGS)


def answer_format_ok(text: str, n: int) -> bool:
    """Whether an ``<answer>`` block holds exactly ``n`` non-negative comma-separated numbers."""
    return _answer_pattern(n, group=False).search(text) is not None


def parse_reward_answer(text: str, n: int) -> tuple[float, ...] | None:
    """The final answer's values as the V0 reward reads them.

    Args:
        text: The completion.
        n: Values expected (detection 4, T/L 2, A/D 1).

    Returns:
        The strict-pattern values, else the last ``n`` numbers of the first ``<answer>``
        block (paper-v1 number rule), else ``None``.
    """
    m = _answer_pattern(n, group=True).search(text)
    if m is not None:
        return tuple(float(g) for g in m.groups())
    block = _ANSWER_BLOCK.search(text)
    if block is None:
        return None
    parsed = parse_last_k(block.group(1), n, version="paper-v1")
    return parsed.values


def _step_reasoning(k: int) -> str:
    return rf"<step-{k}-reasoning>.*?</step-{k}-reasoning>"


def _step_answer(k: int, n_points: int, *, group: bool) -> str:
    if n_points == 0:
        value = _REAL_G if group else _REAL
    else:
        value = r"\s*,\s*".join([_COORD_G if group else _COORD] * n_points)
    return rf"<step-{k}-answer>.*?{value}.*?</step-{k}-answer>"


def parse_step(text: str, k: int, n_points: int) -> tuple[float, ...] | None:
    """Values declared in CoT step ``k``: a reasoning tag followed by a well-formed answer tag.

    Args:
        text: The completion.
        k: Step number (1-based).
        n_points: Points expected (``2 * n_points`` coordinates), or 0 for one scalar.

    Returns:
        The values in order, or ``None`` when the step is absent or malformed.
    """
    pattern = rf"{_step_reasoning(k)}\s*.*?{_step_answer(k, n_points, group=True)}"
    m = re.search(pattern, text, _FLAGS)
    return tuple(float(g) for g in m.groups()) if m else None


def structure_score(text: str, points_per_step: Sequence[int]) -> float:
    """Soft reasoning-structure score in ``[0, 1]`` of a CoT completion (V0 ``soft_format_score``).

    Args:
        text: The completion.
        points_per_step: Coordinates expected per step (0 = a scalar step).

    Returns:
        0 without a ``<think>`` block; otherwise the weighted credit over the maximum.
    """
    n_steps = len(points_per_step)
    w_think, w_order = 1.0, 2.0
    weights = [(1.0, 1.0, 2.0 if n else 1.0) for n in points_per_step]
    max_score = w_think + w_order + sum(sum(w) for w in weights)
    think = _THINK.search(text)
    if think is None:
        return 0.0
    body = think.group(1)
    score = w_think
    positions: list[int | None] = []
    for k, (n_points, (w_reason, w_tag, w_values)) in enumerate(
        zip(points_per_step, weights, strict=True), start=1
    ):
        reasoning = re.search(_step_reasoning(k), body, _FLAGS)
        answer = re.search(_step_answer(k, n_points, group=False), body, _FLAGS)
        score += (w_reason if reasoning else 0.0) + (w_tag if answer else 0.0)
        starts = [m.start() for m in (reasoning, answer) if m is not None]
        positions.append(min(starts) if starts else None)
        if answer is not None:
            region: str | None = answer.group(0)
        elif reasoning is not None:  # partial structure right after the reasoning block
            region = body[reasoning.end() : reasoning.end() + (2000 if n_points else 1000)]
        else:
            region = None
        if region:
            n_found = len(re.findall(_REAL, region))
            if n_points:
                score += min(n_found, 2 * n_points) * w_values / (2 * n_points)
            elif n_found:
                score += w_values
    present = [p for p in positions if p is not None]
    if present == sorted(present):
        if len(present) == n_steps:
            score += w_order
        elif len(present) >= n_steps - 1:
            score += w_order * 0.5
    return max(0.0, min(1.0, score / max_score))


# --- ground truth --------------------------------------------------------------------------

StepTarget = tuple[tuple[float, float], ...] | float


@dataclass(frozen=True)
class RewardTarget:
    """Ground truth of one row for the rewards.

    Attributes:
        family: Task family.
        target: Answer values in official units (detection relative lower-left box).
        metric_type: ``"axes"``, ``"distance"``, ``"angle"`` or ``""``.
        steps: CoT step targets: a tuple of relative ``(x, y)`` points for a localisation step,
            a float for a measurement step; empty when the row has no CoT.
    """

    family: TaskFamily
    target: tuple[float, ...]
    metric_type: str = ""
    steps: tuple[StepTarget, ...] = field(default=())

    def __post_init__(self) -> None:
        if len(self.target) != self.family.n_values:
            raise ValueError(
                f"{self.family.value} reward target needs {self.family.n_values} values; "
                f"found {self.target!r}"
            )

    @property
    def points_per_step(self) -> tuple[int, ...]:
        """Points per step (0 for a measurement step)."""
        return tuple(0 if isinstance(s, float) else len(s) for s in self.steps)

    @property
    def has_process(self) -> bool:
        """Whether the process reward applies (T/L or A/D with CoT steps)."""
        return self.family is not TaskFamily.DETECTION and bool(self.steps)

    def to_json(self) -> str:
        """JSON string for the :data:`REWARD_COLUMN` column."""
        steps: list[Any] = [s if isinstance(s, float) else [list(p) for p in s] for s in self.steps]
        return json.dumps(
            {
                "family": self.family.value,
                "target": list(self.target),
                "metric_type": self.metric_type,
                "steps": steps,
            }
        )

    @classmethod
    def from_json(cls, data: str | Mapping[str, Any]) -> RewardTarget:
        """Read :meth:`to_json` output (or the decoded mapping).

        Raises:
            ValueError: If the data is not a reward target (the message shows what was found).
        """
        obj = json.loads(data) if isinstance(data, str) else dict(data)
        try:
            steps: list[StepTarget] = []
            for s in obj.get("steps") or []:
                if isinstance(s, int | float):
                    steps.append(float(s))
                else:
                    steps.append(tuple((float(p[0]), float(p[1])) for p in s))
            return cls(
                family=TaskFamily(obj["family"]),
                target=tuple(float(v) for v in obj["target"]),
                metric_type=str(obj.get("metric_type", "")),
                steps=tuple(steps),
            )
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"not a medvision reward target: {str(obj)[:200]!r} ({exc})") from exc


@dataclass(frozen=True)
class RewardBreakdown:
    """One completion's reward and its parts.

    Attributes:
        score: The training reward.
        format: r_format in [0, 1].
        process: r_process in [0, 1] (0 where it does not apply, as in the fork).
        answer: r_answer in [0, 1].
        answer_error: MRE or ``(1 - CIoU) / 2``; NaN when nothing parsed.
        localization_error: Mean worst-point error of the parsed localisation steps (NaN if none).
        measurement_error: Mean relative error of the parsed measurement steps (NaN if none).
    """

    score: float
    format: float
    process: float
    answer: float
    answer_error: float
    localization_error: float = math.nan
    measurement_error: float = math.nan


def _mre(pred: Sequence[float], target: Sequence[float]) -> float:
    if len(pred) != len(target):
        return math.nan
    return sum(abs(p - t) / (t + RE_EPS) for p, t in zip(pred, target, strict=True)) / len(target)


def _point_error(pred: Sequence[float], points: Sequence[tuple[float, float]]) -> float:
    """Worst point displacement / sqrt(2); flat ``pred`` against ``points`` in order."""
    if len(pred) != 2 * len(points) or not points:
        return math.nan
    return max(
        math.hypot(pred[2 * i] - x, pred[2 * i + 1] - y) / math.sqrt(2.0)
        for i, (x, y) in enumerate(points)
    )


def _nanmean(values: Sequence[float]) -> float:
    ok = [v for v in values if not math.isnan(v)]
    return sum(ok) / len(ok) if ok else math.nan


def _process(text: str, target: RewardTarget, rho_name: RhoName) -> tuple[float, float, float]:
    rewards: list[float] = []
    loc: list[float] = []
    meas: list[float] = []
    for k, step in enumerate(target.steps, start=1):
        err = math.nan
        if isinstance(step, float):
            scalar = parse_step(text, k, 0)
            if scalar is not None:
                err = _mre(scalar, [step])
            meas.append(err)
        else:
            pred = parse_step(text, k, len(step))
            if pred is not None:
                orders = [list(step), list(step[::-1])] if len(step) == 2 else [list(step)]
                err = min(_point_error(pred, o) for o in orders)
            loc.append(err)
        rewards.append(rho(err, rho_name))
    return sum(rewards) / len(rewards), _nanmean(loc), _nanmean(meas)


def score_completion(
    text: str,
    target: RewardTarget,
    *,
    format_variant: FormatVariant = "soft",
    composition: Composition = "multiplicative",
    rho_name: RhoName = "exp_decay",
) -> RewardBreakdown:
    """The V0 reward of one completion (see the module docstring).

    Args:
        text: The completion text.
        target: Its ground truth.
        format_variant: ``soft`` or ``binary`` format reward.
        composition: ``multiplicative`` or ``additive`` process/answer combination.
        rho_name: Error-to-reward map.

    Returns:
        The breakdown; ``score`` is the training reward.
    """
    if format_variant not in ("soft", "binary"):
        raise ValueError(f"format_variant must be soft or binary; found {format_variant!r}")
    if composition not in ("multiplicative", "additive"):
        raise ValueError(f"composition must be multiplicative or additive; found {composition!r}")
    n = target.family.n_values
    answer_ok = 1.0 if answer_format_ok(text, n) else 0.0
    if format_variant == "binary" or not target.has_process:
        r_format = answer_ok
    else:
        structure = structure_score(text, target.points_per_step)
        r_format = SOFT_FORMAT_ALPHA * structure + (1.0 - SOFT_FORMAT_ALPHA) * answer_ok

    pred = parse_reward_answer(text, n)
    if pred is None:
        answer_error = math.nan
    elif target.family is TaskFamily.DETECTION:
        answer_error = (1.0 - complete_iou(pred, target.target)) / 2.0
    else:
        answer_error = _mre(pred, target.target)
    r_answer = rho(answer_error, rho_name)

    if not target.has_process:
        return RewardBreakdown(r_format + r_answer, r_format, 0.0, r_answer, answer_error)
    r_process, loc_err, meas_err = _process(text, target, rho_name)
    task = r_process * r_answer if composition == "multiplicative" else r_process + r_answer
    return RewardBreakdown(
        r_format + task, r_format, r_process, r_answer, answer_error, loc_err, meas_err
    )


# --- TRL reward functions ------------------------------------------------------------------


def _text(completion: Any) -> str:
    """Completion text from a string or a list of chat messages (content str or parts)."""
    if isinstance(completion, str):
        return completion
    parts: list[str] = []
    for message in completion:
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text") or "") for p in content if isinstance(p, Mapping))
    return "".join(parts)


def _targets(kwargs: Mapping[str, Any], n: int) -> list[RewardTarget]:
    column = kwargs.get(REWARD_COLUMN)
    if column is None:
        raise KeyError(
            f"the dataset has no {REWARD_COLUMN!r} column: medvision rewards need the ground "
            "truth that `medvision export sft` writes with every row"
        )
    if len(column) != n:
        raise ValueError(f"{len(column)} {REWARD_COLUMN!r} values for {n} completions")
    return [RewardTarget.from_json(c) for c in column]


RewardFunc = Callable[..., list[float | None]]


def make_reward(
    part: Literal["score", "format", "process", "answer"] = "score",
    *,
    format_variant: FormatVariant = "soft",
    composition: Composition = "multiplicative",
    rho_name: RhoName = "exp_decay",
    on_call: Callable[[int], None] | None = None,
) -> RewardFunc:
    """A TRL reward function returning one part of :func:`score_completion`.

    Args:
        part: ``score`` (the training reward) or one component (for logging).
        format_variant: ``soft`` or ``binary``.
        composition: ``multiplicative`` or ``additive``.
        rho_name: Error-to-reward map.
        on_call: Called with the number of completions at every call (tests, monitoring).

    Returns:
        ``f(completions, **kwargs) -> list[float | None]`` named ``medvision_<part>_reward``
        (``medvision_reward`` for the score; TRL logs ``rewards/<name>/mean``). The process part
        is ``None`` (not applicable) for rows without a process reward.
    """

    def reward(completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        targets = _targets(kwargs, len(completions))
        if on_call is not None:
            on_call(len(completions))
        out: list[float | None] = []
        for completion, target in zip(completions, targets, strict=True):
            b = score_completion(
                _text(completion),
                target,
                format_variant=format_variant,
                composition=composition,
                rho_name=rho_name,
            )
            if part == "process" and not target.has_process:
                out.append(None)
            else:
                out.append(
                    {
                        "score": b.score,
                        "format": b.format,
                        "process": b.process,
                        "answer": b.answer,
                    }[part]
                )
        return out

    reward.__name__ = "medvision_reward" if part == "score" else f"medvision_{part}_reward"
    reward.__qualname__ = reward.__name__
    return reward


medvision_reward = make_reward("score")
"""The V0 training reward (soft format, multiplicative, ``exp(-e)``)."""
medvision_format_reward = make_reward("format")
"""r_format alone (soft)."""
medvision_answer_reward = make_reward("answer")
"""r_answer alone."""
medvision_process_reward = make_reward("process")
"""r_process alone (``None`` where it does not apply)."""
