"""Size and load time of the HTML report of the demo's 4 runs in headless Chromium.

Runs ``medvision demo`` into a folder (reused when it is already there), writes the report of
its 4 runs, and loads ``report.html`` several times in a 1400 x 900 frame
(:func:`medvision.testing.browser.load_report`). Prints the page size, the share taken by
embedded images, the load time of every try (set address -> ``load`` event, real time) beside
the 2 s target, and the layout checks (horizontal overflow at 1400 px as loaded and with
every section opened; bottom of the leaderboard).

Usage: python benchmarks/report_page.py [--work /tmp/medvision-report-bench] [--tries 5]
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path

from medvision.runs.demo import run_demo
from medvision.runs.report import write_reports
from medvision.testing.browser import load_report


def main() -> None:
    """Run the measurement and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", type=Path, default=Path("/tmp/medvision-report-bench"))
    ap.add_argument("--tries", type=int, default=5)
    args = ap.parse_args()
    t0 = time.perf_counter()
    demo = run_demo(args.work)
    runs = [Path(p) for p in demo["runs"]]
    out = args.work / "report-bench"
    t1 = time.perf_counter()
    write_reports(runs, out)
    t2 = time.perf_counter()
    page = out / "report.html"
    text = page.read_text(encoding="utf-8")
    images = sum(len(m) for m in re.findall(r"data:image/png;base64,[A-Za-z0-9+/=]+", text))
    size = page.stat().st_size
    loads = [load_report(page, width=1400, height=900) for _ in range(args.tries)]
    ms = [float(r.metrics["load_ms"]) for r in loads]
    m = loads[-1].metrics
    print(f"demo (4 runs): {t1 - t0:.1f} s; report written in {t2 - t1:.1f} s")
    print(f"page size: {size / 1e6:.2f} MB ({images / size:.0%} embedded PNG), {len(runs)} runs")
    print(
        f"load in headless Chromium, {args.tries} tries: median {statistics.median(ms):.0f} ms, "
        f"max {max(ms):.0f} ms; target 2000 ms (ratio max/target {max(ms) / 2000:.2f})"
    )
    print(
        f"1400 px window: scrollWidth {m['closed']['scroll']} / clientWidth "
        f"{m['closed']['client']} as loaded, {m['opened']['scroll']} / {m['opened']['client']} "
        f"with every section open; leaderboard ends at {m['board_bottom']:.0f} px; "
        f"console messages {sum(len(r.console) for r in loads)}"
    )


if __name__ == "__main__":
    main()
