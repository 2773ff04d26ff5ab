"""The official per-task-configuration limit counts like lmms-eval's --limit per task."""

from __future__ import annotations

from medvision.runs.runner import RunSpec, select_samples
from medvision.schema import Plane, Sample, TaskFamily


def _s(i: int, task: str, family: TaskFamily, label: int, plane: Plane = Plane.AXIAL) -> Sample:
    return Sample(
        sample_id=f"s{i}", dataset="MSD", case_id=f"c{i}", split="test", family=family,
        plane=plane, slice_index=i, label_id=label, label_name=f"l{label}", label_kind="organ",
        label_group="g", modality="CT", image_description="", image_key="k", image_hw=(8, 8),
        spacing_mm_rc=(1.0, 1.0), target=(1.0,) * family.n_values, unit="mm", task_id=task,
    )  # fmt: skip


def test_each_task_plane_and_tl_label_gets_its_own_limit() -> None:
    det = TaskFamily.DETECTION
    tl = TaskFamily.TUMOR_LESION_SIZE
    samples = (
        [_s(i, "01", det, 1) for i in range(5)]  # MSD task 01 (e.g. brain tumour)
        + [_s(10 + i, "03", det, 2) for i in range(5)]  # MSD task 03 (e.g. liver)
        + [_s(20 + i, "03", det, 2, Plane.CORONAL) for i in range(5)]
        + [_s(30 + i, "03", tl, 1) for i in range(5)]  # two official T/L tasks of one image
        + [_s(40 + i, "03", tl, 2) for i in range(5)]
    )
    spec = RunSpec(dataset_dir="-", backend="oracle", protocol="official", limit=2)
    chosen = [s.sample_id for s in select_samples(samples, spec)]
    # First two of every configuration, in dataset order.
    assert chosen == ["s0", "s1", "s10", "s11", "s20", "s21", "s30", "s31", "s40", "s41"]
