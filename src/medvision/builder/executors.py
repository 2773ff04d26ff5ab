"""Where build jobs run: in process, on a local process pool, or on Ray Data.

:func:`run_jobs` applies one picklable per-case function to every job and yields the results
as cases finish (any order). Pool workers die with the driver, ``kill -9`` included
(:mod:`medvision.builder.workers`); Ray joins the cluster in ``RAY_ADDRESS`` or starts a local
Ray of its own.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Literal, TypeVar

from medvision.builder.workers import init_worker

__all__ = ["Engine", "run_jobs"]

Engine = Literal["local", "ray"]
_J = TypeVar("_J")
_R = TypeVar("_R")


def run_jobs(fn: Callable[[_J], _R], jobs: list[_J], workers: int, engine: Engine) -> Iterator[_R]:
    """Apply ``fn`` to every job and yield the results as cases finish (any order)."""
    if engine == "ray":
        yield from _run_ray(fn, jobs, workers)
        return
    if workers <= 1 or len(jobs) <= 1:
        yield from map(fn, jobs)
        return
    # Submit at most 2 jobs per worker ahead: results come back as they finish (progress bars
    # move), and the pool never queues the whole job list's pickles at once.
    # Workers die with this process (kill -9 included): see medvision.builder.workers.
    with ProcessPoolExecutor(
        max_workers=workers, initializer=init_worker, initargs=(os.getpid(),)
    ) as pool:
        pending: set[Future[_R]] = set()
        it = iter(jobs)
        for job in it:
            pending.add(pool.submit(fn, job))
            if len(pending) >= 2 * workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()


def _ray_apply(fn: Callable[[Any], Any], row: dict[str, Any]) -> dict[str, Any]:
    """Ray Data row function: unpickle one job (pickled by this package), build it."""
    return {"result": pickle.dumps(fn(pickle.loads(row["job"])))}


def _run_ray(fn: Callable[[_J], _R], jobs: list[_J], workers: int) -> Iterator[_R]:
    """Run the same per-case function on Ray Data: one block (one task) per case."""
    import functools

    import ray  # lazy: optional dependency (extra "ray")

    if not jobs:
        return
    started = False
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init()
        else:
            # address="local": a fresh Ray of our own, never a cluster that `ray start` left
            # registered on this machine (ray.init() would join it, dead or not).
            ray.init(
                address="local",
                num_cpus=max(workers, 1),
                include_dashboard=False,
                log_to_driver=False,
            )
        started = True
    try:
        # Jobs travel as pickles so Arrow never has to type our dataclasses.
        items = [{"job": pickle.dumps(job)} for job in jobs]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        mapped = ds.map(functools.partial(_ray_apply, fn), num_cpus=1)
        for row in mapped.iter_rows():
            result: _R = pickle.loads(row["result"])
            yield result
    finally:
        if started:
            ray.shutdown()
