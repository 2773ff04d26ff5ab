"""Evaluation throughput: request preparation and concurrency efficiency of the openai backend.

Usage::

    python benchmarks/eval.py [--cases 4] [--official-n 60] [--latency 0.2] [--work DIR]

What it measures, side by side in one run:

1. **Request preparation** (samples/s from the dataset to ready-to-send request bytes).
   *Ours*: the runner's own path on the built mini store: sample rows from Parquet, prompt
   rendering, the stored slice by content hash rendered by the protocol's rule (``official``:
   percentiles on mini's MRI and X-ray), the OpenAI JSON body with the base64 data URL
   (:func:`medvision.backends.openai_compat.build_payload` + ``json.dumps``).
   *Official approach*: what the official lmms-eval task does per sample: load the NIfTI
   volume (:func:`medvision.volumes.load_volume`, nibabel, RAS+), cut the slice, min-max to
   uint8, encode the PNG, then the same prompt and body. The official code loads the volume
   two or three times per sample; this emulation loads it once, so the ratio is a lower bound.
   Target: ours at least 20x faster.
2. **Concurrency efficiency**: the fake OpenAI-compatible server runs in its own process with a
   fixed per-request latency (200 ms); the backend sends ``8 x c`` requests at concurrency
   ``c`` = 1, 8, 64. Efficiency = achieved throughput / ideal (``c / latency``).
   Target: at least 0.8 at 64.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from medvision.backends import ChatRequest, ImagePart, Message, TextPart
from medvision.backends.openai_compat import OpenAICompatBackend, build_payload
from medvision.builder.engine import BuildOptions, build_dataset
from medvision.catalog.registry import get_spec
from medvision.mini.generate import generate_mini
from medvision.runs.runner import Runner, RunSpec
from medvision.schema import Sample
from medvision.store import open_dataset
from medvision.tasks import render_prompt
from medvision.volumes import load_volume
from medvision.volumes.png import encode_png
from medvision.volumes.render import to_uint8
from medvision.volumes.slicing import slice_volume

MODEL = "fake-vlm"


def _body_bytes(request: ChatRequest) -> bytes:
    return json.dumps(build_payload(request, MODEL)).encode("utf-8")


def prepare_ours(store: Path, run_dir: Path) -> tuple[int, float]:
    """Samples from Parquet -> request bodies, through the runner's request builder."""
    start = time.perf_counter()
    spec = RunSpec(dataset_dir=str(store), backend="openai", model=MODEL, protocol="official")
    runner = Runner(spec, run_dir)
    samples = runner.samples()  # the run's selection, read once (as Runner.run reads it)
    n_bytes = 0
    for s in samples:
        n_bytes += len(_body_bytes(runner._request(s, {})))
    return len(samples), time.perf_counter() - start


def _volume_path(source: Path, s: Sample) -> Path:
    folder = "Images-XR" if s.modality == "X-ray" else "Images-MR"
    return source / folder / f"{s.case_id.split('-', 1)[1]}.nii.gz"


def prepare_official(store: Path, source: Path, n: int) -> tuple[int, float]:
    """The official approach per sample: NIfTI volume -> slice -> min-max -> PNG -> body."""
    samples = open_dataset(store).samples(split="test")[:n]
    start = time.perf_counter()
    for s in samples:
        volume = load_volume(_volume_path(source, s), "image")
        sl = slice_volume(volume, s.plane, s.slice_index)
        png = encode_png(to_uint8(sl.pixels, method="minmax"))
        text = render_prompt(s, "official", seen_hw=sl.hw, seen_spacing_mm_rc=sl.spacing_mm_rc)
        msg = Message("user", (TextPart(text), ImagePart(png)))
        _body_bytes(ChatRequest(s.sample_id, (msg,)))
    return len(samples), time.perf_counter() - start


def concurrency_efficiency(latency_s: float, levels: tuple[int, ...], store: Path) -> None:
    """Start the fake server in its own process and time the backend at each concurrency."""
    command = [sys.executable, "-m", "medvision.testing.fake_openai", "--port", "0"]
    command += ["--latency", str(latency_s), "--model", MODEL]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"(http://\S+/v1)", line)
        if match is None:
            raise RuntimeError(f"fake server did not start: {line!r}")
        url = match.group(1)
        ds = open_dataset(store)
        samples = ds.samples(split="test")
        png = ds.image(samples[0].image_key)
        requests = [
            ChatRequest(f"r{i}", (Message("user", (TextPart(f"question {i}"), ImagePart(png))),))
            for i in range(8 * max(levels))
        ]
        OpenAICompatBackend(MODEL, url).generate(requests[:2])  # warm the server process
        print(f"\nconcurrency efficiency (fake server, {latency_s * 1000:.0f} ms per request)")
        print(
            f"{'concurrency':>12} {'requests':>9} {'seconds':>8} {'req/s':>8} {'ideal':>8} "
            f"{'eff':>6} {'client CPU ms/req':>18}"
        )
        for c in levels:
            n = 8 * c
            backend = OpenAICompatBackend(MODEL, url, concurrency=c)
            cpu0, start = time.process_time(), time.perf_counter()
            out = backend.generate(requests[:n])
            elapsed = time.perf_counter() - start
            cpu_ms = (time.process_time() - cpu0) / n * 1000
            errors = sum(r.error is not None for r in out)
            rate, ideal = n / elapsed, c / latency_s
            print(
                f"{c:>12} {n:>9} {elapsed:>8.2f} {rate:>8.1f} {ideal:>8.1f} "
                f"{rate / ideal:>6.2f} {cpu_ms:>18.2f}" + (f"  ({errors} errors)" if errors else "")
            )
        # Server and client share this machine's cores; other load lowers the numbers.
        print(
            f"load average (1 min) after the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    """Run both measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=4, help="mini cases to build")
    parser.add_argument("--official-n", type=int, default=60, help="samples for the official way")
    parser.add_argument("--latency", type=float, default=0.2, help="server latency in seconds")
    parser.add_argument("--levels", default="1,8,64", help="concurrency levels")
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: temp)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="mv-bench-eval-"))
    source, store = work / f"source-{args.cases}", work / f"store-{args.cases}"
    if not (source / "truth.json").exists():
        generate_mini(source, n_cases=args.cases, seed=0)
    build_dataset(get_spec("mini"), source, store, BuildOptions(workers=1))

    n_ours, t_ours = prepare_ours(store, work / "run")
    n_off, t_off = prepare_official(store, source, args.official_n)
    ours, official = n_ours / t_ours, n_off / t_off
    print("request preparation (dataset -> ready-to-send OpenAI request body)")
    print(
        f"  ours (Parquet store):            {n_ours:6d} samples in {t_ours:7.2f} s = {ours:9.1f}/s"
    )
    print(
        f"  official (NIfTI per sample, 1x): {n_off:6d} samples in {t_off:7.2f} s = "
        f"{official:9.1f}/s"
    )
    print(f"  ratio ours/official: {ours / official:.1f}x (target >= 20x)")
    levels = tuple(int(x) for x in args.levels.split(","))
    concurrency_efficiency(args.latency, levels, store)


if __name__ == "__main__":
    main()
