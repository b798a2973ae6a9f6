"""``alphavil sweep`` on the command line (it also registers ``alphavil report``,
:mod:`alphavil.reports.cli`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from alphavil.config import ConfigError
from alphavil.config import load_config as _load
from alphavil.sweep.plan import SweepConfig
from alphavil.sweep.run import BACKENDS, run_sweep
from alphavil.sweep.workers import one_line


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
    from alphavil.reports.collect import collect_runs
    from alphavil.reports.tables import format_table

    try:
        print(format_table(collect_runs(Path(cfg.out_dir))))
    except (OSError, ValueError) as err:  # a broken folder beside the runs: the sweep still ran
        print(f"sweep: no table ({one_line(str(err))})", file=sys.stderr)
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
    """Register ``sweep`` (and ``report``, :mod:`alphavil.reports.cli`) on the CLI's subparsers."""
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
    from alphavil.reports.cli import add_command

    add_command(sub)
