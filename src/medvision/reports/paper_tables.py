"""Result tables in the layout of the paper's Tables 2-4, grouped by benchmark.

One table set per benchmark (``summary["run"]["benchmark"]``; runs without one are grouped as
"no benchmark"), one row per run, columns as the paper prints them (reference paper-results.md
section 4.1):

* **Table 2, detection**: anatomy then tumour/lesion Recall, Precision, F1, IoU, SR and
  IoU>0.5, all in %, from the anatomy-vs-T/L split (sample-weighted over groups of N >= 50).
* **Table 3, T/L size**: MAE (mm), MRE, SR, MRE<0.1, MRE<0.2, MRE<0.3 (%), the official model
  line.
* **Table 4, A/D**: for Ceph distance, Ceph angle and FeTA distance, MAE (mm or degrees), MRE,
  SR and MRE<0.1 (%), the official group averages.

A number the run does not have is "–" (never 0). Each table says which protocol and
ground-truth version produced each row, so a row is never read against the paper's without
knowing whether the setups match.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "AD_GROUPS",
    "DETECTION_COLUMNS",
    "NO_BENCHMARK",
    "TL_COLUMNS",
    "by_benchmark",
    "paper_tables",
    "paper_tables_markdown",
]

NO_BENCHMARK = "no benchmark (every configuration of the build)"
#: (column, source key in the anatomy / tumour-lesion mean metrics).
DETECTION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("R", "Recall"),
    ("P", "Precision"),
    ("F1", "F1"),
    ("IoU", "IoU"),
    ("SR", "SuccessRate"),
    ("IoU>.5", "IoU>0.5"),
)
#: (column, key of the T/L model line, scale to the paper's unit).
TL_COLUMNS: tuple[tuple[str, str, float], ...] = (
    ("MAE", "MAE", 1.0),
    ("MRE", "MRE", 100.0),
    ("SR", "SR", 100.0),
    ("MRE<0.1", "MRE<0.1", 100.0),
    ("MRE<0.2", "MRE<0.2", 100.0),
    ("MRE<0.3", "MRE<0.3", 100.0),
)
#: (column prefix, A/D group average name) in the paper's order.
AD_GROUPS: tuple[tuple[str, str], ...] = (
    ("Ceph-Dist", "Ceph-Distance"),
    ("Ceph-Angle", "Ceph-Angle"),
    ("FeTA-Dist", "FeTA-Distance"),
)
_AD_METRICS: tuple[tuple[str, str, float], ...] = (
    ("MAE", "MAE", 1.0),
    ("MRE", "MRE", 100.0),
    ("SR", "SR", 100.0),
    ("MRE<.1", "MRE<0.1", 100.0),
)


def _num(value: Any, scale: float = 1.0) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value) * scale
    except (TypeError, ValueError):
        return None


def by_benchmark(summaries: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """Run names grouped by their benchmark, benchmarks in first-seen order."""
    out: dict[str, list[str]] = {}
    for name, summary in summaries.items():
        bench = (summary.get("run") or {}).get("benchmark") or NO_BENCHMARK
        out.setdefault(str(bench), []).append(name)
    return out


def _setup(summary: Mapping[str, Any]) -> str:
    run = summary.get("run") or {}
    protocol = run.get("protocol") or (summary.get("protocol") or {}).get("name") or "?"
    annotation = run.get("annotation") or "not recorded"
    return f"protocol {protocol}, ground truth {annotation}"


def paper_tables(summaries: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The paper-layout rows of each benchmark.

    Args:
        summaries: Run name -> ``summary.json`` content.

    Returns:
        ``{benchmark: {"detection": rows, "tl": rows, "ad": rows, "setup": {run: text}}}``; a
        row is ``{"model": run, column: value or None}`` in the paper's units (% for rates);
        a family with no run holding it has no rows.
    """
    out: dict[str, dict[str, Any]] = {}
    for bench, names in by_benchmark(summaries).items():
        det: list[dict[str, Any]] = []
        tl: list[dict[str, Any]] = []
        ad: list[dict[str, Any]] = []
        for name in names:
            s = summaries[name]
            if s.get("detection"):
                row: dict[str, Any] = {"model": name}
                for part, prefix in (("anatomy", "A"), ("tumor_lesion", "TL")):
                    mean = (s["detection"].get(part) or {}).get("mean_metrics") or {}
                    for col, key in DETECTION_COLUMNS:
                        row[f"{prefix}-{col}"] = _num(mean.get(key), 100.0)
                det.append(row)
            if s.get("tl"):
                line = s["tl"].get("model") or {}
                tl.append({"model": name, **{c: _num(line.get(k), f) for c, k, f in TL_COLUMNS}})
            if s.get("ad"):
                groups = s["ad"].get("groups") or {}
                row = {"model": name}
                for prefix, group in AD_GROUPS:
                    g = groups.get(group) or {}
                    for col, key, f in _AD_METRICS:
                        row[f"{prefix} {col}"] = _num(g.get(key), f)
                ad.append(row)
        out[bench] = {
            "detection": det,
            "tl": tl,
            "ad": ad,
            "setup": {n: _setup(summaries[n]) for n in names},
        }
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _table(rows: Sequence[Mapping[str, Any]]) -> str:
    cols = list(rows[0])
    lines = [
        "| " + " | ".join("Model" if c == "model" else c for c in cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def paper_tables_markdown(summaries: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown of :func:`paper_tables`: per benchmark, Tables 2-4 where runs have the family."""
    parts = ["## Paper-layout tables (by benchmark)\n"]
    for bench, t in paper_tables(summaries).items():
        parts.append(f"### Benchmark: {bench}\n")
        parts += [f"- {run}: {text}" for run, text in t["setup"].items()]
        parts.append("")
        titles = (
            (
                "detection",
                "Detection (Table 2 layout; %, anatomy A and tumour/lesion TL; groups of "
                "fewer than 50 samples are left out, as the official split)",
            ),
            ("tl", "Tumour/lesion size (Table 3 layout; MAE mm, rest %)"),
            (
                "ad",
                "Angle/distance (Table 4 layout; MAE mm or degrees, rest %; columns of "
                "Ceph-Biometrics-400 and FeTA24 only, as the paper)",
            ),
        )
        for fam, title in titles:
            if t[fam]:
                parts.append(f"{title}:\n")
                parts.append(_table(t[fam]))
    return "\n".join(parts)
