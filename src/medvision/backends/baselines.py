"""Built-in baselines: random, prior and oracle answers, written as a model would write them.

Each baseline reads the request's ``hints`` (see :mod:`medvision.backends.base`) and replies
with text in the official answer format, so the reply is parsed and scored exactly like a VLM
reply:

* detection: ``"x0, y0, x1, y1"``, relative coordinates, origin lower-left, y up;
* tumour/lesion size: ``"major, minor"`` in mm;
* angle/distance: ``"value"`` in degrees or mm.

Every random draw comes from a generator seeded by a hash of ``(seed, request_id)``, so a
rerun or a resumed run gives the same answer for a request whatever the batch order.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from medvision.backends.base import (
    HINT_ANSWER_TAGS,
    HINT_FAMILY,
    HINT_IMAGE_HW,
    HINT_PRIOR_KEY,
    HINT_TARGET,
    HINT_VALUE_RANGE,
    ChatRequest,
    ChatResponse,
    HintError,
    answer_each,
    hint,
)

__all__ = [
    "OracleBaseline",
    "PriorBaseline",
    "RandomBaseline",
    "fit_priors",
    "format_answer",
    "random_boxes_rel",
    "request_rng",
]

_N_VALUES = {"detection": 4, "tl": 2, "ad": 1}


def request_rng(seed: int, request_id: str) -> np.random.Generator:
    """A generator determined by ``(seed, request_id)`` only (sha256 of ``"seed|id"``)."""
    digest = hashlib.sha256(f"{seed}|{request_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


def format_answer(values: Sequence[float], decimals: int | None = 4) -> str:
    r"""Write numbers as the official prompts ask: ``", "``-separated plain decimals.

    Args:
        values: The numbers.
        decimals: Fixed digits after the point; ``None`` writes the shortest text that reads
            back as the same float64. Never an exponent: the official parser's regex
            ``-?\d+\.?\d*`` would split ``1e-05`` into two numbers.

    Returns:
        e.g. ``"0.1250, 0.5000, 0.7500, 0.9000"``.

    Raises:
        ValueError: If a value is NaN or infinite (no model can write it as a decimal).
    """
    parts: list[str] = []
    for v in values:
        x = float(v)
        if not math.isfinite(x):
            raise ValueError(f"cannot write non-finite value {x} as a decimal answer")
        if decimals is None:
            parts.append(np.format_float_positional(x, trim="-", unique=True))
        else:
            parts.append(f"{x:.{decimals}f}")
    return ", ".join(parts)


def _wrap(request: ChatRequest, text: str, answer_tags: bool) -> str:
    tags = bool(request.hints.get(HINT_ANSWER_TAGS, answer_tags))
    return f"<answer>{text}</answer>" if tags else text


def _family(request: ChatRequest) -> str:
    family = str(hint(request, HINT_FAMILY))
    if family not in _N_VALUES:
        raise HintError(
            f"request {request.request_id}: unknown family {family!r}; "
            f"expected one of {sorted(_N_VALUES)}"
        )
    return family


def random_boxes_rel(
    image_hw: tuple[int, int],
    n: int,
    rng: np.random.Generator,
    *,
    min_side: int = 1,
) -> npt.NDArray[np.float64]:
    """Draw the official random boxes (``analyze_detection_task_boxsize_vs_random``).

    ``w ~ U{min_side..W}``, ``h ~ U{min_side..H}``, ``x1 ~ U{0..W-w}``, ``y1 ~ U{0..H-h}``
    (integers, inclusive) and ``box = (x1/W, y1/H, (x1+w)/W, (y1+h)/H)``. The official code
    draws in the relative frame directly, so the box is read as ``[x0, y0, x1, y1]`` with origin
    lower-left. ``min_side`` is 1 in the paper code and 3 in medvision-bm 1.2.1.

    Args:
        image_hw: Image size (rows H, cols W) in pixels.
        n: Number of boxes.
        rng: Random generator.
        min_side: Smallest box side in pixels.

    Returns:
        ``(n, 4)`` float64 array of relative boxes, all within [0, 1].

    Raises:
        ValueError: If the image is smaller than ``min_side`` along a side.
    """
    h_px, w_px = int(image_hw[0]), int(image_hw[1])
    if min_side < 1 or min(h_px, w_px) < min_side:
        raise ValueError(
            f"random box needs image sides >= min_side={min_side} >= 1, found (H, W) = "
            f"({h_px}, {w_px})"
        )
    w = rng.integers(min_side, w_px + 1, size=n)
    h = rng.integers(min_side, h_px + 1, size=n)
    x1 = rng.integers(0, w_px - w + 1)
    y1 = rng.integers(0, h_px - h + 1)
    return np.stack([x1 / w_px, y1 / h_px, (x1 + w) / w_px, (y1 + h) / h_px], axis=1)


class RandomBaseline:
    """Random answers: the official random box for detection, uniform values otherwise.

    Hints read: ``family``; ``image_hw`` (detection); ``value_range = (low, high)`` (T/L and
    A/D: values are drawn uniformly in ``[low, high)``; for T/L two draws, the larger written
    first as the major axis).

    Args:
        seed: Base seed; the draw of a request depends on ``(seed, request_id)`` only.
        min_side: Smallest random box side in pixels (1 as the paper code, 3 as 1.2.1).
        decimals: Digits after the point in the reply.
        answer_tags: Wrap replies in ``<answer>`` tags unless a request's ``answer_tags``
            hint says otherwise.
    """

    name = "random"

    def __init__(
        self, seed: int = 0, *, min_side: int = 1, decimals: int = 4, answer_tags: bool = False
    ) -> None:
        if min_side < 1:
            raise ValueError(f"min_side must be >= 1, found {min_side}")
        self.seed = seed
        self.min_side = min_side
        self.decimals = decimals
        self.answer_tags = answer_tags

    def values(self, request: ChatRequest) -> list[float]:
        """The random answer of one request, as numbers."""
        family = _family(request)
        rng = request_rng(self.seed, request.request_id)
        if family == "detection":
            hw = hint(request, HINT_IMAGE_HW)
            box = random_boxes_rel((int(hw[0]), int(hw[1])), 1, rng, min_side=self.min_side)
            return [float(v) for v in box[0]]
        low, high = (float(v) for v in hint(request, HINT_VALUE_RANGE))
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise HintError(
                f"request {request.request_id}: value_range must be finite (low, high) with "
                f"low <= high, found ({low}, {high})"
            )
        draws = rng.uniform(low, high, size=_N_VALUES[family])
        return [float(v) for v in sorted(draws, reverse=True)]

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Answer each request (errors become that request's error response)."""
        return answer_each(
            requests,
            lambda r: _wrap(r, format_answer(self.values(r), self.decimals), self.answer_tags),
        )

    def close(self) -> None:
        """Nothing to release."""


def fit_priors(
    items: Iterable[tuple[str, Sequence[float]]],
    statistic: Literal["mean", "median"] = "mean",
) -> dict[str, list[float]]:
    """Summarise answer vectors per key (the runner passes train-split targets).

    Args:
        items: ``(key, target vector)`` pairs, e.g. ``("mini|tl|lesion", [12.0, 8.0])``.
        statistic: Component-wise ``"mean"`` or ``"median"``.

    Returns:
        ``{key: prior vector}``, keys sorted.

    Raises:
        ValueError: On an unknown statistic, vectors of different lengths under one key, or a
            non-finite value (the message names the key).
    """
    if statistic not in ("mean", "median"):
        raise ValueError(f"statistic must be 'mean' or 'median', found {statistic!r}")
    grouped: dict[str, list[list[float]]] = defaultdict(list)
    for key, vector in items:
        grouped[key].append([float(v) for v in vector])
    priors: dict[str, list[float]] = {}
    for key in sorted(grouped):
        vectors = grouped[key]
        lengths = {len(v) for v in vectors}
        if len(lengths) != 1:
            raise ValueError(f"prior {key!r}: vectors of different lengths {sorted(lengths)}")
        array = np.asarray(vectors, dtype=np.float64)
        if not np.isfinite(array).all():
            raise ValueError(f"prior {key!r}: non-finite target values")
        stat = np.mean(array, axis=0) if statistic == "mean" else np.median(array, axis=0)
        priors[key] = [float(v) for v in stat]
    return priors


class PriorBaseline:
    """Answer every request with a stored prior vector (e.g. the train-set mean per label).

    Hints read: ``prior_key``. An unknown key is an error response naming the key.

    Args:
        priors: ``{key: answer vector}`` (see :func:`fit_priors`).
        decimals: Digits after the point in the reply.
        answer_tags: Wrap replies in ``<answer>`` tags unless a request's hint says otherwise.
    """

    name = "prior"

    def __init__(
        self,
        priors: Mapping[str, Sequence[float]],
        *,
        decimals: int = 4,
        answer_tags: bool = False,
    ) -> None:
        self.priors = {str(k): [float(v) for v in vec] for k, vec in priors.items()}
        self.decimals = decimals
        self.answer_tags = answer_tags

    def values(self, request: ChatRequest) -> list[float]:
        """The prior answer of one request, as numbers."""
        key = str(hint(request, HINT_PRIOR_KEY))
        if key not in self.priors:
            raise HintError(
                f"request {request.request_id}: no prior for key {key!r} "
                f"({len(self.priors)} keys known)"
            )
        return self.priors[key]

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Answer each request (errors become that request's error response)."""
        return answer_each(
            requests,
            lambda r: _wrap(r, format_answer(self.values(r), self.decimals), self.answer_tags),
        )

    def close(self) -> None:
        """Nothing to release."""


class OracleBaseline:
    """Answer with the ground truth, optionally perturbed: the score ceiling and a pipeline check.

    With ``noise = 0`` the reply is the target written exactly (shortest round-trip decimals by
    default), so every metric must come out perfect. With noise ``s`` and ``z ~ N(0, 1)`` per
    value: T/L and A/D ``value * (1 + s * z)``; detection ``coordinate + s * z`` (relative
    units, not clipped to [0, 1]).

    Hints read: ``family``, ``target``.

    Args:
        noise: Noise scale ``s`` (>= 0).
        seed: Base seed; the noise of a request depends on ``(seed, request_id)`` only.
        decimals: Digits after the point; ``None`` = exact.
        answer_tags: Wrap replies in ``<answer>`` tags unless a request's hint says otherwise.
    """

    name = "oracle"

    def __init__(
        self,
        noise: float = 0.0,
        seed: int = 0,
        *,
        decimals: int | None = None,
        answer_tags: bool = False,
    ) -> None:
        if not (math.isfinite(noise) and noise >= 0):
            raise ValueError(f"noise must be finite and >= 0, found {noise}")
        self.noise = noise
        self.seed = seed
        self.decimals = decimals
        self.answer_tags = answer_tags

    def values(self, request: ChatRequest) -> list[float]:
        """The (perturbed) target of one request, as numbers."""
        family = _family(request)
        target = np.asarray([float(v) for v in hint(request, HINT_TARGET)], dtype=np.float64)
        if target.size != _N_VALUES[family]:
            raise HintError(
                f"request {request.request_id}: {family} target needs {_N_VALUES[family]} "
                f"values, found {target.size}"
            )
        if self.noise == 0:
            return [float(v) for v in target]
        z = request_rng(self.seed, request.request_id).standard_normal(target.size)
        if family == "detection":
            return [float(v) for v in target + self.noise * z]
        return [float(v) for v in target * (1.0 + self.noise * z)]

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Answer each request (errors become that request's error response)."""
        return answer_each(
            requests,
            lambda r: _wrap(r, format_answer(self.values(r), self.decimals), self.answer_tags),
        )

    def close(self) -> None:
        """Nothing to release."""
