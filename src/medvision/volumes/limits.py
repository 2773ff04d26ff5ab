"""Refuse a volume whose header declares more voxel bytes than can be real or fit in memory.

A NIfTI header is 348 bytes that anyone can write: ``dim = [3, 100000, 100000, 100000]``
in a 71-byte ``.nii.gz`` makes nibabel ask for a 2 TB buffer and dies with a
``MemoryError`` traceback. :func:`check_declared_size` compares the declared size with what
the file can physically hold (its bytes after the header when uncompressed; at most
:data:`MAX_DEFLATE_RATIO` times its size when gzip-compressed, the deflate format's own
limit) and with a memory budget, before any voxel buffer is allocated.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from medvision.volumes.errors import DeclaredSizeError

__all__ = [
    "BUDGET_ENV",
    "MAX_DEFLATE_RATIO",
    "check_declared_size",
    "memory_budget_bytes",
]

#: Environment variable that sets the memory budget of one volume, in bytes.
BUDGET_ENV = "MEDVISION_MAX_VOLUME_BYTES"

#: Deflate cannot expand data by more than about 1032:1 (a run of one byte); 1100 leaves room
#: for gzip member headers.
MAX_DEFLATE_RATIO = 1100

#: Bytes per voxel of the loaded result (float32 images; at most int32 labels).
_RESULT_ITEMSIZE = 4

_COMPRESSED_SUFFIXES = (".gz", ".mgz", ".bz2", ".zst")


def memory_budget_bytes() -> int:
    """Largest number of bytes one volume may need while loading (raw + converted arrays).

    :data:`BUDGET_ENV` when set, else half of the machine's physical memory (16 GiB when
    the platform does not report it).
    """
    env = os.environ.get(BUDGET_ENV, "").strip()
    if env:
        return int(env)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        total = 32 << 30
    return max(int(total) // 2, 1 << 20)


def check_declared_size(img: Any, path: str) -> None:
    """Refuse a header whose declared voxel data cannot be in the file or in memory.

    Args:
        img: A nibabel image whose header was parsed (voxel data not read yet).
        path: The file, named in the error.

    Raises:
        DeclaredSizeError: The declared bytes exceed what the file can hold, or loading would
            need more than :func:`memory_budget_bytes`.
    """
    shape = tuple(int(n) for n in img.shape)
    itemsize = int(img.get_data_dtype().itemsize)
    n_voxels = math.prod(shape)
    declared = n_voxels * itemsize
    size = Path(path).stat().st_size
    # The proxy's offset is the file's (the image's header copy reports 0 once loaded).
    proxy_offset = getattr(img.dataobj, "offset", None)
    offset = int(proxy_offset) if proxy_offset is not None else 0
    if path.lower().endswith(_COMPRESSED_SUFFIXES):
        if declared > max(size - 18, 0) * MAX_DEFLATE_RATIO + (64 << 10):
            raise DeclaredSizeError(
                path,
                f"header of {path} declares shape {list(shape)} of {img.get_data_dtype()} "
                f"({declared:,} bytes) but the compressed file has only {size:,} bytes "
                f"(at most {MAX_DEFLATE_RATIO}x expansion): damaged or hostile header",
            )
    elif proxy_offset is not None and declared > size - offset:
        raise DeclaredSizeError(
            path,
            f"header of {path} declares shape {list(shape)} of {img.get_data_dtype()} "
            f"({declared:,} bytes) but the file holds only {max(size - offset, 0):,} bytes "
            f"after its {offset}-byte header: truncated file or damaged header",
        )
    need = declared + n_voxels * _RESULT_ITEMSIZE
    budget = memory_budget_bytes()
    if need > budget:
        raise DeclaredSizeError(
            path,
            f"{path} declares shape {list(shape)}: loading it needs about {need / 2**30:.1f} "
            f"GiB, above the memory budget of {budget / 2**30:.1f} GiB (set {BUDGET_ENV} to "
            "raise it)",
        )
