"""``alphavil report``: Table 1, paired statistics, figures and the leaderboard from run dirs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from alphavil.config import ConfigError
from alphavil.sweep.workers import check_writable_dir


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


def _labels(text: str) -> list[str]:
    labels = [x.strip() for x in text.split(",") if x.strip()]
    if not labels:
        raise ConfigError(f"--labels {text!r}: expected LABEL[,LABEL...], e.g. single,multitask")
    return labels


def cmd_report(args: argparse.Namespace) -> int:
    """``alphavil report``."""
    from alphavil.reports.collect import collect_runs
    from alphavil.reports.write import write_report

    out = Path(args.out) if args.out else None
    if out is not None:
        check_writable_dir(out, "--out")
    if not collect_runs(Path(args.runs)):
        raise ConfigError(f"{args.runs}: no completed runs (folders with summary.json) found")
    tuned = parse_tuned(args.tuned or [])
    labels = _labels(args.labels) if args.labels else None
    paths = write_report(Path(args.runs), out, tuned, labels)
    if args.leaderboard:
        from alphavil.reports.leaderboard import write_leaderboard

        runs = collect_runs(Path(args.runs), labels)
        paths += write_leaderboard(
            runs, out or Path(args.runs) / "report", args.baseline, args.harmful, tuned
        )
    for p in paths:
        print(p)
    return 0


def add_command(sub: Any) -> None:
    """Register ``report`` on the CLI's subparsers."""
    r = sub.add_parser("report", help="Table 1, paired statistics and figures from run dirs")
    r.add_argument("runs", help="folder of run directories (a sweep's out_dir)")
    r.add_argument("--out", help="output folder (default: RUNS/report)")
    r.add_argument(
        "--tuned",
        action="append",
        metavar="NAME=LABEL,LABEL",
        help="add a row that picks, per seed, the listed configuration with the best dev accuracy",
    )
    r.add_argument(
        "--labels",
        metavar="LABEL,LABEL",
        help="report only runs with these labels (sweep variants, else methods)",
    )
    r.add_argument("--leaderboard", action="store_true", help="also write leaderboard.md/csv/png")
    r.add_argument("--baseline", default="single", help="leaderboard baseline label")
    r.add_argument("--harmful", help="task whose final weight the leaderboard reports")
    r.set_defaults(func=cmd_report)
