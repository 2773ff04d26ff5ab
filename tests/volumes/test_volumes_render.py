"""Intensity normalisation to uint8: official min-max, CT windows, percentiles."""

from __future__ import annotations

import numpy as np
import pytest

from medvision.volumes import CT_WINDOWS, to_uint8


def official_minmax(img: np.ndarray) -> np.ndarray:
    """The official v1 code path, written out: float32, min-max, *255, truncate."""
    x = img.astype(np.float32)
    lo, hi = x.min(), x.max()
    if hi == lo:
        return np.zeros_like(x, dtype=np.uint8)
    return ((x - lo) / (hi - lo) * 255).astype(np.uint8)


def test_minmax_by_hand() -> None:
    out = to_uint8(np.array([[0.0, 1.0], [2.0, 3.0]], dtype=np.float32))
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 85], [170, 255]]


def test_minmax_truncates_not_rounds() -> None:
    # 0.999 * 255 = 254.745: truncation gives 254 (rounding would give 255).
    assert to_uint8(np.array([[0.0, 0.999, 1.0]], dtype=np.float32)).tolist() == [[0, 254, 255]]


def test_minmax_arithmetic_is_float32() -> None:
    # Found by search: with lo = 0, hi = 0.7 (float32), the value 0.5407843 scales to
    # 196.99... in float64 (truncated to 196) but to 197.0 in float32. The official code casts
    # to float32 first, so a float64 input must give 197 too.
    pixels = np.array([[0.0, 0.5407843, 0.7]], dtype=np.float32).astype(np.float64)
    assert int(pixels[0, 1] / pixels[0, 2] * 255) == 196
    assert to_uint8(pixels).tolist() == [[0, 197, 255]]


def test_minmax_constant_slice_is_zero() -> None:
    assert to_uint8(np.full((3, 4), 7.5)).tolist() == [[0] * 4] * 3


def test_minmax_byte_identical_to_official_on_random_slices() -> None:
    rng = np.random.default_rng(11)
    for _ in range(20):
        img = (rng.normal(size=(31, 17)) * rng.uniform(1, 2000) + rng.uniform(-1000, 1000)).astype(
            np.float32
        )
        np.testing.assert_array_equal(to_uint8(img), official_minmax(img))


def test_soft_tissue_window_by_hand() -> None:
    # (W, L) = (400, 40): [-160, 240] HU. 40 HU -> 200/400*255 = 127.5 -> 127.
    hu = np.array([[-1000.0, -160.0, 40.0, 240.0, 3000.0]])
    out = to_uint8(hu, method="window", window=CT_WINDOWS["soft_tissue"])
    assert out.tolist() == [[0, 0, 127, 255, 255]]


def test_lung_window_by_hand() -> None:
    # (1500, -600): [-1350, 150]. -975 HU -> 375/1500*255 = 63.75 -> 63.
    out = to_uint8(np.array([[-975.0, -2000.0, 500.0]]), method="window", window=CT_WINDOWS["lung"])
    assert out.tolist() == [[63, 0, 255]]


def test_percentile_by_hand() -> None:
    # 0..1000: the 0.5th and 99.5th percentiles (linear) are 5 and 995.
    pixels = np.arange(1001, dtype=np.float32).reshape(7, 143)
    out = to_uint8(pixels, method="percentile")
    flat = out.ravel()
    assert flat[0] == 0 and flat[5] == 0 and flat[995] == 255 and flat[1000] == 255
    assert flat[500] == 127  # 495/990*255 = 127.5
    custom = to_uint8(pixels, method="percentile", percentiles=(0.0, 100.0))
    np.testing.assert_array_equal(custom, official_minmax(pixels))


def test_ct_windows_table() -> None:
    assert CT_WINDOWS == {
        "soft_tissue": (400, 40),
        "lung": (1500, -600),
        "brain": (80, 40),
        "bone": (1800, 400),
    }


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError, match="2D"):
        to_uint8(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="non-finite"):
        to_uint8(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="window"):
        to_uint8(np.zeros((2, 2)), method="window")
    with pytest.raises(ValueError, match="width"):
        to_uint8(np.zeros((2, 2)), method="window", window=(0.0, 40.0))
    with pytest.raises(ValueError, match="percentiles"):
        to_uint8(np.zeros((2, 2)), method="percentile", percentiles=(60.0, 40.0))
