"""Scoring + aggregation throughput: medvision-bench against the official summarizers.

Usage::

    python benchmarks/score.py [--n 1000000] [--seed 0] [--official-python PATH] [--no-official]
        [--python-reader]

What it does, in one run on the same synthetic records:

1. Draws ``n`` records (60 % detection, 25 % tumour/lesion size, 15 % angle/distance, 10 %
   failed answers) whose labels are real keys of the official ``label_map_regroup`` /
   ``label_map_rename`` (read from the official package), so both sides form the same groups.
2. **Ours, from the file** (the path ``medvision score`` and the report take): writes the
   records as a run's ``records.jsonl`` (each line also carries a typical ``raw_output`` and
   per-sample ``metrics``, which scoring does not read, so the file has a run's line size),
   then in a fresh child process times
   :func:`medvision.runs.records_arrow.read_scoring_table` (pyarrow's JSON reader straight into
   columns) + :func:`medvision.metrics.summarize_run`, and in two more, one after the other,
   the whole ``rescore(run_dir)`` of ``medvision score`` (records digest, read, summary,
   ``summary.json`` written): the first reads ``records.jsonl`` and writes the run's column
   file ``records.columns.arrow`` (as a finished ``eval`` does), the second reads the column
   file, checked against the records digest (:mod:`medvision.runs.columns_cache`). Each child
   reports its peak resident memory (``VmHWM`` of
   ``/proc/self/status``: the whole process, interpreter and imports included) and its
   summary, which must equal the in-memory one.
   ``--python-reader`` also times the Python reader (``read_records`` + ``dedupe`` +
   ``summarize_run``, one record object per line) in its own child (slow: about a minute).
   **Ours, in memory**: times :func:`medvision.metrics.summarize_run` on the in-memory records
   (records -> columns, per-sample scores, every official group table and model line).
3. Writes the same records in the official parsed-jsonl layout
   (``<model>/parsed/samples_<dataset>_<Task>_TaskNN_<Plane>.jsonl`` with ``doc``, ``target``
   as a string, ``filtered_resps`` and the stored ``nMAE``) and runs the official summarizer
   code of medvision-bm 1.2.1 in its own venv (``bash scripts/official_env.sh``). Its readers
   (``process_jsonl_file_*``, untimed: file reading is excluded on both sides) load the files;
   the benchmark-plan look-ups they make are answered from the synthetic plan, because the
   plans live in ``medvision_ds``, which is not installed. **Timed**: the official compute,
   ``group_by_anatomy_modality_slice`` + ``calculate_summary_metrics_per_anatomy_detection_task``,
   ``group_by_label_modality_slice`` + ``calculate_summary_metrics_per_anatomy_TL_task`` and
   ``calculate_summary_metrics_per_anatomy_AD_task`` (single process, their default). Their
   model lines are computed later from these group tables and are negligible.
4. Prints the times, the ratios against the official compute, the peak memory, and the
   largest difference between the two sides' group numbers (the official code parses in
   float32, so differences of ~1e-7 are expected).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import medvision
from medvision.metrics import get_protocol, summarize_run
from medvision.metrics.jsonvalues import loads
from medvision.schema import Record

ROOT = Path(__file__).resolve().parents[1]

_MAPS = """
import importlib.util, json, os, sys, types
root = os.path.dirname(importlib.util.find_spec("medvision_bm").origin)
for pkg in ("medvision_bm", "medvision_bm.utils"):
    m = types.ModuleType(pkg); m.__path__ = [os.path.join(root, *pkg.split(".")[1:])]
    sys.modules[pkg] = m
from medvision_bm.utils.configs import label_map_regroup, label_map_rename
print(json.dumps({"regroup": label_map_regroup, "rename": label_map_rename}))
"""

_OFFICIAL = r"""
import importlib.util, json, os, sys, time, types
work = sys.argv[1]
root = os.path.dirname(importlib.util.find_spec("medvision_bm").origin)
# Load only the summarizer modules: the package __init__ files import torch, datasets and
# lmms-eval, which the summarizers do not use.
for pkg in ("medvision_bm", "medvision_bm.utils", "medvision_bm.benchmark"):
    m = types.ModuleType(pkg); m.__path__ = [os.path.join(root, *pkg.split(".")[1:])]
    sys.modules[pkg] = m
mu = "medvision_bm.medvision_lmms_eval.lmms_eval.tasks.medvision.medvision_utils"
parts = mu.split(".")
for i in range(2, len(parts)):
    m = types.ModuleType(".".join(parts[:i])); m.__path__ = []; sys.modules[m.__name__] = m
stub = types.ModuleType(mu)
def _compute_physical_diagonal(*a, **k):
    raise RuntimeError("not reached: every record stores its nMAE")
stub._compute_physical_diagonal = _compute_physical_diagonal
sys.modules[mu] = stub
from medvision_bm.benchmark import summarize_detection_task as D
from medvision_bm.benchmark import summarize_TL_task as T
from medvision_bm.benchmark import summarize_AD_task as A
from medvision_bm.utils import parse_utils as P
from medvision_bm.utils.configs import label_map_rename

plan = json.load(open(os.path.join(work, "plan.json")))
def seg(ds, task):
    t = plan["seg"][ds][str(task)]
    return t["labels_map"], t["image_modality"]
def bio(ds, task):
    t = plan["bio"][ds][str(task)]
    return t["labels_map"], t["image_modality"]
def bio_target(ds, task):
    t = plan["bio"][ds][str(task)]
    return t["target_label"], t["image_modality"]
D.get_labelsMap_imgModality_from_seg_benchmark_plan = seg
T.get_labelsMap_imgModality_from_biometry_benchmark_plan = bio
T.get_targetLabel_imgModality_from_biometry_benchmark_plan = bio_target

parsed = os.path.join(work, "model", "parsed")
files = sorted(os.listdir(parsed))
det = [x for f in files if "_BoxCoordinate_" in f
       for x in D.process_jsonl_file_detection_task(os.path.join(parsed, f))]
tl = [x for f in files if "_TumorLesionSize_" in f
      for x in T.process_jsonl_file_TL_task(os.path.join(parsed, f))]
ad = [x for f in files if "_BiometricsFromLandmarks" in f
      for x in A.process_jsonl_file(os.path.join(parsed, f), None)]

t0 = time.perf_counter()
det_groups = D.calculate_summary_metrics_per_anatomy_detection_task(
    P.group_by_anatomy_modality_slice(det))
t1 = time.perf_counter()
grouped = P.group_by_label_modality_slice([x[:6] for x in tl])
mods = {"MRI": "MR", "CT": "CT", "ultrasound": "US", "X-ray": "XR", "PET": "PET"}
for mod, name, _t, _r, _task, sd, meta in tl:  # the doc_metas, built as theirs
    key = f"{label_map_rename[name]} @ {mods.get(mod, mod)} ({'SCA'[sd]})"
    grouped[key].setdefault("doc_metas", []).append(meta)
tl_groups = T.calculate_summary_metrics_per_anatomy_TL_task(grouped)
t2 = time.perf_counter()
ad_labels = A.calculate_summary_metrics_per_anatomy_AD_task(ad)
t3 = time.perf_counter()
print(json.dumps({
    "n": [len(det), len(tl), len(ad)],
    "seconds": {"detection": t1 - t0, "tl": t2 - t1, "ad": t3 - t2},
    "detection": det_groups, "tl": tl_groups, "ad": ad_labels,
}, default=float))
"""

_CHILD = r"""
import sys, time
from pathlib import Path

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024  # kB -> bytes
    return -1

mode, run = sys.argv[1], Path(sys.argv[2])
warm = run.parent / "warm"  # the first 1,000 lines: imports and first calls are not timed
from medvision.metrics import get_protocol, summarize_run
from medvision.runs.records import dedupe, read_records
from medvision.runs.records_arrow import read_scoring_table
from medvision.runs.scoring import rescore
from medvision.metrics.jsonvalues import dumps
proto = get_protocol("official")
out = {}
if mode == "arrow":
    summarize_run(read_scoring_table(warm / "records.jsonl")[0], proto)
    out["rss_before"] = status("VmRSS")
    t0 = time.perf_counter()
    got = read_scoring_table(run / "records.jsonl")
    if got is None:
        sys.exit("the fast reader refused the benchmark file")
    summary = summarize_run(got[0], proto)
elif mode == "rescore":
    rescore(warm)
    out["rss_before"] = status("VmRSS")
    out["had_columns"] = (run / "records.columns.arrow").exists()
    t0 = time.perf_counter()
    summary = rescore(run)
    summary = {k: v for k, v in summary.items() if k not in ("run", "records_digest")}
else:
    summarize_run(dedupe(read_records(warm / "records.jsonl"))[0], proto)
    out["rss_before"] = status("VmRSS")
    t0 = time.perf_counter()
    summary = summarize_run(dedupe(read_records(run / "records.jsonl"))[0], proto)
out["seconds"] = time.perf_counter() - t0
out["peak"] = status("VmHWM")
out["summary"] = summary
print(dumps(out))
"""

_FAKE_METRICS = {
    "detection": {"success": 1.0, "iou": 0.5, "f1": 0.5, "precision": 0.5, "recall": 0.5,
                  "mae": 0.05},
    "tl": {"success": 1.0, "mae": 2.5, "mre": 0.1, "nmae": 0.01},
    "ad": {"success": 1.0, "mae": 2.5, "mre": 0.1, "nmae": 0.01},
}  # fmt: skip


def _write_run(records: list[Record], run: Path) -> None:
    """Write ``records`` as a run's ``records.jsonl`` (and its first 1,000 lines as ``../warm``).

    Each line also gets a typical ``raw_output`` and per-sample ``metrics`` with the keys of
    its family (placeholder values: scoring reads neither), so lines have a run's size.
    """
    run.mkdir(parents=True, exist_ok=True)
    (run.parent / "warm").mkdir(exist_ok=True)
    names = [f.name for f in dataclasses.fields(Record)]
    with (run / "records.jsonl").open("w", encoding="utf-8") as fh:
        for i, r in enumerate(records):
            d = {k: getattr(r, k) for k in names}
            vals = ", ".join(f"{v:.3f}" for v in r.parsed) if r.parsed is not None else "unsure"
            d["raw_output"] = f"Looking at the image, the answer is <answer>{vals}</answer>."
            d["metrics"] = _FAKE_METRICS[r.family]
            line = json.dumps(d, separators=(",", ":")) + "\n"
            fh.write(line)
            if i < 1000:
                with (run.parent / "warm" / "records.jsonl").open("a", encoding="utf-8") as warm:
                    warm.write(line)


def _child(mode: str, run: Path) -> dict[str, Any]:
    """Run :data:`_CHILD` in a fresh interpreter; return what it printed."""
    env = dict(os.environ)
    src = str(Path(medvision.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, str(run)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if proc.returncode != 0:
        sys.exit(f"the {mode} child failed:\n{proc.stderr[-3000:]}")
    return dict(loads(proc.stdout.strip().splitlines()[-1]))


_MOD = {"MRI": "MR", "CT": "CT", "ultrasound": "US", "X-ray": "XR"}


def _official_python(arg: str | None) -> str | None:
    if arg:
        return arg
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "official_env.sh"), str(ROOT / ".venv-official")],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        print(f"official env unavailable: {proc.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    return proc.stdout.strip().splitlines()[-1]


def _records_and_files(
    n: int, seed: int, maps: dict[str, dict[str, str]], work: Path
) -> list[Record]:
    """Draw the records and write them in the official parsed layout under ``work``."""
    rng = np.random.default_rng(seed)
    regroup, rename = maps["regroup"], maps["rename"]
    det_names = sorted(regroup)[:: max(1, len(regroup) // 48)]
    tl_names = sorted(k for k in rename if any(w in k for w in ("tumor", "tumour", "lesion")))
    tl_names = tl_names[:12] or sorted(rename)[:12]
    datasets = [("DSA", "CT"), ("DSB", "MRI"), ("DSC", "CT"), ("DSD", "ultrasound"), ("DSE", "MRI")]
    plan: dict[str, Any] = {"seg": {}, "bio": {}}
    # Detection: each dataset has 3 tasks of 8 labels; T/L: each dataset has 3 tasks.
    for d, (ds, mod) in enumerate(datasets):
        plan["seg"][ds] = {}
        plan["bio"][ds] = {}
        for task in (1, 2, 3):
            names = [det_names[(d * 24 + (task - 1) * 8 + j) % len(det_names)] for j in range(8)]
            plan["seg"][ds][str(task)] = {
                "labels_map": {str(j + 1): nm for j, nm in enumerate(names)},
                "image_modality": mod,
            }
            tl_name = tl_names[(d * 3 + task - 1) % len(tl_names)]
            plan["bio"][ds][str(task)] = {
                "labels_map": {"1": tl_name},
                "target_label": 1,
                "image_modality": mod,
            }
    (work / "plan.json").write_text(json.dumps(plan))
    parsed_dir = work / "model" / "parsed"
    parsed_dir.mkdir(parents=True, exist_ok=True)

    # Family by family, as a run writes them (the runner walks the store, sorted by family)
    # and as the official code reads them (one parsed file per task).
    fam = np.sort(rng.choice(3, size=n, p=[0.6, 0.25, 0.15]))
    fail = rng.random(n) < 0.1
    ds_i = rng.integers(0, len(datasets), n)
    tasks = rng.integers(1, 4, n)
    plane = rng.choice(3, size=n, p=[0.2, 0.2, 0.6])
    lab = rng.integers(1, 9, n)
    xy0 = rng.uniform(0, 0.6, (n, 2))
    wh = rng.uniform(0.01, 0.4, (n, 2))
    box = np.concatenate([xy0, xy0 + wh], axis=1)
    noisy = box + rng.normal(0, 0.05, (n, 4))
    major = rng.uniform(3, 60, n)
    minor = major * rng.uniform(0.3, 1.0, n)
    ad_t = np.where(rng.random(n) < 0.02, 0.05, rng.uniform(1, 120, n))
    ad_p = ad_t * rng.uniform(0.5, 1.5, n)
    ad_ds = rng.integers(0, 2, n)
    ad_type = rng.integers(0, 2, n)
    ad_key = rng.integers(0, 6, n)

    records: list[Record] = []
    lines: dict[str, list[str]] = {}
    planes = ("Sagittal", "Coronal", "Axial")
    for i in range(n):
        f, ok = int(fam[i]), not bool(fail[i])
        ds, mod = datasets[int(ds_i[i])]
        common: dict[str, Any] = {
            "sample_id": f"b{i}",
            "case_id": "c",
            "slice_index": 0,
            "image_key": "k",
            "image_hw": (256, 256),
            "seen_hw": (256, 256),
            "seen_spacing_mm_rc": (1.0, 1.0),
            "box_img_ratio": None,
            "model": "m",
            "backend": "synthetic",
            "protocol": "official",
            "prompt_hash": "h",
            "metrics": {},
            "plane": int(plane[i]),
            "modality": mod,
            "status": "ok" if ok else "no_answer",
            "reason": "",
        }
        if f == 0:
            t = tuple(float(v) for v in box[i])
            p = tuple(float(v) for v in noisy[i]) if ok else None
            name = plan["seg"][ds][str(int(tasks[i]))]["labels_map"][str(int(lab[i]))]
            rec = Record(
                dataset=ds,
                family="detection",
                label_id=int(lab[i]),
                label_name=name,
                label_kind="organ",
                label_group=regroup[name],
                metric_type="",
                metric_key="",
                target=t,
                raw_output="",
                parsed=p,
                **common,
            )
            fname = f"samples_{ds}_BoxCoordinate_Task0{int(tasks[i])}_{planes[int(plane[i])]}.jsonl"
            doc: dict[str, Any] = {
                "label": int(lab[i]),
                "taskID": int(tasks[i]),
                "slice_dim": int(plane[i]),
            }
        elif f == 1:
            t = (float(major[i]), float(minor[i]))
            p = (float(major[i] * 1.2), float(minor[i] * 0.9)) if ok else None
            name = plan["bio"][ds][str(int(tasks[i]))]["labels_map"]["1"]
            rec = Record(
                dataset=ds,
                family="tl",
                label_id=1,
                label_name=rename[name],
                label_kind="tumour",
                label_group=rename[name],
                metric_type="axes",
                metric_key="",
                target=t,
                raw_output="",
                parsed=p,
                **common,
            )
            fname = (
                f"samples_{ds}_TumorLesionSize_Task0{int(tasks[i])}_{planes[int(plane[i])]}.jsonl"
            )
            doc = {"taskID": int(tasks[i]), "slice_dim": int(plane[i])}
        else:
            ds = ("Ceph-Biometrics-400", "FeTA24")[int(ad_ds[i])]
            mtype = ("angle", "distance")[int(ad_type[i])]
            key = f"K{int(ad_key[i])}"
            t = (float(ad_t[i]),)
            p = (float(ad_p[i]),) if ok else None
            common["modality"] = "X-ray" if ds.startswith("Ceph") else "MRI"
            rec = Record(
                dataset=ds,
                family="ad",
                label_id=None,
                label_name=key,
                label_kind="landmark",
                label_group=mtype,
                metric_type=mtype,
                metric_key=key,
                target=t,
                raw_output="",
                parsed=p,
                **common,
            )
            fname = f"samples_{ds}_BiometricsFromLandmarks_Task01_{planes[int(plane[i])]}.jsonl"
            doc = {"biometric_profile": {"metric_type": mtype, "metric_key": key}}
        records.append(rec)
        resp = ",".join(repr(v) for v in p) if p is not None else ""
        line: dict[str, Any] = {"doc": doc, "target": str(list(t)), "filtered_resps": [resp]}
        if f != 0:
            line["nMAE"] = {"NMAE": 0.0, "success": ok}
        lines.setdefault(fname, []).append(json.dumps(line))
    for fname, ls in lines.items():
        (parsed_dir / fname).write_text("\n".join(ls) + "\n")
    return records


def _max_diff(ours: dict[str, Any], theirs: dict[str, Any], keys: tuple[str, ...]) -> float:
    """Largest |ours - theirs| over shared groups and ``keys``; inf if the groups differ."""
    if set(ours) != set(theirs):
        return math.inf
    worst = 0.0
    for g, m in theirs.items():
        for k in keys:
            a, b = ours[g].get(k), m.get(k)
            a = math.nan if a is None else float(a)
            b = math.nan if b is None else float(b)
            if math.isnan(a) and math.isnan(b):
                continue
            worst = max(worst, abs(a - b))
    return worst


def main() -> None:
    """Run the benchmark and print the times and the ratio."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--official-python", default=None)
    ap.add_argument("--no-official", action="store_true")
    ap.add_argument(
        "--python-reader", action="store_true", help="also time the Python record reader"
    )
    args = ap.parse_args()
    py = None if args.no_official else _official_python(args.official_python)
    if py is not None:
        maps = json.loads(
            subprocess.run([py, "-c", _MAPS], capture_output=True, text=True, check=True).stdout
        )
    else:
        names = [f"organ{i}" for i in range(48)] + [f"tumor{i}" for i in range(12)]
        maps = {"regroup": {n: n.title() for n in names}, "rename": {n: n for n in names}}
    with tempfile.TemporaryDirectory(prefix="mv-score-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        records = _records_and_files(args.n, args.seed, maps, work)
        print(
            f"generated {len(records):,} records and the official files in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        # Warm-up on 1,000 records: imports and first-call set-up are not timed (the official
        # side's imports happen before its timer too).
        summarize_run(records[:1000], get_protocol("official"))
        t0 = time.perf_counter()
        summary = summarize_run(records, get_protocol("official"))
        ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        _write_run(records, work / "run")
        os.sync()  # on disk, as a run's records are when it is scored: no writeback in the timing
        size = (work / "run" / "records.jsonl").stat().st_size
        print(
            f"wrote records.jsonl ({size / 2**20:,.0f} MiB, {size / len(records):.0f} bytes a "
            f"line) in {time.perf_counter() - t0:.1f} s"
        )
        del records  # the children read the file; free the parent's objects first
        fast = _child("arrow", work / "run")
        mib = 2**20
        print(
            f"medvision-bench from records.jsonl (Arrow reader + summarize_run): "
            f"{fast['seconds']:.2f} s ({args.n / fast['seconds']:,.0f} records/s; budget 2 s), "
            f"peak RSS {fast['peak'] / mib:,.0f} MiB (budget 1024 MiB; "
            f"{fast['rss_before'] / mib:,.0f} MiB after imports); "
            f"same summary as in memory: {fast['summary'] == summary}"
        )
        full = _child("rescore", work / "run")
        print(
            f"medvision score, first time (records digest + records.jsonl + summary + "
            f"summary.json; writes records.columns.arrow; column file before: "
            f"{full['had_columns']}): {full['seconds']:.2f} s, peak RSS "
            f"{full['peak'] / mib:,.0f} MiB; same summary: {full['summary'] == summary}"
        )
        again = _child("rescore", work / "run")
        print(
            f"medvision score, again (records digest + records.columns.arrow + summary + "
            f"summary.json; column file before: {again['had_columns']}): "
            f"{again['seconds']:.2f} s (budget 2 s), peak RSS {again['peak'] / mib:,.0f} MiB "
            f"(budget 1024 MiB); same summary: {again['summary'] == summary}"
        )
        if args.python_reader:
            slow = _child("python", work / "run")
            print(
                f"medvision-bench from records.jsonl (Python reader + summarize_run): "
                f"{slow['seconds']:.2f} s, peak RSS {slow['peak'] / mib:,.0f} MiB; "
                f"same summary: {slow['summary'] == summary}"
            )
        print(
            f"medvision-bench summarize_run on in-memory records (score + aggregate): "
            f"{ours:.2f} s ({args.n / ours:,.0f} records/s)"
        )
        if py is None:
            return
        proc = subprocess.run(
            [py, "-c", _OFFICIAL, str(work)], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            sys.exit(f"official summarizer failed:\n{proc.stderr[-3000:]}")
        off = json.loads(proc.stdout.strip().splitlines()[-1])
    secs = off["seconds"]
    total = sum(secs.values())
    print(
        f"official medvision-bm 1.2.1 summarizer compute: {total:.2f} s "
        f"(detection {secs['detection']:.1f}, T/L {secs['tl']:.1f}, A/D {secs['ad']:.1f}; "
        f"{sum(off['n']):,} records read)"
    )
    print(
        f"speed-up from records.jsonl: {total / fast['seconds']:.1f}x; from the column file: "
        f"{total / again['seconds']:.1f}x; in memory: {total / ours:.1f}x (target >= 10x)"
    )
    det_keys = ("IoU", "F1", "Precision", "Recall", "SuccessRate", "avgMAE", "IoU>0.5", "MAE<0.5")
    err_keys = ("avgMAE", "avgMRE", "SuccessRate", "MRE<0.1", "MRE<0.5")
    d = _max_diff(summary["detection"]["groups"], off["detection"], det_keys)
    t = _max_diff(summary["tl"]["groups"], off["tl"], err_keys)
    a = _max_diff(summary["ad"]["labels"], off["ad"], err_keys)
    print(
        f"largest group difference ours vs official: detection {d:.2e}, T/L {t:.2e}, "
        f"A/D {a:.2e} ({len(off['detection'])}, {len(off['tl'])}, {len(off['ad'])} groups)"
    )


if __name__ == "__main__":
    main()
