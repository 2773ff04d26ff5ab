"""Read an SFT export back: its ``export.json``, its configuration, its TRL rows.

The trainers (:mod:`medvision.training.sft`, :mod:`medvision.training.grpo`) read exports
through these functions; :mod:`medvision.training.export` re-exports them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from medvision.tasks.config import EvalConfig

__all__ = ["check_train_split", "export_config", "read_export_manifest", "read_trl_rows"]

EXPORT_MANIFEST = "export.json"
ROWS_FILE_TRL = "train.jsonl"


def read_export_manifest(export_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``export.json`` of an export folder.

    Raises:
        FileNotFoundError: If the folder has no ``export.json`` (names the folder).
    """
    root = Path(export_dir)
    manifest_path = root / EXPORT_MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"{root} is not a medvision SFT export: missing {EXPORT_MANIFEST} "
            "(run `medvision export sft DATASET --format trl --out DIR` first)"
        )
    data: dict[str, Any] = json.loads(manifest_path.read_text())
    return data


def check_train_split(export_dir: str | os.PathLike[str]) -> None:
    """Refuse an export of anything but the train split (training on test leaks it).

    Raises:
        FileNotFoundError: If the folder is not an export.
        ValueError: If it was exported from the ``test`` split (names the folder).
    """
    manifest = read_export_manifest(export_dir)
    split = manifest.get("split", manifest.get("options", {}).get("split"))
    if split != "train":
        raise ValueError(
            f"{export_dir} was exported from the {split!r} split: training on it would leak "
            "the benchmark's test samples into the model; export the train split "
            "(`medvision export sft DATASET --split train`)"
        )


def export_config(export_dir: str | os.PathLike[str]) -> EvalConfig:
    """The configuration (:class:`EvalConfig`) an export's prompts and images were made with.

    Exports written before the configuration was recorded give their ``style``/``policy``
    options as an explicit configuration.
    """
    manifest = read_export_manifest(export_dir)
    if "config" in manifest:
        return EvalConfig.from_dict(manifest["config"])
    options = manifest["options"]
    return EvalConfig(prompt_style=options.get("style"), image_policy=options.get("policy", "auto"))


def read_trl_rows(
    export_dir: str | os.PathLike[str], *, allow_test_split: bool = False
) -> list[dict[str, Any]]:
    """Rows of a ``trl`` export with image paths made absolute (for the trainers).

    Args:
        export_dir: Folder written by :func:`export_sft` with ``format="trl"``.
        allow_test_split: Read an export of the ``test`` split too (never for training).

    Returns:
        The rows, in file order.

    Raises:
        FileNotFoundError: If the folder has no ``export.json`` / ``train.jsonl`` or an image
            it references is missing.
        ValueError: If the export is not in the ``trl`` format, was made from the ``test``
            split (unless ``allow_test_split``) or a line is not JSON.
    """
    root = Path(export_dir)
    manifest = read_export_manifest(root)
    fmt = manifest["options"]["format"]
    if fmt != "trl":
        raise ValueError(f"{root} holds a {fmt!r} export; the medvision trainers read 'trl'")
    if not allow_test_split:
        check_train_split(root)
    rows_path = root / ROWS_FILE_TRL
    if not rows_path.is_file():
        raise FileNotFoundError(f"{rows_path} is missing (the export did not finish)")
    rows: list[dict[str, Any]] = []
    with rows_path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{rows_path}:{n}: not a JSON object ({exc})") from exc
            images = [str(root / p) for p in row["images"]]
            missing = [p for p in images if not Path(p).is_file()]
            if missing:
                raise FileNotFoundError(f"{rows_path}:{n}: image file(s) missing: {missing}")
            row["images"] = images
            rows.append(row)
    return rows
