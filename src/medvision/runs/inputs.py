"""What a run is pointed at, checked before anything is written: the store and the spec.

Each check fails with one line that names the fix (a source folder instead of a built
store, the demo's working folder, an unknown prompt style), before a run folder exists.
"""

from __future__ import annotations

from pathlib import Path

from medvision.runs.spec import RunError, RunSpec
from medvision.store import BuiltDataset, open_dataset
from medvision.store.manifest import MANIFEST_NAME
from medvision.tasks import PromptStyle

__all__ = ["check_spec", "open_store"]


def open_store(path: str | Path) -> BuiltDataset:
    """Open a built dataset, or say what the folder is and what to pass instead.

    Raises:
        RunError: The folder is missing, is a source folder, holds built datasets one level
            down (the demo's working folder), or holds an unfinished build.
    """
    root = Path(path)
    if not root.is_dir():
        raise RunError(
            f"{root}: no such dataset folder; pass a folder written by `medvision build`"
        )
    if not (root / MANIFEST_NAME).is_file():
        inside = sorted(p.parent for p in root.glob(f"*/{MANIFEST_NAME}"))
        if inside:
            names = ", ".join(str(p) for p in inside[:3])
            raise RunError(
                f"{root} is not a built dataset but holds {len(inside)}: pass one of them ({names})"
            )
        if (root / "cases").is_dir():
            raise RunError(
                f"{root} holds an unfinished build (no {MANIFEST_NAME}): run "
                f"`medvision build SOURCE --out {root}` again to finish it"
            )
        raise RunError(
            f"{root} is not a built dataset (no {MANIFEST_NAME}); if it holds source images, "
            f"build them first: `medvision build {root} --out STORE --dataset NAME`, then "
            "evaluate STORE"
        )
    return open_dataset(root)


def check_spec(spec: RunSpec) -> None:
    """Refuse a spec whose names are unknown (before a run folder is made).

    Raises:
        RunError: An unknown prompt style (the message lists the known ones).
    """
    try:
        spec.style  # noqa: B018 (the property validates the name)
    except ValueError:
        known = ", ".join(s.value for s in PromptStyle)
        raise RunError(
            f"unknown prompt style {spec.prompt_style!r}; choose one of: {known}"
        ) from None
