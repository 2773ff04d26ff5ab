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

from medvision.schema import Sample

__all__ = ["SAMPLE_FIELDS", "SampleTemplate", "id_prefix", "sample_id"]

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
