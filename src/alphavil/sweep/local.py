"""``alphavil sweep --backend local`` (the default): the runs of a sweep in worker processes.

``sweep.workers`` spawned single-job processes (``sweep.workers = 0``: one after another in this
process), each with ``OMP_NUM_THREADS`` = ``sweep.threads`` unless it is set. Workers ignore
SIGINT and die with the sweep process (:mod:`alphavil.sweep.workers`); on Ctrl-C the queued runs
are cancelled and the running workers terminated (SIGTERM, SIGKILL after a few seconds).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any

from alphavil.config import RunConfig
from alphavil.sweep.plan import Job, SweepConfig
from alphavil.sweep.workers import init_worker, run_job, sigint_ignored, stop_workers


def run_jobs(
    items: list[tuple[RunConfig, Job, bool]],
    sweep: SweepConfig,
    report: Callable[[dict[str, Any]], None],
    on_interrupt: Callable[[], BaseException],
) -> None:
    """Run ``items`` (config, job, overwrite) in ``sweep.workers`` processes; ``report`` gets
    each result as it arrives. Ctrl-C: ``on_interrupt()`` tells the user, the workers are
    stopped, and what ``on_interrupt`` returned is raised."""
    if sweep.workers == 0:
        try:
            for cfg, job, overwrite in items:
                report(run_job(cfg, job, overwrite))
        except KeyboardInterrupt:
            raise on_interrupt() from None
        return
    os.environ.setdefault("OMP_NUM_THREADS", str(sweep.threads))
    with sigint_ignored():  # workers start (on submit) with SIGINT ignored
        pool = ProcessPoolExecutor(
            max_workers=min(sweep.workers, len(items)),
            mp_context=get_context("spawn"),
            initializer=init_worker,
            initargs=(os.getpid(),),
        )
        pending: dict[Future[dict[str, Any]], Job] = {
            pool.submit(run_job, cfg, job, overwrite): job for cfg, job, overwrite in items
        }
    try:
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                job = pending.pop(fut)
                try:
                    res = fut.result()
                except BrokenProcessPool:
                    res = {
                        "name": job.name,
                        "ok": False,
                        "seconds": 0.0,
                        "error": "its worker process died (killed? out of memory?)",
                    }
                report(res)
    except KeyboardInterrupt:
        err = on_interrupt()
        with sigint_ignored():
            stop_workers(pool)
        raise err from None
    except BaseException:
        with sigint_ignored():
            stop_workers(pool)
        raise
    pool.shutdown()
