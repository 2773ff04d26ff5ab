"""Arrow schema round trip of Sample, image helpers, and the build manifest."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import re
import struct
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from medvision.schema import Plane, Sample, TaskFamily
from medvision.store import (
    IMAGES_SCHEMA,
    SAMPLES_SCHEMA,
    BuildManifest,
    SkippedCase,
    image_key,
    png_size_hw,
    sample_from_row,
    samples_to_table,
    table_to_samples,
)
from medvision.store.manifest import compute_build_id, library_versions
from medvision.store.schema import (
    _extras_to_json,
    images_to_table,
    sample_to_row,
    stored_slice_from_row,
)
from medvision.volumes import encode_slice


def _same(a: Any, b: Any) -> bool:
    """Equality that treats NaN as equal to NaN and checks float/int types match."""
    if isinstance(a, float) or isinstance(b, float):
        if type(a) is not type(b):
            return False
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, tuple | list):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _same_sample(a: Sample, b: Sample) -> bool:
    return all(_same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(Sample))


texts = st.text(max_size=12)
floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
int32 = st.integers(-(2**31), 2**31 - 1)


@st.composite
def samples(draw: st.DrawFn) -> Sample:
    family = draw(st.sampled_from(list(TaskFamily)))
    return Sample(
        sample_id=draw(texts),
        dataset=draw(texts),
        case_id=draw(texts),
        split=draw(st.sampled_from(["train", "test"])),
        family=family,
        plane=draw(st.sampled_from(list(Plane))),
        slice_index=draw(st.integers(0, 2**31 - 1)),
        label_id=draw(st.none() | st.integers(-(2**40), 2**40)),
        label_name=draw(texts),
        label_kind=draw(st.sampled_from(["organ", "tumour", "lesion", "other", "landmark"])),
        label_group=draw(texts),
        modality=draw(texts),
        image_description=draw(st.text(max_size=60)),
        image_key=draw(st.text("0123456789abcdef", min_size=64, max_size=64)),
        image_hw=(draw(st.integers(1, 4096)), draw(st.integers(1, 4096))),
        spacing_mm_rc=(draw(floats), draw(floats)),
        target=tuple(draw(st.lists(floats, min_size=0, max_size=4))),
        unit=draw(st.sampled_from(["relative", "mm", "degree"])),
        box_rc=draw(st.none() | st.tuples(int32, int32, int32, int32)),
        n_instances=draw(st.integers(0, 1000)),
        points_rc=tuple(draw(st.lists(st.tuples(floats, floats), max_size=4))),
        metric_type=draw(st.sampled_from(["", "axes", "distance", "angle"])),
        metric_key=draw(texts),
        metric_name=draw(texts),
        landmark_names=tuple(draw(st.lists(texts, max_size=4))),
        extras=draw(st.dictionaries(texts, floats, max_size=3)),
        task_id=draw(st.sampled_from(["", "01", "02", "13"])),
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(samples(), max_size=6))
def test_samples_table_round_trip_is_exact(items: list[Sample]) -> None:
    table = samples_to_table(items)
    assert table.schema == SAMPLES_SCHEMA
    assert table.num_rows == len(items)
    back = table_to_samples(table)
    assert len(back) == len(items)
    for a, b in zip(items, back, strict=True):
        assert _same_sample(a, b), (a, b)


@settings(max_examples=150, deadline=None)
@given(st.lists(samples(), max_size=6))
def test_columnwise_table_equals_the_row_dict_table(items: list[Sample]) -> None:
    want = pa.Table.from_pylist([sample_to_row(s) for s in items], schema=SAMPLES_SCHEMA)
    # Compared as Arrow IPC bytes: every value and null bit (NaN included), schema, metadata.
    assert _ipc(samples_to_table(items)) == _ipc(want)


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks())
    return bytes(sink.getvalue())


extras_keys = st.text(max_size=8) | st.sampled_from(["%", "%r", '"q"', "a\\b", "\u00e9", "\x00"])
extras_values = floats | st.integers(-(2**60), 2**60) | st.booleans()


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(extras_keys, extras_values, max_size=6))
def test_extras_json_is_what_json_dumps_writes(extras: dict[str, Any]) -> None:
    want = json.dumps({str(k): float(v) for k, v in extras.items()}, allow_nan=True)
    assert _extras_to_json(extras) == want
    assert _extras_to_json(extras) == want  # again, from the remembered template


def test_extras_json_of_unusual_keys_and_overflowing_sums() -> None:
    class Key(str):
        def __str__(self) -> str:
            return "other"

    for extras in [{}, {1: 2.0, "1": 3.0}, {Key("k"): 1.0}, {"a": 1e308, "b": 1e308}]:
        want = json.dumps({str(k): float(v) for k, v in extras.items()}, allow_nan=True)
        assert _extras_to_json(extras) == want  # type: ignore[arg-type]


def _hand_sample(**over: Any) -> Sample:
    base: dict[str, Any] = dict(
        sample_id="s1",
        dataset="mini",
        case_id="case000",
        split="test",
        family=TaskFamily.DETECTION,
        plane=Plane.AXIAL,
        slice_index=40,
        label_id=3,
        label_name="white matter",
        label_kind="organ",
        label_group="brain",
        modality="MRI",
        image_description="T1-weighted brain MRI",
        image_key="ab" * 32,
        image_hw=(217, 181),
        spacing_mm_rc=(1.0, 0.9375),
        target=(0.1, 0.2, 0.30000000000000004, 0.9),
        unit="relative",
        box_rc=(10, 20, 100, 150),
        n_instances=2,
        extras={"size_mm_h": 12.5},
    )
    base.update(over)
    return Sample(**base)


def test_stored_types_and_values_are_the_documented_ones() -> None:
    s = _hand_sample()
    ad = _hand_sample(
        sample_id="s2",
        family=TaskFamily.ANGLE_DISTANCE,
        plane=Plane.SAGITTAL,
        label_id=None,
        label_kind="landmark",
        box_rc=None,
        target=(37.25,),
        unit="degree",
        points_rc=((1.5, 2.5), (3.0, 4.0), (5.0, 6.0), (7.0, 8.25)),
        metric_type="angle",
        metric_key="A-L_2_5-L_2_6",
        landmark_names=("sella", "nasion", "orbitale", "porion"),
        extras={},
    )
    table = samples_to_table([s, ad])
    rows = table.to_pylist()
    assert table.schema.field("family").type == pa.string()
    assert table.schema.field("plane").type == pa.int8()
    assert rows[0]["family"] == "detection" and rows[1]["family"] == "ad"
    assert rows[0]["plane"] == 2 and rows[1]["plane"] == 0
    assert rows[0]["box_rc"] == [10, 20, 100, 150] and rows[1]["box_rc"] is None
    assert rows[1]["label_id"] is None
    assert rows[1]["points_rc"] == [[1.5, 2.5], [3.0, 4.0], [5.0, 6.0], [7.0, 8.25]]
    assert json.loads(rows[0]["extras"]) == {"size_mm_h": 12.5}
    assert rows[1]["extras"] == "{}"
    assert table_to_samples(table) == [s, ad]
    # Samples are equal as plain dataclasses too (no NaN here), including enum identity.
    back = table_to_samples(table)
    assert back[1].family is TaskFamily.ANGLE_DISTANCE and back[1].plane is Plane.SAGITTAL


def test_table_to_samples_accepts_record_batches_and_names_missing_columns() -> None:
    table = samples_to_table([_hand_sample()])
    assert table_to_samples(table.to_batches()[0]) == [_hand_sample()]
    with pytest.raises(ValueError, match="extras"):
        table_to_samples(table.drop_columns(["extras"]))


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("split", "val", "split must be"),
        ("label_kind", "bone", "unknown label_kind"),
        ("family", "segmentation", "segmentation"),
        ("plane", 3, "3"),
        ("image_hw", [1, 2, 3], "image_hw"),
        ("extras", "[1, 2]", "JSON object"),
    ],
)
def test_sample_from_row_refuses_values_outside_their_sets(
    column: str, value: Any, message: str
) -> None:
    row = samples_to_table([_hand_sample()]).to_pylist()[0]
    row[column] = value
    with pytest.raises(ValueError, match=message):
        sample_from_row(row)


def _png(h: int, w: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_png_size_and_key() -> None:
    png = _png(17, 33)
    assert png_size_hw(png) == (17, 33)
    assert image_key(png) == __import__("hashlib").sha256(png).hexdigest()
    with pytest.raises(ValueError, match="not a PNG"):
        png_size_hw(b"GIF89a" + b"\0" * 30)
    # A header that claims a size: checks the big-endian IHDR decoding independently of PIL.
    fake = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", 640, 480)
    assert png_size_hw(fake) == (480, 640)


def test_images_table_checks_keys() -> None:
    rng = np.random.default_rng(1)
    a = encode_slice(rng.integers(-1024, 2000, (5, 7)).astype(np.float32))
    b = encode_slice(rng.normal(size=(9, 4)).astype(np.float32))
    assert (a.encoding, b.encoding) == ("u16-zlib", "f32-zlib")
    table = images_to_table({a.key: a, b.key: b})
    assert table.schema == IMAGES_SCHEMA
    rows = table.to_pylist()
    assert rows == [
        {
            "key": a.key,
            "data": a.data,
            "encoding": "u16-zlib",
            "slope": 1.0,
            "intercept": a.intercept,
            "height": 5,
            "width": 7,
        },
        {
            "key": b.key,
            "data": b.data,
            "encoding": "f32-zlib",
            "slope": 1.0,
            "intercept": 0.0,
            "height": 9,
            "width": 4,
        },
    ]
    assert [stored_slice_from_row(r) for r in rows] == [a, b]
    with pytest.raises(ValueError, match="not the sha256"):
        images_to_table({a.key: b})
    with pytest.raises(ValueError, match="empty slice"):
        images_to_table({a.key: replace(a, height=0)})
    with pytest.raises(ValueError, match="unknown encoding"):
        images_to_table({a.key: replace(a, encoding="jpeg")})  # type: ignore[arg-type]


def test_manifest_create_save_load(tmp_path: Path) -> None:
    m = BuildManifest.create(
        datasets=["mini"],
        seed=7,
        options={"planes": [2]},
        skipped=[SkippedCase(dataset="mini", case_id="c9", file="x.nii.gz", reason="NaN")],
    )
    versions = library_versions()
    assert m.medvision_version == versions["medvision"]
    assert set(m.versions) == {"numpy", "scipy", "nibabel", "pyarrow", "skimage", "cv2"}
    assert m.versions["numpy"] == np.__version__
    assert m.versions["pyarrow"] == pa.__version__
    assert len(m.build_id) == 16
    path = m.save(tmp_path)
    assert path == tmp_path / "manifest.json"
    assert BuildManifest.load(tmp_path) == m
    assert BuildManifest.load(path).skipped[0].reason == "NaN"
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed away
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope"))):
        BuildManifest.load(tmp_path / "nope")
    (tmp_path / "bad.json").write_text('{"build_id": 1}')
    with pytest.raises(ValueError, match=r"bad\.json"):
        BuildManifest.load(tmp_path / "bad.json")


def test_build_id_depends_on_inputs_not_order() -> None:
    v = {"numpy": "2.0"}
    base = compute_build_id(datasets=["a", "b"], seed=1, options={"x": 1, "y": 2}, versions=v)
    assert base == compute_build_id(
        datasets=["b", "a"], seed=1, options={"y": 2, "x": 1}, versions=v
    )
    others = {
        compute_build_id(datasets=["a"], seed=1, options={"x": 1, "y": 2}, versions=v),
        compute_build_id(datasets=["a", "b"], seed=2, options={"x": 1, "y": 2}, versions=v),
        compute_build_id(datasets=["a", "b"], seed=1, options={"x": 1}, versions=v),
        compute_build_id(
            datasets=["a", "b"], seed=1, options={"x": 1, "y": 2}, versions={"numpy": "2.1"}
        ),
    }
    assert base not in others and len(others) == 4
