"""Projected time to build the whole MedVision dataset, from a per-core rate measured here.

Measures the build rate of this machine on full-size CT-like volumes (``benchmarks/build.py``'s
generator: int16 512 x 512 x 200 by default, 8 organs + lesions, one worker process, so the
rate is per core), then projects the wall time of the paper's 30.8M-sample build (Table 1 of
the paper, 22 datasets) on one 64-core node and on eight, assuming:

* the build scales linearly with cores (one case per worker, no shared state; the
  side-by-side benchmark measured build / I/O floor 1.19 to 1.26 at this full size, so
  decompression and slice encoding dominate and they are per-core work);
* a dataset's samples cost what the synthetic samples cost (slice size and label count drive
  the cost; real CT slices are 512 x 512 like these, MRI slices are smaller);
* source files are local or on a file system that keeps up (no download time).

The sample counts of the nine datasets added after the paper (official releases 1.2.0 and
1.3.0) are not published in the reference: the 31-dataset lines are therefore given per extra
million samples, on top of the 22-dataset build.

Usage: python benchmarks/projection.py [--cases 2] [--shape 512 512 200] [--rate R]
(``--rate`` skips the measurement and uses R samples/s/core.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.build import _generate, _spec

from medvision.builder.engine import BuildOptions, build_dataset

#: Samples (train + test) per dataset, millions: paper Table 1 (reference paper-results.md §1).
TABLE1_M = {
    "AbdomenAtlas1.0Mini": 6.8 + 2.9,
    "AbdomenCT-1K": 0.7 + 0.3,
    "ACDC": 0.0095 + 0.0048,
    "AMOS22": 0.8 + 0.3,
    "autoPET-III": 0.022 + 0.0097 + 0.0005 + 0.0002,
    "BCV15": 0.071 + 0.030,
    "BraTS24": 0.8 + 0.3 + 0.0079 + 0.0031,
    "CAMUS": 0.7 + 0.3,
    "Ceph-Biometrics-400": 0.0053 + 0.0023,
    "CrossMoDA": 0.0030 + 0.0010,
    "FeTA24": 0.034 + 0.015 + 0.0002 + 0.0001,
    "FLARE22": 0.072 + 0.033,
    "HNTSMRG24": 0.018 + 0.0066 + 0.0010 + 0.0004,
    "ISLES24": 0.0073 + 0.0025,
    "KiPA22": 0.026 + 0.011 + 0.0021 + 0.0010,
    "KiTS23": 0.080 + 0.035 + 0.0059 + 0.0026,
    "MSD": 0.2 + 0.1 + 0.0053 + 0.0022,
    "OAIZIB-CM": 0.5 + 0.2,
    "SKM-TEA": 0.2 + 0.1,
    "ToothFairy2": 1.0 + 0.4,
    "TopCoW24": 0.043 + 0.020,
    "TotalSegmentator": 9.6 + 4.0,
}
PAPER_TOTAL_M = 30.8  # the paper's headline count (Table 1 rows are rounded)


def measure(cases: int, shape: tuple[int, int, int]) -> float:
    """Samples per second of one worker process on generated full-size volumes."""
    with tempfile.TemporaryDirectory() as tmp:
        src, store = Path(tmp) / "src", Path(tmp) / "store"
        _generate(src, cases, shape, 0)
        t0 = time.perf_counter()
        manifest = build_dataset(_spec(), src, store, BuildOptions(workers=1))
        seconds = time.perf_counter() - t0
    rate = manifest.n_samples / seconds
    print(
        f"measured: {manifest.n_samples} samples from {cases} volumes of {shape} in "
        f"{seconds:.1f} s, one worker -> {rate:.1f} samples/s/core"
    )
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=2)
    ap.add_argument("--shape", type=int, nargs=3, default=(512, 512, 200))
    ap.add_argument("--rate", type=float, default=None, help="samples/s/core (skip measuring)")
    args = ap.parse_args()
    rate = args.rate if args.rate is not None else measure(args.cases, tuple(args.shape))
    table_sum = sum(TABLE1_M.values())
    print(f"Table 1 rows sum to {table_sum:.1f}M samples (paper total {PAPER_TOTAL_M}M)")
    print()
    print("| build | samples | 1 node x 64 cores | 8 nodes x 64 cores |")
    print("|---|---|---|---|")
    for name, millions in (("22 datasets (paper)", PAPER_TOTAL_M),):
        h1 = millions * 1e6 / (rate * 64) / 3600
        print(f"| {name} | {millions:.1f}M | {h1:.2f} h | {h1 / 8:.2f} h |")
    per_m = 1e6 / (rate * 64) / 3600
    print(
        f"| 31 datasets | 30.8M + the 9 later datasets (counts unpublished) | "
        f"{PAPER_TOTAL_M * per_m:.2f} h + {per_m:.3f} h per extra 1M | "
        f"{PAPER_TOTAL_M * per_m / 8:.2f} h + {per_m / 8:.4f} h per extra 1M |"
    )
    print()
    needed = PAPER_TOTAL_M * 1e6 / (2 * 3600 * 64)
    verdict = "meets" if rate >= needed else "misses"
    print(
        f"goal: 30.8M samples in 2 h on one 64-core node needs {needed:.1f} samples/s/core; "
        f"measured {rate:.1f}: {verdict} it"
    )
    print("largest datasets (1 node x 64 cores):")
    for name, millions in sorted(TABLE1_M.items(), key=lambda kv: -kv[1])[:5]:
        print(f"  {name}: {millions:.2f}M samples, {millions * 1e6 / (rate * 64) / 60:.0f} min")


if __name__ == "__main__":
    main()
