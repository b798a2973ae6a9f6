"""Sweeps: methods × target tasks × seeds as parallel single-threaded worker processes.

Resumable: a run whose directory holds a completed ``summary.json`` is skipped, so a sweep
interrupted by Ctrl-C or a crash picks up where it stopped. A run that fails is recorded in its
directory as ``error.json`` (message and traceback) and the sweep carries on; the next sweep
retries it. Two one-thread processes beat one two-thread process for small models on a 2-core
CPU (data-and-machine.md §4), hence the defaults.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from alphavil.config import POPULATION_METHODS, TARGET_METHODS, ConfigError, bounded, choice
from alphavil.config import load_config as _load
from alphavil.runs import read_json, write_json


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
    allowed = (*TARGET_METHODS, *POPULATION_METHODS)
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
        if m not in allowed:
            raise ConfigError(f"sweep.methods: {m!r} is not one of {', '.join(allowed)}")
    return {m: [f"train.method={m}"] for m in sweep.methods}


def plan(config: str | None, overrides: list[str], sweep: SweepConfig) -> list[Job]:
    """The runs of the grid, validated (unknown methods/targets raise :class:`ConfigError`)."""
    from alphavil.datasets import get_dataset

    base = _load(config, overrides)
    tasks = [t.name for t in get_dataset(base.data_name).tasks(base.data)]
    tasks = list(base.train.tasks) or tasks
    for key in ("methods", "targets", "seeds"):
        values = getattr(sweep, key)
        if len(set(values)) != len(values):
            raise ConfigError(f"sweep.{key}: {values} lists a value twice")
    variants = _variants(sweep)
    targets = sweep.targets or tasks
    for t in targets:
        if t not in tasks:
            raise ConfigError(f"sweep.targets: {t!r} is not a task; tasks: {', '.join(tasks)}")
    jobs: list[tuple[int, int, Job]] = []
    for v_index, (variant, v_overrides) in enumerate(variants.items()):
        method = _load(config, [*overrides, *v_overrides]).train.method
        per_target = method not in ("multitask", *POPULATION_METHODS)
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


def is_done(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a completed run."""
    try:
        return bool(read_json(run_dir / "summary.json").get("status") == "completed")
    except (FileNotFoundError, ValueError):
        return False


def run_job(config: str | None, job: Job) -> dict[str, Any]:
    """Run one job (in a worker process); failures are written to ``error.json``."""
    from alphavil.runner import execute, run_dir_for

    cfg = _load(config, list(job.overrides))
    path = run_dir_for(cfg)
    t0 = time.perf_counter()
    try:
        summary = execute(cfg, path, overwrite=True, show_progress=False)
        (path / "error.json").unlink(missing_ok=True)
        return {
            "name": job.name,
            "ok": True,
            "seconds": time.perf_counter() - t0,
            "summary": summary,
        }
    except Exception as err:
        message = f"{type(err).__name__}: {err}"
        write_json(path / "error.json", {"error": message, "traceback": traceback.format_exc()})
        return {
            "name": job.name,
            "ok": False,
            "seconds": time.perf_counter() - t0,
            "error": message,
        }


def run_sweep(
    config: str | None, overrides: list[str], sweep: SweepConfig, log: Any = None
) -> list[dict[str, Any]]:
    """Run every job not yet completed; returns one result per job run now."""
    out = log or sys.stderr
    jobs = plan(config, overrides, sweep)
    out_dir = Path(_load(config, overrides).out_dir)
    todo = [j for j in jobs if not is_done(out_dir / j.name)]
    print(
        f"sweep: {len(jobs)} runs, {len(jobs) - len(todo)} already done, {len(todo)} to run "
        f"with {sweep.workers or 1} worker(s) -> {out_dir}",
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

    if sweep.workers == 0:
        for job in todo:
            report(run_job(config, job))
        return results
    os.environ.setdefault("OMP_NUM_THREADS", str(sweep.threads))
    ctx = get_context("spawn")
    with ProcessPoolExecutor(max_workers=sweep.workers, mp_context=ctx) as pool:
        pending: set[Future[dict[str, Any]]] = {pool.submit(run_job, config, j) for j in todo}
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    report(fut.result())
        except KeyboardInterrupt:
            for fut in pending:
                fut.cancel()
            raise
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
    results = run_sweep(args.config, args.overrides, sweep)
    from alphavil.report import collect_runs, format_table

    print(format_table(collect_runs(Path(cfg.out_dir))))
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


def parse_tuned(specs: list[str]) -> dict[str, list[str]]:
    """``["single-tuned=single,single-lr0.025"]`` -> {"single-tuned": ["single", ...]}."""
    out: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, rest = spec.partition("=")
        labels = [x.strip() for x in rest.split(",") if x.strip()]
        if not sep or not name.strip() or len(labels) < 2:
            raise ConfigError(
                f"--tuned {spec!r}: expected NAME=LABEL,LABEL[,...] (two or more run labels), "
                "e.g. single-tuned=single,single-lr0.025"
            )
        out[name.strip()] = labels
    return out


def cmd_report(args: argparse.Namespace) -> int:
    """``alphavil report``."""
    from alphavil.report import collect_runs, write_report

    if not collect_runs(Path(args.runs)):
        raise ConfigError(f"{args.runs}: no completed runs (folders with summary.json) found")
    tuned = parse_tuned(args.tuned or [])
    paths = write_report(Path(args.runs), Path(args.out) if args.out else None, tuned)
    for p in paths:
        print(p)
    return 0


def add_commands(sub: Any) -> None:
    """Register ``sweep`` and ``report`` on the CLI's subparsers."""
    s = sub.add_parser("sweep", help="run methods x targets x seeds in parallel (resumable)")
    s.add_argument("config")
    s.add_argument("overrides", nargs="*", help="key=value overrides for every run")
    s.add_argument("--methods", help="comma list, e.g. single,multitask,diw,alphavil")
    s.add_argument("--targets", help="comma list of target tasks (default: all)")
    s.add_argument("--seeds", help="e.g. 0-4 or 0,1,2")
    s.add_argument("--workers", type=int, help="parallel worker processes (0 = in process)")
    s.set_defaults(func=cmd_sweep)
    r = sub.add_parser("report", help="Table 1, paired statistics and figures from run dirs")
    r.add_argument("runs", help="folder of run directories (a sweep's out_dir)")
    r.add_argument("--out", help="output folder (default: RUNS/report)")
    r.add_argument(
        "--tuned",
        action="append",
        metavar="NAME=LABEL,LABEL",
        help="add a row that picks, per seed, the listed configuration with the best dev accuracy",
    )
    r.set_defaults(func=cmd_report)
