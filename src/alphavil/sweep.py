"""Sweeps: methods × target tasks × seeds as parallel single-threaded worker processes.

Resumable. A run counts as done only when its ``summary.json`` says completed *and* its
``config.json`` equals the run's requested resolved config (JSON round-tripped; the keys
``out_dir``, where the folder happens to live, and ``sweep``, the grid rather than the run, are
not compared, and an option missing from an older ``config.json`` matches when the requested
value is that option's default, i.e. the run predates the option). A completed run of a
different config stops the sweep before anything starts, with one line naming the run and the
keys that differ; ``--rerun-changed`` reruns those runs instead. Every other run is started
with ``execute(..., resume=True)``: an unfinished run continues from its last whole epoch, so a
sweep interrupted by Ctrl-C, a crash or kill -9 picks up where it stopped. A run that fails is
recorded in its directory as ``error.json`` (message and traceback) and the sweep carries on;
the next sweep retries it. Two one-thread processes beat one two-thread process for small
models on a 2-core CPU (data-and-machine.md §4), hence the defaults.

One sweep per folder: the sweep holds ``OUT_DIR/.sweep.lock`` (it contains the holder's pid)
locked with ``fcntl.flock`` on the open file, and a second sweep on the same folder stops with
a line naming that pid. The kernel drops an flock when its process ends however it ends (crash,
kill -9, power loss), so a dead sweep never leaves a stale lock and nothing has to be cleaned
up by hand; the file itself is left in place (deleting it would race with a sweep that has just
opened it), only the lock on it counts. Where ``fcntl`` is missing (Windows) there is no lock.

Ctrl-C: workers ignore SIGINT themselves; the parent cancels the queued runs, prints
``sweep interrupted: N runs finished, M will resume next time``, terminates the running
workers (SIGTERM, SIGKILL after a few seconds) and exits 130 without waiting for a run to end.
Workers also end when the sweep process dies (kill -9): ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` on
Linux plus a thread that polls the parent's pid.

Backends: ``local`` (default) is the process pool above; ``ray`` (``--backend ray [--address
ADDR]``, :mod:`alphavil.ray_backend`) runs each remaining run as a Ray task on a local Ray or a
cluster. Planning, the config check, the lock, ``error.json`` and the progress line are this
module's for both; only where :func:`run_job` executes differs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from alphavil.config import (
    POPULATION_METHODS,
    ConfigError,
    RunConfig,
    bounded,
    choice,
    has_target,
)
from alphavil.config import load_config as _load
from alphavil.config_diff import config_differences
from alphavil.methods import MethodImportError, get_method, method_names
from alphavil.processes import SweepError, check_writable_dir, sweep_lock
from alphavil.processes import init_worker as _init_worker
from alphavil.processes import one_line as _one_line
from alphavil.processes import sigint_ignored as _sigint_ignored
from alphavil.processes import stop_workers as _stop_workers
from alphavil.runs import MARKER, read_json, write_json

BACKENDS = ("local", "ray")


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a sweep; the user has already been told what finished (exit 130)."""


@dataclass
class SweepConfig:
    """``[sweep]`` table: the grid a sweep runs (CLI flags override it)."""

    methods: list[str] = field(default_factory=lambda: ["single", "multitask", "diw", "alphavil"])
    targets: list[str] = field(default_factory=list)  # empty: every task of the data
    seeds: list[int] = field(default_factory=lambda: [0])
    workers: int = bounded(2, 0)  # parallel processes; 0 runs in this process
    threads: int = bounded(1, 1)  # torch threads per worker
    # Named configurations instead of bare methods: name -> overrides, e.g.
    # {"single-lr0.025" = ["train.method=single", "train.optimizer.lr=0.025"]}. Each run is
    # labelled with its variant's name (the report groups by label). Empty: one per method.
    variants: dict[str, list[str]] = field(default_factory=dict)
    # Job order: "method" runs each method's seeds together; "seed" runs every method of a
    # seed before the next seed, so an interrupted sweep leaves complete paired seeds.
    order: str = choice("method", "method", "seed")


@dataclass(frozen=True)
class Job:
    """One run of a sweep."""

    name: str
    overrides: tuple[str, ...]


def _variants(sweep: SweepConfig) -> dict[str, list[str]]:
    """The sweep's named configurations: its ``variants`` or one per method."""
    allowed = (*method_names(), *POPULATION_METHODS)
    if sweep.variants:
        for name, ov in sweep.variants.items():
            if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
                raise ConfigError(
                    f"sweep.variants: name {name!r} must be letters, digits, '-', '_' or '.'"
                )
            if not isinstance(ov, list) or not all(isinstance(o, str) for o in ov):
                raise ConfigError(
                    f"sweep.variants.{name}: expected a list of key=value strings, got {ov!r}"
                )
        return {name: list(ov) for name, ov in sweep.variants.items()}
    for m in sweep.methods:
        if m not in allowed and ":" not in m:
            raise ConfigError(
                f"sweep.methods: {m!r} is not one of {', '.join(allowed)}, "
                "or an import path 'package.module:Class'"
            )
        if m not in allowed:
            try:
                get_method(m)
            except MethodImportError as err:
                raise ConfigError(f"sweep.methods: {err}") from None
    # an import path's run folders are named with '.' for ':'
    return {m.replace(":", "."): [f"train.method={m}"] for m in sweep.methods}


def plan(config: str | None, overrides: list[str], sweep: SweepConfig) -> list[Job]:
    """The runs of the grid, validated (unknown methods/targets and an empty grid raise
    :class:`ConfigError`)."""
    base = _load(config, overrides)
    tasks = list(base.train.tasks) or base.task_names()
    for key in ("methods", "targets", "seeds"):
        values = getattr(sweep, key)
        if len(set(values)) != len(values):
            raise ConfigError(f"sweep.{key}: {values} lists a value twice")
    variants = _variants(sweep)
    if not variants:
        raise ConfigError("sweep.methods: empty (and no sweep.variants); the grid has no runs")
    if not sweep.seeds:
        raise ConfigError("sweep.seeds: empty; the grid has no runs")
    targets = sweep.targets or tasks
    if not targets:
        raise ConfigError("sweep.targets: no target tasks; the grid has no runs")
    for t in targets:
        if t not in tasks:
            raise ConfigError(f"sweep.targets: {t!r} is not a task; tasks: {', '.join(tasks)}")
    jobs: list[tuple[int, int, Job]] = []
    for v_index, (variant, v_overrides) in enumerate(variants.items()):
        method = _load(config, [*overrides, *v_overrides]).train.method
        per_target = has_target(method)
        for target in targets if per_target else [targets[0]]:
            for seed in sweep.seeds:
                name = f"{variant}-{target}-s{seed}" if per_target else f"{variant}-s{seed}"
                ov = (
                    *overrides,
                    *v_overrides,
                    f"train.target={target}",
                    f"train.seed={seed}",
                    f"train.threads={sweep.threads}",
                    f"name={name}",
                )
                if sweep.variants:
                    ov = (*ov, f"label={variant}")
                _load(config, list(ov))  # validate every job before starting any
                jobs.append((seed, v_index, Job(name, ov)))
    if sweep.order == "seed":
        jobs.sort(key=lambda j: (sweep.seeds.index(j[0]), j[1]))  # stable within a variant
    return [j for _, _, j in jobs]


def job_config(config: str | None, job: Job) -> RunConfig:
    """The resolved config of ``job``, without the ``[sweep]`` table (the grid is not part of a
    run's config, so editing the grid does not make finished runs look changed)."""
    cfg = _load(config, list(job.overrides))
    cfg.extra.pop("sweep", None)
    return cfg


def run_state(
    run_dir: Path, requested: dict[str, Any], cfg: RunConfig | None = None
) -> tuple[str, list[str]]:
    """Whether ``run_dir`` holds a completed run of ``requested`` (a resolved config dict;
    ``cfg``'s defaults forgive options added since the run, see :mod:`alphavil.config_diff`).

    Returns:
        ``("done", [])``; ``("changed", ["train.epochs: 2 -> 3", ...])`` for a completed run
        of another config; ``("todo", [])`` when there is no completed run (none, unfinished,
        failed or unreadable).
    """
    try:
        summary = read_json(run_dir / "summary.json")
    except (OSError, ValueError):
        return "todo", []
    if not isinstance(summary, dict) or summary.get("status") != "completed":
        return "todo", []
    try:
        stored = read_json(run_dir / "config.json")
    except (OSError, ValueError):
        return "changed", ["config.json missing or unreadable"]
    if not isinstance(stored, dict):
        return "changed", ["config.json is not a JSON object"]
    diffs = config_differences(stored, requested, cfg)
    return ("changed" if diffs else "done"), diffs


def is_done(run_dir: Path, requested: dict[str, Any] | None = None) -> bool:
    """Whether ``run_dir`` holds a completed run (of ``requested``, when given)."""
    if requested is not None:
        return run_state(run_dir, requested)[0] == "done"
    try:
        summary = read_json(run_dir / "summary.json")
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and summary.get("status") == "completed"


def _changed_message(changed: list[tuple[Path, list[str]]]) -> str:
    path, diffs = changed[0]
    shown = "; ".join(diffs[:3]) + (f"; {len(diffs) - 3} more keys" if len(diffs) > 3 else "")
    msg = f"{path} was run with a different config ({shown})"
    if len(changed) == 1:
        return msg + "; pass --rerun-changed to rerun it"
    names = ", ".join(p.name for p, _ in changed[1:4]) + (", ..." if len(changed) > 4 else "")
    return (
        f"{msg}, and so were {len(changed) - 1} more runs ({names}); "
        "pass --rerun-changed to rerun them"
    )


def run_job(cfg: RunConfig, job: Job, overwrite: bool = False) -> dict[str, Any]:
    """Run one job (in a worker process), resuming an unfinished run of the same config;
    failures are written to ``error.json`` in the run directory (if alphavil owns it)."""
    path = Path(cfg.out_dir) / job.name
    t0 = time.perf_counter()
    try:
        from alphavil.runner import execute

        summary = execute(cfg, path, overwrite=overwrite, resume=True, show_progress=False)
        (path / "error.json").unlink(missing_ok=True)
        return {
            "name": job.name,
            "ok": True,
            "seconds": time.perf_counter() - t0,
            "summary": summary,
        }
    except Exception as err:
        message = _one_line(f"{type(err).__name__}: {err}")
        if (path / MARKER).is_file():  # never write into a folder alphavil does not own
            with contextlib.suppress(OSError):
                write_json(
                    path / "error.json", {"error": message, "traceback": traceback.format_exc()}
                )
        return {
            "name": job.name,
            "ok": False,
            "seconds": time.perf_counter() - t0,
            "error": message,
        }


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
        from alphavil.ray_backend import require_ray

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
        raise SweepError(_changed_message(changed))
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
    if backend == "ray":
        from alphavil import ray_backend

        items = [(cfgs[j.name], j, j.name in rerun) for j in todo]
        ray_backend.run_jobs(items, sweep, address, report, interrupted, out)
        return results
    if sweep.workers == 0:
        try:
            for job in todo:
                report(run_job(cfgs[job.name], job, job.name in rerun))
        except KeyboardInterrupt:
            raise interrupted() from None
        return results
    os.environ.setdefault("OMP_NUM_THREADS", str(sweep.threads))
    with _sigint_ignored():  # workers start (on submit) with SIGINT ignored
        pool = ProcessPoolExecutor(
            max_workers=min(sweep.workers, len(todo)),
            mp_context=get_context("spawn"),
            initializer=_init_worker,
            initargs=(os.getpid(),),
        )
        pending: dict[Future[dict[str, Any]], Job] = {
            pool.submit(run_job, cfgs[j.name], j, j.name in rerun): j for j in todo
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
        err = interrupted()
        with _sigint_ignored():
            _stop_workers(pool)
        raise err from None
    except BaseException:
        with _sigint_ignored():
            _stop_workers(pool)
        raise
    pool.shutdown()
    return results


def cmd_sweep(args: argparse.Namespace) -> int:
    """``alphavil sweep``."""
    cfg = _load(args.config, args.overrides)
    sweep = cfg.extra.get("sweep", SweepConfig())
    if args.methods and sweep.variants:
        names = args.methods.split(",")
        unknown = [n for n in names if n not in sweep.variants]
        if unknown:
            raise ConfigError(
                f"--methods: {unknown} are not variants of this sweep; "
                f"variants: {', '.join(sweep.variants)}"
            )
        sweep.variants = {n: sweep.variants[n] for n in names}
    elif args.methods:
        sweep.methods = args.methods.split(",")
    if args.targets:
        sweep.targets = args.targets.split(",")
    if args.seeds:
        sweep.seeds = parse_seeds(args.seeds)
    if args.workers is not None:
        if args.workers < 0:
            raise ConfigError(f"--workers must be >= 0 (0 = in this process), got {args.workers}")
        sweep.workers = args.workers
    results = run_sweep(
        args.config,
        args.overrides,
        sweep,
        rerun_changed=args.rerun_changed,
        backend=getattr(args, "backend", "local"),
        address=getattr(args, "address", None),
    )
    from alphavil.report import collect_runs, format_table

    try:
        print(format_table(collect_runs(Path(cfg.out_dir))))
    except (OSError, ValueError) as err:  # a broken folder beside the runs: the sweep still ran
        print(f"sweep: no table ({_one_line(str(err))})", file=sys.stderr)
    return 1 if any(not r["ok"] for r in results) else 0


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0..4]; ``"1,3,5"`` -> [1, 3, 5]."""
    try:
        if "-" in text:
            lo, hi = text.split("-")
            if int(lo) > int(hi):
                raise ValueError
            return list(range(int(lo), int(hi) + 1))
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise ConfigError(
            f"--seeds {text!r}: expected a range like 0-4 or a list like 1,3,5"
        ) from None


def add_commands(sub: Any) -> None:
    """Register ``sweep`` (and ``report``, :mod:`alphavil.report_cli`) on the CLI's subparsers."""
    s = sub.add_parser("sweep", help="run methods x targets x seeds in parallel (resumable)")
    s.add_argument("config", help="TOML run config, or a built-in config's name")
    s.add_argument("overrides", nargs="*", help="key=value overrides for every run")
    s.add_argument("--methods", help="comma list, e.g. single,multitask,diw,alphavil")
    s.add_argument("--targets", help="comma list of target tasks (default: all)")
    s.add_argument("--seeds", help="e.g. 0-4 or 0,1,2")
    s.add_argument(
        "--workers",
        type=int,
        help="parallel worker processes (0 = in process); with --backend ray and no --address, "
        "the local Ray gets workers x threads CPUs",
    )
    s.add_argument(
        "--backend",
        choices=BACKENDS,
        default="local",
        help="where runs execute: local worker processes (default) or Ray tasks (needs "
        'pip install "alphavil[ray]")',
    )
    s.add_argument(
        "--address",
        metavar="ADDR",
        help="with --backend ray: an existing Ray cluster (auto, HOST:6379 or ray://HOST:10001); "
        "default: start a local Ray",
    )
    s.add_argument(
        "--rerun-changed",
        action="store_true",
        help="rerun completed runs whose stored config differs from the requested one",
    )
    s.set_defaults(func=cmd_sweep, intermixed="overrides")
    from alphavil.report_cli import add_command

    add_command(sub)
