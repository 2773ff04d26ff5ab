"""Golden-file tests of the prompt renderer.

The ``paper-v1__*.txt`` files were typed by hand from official-eval-protocol §2 (not produced
by the renderer), so they check it independently; ``paper-v1__ceph_*.txt`` are the
reference's quoted Ceph prompts (paper-results 2.3) with the catalog's Ceph names, and the T/L
unit stays ``mm`` (official-versions, "Settled from the features schema"). The other styles'
files were generated once and reviewed line by line against official-versions §7.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TypedDict

import pytest

from medvision.catalog.registry import get_spec
from medvision.schema import Plane, Sample, TaskFamily
from medvision.tasks import PromptStyle, prompt_hash, render_prompt


class View(TypedDict):
    """What the model sees: image size (H, W) px and spacing (row, col) mm."""

    seen_hw: tuple[int, int]
    seen_spacing_mm_rc: tuple[float, float]


GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "prompts"

_BASE = Sample(
    sample_id="s0",
    dataset="test",
    case_id="case0",
    split="test",
    family=TaskFamily.DETECTION,
    plane=Plane.AXIAL,
    slice_index=10,
    label_id=1,
    label_name="enhancing tumor",
    label_kind="tumour",
    label_group="Brain Tumor/Lesion",
    modality="MRI",
    image_description="a brain MRI scan (FLAIR), axial view",
    image_key="0" * 64,
    image_hw=(240, 240),
    spacing_mm_rc=(1.0, 1.0),
    target=(0.1, 0.2, 0.3, 0.4),
    unit="relative",
)
_CEPH = replace(
    _BASE,
    family=TaskFamily.ANGLE_DISTANCE,
    plane=Plane.SAGITTAL,
    label_id=None,
    label_name="",
    label_kind="landmark",
    label_group="",
    modality="X-ray",
    image_description="a lateral cephalometric X-ray image",
    target=(70.0,),
    unit="mm",
    metric_type="distance",
    metric_name="anterior cranial base length",
    landmark_names=("Sella", "Nasion"),
)
_ANGLE = replace(
    _CEPH,
    unit="degree",
    metric_type="angle",
    metric_name="SNA",
    landmark_names=("Sella", "Nasion", "Nasion", "Subspinale"),
)
_CEPH_VIEW = View(seen_hw=(1036, 840), seen_spacing_mm_rc=(0.1, 0.125))


def _ceph_sample(key: str) -> Sample:
    """A Ceph A/D sample whose description and names come from the catalog entry."""
    task = get_spec("Ceph-Biometrics-400").task("01")
    m = next(m for m in task.measurements if m.key == key)
    return replace(
        _CEPH,
        image_description=task.image_description,
        unit="mm" if m.type == "distance" else "degree",
        metric_type=m.type,
        metric_name=m.name,
        metric_key=m.key,
        landmark_names=tuple(task.landmarks[p] for p in m.points),
    )


_CEPH_NATIVE = View(seen_hw=(1935, 2400), seen_spacing_mm_rc=(0.1, 0.1))

# case name -> (sample, seen_hw, seen_spacing_mm_rc)
CASES: dict[str, tuple[Sample, View]] = {
    "detection": (_BASE, View(seen_hw=(252, 252), seen_spacing_mm_rc=(1.0, 1.0))),
    "detection_no_description": (
        replace(_BASE, image_description="", label_name="left kidney"),
        View(seen_hw=(252, 252), seen_spacing_mm_rc=(1.0, 1.0)),
    ),
    # 0.8125 is an exact binary tie: ".3f" rounds it half-to-even to 0.812.
    "tl": (
        replace(
            _BASE,
            family=TaskFamily.TUMOR_LESION_SIZE,
            label_name="kidney tumor",
            image_description="an abdominal CT scan, axial view",
            modality="CT",
            target=(30.0, 20.0),
            unit="mm",
            metric_type="axes",
        ),
        View(seen_hw=(504, 616), seen_spacing_mm_rc=(0.8125, 0.9765625)),
    ),
    "distance_named": (_CEPH, _CEPH_VIEW),
    "distance_unnamed": (replace(_CEPH, metric_name=""), _CEPH_VIEW),
    "angle_named": (_ANGLE, _CEPH_VIEW),
    "angle_unnamed": (replace(_ANGLE, metric_name=""), _CEPH_VIEW),
    # The reference's quoted prompts: S-N distance and the SN / NA angle (SNA).
    "ceph_distance": (_ceph_sample("L-1-2"), _CEPH_NATIVE),
    "ceph_angle": (_ceph_sample("A-L_1_2-L_2_5"), _CEPH_NATIVE),
}


def _render(case: str, style: PromptStyle) -> str:
    sample, view = CASES[case]
    return render_prompt(
        sample,
        style,
        seen_hw=view["seen_hw"],
        seen_spacing_mm_rc=view["seen_spacing_mm_rc"],
    )


@pytest.mark.parametrize("style", list(PromptStyle))
@pytest.mark.parametrize("case", sorted(CASES))
def test_prompt_matches_golden_file_byte_for_byte(case: str, style: PromptStyle) -> None:
    expected = (GOLDEN / f"{style.value}__{case}.txt").read_bytes()
    assert _render(case, style).encode("utf-8") == expected


def test_every_golden_file_is_used() -> None:
    # A stale golden file would otherwise silently stop being checked.
    used = {f"{s.value}__{c}.txt" for s in PromptStyle for c in CASES}
    assert {p.name for p in GOLDEN.glob("*.txt")} == used


def test_pixel_line_puts_column_spacing_first() -> None:
    # guards against swapping (row, col): width must be the column spacing.
    sample, _ = CASES["tl"]
    text = render_prompt(
        sample, PromptStyle.PAPER_V1, seen_hw=(10, 10), seen_spacing_mm_rc=(2.0, 0.5)
    )
    assert "0.500 mm (width) x 2.000 mm (height)" in text


def test_paper_v1_tl_unit_stays_mm_and_official_expands_it() -> None:
    # c221615 received the T/L unit as the one-element list ["mm"] and expanded only string
    # units; 1.2.1 maps lists too (official-versions, "Settled from the features schema").
    sample, view = CASES["tl"]
    v1 = render_prompt(sample, PromptStyle.PAPER_V1, **view)
    assert "ellipse enclosing the kidney tumor, in mm.\n" in v1
    assert "millimeters" not in v1
    official = render_prompt(sample, PromptStyle.OFFICIAL, **view)
    assert "kidney tumor, in millimeters.\n" in official
    assert "0.977 millimeters (width) x 0.812 millimeters (height)" in official


def test_official_image_size_line_is_width_then_height() -> None:
    sample, _ = CASES["tl"]
    text = render_prompt(
        sample, PromptStyle.OFFICIAL, seen_hw=(100, 300), seen_spacing_mm_rc=(1.0, 1.0)
    )
    assert "The image size is 300 pixels (width) x 100 pixels (height).\n" in text


def test_paper_v1_tl_keeps_every_unit_as_given() -> None:
    # The list-valued unit is used unchanged by c221615, whatever it holds.
    sample, _ = CASES["tl"]
    kwargs = View(seen_hw=(10, 10), seen_spacing_mm_rc=(1.0, 1.0))
    cm = render_prompt(replace(sample, unit="cm"), PromptStyle.PAPER_V1, **kwargs)
    assert "in cm.\n" in cm and "1.000 cm (width)" in cm
    raw = render_prompt(replace(sample, unit="inch"), PromptStyle.PAPER_V1, **kwargs)
    assert "in inch.\n" in raw


def test_official_refuses_units_it_cannot_state() -> None:
    sample, _ = CASES["tl"]
    with pytest.raises(ValueError, match="inch"):
        render_prompt(
            replace(sample, unit="inch"),
            PromptStyle.OFFICIAL,
            seen_hw=(10, 10),
            seen_spacing_mm_rc=(1.0, 1.0),
        )


def test_ad_without_metric_type_or_landmarks_is_refused() -> None:
    view = View(seen_hw=(10, 10), seen_spacing_mm_rc=(1.0, 1.0))
    with pytest.raises(ValueError, match="metric_type"):
        render_prompt(replace(_CEPH, metric_type=""), PromptStyle.PAPER_V1, **view)
    with pytest.raises(ValueError, match="4 landmark names"):
        render_prompt(replace(_ANGLE, landmark_names=("A", "B")), PromptStyle.OFFICIAL, **view)


def test_json_style_refuses_a_unit_it_does_not_ask_for() -> None:
    with pytest.raises(ValueError, match="json style"):
        render_prompt(
            replace(_CEPH, unit="cm"),
            PromptStyle.JSON,
            seen_hw=(10, 10),
            seen_spacing_mm_rc=(1.0, 1.0),
        )


def test_style_accepts_its_string_value() -> None:
    sample, view = CASES["detection"]
    assert render_prompt(sample, "paper-v1", **view) == _render("detection", PromptStyle.PAPER_V1)


def test_prompt_hash_is_sha256_prefix() -> None:
    # sha256("abc") is the FIPS 180-2 test vector ba7816bf8f01cfea414140de5dae2223...
    assert prompt_hash("abc") == "ba7816bf8f01cfea"
    assert prompt_hash(_render("tl", PromptStyle.OFFICIAL)) != prompt_hash(
        _render("tl", PromptStyle.PAPER_V1)
    )
