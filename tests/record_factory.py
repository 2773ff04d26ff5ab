"""Hand-made evaluated records for metric and report tests (one factory for all of them).

Also :func:`assert_same_table`, the cell-by-cell comparison of two aggregation tables.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pyarrow as pa

from medvision.schema import Record

_ids = itertools.count()


def make_record(
    family: str,
    parsed: tuple[float, ...] | None,
    target: tuple[float, ...],
    *,
    prefix: str = "s",
    **kw: Any,
) -> Record:
    """A record with neutral defaults; ``kw`` overrides any field (ids are unique)."""
    base: dict[str, Any] = dict(
        sample_id=f"{prefix}{next(_ids):05d}",
        dataset="D1",
        case_id="c",
        family=family,
        plane=2,
        slice_index=0,
        label_id=1,
        label_name="kidney",
        label_kind="organ",
        label_group="Kidney",
        modality="CT",
        metric_type="",
        metric_key="",
        image_key="k",
        image_hw=(64, 64),
        seen_hw=(64, 64),
        seen_spacing_mm_rc=(1.0, 1.0),
        box_img_ratio=None,
        target=target,
        model="m",
        backend="b",
        protocol="official",
        prompt_hash="h",
        raw_output="",
        parsed=parsed,
        status="ok" if parsed is not None else "no_answer",
        reason="",
        metrics={},
    )
    base.update(kw)
    return Record(**base)


def assert_same_table(got: pa.Table, want: pa.Table) -> None:
    """Two aggregation tables hold the same schema and cells (NaN equals NaN in floats)."""
    assert got.schema.equals(want.schema)
    assert got.num_rows == want.num_rows
    for name in want.column_names:
        a = got[name].to_numpy(zero_copy_only=False)
        b = want[name].to_numpy(zero_copy_only=False)
        if a.dtype.kind == "f":
            assert np.array_equal(a, b, equal_nan=True), name
        else:
            assert got[name].to_pylist() == want[name].to_pylist(), name
