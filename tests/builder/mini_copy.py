"""A private copy of some mini cases, for build tests that damage or rebuild their sources."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path


def copy_mini_cases(mini_source: Path, dst: Path, cases: Sequence[str]) -> Path:
    """Copy ``cases`` of every mini folder (images, masks, X-rays, landmarks) into ``dst``."""
    for folder in ("Images-MR", "Masks", "Images-XR", "Landmarks"):
        (dst / folder).mkdir(parents=True)
        for case in cases:
            for f in (mini_source / folder).glob(f"{case}.*"):
                shutil.copy(f, dst / folder / f.name)
    return dst
