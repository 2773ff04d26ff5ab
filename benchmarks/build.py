"""Build throughput, I/O floor, per-slice baseline and peak memory, measured side by side.

Generates N CT-like volumes (int16 HU, anisotropic spacing, a body, 8 organ labels and small
lesions), then measures in one run:

1. the full build (``build_dataset``, W workers): samples per second per core;
2. the I/O floor with the same W workers: decompress every image and mask and encode exactly
   the slices the build stored (lossless, `encode_slice`), nothing else; ratio build / floor
   (target <= 1.5);
3. planning only, one process: our per-volume planners vs a straightforward per-slice
   re-implementation of the official planner (loops over every slice of every plane, one
   ``np.unique`` + ``ndimage.label`` per slice and label, ellipse fits per slice); ratio
   per-slice / ours (target >= 10);
4. peak allocations (tracemalloc; numpy buffers included), RSS after imports and peak RSS
   (VmHWM) of one fresh worker-like process building one case, against that case's float32
   image (target <= 2.5x).

Usage: python benchmarks/build.py [--cases 20] [--shape 320 320 80] [--workers 2]
(``--shape 512 512 200`` is the full-size setting; it takes several times longer).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from medvision.annotate.planners import CaseContext, PlanStats, plan_detection, plan_tumour_lesion
from medvision.builder.engine import BuildOptions, build_dataset
from medvision.catalog.spec import DatasetSpec
from medvision.geometry import lesion_measurements
from medvision.schema import Plane
from medvision.store import open_dataset
from medvision.volumes import encode_slice, load_volume, slice_volume

SPACING = (0.8, 0.8, 2.5)
ORGANS = 8
LESION = 9


def _spec() -> DatasetSpec:
    labels = [
        {"id": i, "name": f"organ {i}", "kind": "organ", "group": f"Organ {i}"}
        for i in range(1, ORGANS + 1)
    ]
    labels.append({"id": LESION, "name": "liver tumour", "kind": "tumour", "group": "Tumour"})
    return DatasetSpec.model_validate(
        {
            "name": "bench",
            "title": "bench",
            "description": "synthetic CT",
            "licence": "generated",
            "citation": "-",
            "source": {"kind": "generator"},
            "tasks": [
                {
                    "id": "01",
                    "modality": "CT",
                    "image_description": "abdomen CT",
                    "image_folder": "Images",
                    "mask_folder": "Masks",
                    "labels": labels,
                    "detection": {"labels": [lab["id"] for lab in labels]},
                    "tl": {"labels": [LESION]},
                }
            ],
        }
    )


def _generate(root: Path, n: int, shape: tuple[int, int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    (root / "Images").mkdir(parents=True)
    (root / "Masks").mkdir(parents=True)
    grid = np.indices(shape, dtype=np.float32)
    centre = np.array(shape, dtype=np.float32) / 2
    mm = [grid[a] * SPACING[a] for a in range(3)]
    size_mm = np.array(shape) * np.array(SPACING)
    body = ((grid[0] - centre[0]) / (0.45 * shape[0])) ** 2 + (
        (grid[1] - centre[1]) / (0.38 * shape[1])
    ) ** 2 <= 1
    for i in range(n):
        labels = np.zeros(shape, dtype=np.uint8)
        hu = np.where(body, 40.0, -1000.0).astype(np.float32)
        for lab in range(1, ORGANS + 1):
            c = rng.uniform(0.3, 0.7, 3) * size_mm
            r = rng.uniform(0.05, 0.12, 3) * size_mm[[0, 1, 1]]
            inside = sum(((mm[a] - c[a]) / r[a]) ** 2 for a in range(3)) <= 1
            labels[inside & body] = lab
            hu[inside & body] = rng.uniform(-50, 250)
        for _ in range(3):  # lesions a few mm to 2 cm across
            c = rng.uniform(0.35, 0.65, 3) * size_mm
            r = rng.uniform(3.0, 10.0, 3)
            inside = sum(((mm[a] - c[a]) / r[a]) ** 2 for a in range(3)) <= 1
            labels[inside & body] = LESION
            hu[inside & body] = 90.0
        hu += rng.normal(0, 20, shape).astype(np.float32)
        affine = np.diag([*SPACING, 1.0])
        nib.save(nib.Nifti1Image(hu.astype(np.int16), affine), root / "Images" / f"c{i:03d}.nii.gz")
        nib.save(nib.Nifti1Image(labels, affine), root / "Masks" / f"c{i:03d}.nii.gz")


def _floor_case(args: tuple[str, str, list[tuple[int, int]]]) -> int:
    """Decompress one case's volumes and encode its stored slices (the I/O floor)."""
    image_path, mask_path, slices = args
    image = load_volume(image_path, "image")
    load_volume(mask_path, "labels")
    for plane, index in slices:
        encode_slice(slice_volume(image, Plane(plane), index).pixels)
    return len(slices)


class _NullSink:
    def image(self, plane: Plane, index: int) -> tuple[str, tuple[int, int]]:
        return "", (1, 1)


def _naive_official(labels: np.ndarray, spacing: tuple[float, float, float]) -> int:
    """Per-slice planning as the official planner does it: every slice, every label."""
    n = 0
    for axis in range(3):
        sp = tuple(s for a, s in enumerate(spacing) if a != axis)
        for idx in range(labels.shape[axis]):
            sl = np.take(labels, idx, axis=axis)
            for lab in np.unique(sl):
                if lab == 0:
                    continue
                comp, _ = ndimage.label((sl == lab).astype(np.int32))
                for obj in ndimage.find_objects(comp):
                    dims = (obj[0].stop - obj[0].start, obj[1].stop - obj[1].start)
                    _ = (dims[0] * sp[0], dims[1] * sp[1])
                    n += 1
            lesion = sl == LESION
            if lesion.any():
                n += len(lesion_measurements(lesion, sp))
    return n


def _peak_rss_child(image: str, mask: str) -> dict[str, float]:
    """A fresh worker-like process: RSS after importing the build engine, peak after one case.

    Peak RSS is read from ``/proc/self/status`` (``VmHWM``), which ``execve`` resets; Linux's
    ``ru_maxrss`` survives ``execve``, so a child started from this (large) process would report
    the parent's peak instead of its own.
    """
    code = f"""
import json, tempfile, tracemalloc
from pathlib import Path
def vm(key):
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(key))
    return int(line.split()[1]) / 1024
from medvision.builder.engine import CaseJob, build_case
from medvision.catalog.layouts import CaseFiles
imports = vm("VmRSS:")
import benchmarks.build as b
files = CaseFiles("c", Path({image!r}), Path({mask!r}), None)
tracemalloc.start()  # numpy reports its buffers to tracemalloc
with tempfile.TemporaryDirectory() as out:
    build_case(CaseJob(b._spec(), "01", files, "test", out, "minmax"))
traced = tracemalloc.get_traced_memory()[1]
print(json.dumps({{"base": imports, "peak": vm("VmHWM:"), "traced": traced / 2**20}}))
"""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=root
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--shape", type=int, nargs=3, default=(320, 320, 80))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--naive-cases", type=int, default=2, help="Volumes for step 3.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shape = tuple(args.shape)
    w = args.workers
    print(
        f"setting: {args.cases} volumes of {shape} int16 CT-like + uint8 masks "
        f"({ORGANS} organs + lesions), spacing {SPACING} mm, {w} workers, "
        f"{os.cpu_count()} CPUs visible"
    )
    with tempfile.TemporaryDirectory() as tmp:
        src, store = Path(tmp) / "src", Path(tmp) / "store"
        t0 = time.perf_counter()
        _generate(src, args.cases, shape, args.seed)  # type: ignore[arg-type]
        print(f"generated in {time.perf_counter() - t0:.1f} s")

        spec = _spec()
        t0 = time.perf_counter()
        manifest = build_dataset(spec, src, store, BuildOptions(workers=w))
        t_build = time.perf_counter() - t0
        n = manifest.n_samples
        print(
            f"build: {n} samples, {manifest.n_images} images in {t_build:.1f} s; "
            f"skipped {len(manifest.skipped)}"
        )
        print(f"  -> {n / t_build / w:.1f} samples/s/core")

        stored: dict[str, set[tuple[int, int]]] = {}
        for s in open_dataset(store).samples():
            stored.setdefault(s.case_id, set()).add((int(s.plane), s.slice_index))
        jobs = [
            (str(src / "Images" / f"{c}.nii.gz"), str(src / "Masks" / f"{c}.nii.gz"), sorted(v))
            for c, v in sorted(stored.items())
        ]
        t0 = time.perf_counter()
        with ProcessPoolExecutor(max_workers=w) as pool:
            n_png = sum(pool.map(_floor_case, jobs))
        t_floor = time.perf_counter() - t0
        print(
            f"I/O floor: decompress {len(jobs)} image+mask pairs, encode {n_png} slices in "
            f"{t_floor:.1f} s"
        )
        print(f"  -> build / I/O floor = {t_build / t_floor:.2f} (target <= 1.5)")

        k = min(args.naive_cases, args.cases)
        if k > 0:  # --naive-cases 0 skips step 3 (slow at full size)
            ctx = CaseContext("bench", spec.tasks[0], "c", "test")
            t_ours = t_naive = 0.0
            for i in range(k):
                labels = load_volume(src / "Masks" / f"c{i:03d}.nii.gz", "labels")
                t0 = time.perf_counter()
                plan_detection(labels, ctx, _NullSink(), PlanStats())
                # "precise": the same fit as the per-slice side (lesion_measurements).
                plan_tumour_lesion(labels, ctx, _NullSink(), PlanStats(), "precise")
                t_ours += time.perf_counter() - t0
                t0 = time.perf_counter()
                _naive_official(labels.array, labels.spacing_mm)
                t_naive += time.perf_counter() - t0
            print(
                f"planning only, 1 process, {k} volumes: ours {t_ours / k:.3f} s/volume, "
                f"per-slice official-style {t_naive / k:.3f} s/volume"
            )
            print(f"  -> per-slice / ours = {t_naive / t_ours:.1f}x (target >= 10)")

        rss = _peak_rss_child(
            str(src / "Images" / "c000.nii.gz"), str(src / "Masks" / "c000.nii.gz")
        )
        voxels = int(np.prod(shape))
        f32_mib = voxels * 4 / 2**20
        i16_mib = voxels * 2 / 2**20
        print(
            f"memory building one case in a fresh process: peak allocations (tracemalloc) "
            f"{rss['traced']:.0f} MiB; worker RSS {rss['base']:.0f} MiB after importing the "
            f"build engine, {rss['peak']:.0f} MiB peak (VmHWM); the case's float32 image is "
            f"{f32_mib:.0f} MiB "
            f"({i16_mib:.0f} MiB int16 on disk), its labels {voxels * 2 / 2**20:.0f} MiB"
        )
        print(
            f"  -> peak allocations / float32 image = {rss['traced'] / f32_mib:.2f} (target <= "
            f"2.5: the float32 image + the uint16 labels + the case's stored slices); each worker "
            f"holds one case, so the build peaks near {w} x this whatever the case count"
        )


if __name__ == "__main__":
    main()
