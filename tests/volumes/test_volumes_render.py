"""Intensity normalisation to uint8: official min-max, CT windows, percentiles."""

from __future__ import annotations

import numpy as np
import pytest

from medvision.volumes import (
    CT_WINDOWS,
    RENDERINGS,
    normalisation_for,
    official_ct_window,
    render_slice,
    to_uint8,
)
from medvision.volumes.render import percentile_pair


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


# -- golden tests of the rendering rules on a synthetic CT slice --------------------------------

#: The 1.2.1 windows (W, L), written out again from reference section 8 (not imported).
REF_WINDOWS = {"soft": (400.0, 40.0), "lung": (1500.0, -600.0), "brain": (80.0, 40.0)}
REF_WINDOWS["bone"] = (1800.0, 400.0)


def ct_slice() -> np.ndarray:
    """A 64 x 80 axial CT slice in HU: air, body (soft tissue), two lungs, a spine, noise."""
    rows, cols = np.mgrid[0:64, 0:80].astype(np.float64)
    hu = np.full((64, 80), -1000.0)
    body = ((rows - 32) / 28) ** 2 + ((cols - 40) / 36) ** 2 <= 1
    hu[body] = 40.0
    for c0 in (24, 56):
        hu[((rows - 30) / 14) ** 2 + ((cols - c0) / 10) ** 2 <= 1] = -820.0
    hu[(rows - 50) ** 2 + (cols - 40) ** 2 <= 25] = 700.0
    noise = np.random.default_rng(7).normal(0.0, 25.0, hu.shape)
    return np.rint(hu + noise).astype(np.float32)  # integer HU, as CT volumes store them


def ref_window(hu: np.ndarray, width: float, level: float) -> np.ndarray:
    x = hu.astype(np.float32)
    lo, hi = np.float32(level - width / 2), np.float32(level + width / 2)
    return ((np.clip(x, lo, hi) - lo) / (hi - lo) * 255).astype(np.uint8)


def ref_percentile(img: np.ndarray) -> np.ndarray:
    x = img.astype(np.float32)
    lo, hi = (np.float32(v) for v in np.percentile(x, [0.5, 99.5]))
    return ((np.clip(x, lo, hi) - lo) / (hi - lo) * 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("group", "name", "window"),
    [
        ("Liver", "liver", "soft"),
        ("Kidney Tumor/Lesion", "kidney tumor", "soft"),
        ("Lung", "left lung upper lobe", "lung"),
        ("Lung Tumor/Lesion", "lung nodule", "lung"),
        ("Brain", "brain", "brain"),
        ("Brain Tumor/Lesion", "brain tumour", "brain"),
        ("Spine", "vertebrae L1", "bone"),
        ("Rib", "rib left 1", "bone"),
        ("Hip", "hip left", "bone"),
        ("Tooth", "lower left molar", "bone"),
        ("Jawbone", "mandible", "bone"),
        ("Knee", "right femur", "bone"),  # 1.2.1 "Knee Bone"
        ("Knee", "tibia", "bone"),
        ("Knee", "femoral cartilage", "soft"),  # 1.2.1 "Knee Soft Tissue"
        ("Knee", "medial tibial cartilage", "soft"),
    ],
)
def test_official_ct_windows_golden(group: str, name: str, window: str) -> None:
    hu = ct_slice()
    out = render_slice(hu, "official", modality="CT", label_group=group, label_name=name)
    np.testing.assert_array_equal(out, ref_window(hu, *REF_WINDOWS[window]))
    # The windows clip: the lung and bone windows show different things on the same slice.
    assert out.dtype == np.uint8 and out.shape == hu.shape


def test_official_ct_soft_tissue_pixels_by_hand() -> None:
    hu = np.array([[-1000.0, -160.0, 40.0, 100.0, 240.0, 1500.0]], dtype=np.float32)
    out = render_slice(hu, "official", modality="CT", label_group="Liver")
    # [-160, 240] HU: 40 -> 200/400*255 = 127.5 -> 127; 100 -> 260/400*255 = 165.75 -> 165.
    assert out.tolist() == [[0, 0, 127, 165, 255, 255]]


@pytest.mark.parametrize(
    ("modality", "group", "kwargs"),
    [
        ("CT", "Others", {}),  # CT in group Others
        ("CT", "Ceph-Biometrics-400 distance", {"has_label": False}),  # CT without a label (A/D)
        ("CT", "Kidney", {"dataset": "KiPA22", "task_id": "01"}),  # forced by 1.2.1
        ("MRI", "Brain", {}),
        ("X-ray", "Ceph-Biometrics-400 angle", {"has_label": False}),
        ("ultrasound", "Heart", {}),
        ("PET", "Miscellaneous Tumor/Lesion", {}),
    ],
)
def test_official_percentile_golden(modality: str, group: str, kwargs: dict[str, object]) -> None:
    hu = ct_slice()
    out = render_slice(hu, "official", modality=modality, label_group=group, **kwargs)  # type: ignore[arg-type]
    np.testing.assert_array_equal(out, ref_percentile(hu))


@pytest.mark.parametrize("group", ["Liver", "Lung", "Spine", "Others"])
def test_minmax_and_percentile_rules_ignore_the_label(group: str) -> None:
    hu = ct_slice()
    minmax = render_slice(hu, "minmax", modality="CT", label_group=group)
    np.testing.assert_array_equal(minmax, official_minmax(hu))
    pct = render_slice(hu, "percentile", modality="CT", label_group=group)
    np.testing.assert_array_equal(pct, ref_percentile(hu))


def test_rules_give_different_images_and_names() -> None:
    hu = ct_slice()
    names = {
        (rule, group): normalisation_for(rule, modality="CT", label_group=group).name
        for rule in RENDERINGS
        for group in ("Liver", "Lung", "Others")
    }
    assert names[("minmax", "Lung")] == "minmax"
    assert names[("official", "Liver")] == "window:soft_tissue"
    assert names[("official", "Lung")] == "window:lung"
    assert names[("official", "Others")] == "percentile"
    images = {
        n: render_slice(hu, r, modality="CT", label_group=g).tobytes()
        for (r, g), n in names.items()
    }
    assert len(set(images.values())) == 4  # minmax, soft tissue, lung, percentile differ


def test_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown rendering 'windows'"):
        render_slice(ct_slice(), "windows", modality="CT", label_group="Liver")
    assert official_ct_window("Others") is None


def test_percentile_pair_equals_numpy_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    quantiles = [(0.5, 99.5), (0.0, 100.0), (1.0, 99.0), (25.0, 75.0), (0.0, 0.5)]
    for trial in range(3000):
        n = int(rng.integers(1, 400))
        kind = trial % 4
        if kind == 0:  # continuous float32 values
            x = rng.normal(0, 100, n).astype(np.float32)
        elif kind == 1:  # integer-valued (CT/MRI) with many ties
            x = rng.integers(-5, 6, n).astype(np.float32)
        elif kind == 2:  # a constant slice
            x = np.full(n, np.float32(rng.normal()), dtype=np.float32)
        else:  # wide range, float64 input
            x = rng.uniform(-1e6, 1e6, n)
        lo_hi = (
            quantiles[trial % len(quantiles)] if trial % 7 else tuple(sorted(rng.random(2) * 100))
        )
        shaped = x.reshape(1, -1) if trial % 2 else x
        before = shaped.copy()
        got = percentile_pair(shaped, *lo_hi)
        want = np.percentile(shaped, lo_hi)
        assert np.array_equal(np.asarray(got), want), (trial, lo_hi)
        assert [type(v) for v in got] == [float, float]
        np.testing.assert_array_equal(shaped, before)  # the input is left as it was
