"""``medvision demo``: the whole pipeline on the embedded ``mini`` dataset, offline.

generate mini sources -> build samples -> evaluate the three baselines -> leaderboard + report.
Every stage resumes: running the demo twice reuses what the first run finished.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from medvision.annotate.tl_versions import DEFAULT_ANNOTATION, Annotation
from medvision.builder.engine import BuildOptions, build_dataset
from medvision.catalog.registry import get_spec
from medvision.mini.generate import generate_mini
from medvision.runs.ground_truth import GroundTruthWarning
from medvision.runs.report import write_reports
from medvision.runs.runner import Runner, RunSpec

#: The baselines the demo evaluates, with the backend options of each.
DEMO_BACKENDS: dict[str, dict[str, Any]] = {
    "oracle": {"noise": 0.0},
    "oracle-noisy": {"noise": 0.1},
    "prior": {},
    "random": {},
}


def run_demo(
    out: str | Path,
    *,
    cases: int = 12,
    limit: int | None = 200,
    workers: int = 0,
    seed: int = 0,
    console: Console | None = None,
    annotation: Annotation = DEFAULT_ANNOTATION,
) -> dict[str, Any]:
    """Run the demo into ``out`` and return where everything went.

    Args:
        out: Working folder (``source-*``, ``dataset-*``, ``runs/``, ``report/``).
        cases: Mini cases to generate.
        limit: Samples per task configuration (dataset, family, plane), official style.
        workers: Build worker processes (0 = all cores).
        seed: Seed of the generator and of the random baseline.
        console: Where progress and the leaderboard are printed (``None``: silent).
        annotation: Ground-truth version of the build (another version than the default
            builds, runs and reports into folders suffixed with its name).

    Returns:
        ``{"dataset": path, "runs": [paths], "report": path, "summaries": {name: summary}}``.
    """
    root = Path(out)
    src = root / f"source-n{cases}-s{seed}"
    suffix = "" if annotation == DEFAULT_ANNOTATION else f"-{annotation}"
    ds_dir = root / f"dataset-n{cases}-s{seed}{suffix}"
    quiet = console is None
    con = console or Console(quiet=True)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=con,
        disable=quiet,
    )
    with progress:
        if not (src / "truth.json").exists():
            t = progress.add_task("generate mini", total=1)
            generate_mini(src, n_cases=cases, seed=seed)
            progress.update(t, completed=1)
        t = progress.add_task("build mini", total=None)
        manifest = build_dataset(
            get_spec("mini"),
            src,
            ds_dir,
            BuildOptions(workers=workers, seed=seed, annotation=annotation),
            on_progress=lambda d, n, _r: progress.update(t, completed=d, total=n),
        )
        run_dirs: list[Path] = []
        summaries: dict[str, Any] = {}
        note: str | None = None
        for name, options in DEMO_BACKENDS.items():
            backend = name.split("-")[0]
            spec = RunSpec(
                dataset_dir=str(ds_dir),
                backend=backend,
                model=name,
                protocol="paper-v1",
                limit=limit,
                seed=seed,
                backend_options=options,
            )
            run_dir = root / f"runs{suffix}" / name
            t = progress.add_task(f"eval {name}", total=None)

            def tick(done: int, total: int, task: TaskID = t) -> None:
                progress.update(task, completed=done, total=total)

            with warnings.catch_warnings():
                # The ground-truth note is the same for every baseline: printed once below.
                warnings.simplefilter("ignore", GroundTruthWarning)
                runner = Runner(spec, run_dir)
            note = note or runner.ground_truth_note
            summaries[name] = runner.run(on_progress=tick)
            run_dirs.append(run_dir)
    if note is not None:
        con.print(f"[yellow]warning:[/yellow] {note}", highlight=False)
    con.print(
        f"mini: {manifest.n_samples} samples, {manifest.n_images} images, "
        f"{len(manifest.skipped)} skipped cases"
    )
    write_reports(run_dirs, root / f"report{suffix}", console=con)
    return {
        "dataset": str(ds_dir),
        "runs": [str(p) for p in run_dirs],
        "report": str(root / f"report{suffix}" / "report.html"),
        "summaries": summaries,
    }
