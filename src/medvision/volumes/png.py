"""Deterministic grey PNG encoding and content keys.

Images are stored once, keyed by the sha256 of their PNG bytes, so the same pixels must give
the same bytes: mode ``"L"``, a fixed zlib level, no optimisation pass and no metadata chunks
(only IHDR, IDAT and IEND are written). Bytes are stable for a given Pillow/zlib build.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image

#: zlib level used for every PNG (6 is zlib's default speed/size trade-off).
PNG_COMPRESS_LEVEL = 6


def encode_png(gray_u8: np.ndarray) -> bytes:
    """Encode a grey image as PNG bytes.

    Args:
        gray_u8: (H, W) uint8 grey levels, rows top to bottom.

    Returns:
        PNG bytes (mode ``"L"``, 8 bits per pixel), identical for identical input.

    Raises:
        ValueError: Not a non-empty 2D uint8 array.
    """
    if gray_u8.ndim != 2 or gray_u8.dtype != np.uint8 or gray_u8.size == 0:
        raise ValueError(
            f"expected a non-empty 2D uint8 array, got shape {gray_u8.shape} dtype {gray_u8.dtype}"
        )
    image = Image.fromarray(np.ascontiguousarray(gray_u8))  # 2D uint8 -> mode "L"
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL, optimize=False)
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """Decode PNG bytes written by :func:`encode_png`.

    Args:
        data: PNG bytes of a mode ``"L"`` image.

    Returns:
        (H, W) uint8 array (a writable copy).

    Raises:
        ValueError: The bytes are not a PNG, or the PNG is not 8-bit grey (mode ``"L"``).
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if image.format != "PNG" or image.mode != "L":
                raise ValueError(
                    f"expected an 8-bit grey PNG (mode 'L'), found format {image.format} "
                    f"mode {image.mode!r}"
                )
            return np.array(image, dtype=np.uint8)
    except (OSError, SyntaxError) as exc:  # Pillow's errors for unidentified/damaged images
        raise ValueError(f"cannot decode PNG bytes ({type(exc).__name__}: {exc})") from exc


def content_key(data: bytes) -> str:
    """Return the content key of stored bytes: the sha256 hex digest (64 characters)."""
    return hashlib.sha256(data).hexdigest()
