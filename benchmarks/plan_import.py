"""Peak memory of importing an official plan: streamed (ijson + spool) vs ``json.load``.

Writes a synthetic ``benchmark_plan_*.json.gz`` of about ``--mb`` MB of JSON text (detection
cases with slice profiles on three axes, the official schema) without holding it in memory,
then measures, each in a fresh process (peak RSS read from ``/proc/self/status`` ``VmHWM``,
which ``execve`` resets, unlike ``ru_maxrss``):

1. ``stream``: :func:`~medvision.store.plan_stream.index_plan` with a spool, then every case
   read back with :func:`~medvision.store.plan_stream.load_case`, as the official-plan build's
   jobs do (the images are not rendered: no NIfTI files are involved);
2. ``json.load``: :func:`~medvision.store.official_plan.load_plan` then
   :func:`~medvision.store.official_plan.iter_cases`, the pre-streaming path, on a plan of
   ``--compare-mb`` MB (a 500 MB plan takes several GB that way; shared machines have less).

Usage: python benchmarks/plan_import.py [--mb 500] [--compare-mb 100]
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, sys, time
from pathlib import Path
mode, plan = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
if mode == "stream":
    from medvision.store.plan_stream import index_plan, load_case
    index = index_plan(plan, Path(plan).with_suffix(".spool"))
    n = 0
    for ref in index.cases:
        n += len(load_case(index.spool, ref).record["slice_profiles_z"])
else:
    from medvision.store.official_plan import iter_cases, load_plan
    n = sum(len(c.record["slice_profiles_z"]) for c in iter_cases(load_plan(plan)))
seconds = time.perf_counter() - t0
status = Path("/proc/self/status").read_text()
hwm_kb = int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1])
print(json.dumps({"peak_mib": hwm_kb / 1024, "seconds": seconds, "profiles": n}))
"""


def _case(rng: np.random.Generator, i: int, slices: int) -> dict[str, object]:
    profiles = {}
    for axis in "xyz":
        entries = []
        for s in range(slices):
            lo = rng.integers(0, 200, size=2).tolist()
            hi = [lo[0] + int(rng.integers(10, 90)), lo[1] + int(rng.integers(10, 90))]
            box = {
                "min_coords": lo,
                "max_coords": hi,
                "center_coords": [(a + b) // 2 for a, b in zip(lo, hi, strict=True)],
                "dimensions": [hi[0] - lo[0] + 1, hi[1] - lo[1] + 1],
                "sizes": [round((hi[0] - lo[0] + 1) * 0.78125, 3), round(hi[1] - lo[1] + 1, 3)],
            }
            entries.append({"slice_idx": s, "slice_profile": [{"label": 1, "bboxes": [box]}]})
        profiles[f"slice_profiles_{axis}"] = entries
    return {
        "case_ID": f"case_{i:06d}",
        "image_file": f"Images/case_{i:06d}.nii.gz",
        "mask_file": f"Masks/case_{i:06d}.nii.gz",
        "image_file_info": {"voxel_size": [0.781, 0.781, 1.0], "array_size": [512, 512, slices]},
        **profiles,
    }


def write_plan(path: Path, mb: float, seed: int = 0) -> tuple[int, int]:
    """Write a plan of about ``mb`` MB of JSON; return (cases, bytes of JSON text)."""
    rng = np.random.default_rng(seed)
    target = int(mb * 1e6)
    written, n = 0, 0
    with gzip.open(path, "wb", compresslevel=1) as f:

        def put(text: str) -> None:
            nonlocal written
            data = text.encode()
            f.write(data)
            written += len(data)

        put('{"dataset_info": {"dataset": "Bench"}, "tasks": [{"task_ID": "01", ')
        put('"task_type": "Detection", "labels_map": {"1": "liver"}, "train_cases": [')
        while written < target:
            put(("," if n else "") + json.dumps(_case(rng, n, 200)))
            n += 1
        put('], "test_cases": []}]}')
    return n, written


def measure(mode: str, plan: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(plan)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=500.0, help="JSON size of the big plan (MB)")
    ap.add_argument("--compare-mb", type=float, default=100.0, help="plan size for json.load")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for mb, modes in ((args.compare_mb, ("json.load", "stream")), (args.mb, ("stream",))):
            plan = Path(tmp) / f"benchmark_plan_{int(mb)}.json.gz"
            t0 = time.perf_counter()
            cases, size = write_plan(plan, mb)
            gen = time.perf_counter() - t0
            print(
                f"plan: {size / 1e6:.0f} MB JSON, {plan.stat().st_size / 1e6:.0f} MB gzip, "
                f"{cases} cases ({gen:.0f} s to write)",
                flush=True,
            )
            for mode in modes:
                r = measure(mode, plan)
                rows.append((mode, size / 1e6, r["peak_mib"], r["seconds"]))
                print(
                    f"  {mode:9s} peak RSS {r['peak_mib']:7.0f} MiB  {r['seconds']:6.1f} s",
                    flush=True,
                )
        by = {(m, round(s)): p for m, s, p, _ in rows}
        small = round(rows[0][1])
        print(
            f"json.load / stream peak memory on the {small} MB plan: "
            f"{by[('json.load', small)] / by[('stream', small)]:.1f}x"
        )
        big = rows[-1]
        verdict = "ok" if big[2] < 1024 else "OVER"
        print(f"stream on the {big[1]:.0f} MB plan: peak {big[2]:.0f} MiB (< 1024 MiB: {verdict})")


if __name__ == "__main__":
    main()
