"""Many :class:`~medvision.schema.Sample` s of one slice group, made cheaply and identically.

A case yields hundreds of samples that differ in a few fields (id, box, target, extras). The
dataclass ``__init__`` of ``Sample`` (28 arguments, each stored through
``object.__setattr__`` because it is frozen) and :func:`~medvision.schema.make_sample_id`
(which ``str``-joins every part again) dominate that loop, so the mask planners:

* fill a :class:`SampleTemplate` once per (family, plane, slice, label) group with the shared
  fields, and make each sample from it with :meth:`SampleTemplate.make`, which stores the
  fields in declaration order straight into the instance ``__dict__``: exactly the object
  the generated ``__init__`` makes (``Sample`` has no ``__post_init__``, no slots, no
  validation; the module checks this on import);
* hash ``prefix + "index|label|k"`` where the prefix is the ``|``-joined case identity,
  which is the text :func:`~medvision.schema.make_sample_id` hashes.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from medvision.catalog.spec import LabelSpec, TaskSpec
from medvision.schema import Plane, Sample, Split, TaskFamily

__all__ = ["SAMPLE_FIELDS", "SampleTemplate", "id_prefix", "label_template", "sample_id"]

#: ``Sample`` field names in declaration order (the order ``__init__`` stores them in).
SAMPLE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Sample))


def _check_plain_dataclass() -> None:
    """Refuse to bypass ``Sample.__init__`` if it ever does more than store its fields."""
    if (
        hasattr(Sample, "__post_init__")
        or hasattr(Sample, "__slots__")
        or any(f.init is False for f in dataclasses.fields(Sample))
    ):
        raise TypeError(
            "medvision.annotate.samples bypasses Sample.__init__, which now does more than "
            "store its fields (a __post_init__, slots or a non-init field): make it call "
            "Sample(**fields)"
        )


_check_plain_dataclass()


def id_prefix(*parts: object) -> str:
    """The ``|``-joined leading parts of a sample id text, with the trailing ``|``."""
    return "".join(str(p) + "|" for p in parts)


def sample_id(prefix: str, index: int, label_id: int, k: int) -> str:
    """``make_sample_id(*prefix_parts, index, label_id, k)``, ``prefix = id_prefix(*prefix_parts)``.

    Args:
        prefix: :func:`id_prefix` of the leading parts.
        index: Slice index (a Python ``int``).
        label_id: Label value (a Python ``int``).
        k: Component rank (a Python ``int``).
    """
    text = f"{prefix}{index}|{label_id}|{k}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class SampleTemplate:
    """The fields shared by the samples of one group; :meth:`make` adds the rest.

    Args:
        **fields: The ``Sample`` fields that are the same across the group; :meth:`make`
            must give exactly the others (defaults are not filled in).

    Raises:
        TypeError: If a field name is not a ``Sample`` field.
    """

    __slots__ = ("_own", "_values")

    def __init__(self, **fields: Any) -> None:
        unknown = sorted(set(fields) - set(SAMPLE_FIELDS))
        if unknown:
            raise TypeError(f"not Sample fields: {unknown}")
        self._own = frozenset(SAMPLE_FIELDS) - fields.keys()
        # Every field, in declaration order; the per-sample ones are placeholders.
        self._values = {name: fields.get(name) for name in SAMPLE_FIELDS}

    def make(self, **own: Any) -> Sample:
        """The sample with the template's fields and ``own``: equal to ``Sample(**all)``.

        Raises:
            TypeError: If ``own`` does not name exactly the fields the template lacks.
        """
        if own.keys() != self._own:
            raise TypeError(
                f"SampleTemplate.make needs exactly {sorted(self._own)}; found {sorted(own)}"
            )
        values = self._values.copy()
        values.update(own)  # existing keys keep their (declaration) order
        sample = object.__new__(Sample)
        sample.__dict__.update(values)
        return sample


def label_template(
    dataset: str,
    task: TaskSpec,
    case_id: str,
    split: Split,
    family: TaskFamily,
    plane: Plane,
    label: LabelSpec,
    *,
    spacing_mm_rc: tuple[float, float],
    unit: str,
    metric_type: str = "",
    metric_key: str = "",
    annotation: str = "",
) -> SampleTemplate:
    """The fields shared by the samples of ``label`` in one plane (detection and T/L).

    Fills the identity fields both mask planners share (case, label, modality, plane); each
    component's sample adds its ``sample_id`` (:func:`~medvision.schema.make_sample_id` of
    dataset, task, case, family value, plane, slice, label id and component rank),
    ``slice_index``, ``image_key``, ``image_hw``, ``n_instances``, ``target``, ``box_rc``,
    ``extras`` and, for T/L, ``points_rc``.

    Args:
        dataset: Dataset name.
        task: The dataset task (id, modality, image description).
        case_id: Case identifier.
        split: ``"train"`` or ``"test"``.
        family: ``DETECTION`` or ``TUMOR_LESION_SIZE``.
        plane: Slicing plane.
        label: The label measured.
        spacing_mm_rc: Native (row, col) pixel spacing in mm.
        unit: ``"relative"`` or ``"mm"``.
        metric_type: ``"axes"`` for T/L, else ``""``.
        metric_key: Measurement key for T/L, else ``""``.
        annotation: Ground-truth version of the build.
    """
    fields = {
        "task_id": task.id,
        "dataset": dataset,
        "case_id": case_id,
        "split": split,
        "family": family,
        "plane": plane,
        "label_id": label.id,
        "label_name": label.name,
        "label_kind": label.kind,
        "label_group": label.group,
        "modality": task.modality,
        "image_description": task.image_description,
        "spacing_mm_rc": spacing_mm_rc,
        "unit": unit,
        "metric_type": metric_type,
        "metric_key": metric_key,
        "metric_name": "",
        "landmark_names": (),
        "annotation": annotation,
    }
    if family is TaskFamily.DETECTION:
        fields["points_rc"] = ()
    return SampleTemplate(**fields)
