"""PNG round trip, deterministic bytes, no metadata, content keys."""

from __future__ import annotations

import hashlib
import io
import struct

import numpy as np
import pytest
from PIL import Image

from medvision.volumes import content_key, decode_png, encode_png


def chunk_types(data: bytes) -> list[str]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    types, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        types.append(data[pos + 4 : pos + 8].decode("ascii"))
        pos += 12 + length
    return types


def test_round_trip_and_grey_8bit() -> None:
    img = np.random.default_rng(2).integers(0, 256, size=(37, 53), dtype=np.uint8)
    data = encode_png(img)
    back = decode_png(data)
    assert back.dtype == np.uint8 and back.shape == (37, 53)
    np.testing.assert_array_equal(back, img)
    # IHDR: bit depth 8, colour type 0 (greyscale).
    ihdr = data[16:29]
    assert struct.unpack(">IIBB", ihdr[:10]) == (53, 37, 8, 0)


def test_deterministic_bytes_without_metadata() -> None:
    img = np.random.default_rng(4).integers(0, 256, size=(64, 64), dtype=np.uint8)
    first = encode_png(img)
    assert encode_png(img.copy()) == first
    assert encode_png(np.asfortranarray(img)) == first  # memory layout does not matter
    assert chunk_types(first) == ["IHDR", "IDAT", "IEND"]


def test_content_key() -> None:
    img = np.zeros((8, 8), np.uint8)
    data = encode_png(img)
    key = content_key(data)
    assert key == hashlib.sha256(data).hexdigest() and len(key) == 64
    img[0, 0] = 1
    assert content_key(encode_png(img)) != key


def test_encode_rejects_non_uint8_or_non_2d() -> None:
    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="2D"):
        encode_png(np.zeros((4, 4, 3), np.uint8))


def test_decode_refuses_rgb_and_garbage() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    with pytest.raises(ValueError, match="mode 'L'"):
        decode_png(buffer.getvalue())
    with pytest.raises(ValueError, match="cannot decode"):
        decode_png(b"definitely not a png")
