"""Volumes: canonical RAS+ loading, official slicing, rendering and PNG storage.

Typical use::

    image = load_volume("case.nii.gz", "image")
    mask = load_volume("case_seg.nii.gz", "labels")
    check_same_grid(image, mask)
    s = slice_volume(image, Plane.AXIAL, 40)
    png = encode_png(to_uint8(s.pixels))
"""

from medvision.volumes.errors import (
    AffineError,
    CorruptFileError,
    DeclaredSizeError,
    EmptyMaskError,
    LabelValueError,
    NonFiniteError,
    NotVolumetricError,
    ShapeMismatchError,
    VolumeError,
)
from medvision.volumes.io import (
    ORTHOGONALITY_TOL,
    Kind,
    Volume,
    check_nonempty,
    check_same_grid,
    from_array,
    load_volume,
)
from medvision.volumes.png import PNG_COMPRESS_LEVEL, content_key, decode_png, encode_png
from medvision.volumes.render import CT_WINDOWS, NormMethod, to_uint8
from medvision.volumes.slicing import Slice2D, resize_slice, slice_volume

__all__ = [
    "CT_WINDOWS",
    "ORTHOGONALITY_TOL",
    "PNG_COMPRESS_LEVEL",
    "AffineError",
    "CorruptFileError",
    "DeclaredSizeError",
    "EmptyMaskError",
    "Kind",
    "LabelValueError",
    "NonFiniteError",
    "NormMethod",
    "NotVolumetricError",
    "ShapeMismatchError",
    "Slice2D",
    "Volume",
    "VolumeError",
    "check_nonempty",
    "check_same_grid",
    "content_key",
    "decode_png",
    "encode_png",
    "from_array",
    "load_volume",
    "resize_slice",
    "slice_volume",
    "to_uint8",
]
