"""Cost of the content hash of source files, side by side with loading the same files.

Writes N CT-like ``.nii.gz`` volumes (int16, smooth body, noise), then times, per file:
sha256 of the compressed bytes (what :mod:`medvision.builder.sources` fingerprints) and
``load_volume`` (what the build does with the same file anyway). Prints both and their ratio
(the hash's share of the load; the build's planning and PNG encoding come on top of the
load, so the hash's share of a whole build is smaller still).

Usage: python benchmarks/source_fingerprint.py [--files 4] [--shape 256 256 96]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from medvision.store.writer import sha256_file
from medvision.volumes import load_volume


def _volume(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x, y, z = np.ogrid[: shape[0], : shape[1], : shape[2]]
    c = [s / 2 for s in shape]
    body = ((x - c[0]) / c[0]) ** 2 + ((y - c[1]) / c[1]) ** 2 < 0.8
    hu = np.where(body, 40, -1000) + rng.normal(0, 20, shape) * (z >= 0)
    return hu.astype(np.int16)


def main() -> None:
    """Write the files, time hashing and loading, print the side-by-side figures."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--shape", type=int, nargs=3, default=(256, 256, 96))
    args = ap.parse_args()
    shape = (args.shape[0], args.shape[1], args.shape[2])
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.files):
            path = Path(tmp) / f"case_{i:03d}.nii.gz"
            nib.save(nib.Nifti1Image(_volume(shape, i), np.diag([0.8, 0.8, 2.5, 1])), path)
            paths.append(path)
        mb = sum(p.stat().st_size for p in paths) / 1e6
        t0 = time.perf_counter()
        for p in paths:
            sha256_file(p)
        t_hash = time.perf_counter() - t0
        t0 = time.perf_counter()
        for p in paths:
            load_volume(p, "image")
        t_load = time.perf_counter() - t0
    print(f"{args.files} files of shape {list(shape)}, {mb:.1f} MB compressed")
    print(f"sha256 : {t_hash:.3f} s ({mb / t_hash:.0f} MB/s of compressed file)")
    print(f"load   : {t_load:.3f} s")
    print(f"hash / load = {t_hash / t_load:.3f}")


if __name__ == "__main__":
    main()
