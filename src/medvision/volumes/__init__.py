"""Volumes: canonical RAS+ loading, official slicing, lossless slice storage, rendering, PNG.

Typical use::

    image = load_volume("case.nii.gz", "image")
    mask = load_volume("case_seg.nii.gz", "labels")
    check_same_grid(image, mask)
    s = slice_volume(image, Plane.AXIAL, 40)
    stored = encode_slice(s.pixels)          # lossless, what a build keeps
    grey = render_slice(stored.values(), "official", modality="CT", label_group="Spine")
    png = encode_png(grey)                   # what a model is shown
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
from medvision.volumes.render import (
    CT_WINDOWS,
    RENDERINGS,
    Normalisation,
    NormMethod,
    Rendering,
    normalisation_for,
    official_ct_window,
    render_slice,
    to_uint8,
)
from medvision.volumes.slicing import Slice2D, slice_volume
from medvision.volumes.stored import StoredSlice, decode_slice, encode_slice

__all__ = [
    "CT_WINDOWS",
    "ORTHOGONALITY_TOL",
    "PNG_COMPRESS_LEVEL",
    "RENDERINGS",
    "AffineError",
    "CorruptFileError",
    "DeclaredSizeError",
    "EmptyMaskError",
    "Kind",
    "LabelValueError",
    "NonFiniteError",
    "NormMethod",
    "Normalisation",
    "NotVolumetricError",
    "Rendering",
    "ShapeMismatchError",
    "Slice2D",
    "StoredSlice",
    "Volume",
    "VolumeError",
    "check_nonempty",
    "check_same_grid",
    "content_key",
    "decode_png",
    "decode_slice",
    "encode_png",
    "encode_slice",
    "from_array",
    "load_volume",
    "normalisation_for",
    "official_ct_window",
    "render_slice",
    "slice_volume",
    "to_uint8",
]
