"""Arrow schemas of a built dataset and exact converters between :class:`Sample` and Arrow.

Two tables make a built dataset:

* **samples** (:data:`SAMPLES_SCHEMA`): one row per :class:`~medvision.schema.Sample`, one
  column per field, same names. Tuples are Arrow lists (fixed-size where the length is fixed:
  ``image_hw`` 2, ``spacing_mm_rc`` 2, ``box_rc`` 4, each point of ``points_rc`` 2), enums are
  stored as their value (``family`` string, ``plane`` int8), and ``extras`` is a JSON object
  string, because HF ``datasets`` has no feature type for an Arrow ``map`` column (it refuses
  to load one) while a string loads everywhere. JSON keeps float64 values exactly (Python writes
  the shortest repr that round-trips; NaN and infinities are written as ``NaN``/``Infinity``).
* **images** (:data:`IMAGES_SCHEMA`): one row per distinct slice, stored losslessly
  (:mod:`medvision.volumes.stored`: 16-bit integers with their ``slope``/``intercept``, or
  float32; byte-shuffled and zlib-compressed), keyed by the sha256 hex of its bytes, with its
  ``encoding`` and its size in pixels (rows = ``height``, cols = ``width``). Images are
  rendered to 8-bit grey when read, by the protocol's rendering rule (schema 4; schemas 1-3 stored
  8-bit min-max PNGs).

``table_to_samples(samples_to_table(s)) == s`` holds for every valid list of samples.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import attrgetter
from typing import Any, cast, get_args

import pyarrow as pa

from medvision.schema import LabelKind, Plane, Sample, Split, TaskFamily
from medvision.volumes.stored import SliceEncoding, StoredSlice

__all__ = [
    "IMAGES_SCHEMA",
    "SAMPLES_SCHEMA",
    "SCHEMA_VERSION",
    "check_images",
    "image_key",
    "images_to_table",
    "png_size_hw",
    "sample_from_row",
    "sample_to_row",
    "samples_to_table",
    "stored_slice_from_row",
    "table_to_samples",
]

#: Bumped whenever a column is added, removed or changes meaning.
SCHEMA_VERSION = "4"  # 2: task_id; 3: annotation; 4: lossless slices (rendering per protocol)

_META = {b"medvision.schema_version": SCHEMA_VERSION.encode()}

SAMPLES_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("case_id", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("family", pa.string(), nullable=False),
        pa.field("plane", pa.int8(), nullable=False),
        pa.field("slice_index", pa.int32(), nullable=False),
        pa.field("label_id", pa.int64()),
        pa.field("label_name", pa.string(), nullable=False),
        pa.field("label_kind", pa.string(), nullable=False),
        pa.field("label_group", pa.string(), nullable=False),
        pa.field("modality", pa.string(), nullable=False),
        pa.field("image_description", pa.string(), nullable=False),
        pa.field("image_key", pa.string(), nullable=False),
        pa.field("image_hw", pa.list_(pa.int32(), 2), nullable=False),
        pa.field("spacing_mm_rc", pa.list_(pa.float64(), 2), nullable=False),
        pa.field("target", pa.list_(pa.float64()), nullable=False),
        pa.field("unit", pa.string(), nullable=False),
        pa.field("box_rc", pa.list_(pa.int32(), 4)),
        pa.field("n_instances", pa.int32(), nullable=False),
        pa.field("points_rc", pa.list_(pa.list_(pa.float64(), 2)), nullable=False),
        pa.field("metric_type", pa.string(), nullable=False),
        pa.field("metric_key", pa.string(), nullable=False),
        pa.field("metric_name", pa.string(), nullable=False),
        pa.field("landmark_names", pa.list_(pa.string()), nullable=False),
        pa.field("extras", pa.string(), nullable=False),
        pa.field("task_id", pa.string(), nullable=False),
        pa.field("annotation", pa.string(), nullable=False),
    ],
    metadata=_META,
)

IMAGES_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("data", pa.binary(), nullable=False),
        pa.field("encoding", pa.string(), nullable=False),
        pa.field("slope", pa.float64(), nullable=False),
        pa.field("intercept", pa.float64(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
    ],
    metadata=_META,
)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_key(png: bytes) -> str:
    """Return the content key of stored bytes: the sha256 hex digest (64 characters)."""
    return hashlib.sha256(png).hexdigest()


def png_size_hw(png: bytes) -> tuple[int, int]:
    """Read an image's size from its PNG header without decoding the pixels.

    Args:
        png: PNG file bytes.

    Returns:
        ``(height, width)`` in pixels, i.e. (rows, cols).

    Raises:
        ValueError: If the bytes do not start with a PNG signature and IHDR chunk.
    """
    if len(png) < 24 or png[:8] != _PNG_SIGNATURE or png[12:16] != b"IHDR":
        raise ValueError(
            f"not a PNG: expected the PNG signature and an IHDR chunk, found {png[:16]!r}"
        )
    width, height = struct.unpack(">II", png[16:24])
    return int(height), int(width)


def _extras_to_json(extras: Mapping[str, float]) -> str:
    """``json.dumps({str(k): float(v) for k, v in extras.items()}, allow_nan=True)``, faster.

    Plain float() so ints/numpy scalars serialise the same way; insertion order is kept.
    Extras use a few key sets, so each set's JSON text is kept as a ``%``-template
    (``{"key": %r, ...}``, keys escaped by ``json.dumps``, ``", "`` and ``": "`` as ``json``
    separates them) and filled with the values' ``repr``, which is how ``json`` writes a
    finite float. Non-finite values, and keys that are not plain ``str``, take the
    ``json.dumps`` route itself.
    """
    values = tuple(map(float, extras.values()))
    total = sum(values)
    keys = tuple(extras)
    # every value finite (a sum that overflows just takes json); plain str keys
    if total - total == 0.0 and all(type(k) is str for k in keys):
        template = _EXTRAS_TEMPLATES.get(keys)
        if template is None:
            items = (json.dumps(k).replace("%", "%%") + ": %r" for k in keys)
            template = "{" + ", ".join(items) + "}"
            if len(_EXTRAS_TEMPLATES) < _EXTRAS_TEMPLATE_CACHE:
                _EXTRAS_TEMPLATES[keys] = template
        return template % values
    return json.dumps({str(k): v for k, v in zip(extras, values, strict=True)}, allow_nan=True)


#: ``%``-template of the extras JSON per key tuple (bounded; past the bound, none is added).
_EXTRAS_TEMPLATES: dict[tuple[str, ...], str] = {}
_EXTRAS_TEMPLATE_CACHE = 1024


def _extras_from_json(text: str, sample_id: str) -> dict[str, float]:
    loaded = json.loads(text)
    if not isinstance(loaded, dict):
        raise ValueError(
            f"sample {sample_id}: extras must be a JSON object, found {type(loaded).__name__}"
        )
    return {str(k): float(v) for k, v in loaded.items()}


def _family_value(family: TaskFamily | str) -> str:
    """``TaskFamily(family).value`` (members and their values are looked up, not re-made)."""
    value = _FAMILY_VALUES.get(family)
    return value if value is not None else TaskFamily(family).value


def _plane_value(plane: Plane | int) -> int:
    """``int(Plane(plane))``."""
    value = _PLANE_VALUES.get(plane)
    return value if value is not None else int(Plane(plane))


_FAMILY_VALUES: dict[object, str] = {f: f.value for f in TaskFamily}
_PLANE_VALUES: dict[object, int] = {p: int(p) for p in Plane}


def _ints(values: Iterable[Any]) -> list[int]:
    return list(map(int, values))


def _floats(values: Iterable[Any]) -> list[float]:
    return list(map(float, values))


#: How each column of :data:`SAMPLES_SCHEMA` is read from a sample (one table for
#: :func:`sample_to_row` and :func:`samples_to_table`); plain fields by ``attrgetter``.
_COLUMN_VALUES: tuple[tuple[str, Callable[[Sample], Any]], ...] = (
    ("sample_id", attrgetter("sample_id")),
    ("dataset", attrgetter("dataset")),
    ("case_id", attrgetter("case_id")),
    ("split", attrgetter("split")),
    ("family", lambda s: _family_value(s.family)),
    ("plane", lambda s: _plane_value(s.plane)),
    ("slice_index", lambda s: int(s.slice_index)),
    ("label_id", lambda s: None if s.label_id is None else int(s.label_id)),
    ("label_name", attrgetter("label_name")),
    ("label_kind", attrgetter("label_kind")),
    ("label_group", attrgetter("label_group")),
    ("modality", attrgetter("modality")),
    ("image_description", attrgetter("image_description")),
    ("image_key", attrgetter("image_key")),
    ("image_hw", lambda s: _ints(s.image_hw)),
    ("spacing_mm_rc", lambda s: _floats(s.spacing_mm_rc)),
    ("target", lambda s: _floats(s.target)),
    ("unit", attrgetter("unit")),
    ("box_rc", lambda s: None if s.box_rc is None else _ints(s.box_rc)),
    ("n_instances", lambda s: int(s.n_instances)),
    ("points_rc", lambda s: [[float(r), float(c)] for r, c in s.points_rc]),
    ("metric_type", attrgetter("metric_type")),
    ("metric_key", attrgetter("metric_key")),
    ("metric_name", attrgetter("metric_name")),
    ("landmark_names", lambda s: list(s.landmark_names)),
    ("extras", lambda s: _extras_to_json(s.extras)),
    ("task_id", attrgetter("task_id")),
    ("annotation", attrgetter("annotation")),
)


def sample_to_row(sample: Sample) -> dict[str, Any]:
    """Convert a sample to a plain row (column name -> Python value) of :data:`SAMPLES_SCHEMA`."""
    return {name: value(sample) for name, value in _COLUMN_VALUES}


def _pair_f(values: Sequence[Any]) -> tuple[float, float]:
    return (float(values[0]), float(values[1]))


def sample_from_row(row: Mapping[str, Any]) -> Sample:
    """Build a sample from one row of the samples table.

    Accepts rows from ``pyarrow`` (``Table.to_pylist``) and from HF ``datasets`` alike.

    Args:
        row: Column name -> value, as written by :func:`sample_to_row`.

    Returns:
        The sample.

    Raises:
        ValueError: If a value is outside its closed set (split, family, plane, label kind) or a
            fixed-length list has the wrong length.
    """
    sid = str(row["sample_id"])
    split = str(row["split"])
    if split not in get_args(Split):
        raise ValueError(f"sample {sid}: split must be 'train' or 'test', found {split!r}")
    kind = str(row["label_kind"])
    if kind not in get_args(LabelKind):
        raise ValueError(f"sample {sid}: unknown label_kind {kind!r}")
    hw = row["image_hw"]
    spacing = row["spacing_mm_rc"]
    box = row["box_rc"]
    if len(hw) != 2 or len(spacing) != 2 or (box is not None and len(box) != 4):
        raise ValueError(
            f"sample {sid}: expected image_hw[2], spacing_mm_rc[2], box_rc[4] or null; "
            f"found lengths {len(hw)}, {len(spacing)}, {None if box is None else len(box)}"
        )
    label_id = row["label_id"]
    return Sample(
        sample_id=sid,
        dataset=str(row["dataset"]),
        case_id=str(row["case_id"]),
        split=cast(Split, split),
        family=TaskFamily(row["family"]),
        plane=Plane(int(row["plane"])),
        slice_index=int(row["slice_index"]),
        label_id=None if label_id is None else int(label_id),
        label_name=str(row["label_name"]),
        label_kind=cast(LabelKind, kind),
        label_group=str(row["label_group"]),
        modality=str(row["modality"]),
        image_description=str(row["image_description"]),
        image_key=str(row["image_key"]),
        image_hw=(int(hw[0]), int(hw[1])),
        spacing_mm_rc=_pair_f(spacing),
        target=tuple(float(v) for v in row["target"]),
        unit=str(row["unit"]),
        box_rc=None if box is None else (int(box[0]), int(box[1]), int(box[2]), int(box[3])),
        n_instances=int(row["n_instances"]),
        points_rc=tuple(_pair_f(p) for p in row["points_rc"]),
        metric_type=str(row["metric_type"]),
        metric_key=str(row["metric_key"]),
        metric_name=str(row["metric_name"]),
        landmark_names=tuple(str(n) for n in row["landmark_names"]),
        extras=_extras_from_json(str(row["extras"]), sid),
        task_id=str(row["task_id"]),
        annotation=str(row["annotation"]),
    )


def samples_to_table(samples: Iterable[Sample]) -> pa.Table:
    """Convert samples to an Arrow table with :data:`SAMPLES_SCHEMA` (rows in input order).

    Built column by column (no row dicts), each value converted by the same per-column rule
    as :func:`sample_to_row`, so the table equals
    ``pa.Table.from_pylist([sample_to_row(s) for s in samples], schema=SAMPLES_SCHEMA)``.

    Raises:
        ValueError: If a value is outside its closed set (family, plane) or a fixed-length
            list has the wrong length (``pyarrow.ArrowInvalid`` is a ``ValueError``).
    """
    items = list(samples)
    fields = SAMPLES_SCHEMA
    columns = {name: list(map(value, items)) for name, value in _COLUMN_VALUES}
    arrays = [pa.array(columns[f.name], f.type) for f in fields]
    return pa.Table.from_arrays(arrays, schema=fields)


def table_to_samples(table: pa.Table | pa.RecordBatch) -> list[Sample]:
    """Convert a samples table (or a record batch of one) back to samples, in row order.

    Raises:
        ValueError: If a column of :data:`SAMPLES_SCHEMA` is missing.
    """
    missing = [n for n in SAMPLES_SCHEMA.names if n not in table.schema.names]
    if missing:
        raise ValueError(f"samples table lacks columns {missing}; found {table.schema.names}")
    return [sample_from_row(r) for r in table.to_pylist()]


def check_images(images: Mapping[str, StoredSlice]) -> None:
    """Check ``key -> stored slice`` pairs before they are stored.

    Raises:
        ValueError: If a key is not the sha256 hex of its bytes, the encoding is unknown, or
            the slice is empty. (Sizes are checked when a slice is decoded.)
    """
    encodings = get_args(SliceEncoding)
    for key, stored in images.items():
        found = stored.key  # the sha256 of its bytes (cached: hashed once per slice)
        if found != key:
            raise ValueError(f"image key {key} is not the sha256 of its bytes ({found})")
        if stored.encoding not in encodings:
            raise ValueError(
                f"image {key}: unknown encoding {stored.encoding!r}; expected one of {encodings}"
            )
        if len(stored.data) == 0 or min(stored.height, stored.width) < 1:
            raise ValueError(
                f"image {key}: empty slice ({stored.height}x{stored.width}, "
                f"{len(stored.data)} bytes)"
            )


def images_to_table(images: Mapping[str, StoredSlice]) -> pa.Table:
    """Build an images table from ``key -> stored slice``, checking every key and size.

    Built column by column (one ``binary`` array for the bytes, no row dicts), in the order
    of ``images``.

    Raises:
        ValueError: As :func:`check_images`.
    """
    check_images(images)
    slices = list(images.values())
    columns = [
        pa.array(list(images), pa.string()),
        pa.array([s.data for s in slices], pa.binary()),
        pa.array([s.encoding for s in slices], pa.string()),
        pa.array([float(s.slope) for s in slices], pa.float64()),
        pa.array([float(s.intercept) for s in slices], pa.float64()),
        pa.array([int(s.height) for s in slices], pa.int32()),
        pa.array([int(s.width) for s in slices], pa.int32()),
    ]
    return pa.Table.from_arrays(columns, schema=IMAGES_SCHEMA)


def stored_slice_from_row(row: Mapping[str, Any]) -> StoredSlice:
    """A :class:`~medvision.volumes.stored.StoredSlice` from one row of the images table.

    Raises:
        ValueError: If the encoding is unknown.
    """
    encoding = str(row["encoding"])
    if encoding not in get_args(SliceEncoding):
        raise ValueError(f"image {row.get('key')}: unknown encoding {encoding!r}")
    return StoredSlice(
        data=bytes(row["data"]),
        encoding=cast(SliceEncoding, encoding),
        slope=float(row["slope"]),
        intercept=float(row["intercept"]),
        height=int(row["height"]),
        width=int(row["width"]),
    )
