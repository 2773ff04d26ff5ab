"""Training rows in each export format's layout (TRL, LLaMA-Factory ShareGPT, ms-swift).

:func:`medvision.training.export.export_sft` builds the examples; this lays them out and
writes the rows file. The layouts are described in :mod:`medvision.training.export`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medvision.training.rewards import REWARD_COLUMN

if TYPE_CHECKING:  # export imports this module; the types are only needed by mypy
    from medvision.training.export import ExportFormat, ImagePosition, TrainingExample

__all__ = ["atomic_write_bytes", "layout_row", "write_rows"]


def _user_parts(prompt: str, position: ImagePosition) -> list[dict[str, str]]:
    text = {"type": "text", "text": prompt}
    image = {"type": "image"}
    return [text, image] if position == "after" else [image, text]


def _system_turn(text: str) -> dict[str, Any]:
    return {"role": "system", "content": [{"type": "text", "text": text}]}


def _with_placeholder(prompt: str, position: ImagePosition) -> str:
    return prompt + "<image>" if position == "after" else "<image>" + prompt


def layout_row(
    ex: TrainingExample, fmt: ExportFormat, position: ImagePosition, image_root: str
) -> dict[str, Any]:
    """One row of ``ex`` in a format's layout (see :mod:`medvision.training.export`).

    Args:
        ex: The example.
        fmt: ``trl``, ``llamafactory`` or ``swift``.
        position: Where the image goes relative to the text.
        image_root: Prefix of the image path (``""``: relative to the export folder).
    """
    meta = {"id": ex.row_id, "sample_id": ex.sample_id, "family": ex.family}
    reward = ex.reward.to_json()
    image = f"{image_root}/{ex.image_path}" if image_root else ex.image_path
    if fmt == "trl":
        system = [] if ex.system is None else [_system_turn(ex.system)]
        return {
            "prompt": [*system, {"role": "user", "content": _user_parts(ex.prompt, position)}],
            "completion": [
                {"role": "assistant", "content": [{"type": "text", "text": ex.completion}]}
            ],
            "images": [image],
            REWARD_COLUMN: reward,
            **meta,
        }
    if fmt == "llamafactory":
        return {
            "conversations": [
                {"from": "human", "value": _with_placeholder(ex.prompt, position)},
                {"from": "gpt", "value": ex.completion},
            ],
            **({} if ex.system is None else {"system": ex.system}),
            "images": [image],
            REWARD_COLUMN: reward,
            **meta,
        }
    return {
        "messages": [
            *([] if ex.system is None else [{"role": "system", "content": ex.system}]),
            {"role": "user", "content": _with_placeholder(ex.prompt, position)},
            {"role": "assistant", "content": ex.completion},
        ],
        "images": [image],
        "solution": ex.completion,
        REWARD_COLUMN: reward,
        **meta,
    }


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file via a temporary name in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(path)


def write_rows(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write JSON lines via a temporary name in the same folder and a rename."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
