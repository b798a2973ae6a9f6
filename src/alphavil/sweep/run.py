"""Running a sweep: check the grid and the folder, hold the folder's lock, skip completed runs
of the same config (or refuse changed ones), print the progress line, and hand the remaining
runs to a backend (:mod:`alphavil.sweep.local` or :mod:`alphavil.sweep.ray`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from alphavil.config import ConfigError
from alphavil.config import load_config as _load
from alphavil.sweep.local import run_jobs as run_local_jobs
from alphavil.sweep.plan import Job, SweepConfig, changed_message, job_config, plan, run_state
from alphavil.sweep.ray import require_ray
from alphavil.sweep.ray import run_jobs as run_ray_jobs
from alphavil.sweep.workers import SweepError, SweepInterrupted, check_writable_dir, sweep_lock

BACKENDS = ("local", "ray")


def run_sweep(
    config: str | None,
    overrides: list[str],
    sweep: SweepConfig,
    log: Any = None,
    *,
    rerun_changed: bool = False,
    backend: str = "local",
    address: str | None = None,
) -> list[dict[str, Any]]:
    """Run every job not yet completed with its config; returns one result per job run now.

    ``backend``: ``"local"`` (worker processes, ``sweep.workers``) or ``"ray"`` (Ray tasks on a
    local Ray of ``sweep.workers × sweep.threads`` CPUs, or on the cluster at ``address``).

    Raises:
        ConfigError: a bad grid, backend or address, or an unwritable sweep folder.
        SweepError: another sweep holds the folder, or a completed run has another config
            and ``rerun_changed`` is false (nothing is started); Ray missing for ``"ray"``.
        SweepInterrupted: Ctrl-C (after the workers are stopped and the user is told).
    """
    out = log or sys.stderr
    if backend not in BACKENDS:
        raise ConfigError(f"--backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    if address is not None and backend != "ray":
        raise ConfigError("--address is the Ray cluster to use; it needs --backend ray")
    if backend == "ray":
        require_ray()  # one line naming the extra, before anything else
    jobs = plan(config, overrides, sweep)
    out_dir = Path(_load(config, overrides).out_dir)
    check_writable_dir(out_dir, "sweep folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    with sweep_lock(out_dir):
        return _run_locked(config, jobs, sweep, out_dir, out, rerun_changed, backend, address)


def _where(sweep: SweepConfig, backend: str, address: str | None) -> str:
    """Where the runs go, for the sweep's first line."""
    if backend == "ray":
        if address:
            return f"on the Ray cluster at {address}"
        return f"on a local Ray with {max(1, sweep.workers) * sweep.threads} CPUs"
    return f"with {sweep.workers or 1} worker(s)"


def _run_locked(
    config: str | None,
    jobs: list[Job],
    sweep: SweepConfig,
    out_dir: Path,
    out: Any,
    rerun_changed: bool,
    backend: str = "local",
    address: str | None = None,
) -> list[dict[str, Any]]:
    cfgs = {j.name: job_config(config, j) for j in jobs}
    todo: list[Job] = []
    changed: list[tuple[Path, list[str]]] = []
    rerun: set[str] = set()
    for j in jobs:
        path = Path(cfgs[j.name].out_dir) / j.name
        state, diffs = run_state(path, cfgs[j.name].to_dict(), cfgs[j.name])
        if state == "changed":
            changed.append((path, diffs))
            rerun.add(j.name)
        if state != "done":
            todo.append(j)
    if changed and not rerun_changed:
        raise SweepError(changed_message(changed))
    print(
        f"sweep: {len(jobs)} runs, {len(jobs) - len(todo)} already done, {len(todo)} to run"
        + (f" ({len(rerun)} with a changed config)" if rerun else "")
        + f" {_where(sweep, backend, address)} -> {out_dir}",
        file=out,
        flush=True,
    )
    results: list[dict[str, Any]] = []
    start = time.perf_counter()

    def report(res: dict[str, Any]) -> None:
        results.append(res)
        done, failed = len(results), sum(not r["ok"] for r in results)
        elapsed = time.perf_counter() - start
        eta = elapsed / done * (len(todo) - done)
        what = "ok" if res["ok"] else f"FAILED: {res['error']}"
        print(
            f"[{done}/{len(todo)}, {failed} failed, {elapsed / 60:.1f} min, eta "
            f"{eta / 60:.1f} min] {res['name']} {what} ({res['seconds']:.0f}s)",
            file=out,
            flush=True,
        )

    def interrupted() -> SweepInterrupted:
        print(
            f"sweep interrupted: {len(results)} runs finished, "
            f"{len(todo) - len(results)} will resume next time",
            file=out,
            flush=True,
        )
        return SweepInterrupted()

    if not todo:
        return results
    items = [(cfgs[j.name], j, j.name in rerun) for j in todo]
    if backend == "ray":
        run_ray_jobs(items, sweep, address, report, interrupted, out)
    else:
        run_local_jobs(items, sweep, report, interrupted)
    return results
