"""Paper-layout tables (Tables 2-4), grouped by benchmark, from run summaries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medvision.metrics import get_protocol, summarize_run
from medvision.reports.paper_tables import NO_BENCHMARK, paper_tables, paper_tables_markdown
from medvision.schema import Record
from record_factory import make_record

GT = (0.2, 0.2, 0.6, 0.6)


def _summary(benchmark: str | None, records: list[Record]) -> dict[str, Any]:
    s = summarize_run(records, get_protocol("official"))
    s["run"] = {"protocol": "official", "benchmark": benchmark, "annotation": "official-1.4.0"}
    return s


def _records() -> list[Record]:
    recs = [make_record("detection", GT, GT) for _ in range(30)]  # Kidney @ CT (A), IoU 1
    recs += [make_record("detection", (0.0, 0.0, 0.1, 0.1), GT) for _ in range(30)]  # IoU 0
    recs += [  # 10 T/L, 3 of them fail: the others are 10 % off
        make_record("tl", None if i < 3 else (11.0, 5.5), (10.0, 5.0), label_name="liver tumor",
                    label_kind="tumour", metric_type="axes")
        for i in range(10)
    ]  # fmt: skip
    recs += [
        make_record("ad", (42.0,), (40.0,), dataset="Ceph-Biometrics-400", modality="X-ray",
                    metric_type="distance", metric_key="L-1-2", label_name="",
                    label_kind="landmark")
        for _ in range(4)
    ]  # fmt: skip
    return recs


def test_rows_follow_the_paper_columns_in_percent() -> None:
    tables = paper_tables({"m": _summary("paper-main", _records())})
    assert list(tables) == ["paper-main"]
    det = tables["paper-main"]["detection"][0]
    assert list(det)[:7] == ["model", "A-R", "A-P", "A-F1", "A-IoU", "A-SR", "A-IoU>.5"]
    assert det["A-IoU"] == 50.0 and det["A-SR"] == 100.0 and det["A-IoU>.5"] == 50.0
    assert det["TL-IoU"] is None  # no tumour/lesion detection group: "–", not 0
    tl = tables["paper-main"]["tl"][0]
    assert tl["MAE"] == 0.75  # mean over successes of (1.0 + 0.5) / 2 mm
    assert abs(tl["MRE"] - 10.0) < 1e-9 and tl["SR"] == 70.0
    ad = tables["paper-main"]["ad"][0]
    assert ad["Ceph-Dist MAE"] == 2.0 and abs(ad["Ceph-Dist MRE"] - 5.0) < 1e-9
    assert ad["Ceph-Dist MRE<.1"] == 100.0 and ad["FeTA-Dist MAE"] is None


def test_runs_are_grouped_by_benchmark() -> None:
    summaries = {
        "a": _summary("paper-main", _records()),
        "b": _summary(None, _records()),
        "c": _summary("paper-main", _records()),
    }
    tables = paper_tables(summaries)
    assert list(tables) == ["paper-main", NO_BENCHMARK]
    assert [r["model"] for r in tables["paper-main"]["detection"]] == ["a", "c"]
    md = paper_tables_markdown(summaries)
    assert md.index("### Benchmark: paper-main") < md.index(f"### Benchmark: {NO_BENCHMARK}")
    assert "- a: protocol official, ground truth official-1.4.0" in md
    # Half the boxes are exact, half miss: R, P, F1, IoU and IoU>.5 are 50 %, SR 100 %.
    assert "| a | 50.0 | 50.0 | 50.0 | 50.0 | 100.0 | 50.0 | – |" in md


def test_medvision_report_appends_the_tables_to_leaderboard_md(
    mini_store: Path, tmp_path: Path
) -> None:
    from medvision.runs.report import write_reports
    from medvision.runs.runner import Runner, RunSpec

    run = tmp_path / "oracle"
    Runner(RunSpec(dataset_dir=str(mini_store), backend="oracle", protocol="official",
                   limit=5), run).run()  # fmt: skip
    write_reports([run], tmp_path / "report", bootstrap=0, formats=("md",))
    text = (tmp_path / "report" / "leaderboard.md").read_text()
    assert f"### Benchmark: {NO_BENCHMARK}" in text
    assert "| Model | MAE | MRE | SR | MRE<0.1 | MRE<0.2 | MRE<0.3 |" in text
    assert "| oracle | 0.0 | 0.0 | 100.0 | 100.0 | 100.0 | 100.0 |" in text
