"""The sample record shared by every stage: annotate -> store -> tasks -> runs -> metrics.

A :class:`Sample` is one image-annotation pair: one 2D image (stored once, by content hash) and
one target in official units. Frames and units:

* ``box_rc`` is in the array frame of the stored 2D image: ``(r0, c0, r1, c1)``, rows top to
  bottom, columns left to right, **inclusive** min and max, exactly as the official plans
  store ``min_coords``/``max_coords``.
* ``target`` holds the answer in the units the official prompt asks for: detection
  ``[x0, y0, x1, y1]`` relative to the image, origin lower-left, y up; tumour/lesion size
  ``[major_mm, minor_mm]``; angle/distance ``[value]`` in degrees or mm.
* ``points_rc`` are landmark or axis-endpoint positions in (row, col) pixels of the stored
  image, floats, in the order the family defines (T/L: P1, P2 major; P3, P4 minor; distance:
  two points; angle: line 1 p1, p2, line 2 p1, p2).
* ``spacing_mm_rc`` is the native pixel spacing of the stored image (row, col) in mm, from
  the RAS+ affine. The spacing of the image a model sees is derived per run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Literal

LabelKind = Literal["organ", "tumour", "lesion", "other", "landmark"]
Split = Literal["train", "test"]


class TaskFamily(StrEnum):
    """The three MedVision task families (values are stable identifiers)."""

    DETECTION = "detection"
    TUMOR_LESION_SIZE = "tl"
    ANGLE_DISTANCE = "ad"

    @property
    def n_values(self) -> int:
        """Number of numbers in an answer (the official parser's ``k``)."""
        return {"detection": 4, "tl": 2, "ad": 1}[self.value]


class Plane(IntEnum):
    """Slicing plane of a RAS+ volume; the value is the sliced axis (official ``slice_dim``)."""

    SAGITTAL = 0
    CORONAL = 1
    AXIAL = 2

    @property
    def letter(self) -> str:
        """One-letter code used in official group keys: S, C or A."""
        return self.name[0]


@dataclass(frozen=True)
class Sample:
    """One image-annotation pair with its ground truth in official units.

    Attributes:
        sample_id: Stable identifier (see :func:`make_sample_id`).
        dataset: Catalog name of the source dataset (e.g. ``"mini"``, ``"KiTS23"``).
        case_id: Case (volume) identifier inside the dataset.
        split: ``"train"`` or ``"test"``.
        family: Task family.
        plane: Slicing plane.
        slice_index: Index of the slice along ``plane`` in the RAS+ volume.
        label_id: Label value in the mask (``None`` for landmark tasks).
        label_name: Human-readable structure name used in prompts.
        label_kind: organ | tumour | lesion | other | landmark.
        label_group: Parent group for reports (official ``label_map_regroup`` analogue).
        modality: ``"MRI"``, ``"CT"``, ``"ultrasound"``, ``"X-ray"`` or ``"PET"``.
        image_description: Free text pasted into the prompt.
        image_key: Content hash (sha256 hex) of the stored (lossless) slice; the image a model
            is shown is rendered from it per protocol (:mod:`medvision.volumes.render`).
        image_hw: Stored image size (rows, cols) in pixels.
        spacing_mm_rc: Native pixel spacing (row, col) in mm.
        target: Answer in official units (see module docstring).
        unit: ``"relative"``, ``"mm"`` or ``"degree"``.
        box_rc: Detection box, inclusive (r0, c0, r1, c1) pixels; ``None`` otherwise.
        n_instances: Connected components of this label on this slice (detection, T/L).
        points_rc: Landmarks / axis endpoints (row, col) pixels; empty if not applicable.
        metric_type: ``"distance"`` or ``"angle"`` for A/D, ``"axes"`` for T/L, else ``""``.
        metric_key: Measurement key (e.g. ``"L-1-2"``, ``"A-L_2_5-L_2_6"``); ``""`` if none.
        metric_name: Clinical name of the measurement (may be ``""``, as in Ceph).
        landmark_names: Landmark names in prompt order (distance: 2; angle: 4).
        extras: Extra measured values (e.g. ``feret_mm``, ``perp_mm``, ``size_mm_h``).
        task_id: The dataset task the sample comes from (``TaskSpec.id``, or the official
            plan's ``task_ID``); with the family and plane it names the official task
            configuration that ``--limit`` counts in.
        annotation: Ground-truth version of the build the sample comes from
            (``"official-1.0.0"``, ``"official-1.4.0"``, ``"precise"``; it sets the T/L
            targets); ``""`` where the build's manifest alone says it (official-plan builds).
    """

    sample_id: str
    dataset: str
    case_id: str
    split: Split
    family: TaskFamily
    plane: Plane
    slice_index: int
    label_id: int | None
    label_name: str
    label_kind: LabelKind
    label_group: str
    modality: str
    image_description: str
    image_key: str
    image_hw: tuple[int, int]
    spacing_mm_rc: tuple[float, float]
    target: tuple[float, ...]
    unit: str
    box_rc: tuple[int, int, int, int] | None = None
    n_instances: int = 1
    points_rc: tuple[tuple[float, float], ...] = ()
    metric_type: str = ""
    metric_key: str = ""
    metric_name: str = ""
    landmark_names: tuple[str, ...] = ()
    extras: dict[str, float] = field(default_factory=dict)
    task_id: str = ""
    annotation: str = ""


def make_sample_id(*parts: object) -> str:
    """Return a short stable id from the identifying parts of a sample.

    Args:
        *parts: Identifying values, e.g. dataset, case, family, plane, slice, label, key.

    Returns:
        16 hex characters of the sha256 of the ``|``-joined parts.

    Example:
        >>> make_sample_id("mini", "case000", "detection", 2, 40, 3)
        '5d30d779ce762c43'
    """
    text = "|".join(str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


ParseStatusName = Literal[
    "ok", "no_answer", "too_few_numbers", "out_of_range", "refusal", "backend_error"
]


@dataclass(frozen=True, slots=True)
class Record:
    """One evaluated sample, as written to a run's ``records.jsonl`` (one JSON object a line).

    Everything a score or a report needs is in the record, so ``medvision score`` recomputes
    every number from the records alone.

    Attributes:
        sample_id: :attr:`Sample.sample_id`.
        dataset: Source dataset name.
        case_id: Case identifier.
        family: Task family value (``"detection"``, ``"tl"``, ``"ad"``).
        plane: Plane value (0 sagittal, 1 coronal, 2 axial).
        slice_index: Slice index.
        label_id: Label value or ``None``.
        label_name: Structure name.
        label_kind: organ | tumour | lesion | other | landmark.
        label_group: Report group of the label.
        modality: Image modality.
        metric_type: ``""``, ``"axes"``, ``"distance"`` or ``"angle"``.
        metric_key: Measurement key (A/D) or ``""``.
        image_key: Content key of the stored (lossless) slice the image shown was rendered
            from (before the model's own resize); see ``rendering``.
        image_hw: Stored image size (rows, cols).
        seen_hw: Size of the image the model sees after its resize (rows, cols).
        seen_spacing_mm_rc: Pixel spacing stated in the prompt (row, col) mm.
        box_img_ratio: Ground-truth box area over image area (detection) else ``None``.
        target: Ground truth in official units.
        model: Model name as given by the user.
        backend: Backend name.
        protocol: Protocol preset (``"paper-v1"``, ``"official"``, ``"strict"``).
        prompt_hash: sha256 (16 hex) of the rendered prompt text.
        raw_output: Text returned by the backend (``""`` on backend error).
        parsed: Parsed answer values, or ``None`` when parsing failed.
        status: Parse status (``"ok"`` when parsed is not ``None``).
        reason: Human-readable reason for a non-ok status.
        metrics: Per-sample metrics (NaN for undefined; see ``medvision.metrics``).
        latency_s: Backend latency in seconds.
        prompt_tokens: Prompt tokens, if the backend reported them.
        completion_tokens: Generated tokens, if the backend reported them.
        finish_reason: Why generation stopped (``"length"``: cut at the token limit).
        annotation: Ground-truth version of the build (:attr:`Sample.annotation`); ``None``
            when the build did not record one.
        judge_output: Raw reply of the LLM judge that extracted the answer (``--parser
            judge``, :mod:`medvision.runs.judge`), or ``None`` when a regex parser did.
        prompt: The rendered prompt text sent with the image (``None`` when the run was made
            with ``log_prompts=False`` or before prompts were logged; ``prompt_hash`` is
            always there).
        rendering: Rendering rule of the image shown (``"minmax"``, ``"official"``,
            ``"percentile"``); ``None`` in records written before it was recorded.
    """

    sample_id: str
    dataset: str
    case_id: str
    family: str
    plane: int
    slice_index: int
    label_id: int | None
    label_name: str
    label_kind: str
    label_group: str
    modality: str
    metric_type: str
    metric_key: str
    image_key: str
    image_hw: tuple[int, int]
    seen_hw: tuple[int, int]
    seen_spacing_mm_rc: tuple[float, float]
    box_img_ratio: float | None
    target: tuple[float, ...]
    model: str
    backend: str
    protocol: str
    prompt_hash: str
    raw_output: str
    parsed: tuple[float, ...] | None
    status: str
    reason: str
    metrics: dict[str, float]
    latency_s: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    annotation: str | None = None
    judge_output: str | None = None
    prompt: str | None = None
    rendering: str | None = None
