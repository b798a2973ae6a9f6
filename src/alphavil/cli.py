"""The ``alphavil`` command line.

    alphavil run CONFIG [key=value ...]       train one config, write its run directory
                                              (CONFIG: a TOML file or a built-in name)
    alphavil configs [NAME]                   list the built-in configs, or print one
    alphavil data [--kind mnist|fashion|...]  fetch MNIST and build the MultiMNIST cache
    alphavil sweep CONFIG --methods ... --targets ... --seeds ...   parallel runs
    alphavil report RUNS_DIR                  Table 1, paired statistics and figures
    alphavil nlu-predict RUN_DIR... --out DIR GLUE/SuperGLUE submission files (ensemble)
    alphavil plot-pareto RUN_DIR... --out DIR MT2O fronts and hypervolume curves
    alphavil tensorboard RUN_DIR... --out DIR TensorBoard event files from runs' metrics.jsonl

Exit status: 0 success; 1 a run failed (diverged; for ``sweep``: some run failed); 2 bad input
(config, arguments, missing or unreadable files, a run directory that is in the way, missing
data), reported as one line ``alphavil: error: ...`` (``-v`` adds the traceback); 130 Ctrl-C.
Options may come between the positional arguments (``alphavil run c.toml --quiet k=v``).
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import re
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from alphavil.config import POPULATION_METHODS, ConfigError, load_config
from alphavil.sweep import SweepInterrupted, check_writable_dir


def _die(message: str, code: int = 2) -> int:
    print(f"alphavil: error: {message}", file=sys.stderr)
    return code


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input or an unusable file, reported in one line (exit 2)."""
    from alphavil.data.errors import DataUnavailableError
    from alphavil.runner import RunExistsError

    return (ConfigError, RunExistsError, DataUnavailableError, ValueError, OSError, KeyError)


def error_line(err: BaseException) -> str:
    """One line for ``err`` that names the file or key involved."""
    if isinstance(err, OSError) and err.filename is not None:
        msg = f"{err.filename}: {err.strerror or err}"
        if err.filename2 is not None:
            msg += f" (-> {err.filename2})"
    elif isinstance(err, OSError) and err.errno == errno.ENOSPC:
        msg = f"no space left on device (disk full): {err}"
    elif isinstance(err, KeyError):
        msg = f"missing key {err.args[0]!r}" if err.args else "missing key"
    elif isinstance(err, UnicodeDecodeError):
        msg = f"not UTF-8 text: {err}"
    elif isinstance(err, json.JSONDecodeError):
        msg = f"invalid JSON: {err}"
    else:
        msg = str(err) or type(err).__name__
    return re.sub(r"\s*\n\s*", " ", msg).strip()


def cmd_run(args: argparse.Namespace) -> int:
    from alphavil.runner import execute, run_dir_for
    from alphavil.training import NonFiniteLossError

    cfg = load_config(args.config, args.overrides)
    path = Path(args.run_dir) if args.run_dir else run_dir_for(cfg)
    check_writable_dir(path, "--run-dir" if args.run_dir else "run directory")
    try:
        summary = execute(
            cfg,
            path,
            overwrite=args.overwrite,
            resume=args.resume,
            show_progress=not args.quiet,
        )
    except NonFiniteLossError as err:
        return _die(f"run stopped: {err} (what was written so far is kept)", 1)
    from alphavil.distributed import is_main

    if not is_main():  # under torchrun, rank 0 reports
        return 0
    if cfg.train.method in POPULATION_METHODS:
        from alphavil.pareto.summary import format_population_summary

        print(format_population_summary(summary))
    else:
        from alphavil.reports.tables import format_summary

        print(format_summary(summary))
    return 0


def cmd_plot_pareto(args: argparse.Namespace) -> int:
    from alphavil.pareto.plots import plot_pareto

    paths = plot_pareto(args.runs, args.out, args.fraction)
    for path in paths:
        print(path)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from alphavil.data.multimnist import load_multi_dataset

    kinds = ["mnist", "fashion", "fashion_mnist"] if args.kind == "all" else [args.kind]
    for kind in kinds:
        s = load_multi_dataset(  # DataUnavailableError: exit 2 (main)
            kind,
            variant=args.variant,
            data_seed=args.data_seed,
            dev_size=args.dev_size,
            data_dir=args.data_dir,
            fashion_dir=args.fashion_dir,
            cache_dir=args.cache_dir,
        )
        print(
            f"multi-{kind} ({args.variant}, data seed {args.data_seed}): train "
            f"{len(s.train_images)}, dev {len(s.dev_images)}, test {len(s.test_images)}"
        )
    return 0


def cmd_configs(args: argparse.Namespace) -> int:
    from alphavil.builtin_configs import builtin_configs, describe, find_config

    if args.name:
        path = find_config(args.name)
        sys.stdout.write(path.read_text(encoding="utf-8"))
        return 0
    configs = builtin_configs()
    width = max((len(n) for n in configs), default=0)
    for name, path in configs.items():
        print(f"{name:<{width}}  {describe(path)}")
    return 0


def cmd_nlu_predict(args: argparse.Namespace) -> int:
    from alphavil.nlu.predict import write_predictions

    paths = write_predictions(args.runs, args.out, args.data_dir, all_tasks=args.all_tasks)
    for task, path in paths.items():
        print(f"{task}: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    p = argparse.ArgumentParser(prog="alphavil", description=__doc__.split("\n")[0])
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log data preparation details; after an error line, also print its traceback",
    )
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="train one config and write its run directory")
    r.add_argument("config", help="TOML run config, or a built-in config's name (alphavil configs)")
    r.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.epochs=5")
    r.add_argument("--run-dir", help="run directory (default: OUT_DIR/NAME from the config)")
    r.add_argument("--overwrite", action="store_true", help="replace a finished run")
    r.add_argument(
        "--resume",
        action="store_true",
        help="continue an unfinished run of the same config after its last whole epoch",
    )
    r.add_argument("--quiet", action="store_true", help="no progress output")
    r.set_defaults(func=cmd_run, intermixed="overrides")

    c = sub.add_parser("configs", help="list the built-in configs (NAME: print that config)")
    c.add_argument(
        "name",
        nargs="?",
        help="print this built-in config (to copy and edit: alphavil configs NAME > my.toml)",
    )
    c.set_defaults(func=cmd_configs)

    d = sub.add_parser("data", help="fetch MNIST / Fashion-MNIST and cache MultiMNIST splits")
    d.add_argument("--kind", default="mnist", choices=["mnist", "fashion", "fashion_mnist", "all"])
    d.add_argument("--variant", default="sener_koltun", choices=["sener_koltun", "shifted"])
    d.add_argument("--data-seed", type=int, default=0)
    d.add_argument("--dev-size", type=int, default=10000)
    d.add_argument("--data-dir", help="folder with MNIST IDX files (optional)")
    d.add_argument("--fashion-dir", help="folder with Fashion-MNIST IDX files (optional)")
    d.add_argument(
        "--cache-dir", help="cache folder (default $ALPHAVIL_CACHE or ~/.cache/alphavil)"
    )
    d.set_defaults(func=cmd_data)

    n = sub.add_parser("nlu-predict", help="GLUE/SuperGLUE submission files from NLU runs")
    n.add_argument("runs", nargs="+", help="run directories (several: probability ensemble)")
    n.add_argument("--out", required=True, help="folder for the submission files")
    n.add_argument("--data-dir", help="GLUE/SuperGLUE folder (for test example ids)")
    n.add_argument("--all-tasks", action="store_true", help="also non-target heads of runs")
    n.set_defaults(func=cmd_nlu_predict, intermixed="runs")

    pp = sub.add_parser("plot-pareto", help="MT2O fronts, hypervolume curves, epochs-to-95%%")
    pp.add_argument("runs", nargs="+", help="MT2O / ls / pmtl run directories")
    pp.add_argument("--out", required=True, help="output folder")
    pp.add_argument("--fraction", type=float, default=0.95, help="hypervolume fraction")
    pp.set_defaults(func=cmd_plot_pareto, intermixed="runs")

    from alphavil import sweep

    sweep.add_commands(sub)
    from alphavil import tensorboard

    tensorboard.add_command(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``alphavil`` console script."""
    parser = build_parser()
    # parse_intermixed_args does not support subparsers; so: positional words left over after
    # an option (`run c.toml --quiet k=v`) go to the subcommand's list positional.
    args, extra = parser.parse_known_args(argv)
    if extra:
        dest = getattr(args, "intermixed", None)
        if dest is None or any(e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        getattr(args, dest).extend(extra)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alphavil").setLevel(logging.INFO)
    try:
        return int(args.func(args))
    except KeyboardInterrupt as err:
        if isinstance(err, SweepInterrupted):  # the sweep has said what finished
            return 130
        return _die("interrupted; finished files are kept", 130)
    except Exception as err:  # the one place bad input becomes `alphavil: error: <one line>`
        if not isinstance(err, _user_errors()):
            raise
        code = _die(error_line(err))
        if args.verbose:
            traceback.print_exc()
        return code


if __name__ == "__main__":
    sys.exit(main())
