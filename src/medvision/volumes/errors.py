"""Errors raised while loading, checking and slicing volumes.

Every error carries the offending file (``path``) and a human-readable ``reason`` that states
what was expected and what was found, so a build can skip the case, count it in its manifest
and say why. The errors pickle cleanly (``args == (path, reason)``) because builds raise them
inside worker processes.
"""

from __future__ import annotations


class VolumeError(Exception):
    """A volume file cannot be used as it is.

    Attributes:
        path: The offending file (or ``"<memory>"`` for in-memory arrays).
        reason: What was expected and what was found.
    """

    def __init__(self, path: str, reason: str) -> None:
        # Pass both to Exception so that pickling (which replays ``cls(*args)``) round-trips.
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        # Name the file exactly once: reasons that already quote it stay as they are.
        if self.path in self.reason:
            return self.reason
        return f"{self.path}: {self.reason}"


class CorruptFileError(VolumeError):
    """The file is missing, unreadable, truncated or fails its gzip checks."""


class ShapeMismatchError(VolumeError):
    """An array has the wrong number of dimensions or does not match its partner's shape."""


class AffineError(VolumeError):
    """The affine is not usable (non-finite, singular, sheared) or differs from its partner's."""


class EmptyMaskError(VolumeError):
    """A mask has no foreground voxel (or none with the requested label)."""


class NonFiniteError(VolumeError):
    """Voxels are NaN or infinite."""


class DeclaredSizeError(CorruptFileError):
    """A header declares more voxel bytes than the file can hold or the memory budget allows.

    Raised before any voxel buffer is allocated, so a hostile or damaged header (a few bytes
    declaring terabytes) costs nothing.
    """


class LabelValueError(VolumeError):
    """A mask holds values that are not integer labels (e.g. 1.5 after interpolation)."""


class NotVolumetricError(ShapeMismatchError):
    """A 2D image (an axis of one voxel) was given to a task of a volumetric modality."""
