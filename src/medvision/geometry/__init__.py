"""Pure geometry: frames, component boxes, ellipse/Feret measurements, landmark metrics.

Imports only the standard library, numpy, scipy and scikit-image. Arrays are ``(row, col)``
with origin top-left; boxes are inclusive; names carry units (``_mm``, ``_deg``, ``_rel``).
"""

from medvision.geometry.boxes import ComponentBox, boxes_from_label_slice, single_instance
from medvision.geometry.ellipse import (
    Diameters,
    EllipseAxes,
    LesionMeasurement,
    feret_diameters,
    fit_ellipse,
    lesion_measurements,
    major_axis_floor_mm,
)
from medvision.geometry.frames import (
    BoxRC,
    BoxRel,
    PointRC,
    PointRel,
    box_rc_to_rel,
    box_size_mm,
    box_size_px,
    component_boxes_to_rel,
    points_rc_to_mm,
    points_rc_to_rel,
    rel_to_box_rc,
    rel_to_points_rc,
    rescale_spacing,
)
from medvision.geometry.landmarks import angle_deg, distance_mm

__all__ = [
    "BoxRC",
    "BoxRel",
    "ComponentBox",
    "Diameters",
    "EllipseAxes",
    "LesionMeasurement",
    "PointRC",
    "PointRel",
    "angle_deg",
    "box_rc_to_rel",
    "box_size_mm",
    "box_size_px",
    "boxes_from_label_slice",
    "component_boxes_to_rel",
    "distance_mm",
    "feret_diameters",
    "fit_ellipse",
    "lesion_measurements",
    "major_axis_floor_mm",
    "points_rc_to_mm",
    "points_rc_to_rel",
    "rel_to_box_rc",
    "rel_to_points_rc",
    "rescale_spacing",
    "single_instance",
]
