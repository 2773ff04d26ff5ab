"""Lossless slice storage: uint16 + rescale, or float32 (byte-shuffled zlib); exact round trips."""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import replace

import numpy as np
import pytest

from medvision.volumes import StoredSlice, decode_slice, encode_slice


def _roundtrip(values: np.ndarray) -> StoredSlice:
    stored = encode_slice(values)
    back = decode_slice(stored)
    assert back.dtype == np.float32 and back.shape == values.shape
    np.testing.assert_array_equal(back, values.astype(np.float32))
    assert (stored.height, stored.width) == values.shape
    return stored


def _unshuffle(data: bytes, itemsize: int, dtype: str) -> np.ndarray:
    """The documented layout, decoded by hand: zlib, then byte planes back to values."""
    raw = np.frombuffer(zlib.decompress(data), np.uint8)
    return raw.reshape(itemsize, -1).T.copy().view(dtype).ravel()


def test_ct_hu_slice_is_uint16_shifted_by_its_minimum() -> None:
    rng = np.random.default_rng(0)
    hu = rng.integers(-1024, 3071, (40, 31)).astype(np.float32)
    hu[0, 0] = -1024.0
    stored = _roundtrip(hu)
    assert (stored.encoding, stored.slope, stored.intercept) == ("u16-zlib", 1.0, -1024.0)
    # Stored integers = HU + 1024, row-major, little-endian, byte-shuffled.
    np.testing.assert_array_equal(
        _unshuffle(stored.data, 2, "<u2"), (hu + 1024).astype(np.uint16).ravel()
    )


def test_regular_grid_uses_the_grid_step_as_slope() -> None:
    # An int16 volume with scl_slope 0.5 and scl_inter 2.25, as the loader scales it.
    raw = np.random.default_rng(1).integers(0, 4000, (16, 16))
    values = (raw.astype(np.float64) * 0.5 + 2.25).astype(np.float32)
    stored = _roundtrip(values)
    assert stored.encoding == "u16-zlib"
    assert stored.slope == 0.5 and stored.intercept == float(values.min())


def test_arbitrary_floats_are_stored_as_float32() -> None:
    values = np.random.default_rng(2).normal(size=(9, 13)).astype(np.float32)
    stored = _roundtrip(values)
    assert (stored.encoding, stored.slope, stored.intercept) == ("f32-zlib", 1.0, 0.0)
    np.testing.assert_array_equal(_unshuffle(stored.data, 4, "<f4"), values.ravel())


def test_wide_integer_range_falls_back_to_float32() -> None:
    values = np.array([[0.0, 70000.0], [3.0, 5.0]], dtype=np.float32)
    assert _roundtrip(values).encoding == "f32-zlib"


def test_constant_and_float64_input() -> None:
    assert _roundtrip(np.full((3, 4), -7.5)).encoding == "u16-zlib"
    # float64 input is stored as the float32 the loader would have produced.
    x = np.array([[0.1, 0.2], [0.3, 0.4]], dtype=np.float64)
    np.testing.assert_array_equal(decode_slice(encode_slice(x)), x.astype(np.float32))


def test_bytes_and_key_are_deterministic() -> None:
    values = np.random.default_rng(3).integers(0, 900, (20, 20)).astype(np.float32)
    a, b = encode_slice(values), encode_slice(values.copy())
    assert a == b and a.key == b.key and len(a.key) == 64


def test_bad_input_and_bad_bytes() -> None:
    with pytest.raises(ValueError, match="2D"):
        encode_slice(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="non-finite"):
        encode_slice(np.array([[0.0, np.nan]]))
    stored = encode_slice(np.arange(6, dtype=np.float32).reshape(2, 3))
    with pytest.raises(ValueError, match="expected"):
        decode_slice(replace(stored, height=3, width=3))
    with pytest.raises(ValueError, match="unknown slice encoding"):
        decode_slice(replace(stored, encoding="jpeg"))  # type: ignore[arg-type]
    floats = encode_slice(np.random.default_rng(4).normal(size=(3, 3)).astype(np.float32))
    assert floats.encoding == "f32-zlib"
    with pytest.raises(ValueError, match="bytes, expected"):
        decode_slice(replace(floats, height=2))


def test_key_is_the_sha256_of_the_bytes_hashed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import medvision.volumes.stored as stored_mod

    calls: list[int] = []
    real = stored_mod.content_key

    def counting(data: bytes) -> str:
        calls.append(len(data))
        return real(data)

    monkeypatch.setattr(stored_mod, "content_key", counting)
    s = encode_slice(np.arange(12, dtype=np.float32).reshape(3, 4))
    assert s.key == hashlib.sha256(s.data).hexdigest()
    assert s.key == s.key and len(calls) == 1  # cached on the (frozen) instance
    other = replace(s, data=s.data + b"x")  # a new instance hashes its own bytes
    assert other.key == hashlib.sha256(s.data + b"x").hexdigest() and len(calls) == 2
    assert other != s and replace(other, data=s.data) == s  # equality ignores the cache
