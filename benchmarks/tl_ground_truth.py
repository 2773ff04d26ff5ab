"""T/L ground-truth versions: accuracy of each fit on analytic ellipses, and planning speed.

1. Accuracy. Rasterise ellipses of known axes (random orientation, random sub-pixel centre,
   a pixel is inside when its centre is), fit them under each version and print the relative
   error of the two axes binned by the true axis length in pixels (< 10, 10-20, >= 20 px):
   median, 95th percentile and maximum of ``|fit - true| / true``. ``official-1.0.0`` also
   drops clusters under 200 px and gates oblique fits, so its count is smaller.
2. Speed. The T/L planner on the synthetic CT volumes of ``benchmarks/build.py`` (small
   shape), per version, side by side with ``precise`` (the ratio is what matters).

Usage: python benchmarks/tl_ground_truth.py [--n 4000] [--shape 192 192 48] [--cases 2]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build import LESION, _generate, _NullSink, _spec
from medvision.annotate.planners import CaseContext, PlanStats, plan_tumour_lesion
from medvision.annotate.tl_versions import ANNOTATIONS, fit_component
from medvision.volumes import load_volume

BINS = ((0.0, 10.0, "< 10 px"), (10.0, 20.0, "10-20 px"), (20.0, math.inf, ">= 20 px"))


def _raster(
    rng: np.random.Generator, semi_px: tuple[float, float], spacing: tuple[float, float]
) -> tuple[np.ndarray, tuple[int, int], tuple[float, float], tuple[float, float], tuple[int, int]]:
    """One ellipse given in mm (axes along a random direction), rasterised by pixel centre.

    Returns the tight crop, its offset, the true (major, minor) in mm, the same two lengths
    in pixels along each axis's own direction, and the slice size.
    """
    sr, sc = spacing
    a_mm, b_mm = semi_px[0] * min(sr, sc), semi_px[1] * min(sr, sc)
    theta = rng.uniform(0, math.pi)
    half_r = int(a_mm / sr) + 4
    half_c = int(a_mm / sc) + 4
    h, w = 2 * half_r + 1, 2 * half_c + 1
    cr, cc = half_r + rng.uniform(-0.5, 0.5), half_c + rng.uniform(-0.5, 0.5)
    r, c = np.indices((h, w)).astype(float)
    y, x = (r - cr) * sr, (c - cc) * sc
    u = x * math.cos(theta) + y * math.sin(theta)
    v = -x * math.sin(theta) + y * math.cos(theta)
    mask = (u / a_mm) ** 2 + (v / b_mm) ** 2 <= 1.0
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    crop = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    px_major = 2 * a_mm * math.hypot(math.cos(theta) / sc, math.sin(theta) / sr)
    px_minor = 2 * b_mm * math.hypot(math.sin(theta) / sc, math.cos(theta) / sr)
    return crop, (int(rows[0]), int(cols[0])), (2 * a_mm, 2 * b_mm), (px_major, px_minor), (h, w)


def accuracy(n: int, seed: int, spacing: tuple[float, float]) -> None:
    """Print the binned relative errors of every version for ``n`` random ellipses."""
    rng = np.random.default_rng(seed)
    errors: dict[str, dict[str, list[float]]] = {a: {b[2]: [] for b in BINS} for a in ANNOTATIONS}
    kept = dict.fromkeys(ANNOTATIONS, 0)
    for _ in range(n):
        major_px = rng.uniform(5.0, 60.0)
        minor_px = rng.uniform(max(4.0, 0.3 * major_px), major_px)
        crop, offset, (major, minor), px, hw = _raster(rng, (major_px / 2, minor_px / 2), spacing)
        for annotation in ANNOTATIONS:
            if annotation == "official-1.0.0" and int(crop.sum()) < 200:
                continue  # the v1.0.0 cluster floor
            fit = fit_component(annotation, crop, offset, spacing, hw)
            if fit is None:
                continue
            kept[annotation] += 1
            got = sorted((fit.major_mm, fit.minor_mm), reverse=True)
            for true, length_px, value in ((major, px[0], got[0]), (minor, px[1], got[1])):
                label = next(b[2] for b in BINS if b[0] <= length_px < b[1])
                errors[annotation][label].append(abs(value - true) / true)
    print(
        f"spacing (row, col) = {spacing} mm, {n} ellipses (axis lengths in pixels along the axis):"
    )
    print(f"  {'version':16s} {'kept':>5s}  " + "  ".join(f"{b[2]:>26s}" for b in BINS))
    print(f"  {'':16s} {'':>5s}  " + "  ".join(f"{'median / p95 / max %':>26s}" for _ in BINS))
    for annotation in ANNOTATIONS:
        cells = []
        for b in BINS:
            e = np.asarray(errors[annotation][b[2]]) * 100
            if e.size == 0:
                cells.append(f"{'-':>26s}")
            else:
                stats = (np.median(e), np.percentile(e, 95), e.max())
                cells.append(f"{'{:.2f} / {:.2f} / {:.2f}'.format(*stats):>20s} (n={e.size:4d})")
        print(f"  {annotation:16s} {kept[annotation]:5d}  " + "  ".join(cells))


def speed(cases: int, shape: tuple[int, int, int], seed: int) -> None:
    """Time the T/L planner per version on the build benchmark's synthetic volumes."""
    spec = _spec()
    ctx = CaseContext("bench", spec.tasks[0], "c", "test")
    with tempfile.TemporaryDirectory() as tmp:
        _generate(Path(tmp), cases, shape, seed)
        volumes = [
            load_volume(Path(tmp) / "Masks" / f"c{i:03d}.nii.gz", "labels") for i in range(cases)
        ]
        times: dict[str, float] = {}
        counts: dict[str, int] = {}
        for annotation in ANNOTATIONS:
            t0 = time.perf_counter()
            n = 0
            for labels in volumes:
                n += len(plan_tumour_lesion(labels, ctx, _NullSink(), PlanStats(), annotation))
            times[annotation] = (time.perf_counter() - t0) / cases
            counts[annotation] = n
        n_vox = int(np.prod(shape))
        lesion_slices = sum(
            int((labels.array == LESION).any(axis=tuple(b for b in range(3) if b != a)).sum())
            for labels in volumes
            for a in range(3)
        )
    print(f"T/L planner, {cases} volumes {shape} ({n_vox / 1e6:.1f} Mvoxel), 1 process:")
    print(f"  {lesion_slices / cases:.0f} slices with the lesion label per volume (3 planes)")
    for annotation in ANNOTATIONS:
        print(
            f"  {annotation:16s} {times[annotation]:.3f} s/volume, "
            f"{counts[annotation] / cases:.0f} samples/volume, "
            f"{times[annotation] / times['precise']:.2f}x precise"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=4000, help="Ellipses per spacing.")
    parser.add_argument("--shape", type=int, nargs=3, default=(192, 192, 48))
    parser.add_argument("--cases", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for spacing in ((1.0, 1.0), (0.8, 2.5)):
        accuracy(args.n, args.seed, spacing)
    speed(args.cases, tuple(args.shape), args.seed)


if __name__ == "__main__":
    main()
