"""Validated description of a source dataset: one YAML file per dataset, one :class:`DatasetSpec`.

Facts about a dataset (labels, landmarks, measurements, layout, licence) live in data, not in
code. A spec holds one or more tasks; a task is one image folder with its masks and/or
landmarks, one modality and one label table, as in the official ``benchmark_plan["tasks"]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from medvision.schema import LabelKind, Plane

Modality = Literal["MRI", "CT", "ultrasound", "X-ray", "PET"]
PlaneCode = Literal["S", "C", "A"]

_PLANES: dict[str, Plane] = {p.letter: p for p in Plane}


class SpecError(ValueError):
    """A dataset spec is invalid; the message names the spec file and the offending field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelSpec(_Model):
    """One label value of a mask.

    Attributes:
        id: Integer value in the mask (> 0).
        name: Name used in prompts (e.g. ``"left kidney"``).
        kind: organ | tumour | lesion | other; tumour/lesion drive the anatomy vs T/L split.
        group: Parent class for grouped reports (official ``label_map_regroup`` analogue).
    """

    id: int = Field(gt=0)
    name: str = Field(min_length=1)
    kind: LabelKind
    group: str = Field(min_length=1)


class DetectionSpec(_Model):
    """Detection samples: one box per 4-connected component per label per slice."""

    labels: list[int] = Field(min_length=1)
    planes: list[PlaneCode] = ["S", "C", "A"]
    single_instance: bool = True
    min_side_px: int = 10


class TumourLesionSpec(_Model):
    """Tumour/lesion size samples: ellipse major/minor axes of each lesion component."""

    labels: list[int] = Field(min_length=1)
    planes: list[PlaneCode] = ["S", "C", "A"]
    single_instance: bool = True


class MeasurementSpec(_Model):
    """A distance (two landmarks) or an angle (two lines of two landmarks each).

    Attributes:
        key: Stable key, e.g. ``"L-1-2"`` or ``"A-L_1_2-L_3_4"`` (official naming).
        type: ``"distance"`` (mm) or ``"angle"`` (acute, unsigned, degrees).
        points: Landmark keys: 2 for a distance, 4 for an angle (line 1 p1, p2, line 2 p1, p2).
        name: Clinical name used in the prompt; ``""`` gives the unnamed prompt form.
        plane: Plane of the image shown; its slice is the one holding the first point.
    """

    key: str = Field(min_length=1)
    type: Literal["distance", "angle"]
    points: list[str]
    name: str = ""
    plane: PlaneCode = "S"

    @model_validator(mode="after")
    def _check_points(self) -> MeasurementSpec:
        need = 2 if self.type == "distance" else 4
        if len(self.points) != need:
            raise ValueError(
                f"measurement {self.key!r}: a {self.type} needs {need} points, "
                f"found {len(self.points)}"
            )
        return self


class TaskSpec(_Model):
    """One task of a dataset: an image folder plus its annotations and task definitions."""

    id: str = Field(pattern=r"^\d{2}$")
    modality: Modality
    image_description: str
    image_folder: str
    image_suffix: str = ".nii.gz"
    image_prefix: str = ""
    mask_folder: str | None = None
    mask_suffix: str = ".nii.gz"
    mask_prefix: str = ""
    landmark_folder: str | None = None
    landmark_suffix: str = ".json"
    labels: list[LabelSpec] = []
    landmarks: dict[str, str] = {}
    measurements: list[MeasurementSpec] = []
    detection: DetectionSpec | None = None
    tl: TumourLesionSpec | None = None

    @model_validator(mode="after")
    def _check_refs(self) -> TaskSpec:
        ids = [lab.id for lab in self.labels]
        if len(ids) != len(set(ids)):
            raise ValueError(f"task {self.id}: duplicate label ids {sorted(ids)}")
        known = set(ids)
        for family, spec in (("detection", self.detection), ("tl", self.tl)):
            if spec is None:
                continue
            if self.mask_folder is None:
                raise ValueError(f"task {self.id}: {family} needs a mask_folder")
            missing = sorted(set(spec.labels) - known)
            if missing:
                raise ValueError(f"task {self.id}: {family} refers to unknown label ids {missing}")
        if self.tl is not None:
            bad = [i for i in self.tl.labels if self.label(i).kind not in ("tumour", "lesion")]
            if bad:
                raise ValueError(f"task {self.id}: tl labels {bad} are not tumour/lesion labels")
        if self.measurements and self.landmark_folder is None:
            raise ValueError(f"task {self.id}: measurements need a landmark_folder")
        for m in self.measurements:
            unknown = [p for p in m.points if p not in self.landmarks]
            if unknown:
                raise ValueError(
                    f"task {self.id}: measurement {m.key!r} uses unknown landmarks {unknown}"
                )
        keys = [m.key for m in self.measurements]
        if len(keys) != len(set(keys)):
            raise ValueError(f"task {self.id}: duplicate measurement keys")
        return self

    def label(self, label_id: int) -> LabelSpec:
        """Return the label with this id.

        Raises:
            KeyError: If the task has no such label (message lists the known ids).
        """
        for lab in self.labels:
            if lab.id == label_id:
                return lab
        raise KeyError(
            f"task {self.id} has no label {label_id}; known: {[x.id for x in self.labels]}"
        )


class SplitSpec(_Model):
    """Deterministic train/test split at subject level.

    Attributes:
        test_fraction: Fraction of subjects in the test split.
        seed: Seed of the shuffle of the sorted subject list.
        subject_regex: Regex whose first group extracts the subject from a case id (cases of
            one subject never straddle the split); ``None`` means one subject per case.
    """

    test_fraction: float = Field(default=0.3, ge=0.0, le=1.0)
    seed: int = 1024
    subject_regex: str | None = None


class SourceSpec(_Model):
    """Where the raw files come from."""

    kind: Literal["generator", "download", "manual"]
    generator: str | None = None
    urls: list[str] = []
    instructions: str = ""


class DatasetSpec(_Model):
    """A source dataset: provenance, layout, labels, landmarks, tasks."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    version: str = "1"
    title: str
    description: str
    licence: str
    citation: str
    homepage: str = ""
    source: SourceSpec
    split: SplitSpec = SplitSpec()
    tasks: list[TaskSpec] = Field(min_length=1)
    notes: list[str] = []

    @field_validator("tasks")
    @classmethod
    def _unique_task_ids(cls, tasks: list[TaskSpec]) -> list[TaskSpec]:
        ids = [t.id for t in tasks]
        if len(ids) != len(set(ids)):
            raise ValueError(f"duplicate task ids {ids}")
        return tasks


def plane_of(code: str) -> Plane:
    """Map a plane code (``"S"``, ``"C"``, ``"A"``) to :class:`~medvision.schema.Plane`."""
    return _PLANES[code]


def load_spec(path: str | Path) -> DatasetSpec:
    """Load and validate one dataset spec YAML (``yaml.safe_load``).

    Raises:
        SpecError: If the file is missing, not YAML, or fails validation; the message names
            the file and the field.
    """
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"cannot read dataset spec {p}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"dataset spec {p} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"dataset spec {p} must be a mapping, found {type(data).__name__}")
    try:
        return DatasetSpec.model_validate(data)
    except ValueError as exc:
        raise SpecError(f"invalid dataset spec {p}: {exc}") from exc
