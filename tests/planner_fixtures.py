"""Shared by the planner tests: a three-label task and an image sink that names slices."""

from __future__ import annotations

from medvision.catalog.spec import DetectionSpec, LabelSpec, TaskSpec, TumourLesionSpec
from medvision.schema import Plane


class KeySink:
    """Image sink that stores nothing: key ``k<plane>-<index>``, size from the volume shape."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape
        self.calls: list[tuple[Plane, int]] = []

    def image(self, plane: Plane, index: int) -> tuple[str, tuple[int, int]]:
        self.calls.append((plane, index))
        hw = [n for ax, n in enumerate(self.shape) if ax != int(plane)]
        return f"k{int(plane)}-{index}", (int(hw[0]), int(hw[1]))


def three_label_task(single: bool = False) -> TaskSpec:
    """CT task with organs 1 and 2 and lesion 5; detection of all three, T/L of the lesion."""
    return TaskSpec(
        id="01",
        modality="CT",
        image_description="synthetic",
        image_folder="img",
        mask_folder="msk",
        labels=[
            LabelSpec(id=1, name="organ a", kind="organ", group="A"),
            LabelSpec(id=2, name="organ b", kind="organ", group="B"),
            LabelSpec(id=5, name="lesion", kind="lesion", group="L"),
        ],
        detection=DetectionSpec(labels=[1, 2, 5], single_instance=single, min_side_px=3),
        tl=TumourLesionSpec(labels=[5], single_instance=single),
    )
