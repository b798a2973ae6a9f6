"""The ``alphavil`` command line.

    alphavil run CONFIG [key=value ...]       train one config, write its run directory
    alphavil data [--kind mnist|fashion|...]  fetch MNIST and build the MultiMNIST cache
    alphavil sweep CONFIG --methods ... --targets ... --seeds ...   parallel runs
    alphavil report RUNS_DIR                  Table 1, paired statistics and figures
    alphavil nlu-predict RUN_DIR... --out DIR GLUE/SuperGLUE submission files (ensemble)
    alphavil plot-pareto RUN_DIR... --out DIR MT2O fronts and hypervolume curves

Exit status: 0 success, 1 the run failed (e.g. diverged), 2 bad input (config, arguments).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from alphavil.config import POPULATION_METHODS, ConfigError, load_config


def _die(message: str, code: int = 2) -> int:
    print(f"alphavil: error: {message}", file=sys.stderr)
    return code


def cmd_run(args: argparse.Namespace) -> int:
    from alphavil.runner import RunExistsError, execute
    from alphavil.training import NonFiniteLossError

    cfg = load_config(args.config, args.overrides)
    try:
        summary = execute(cfg, args.run_dir, overwrite=args.overwrite, show_progress=not args.quiet)
    except RunExistsError as err:
        return _die(str(err))
    except NonFiniteLossError as err:
        return _die(f"run stopped: {err} (what was written so far is kept)", 1)
    if cfg.train.method in POPULATION_METHODS:
        from alphavil.pareto.mt2o import format_population_summary

        print(format_population_summary(summary))
    else:
        from alphavil.report import format_summary

        print(format_summary(summary))
    return 0


def cmd_plot_pareto(args: argparse.Namespace) -> int:
    from alphavil.pareto.plots import plot_pareto

    try:
        paths = plot_pareto(args.runs, args.out, args.fraction)
    except (OSError, ValueError, KeyError) as err:
        return _die(str(err).splitlines()[0] if str(err) else type(err).__name__)
    for path in paths:
        print(path)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from alphavil.data.mnist import DataUnavailableError
    from alphavil.data.multimnist import load_multi_dataset

    kinds = ["mnist", "fashion", "fashion_mnist"] if args.kind == "all" else [args.kind]
    for kind in kinds:
        try:
            s = load_multi_dataset(
                kind,
                variant=args.variant,
                data_seed=args.data_seed,
                dev_size=args.dev_size,
                data_dir=args.data_dir,
                fashion_dir=args.fashion_dir,
                cache_dir=args.cache_dir,
            )
        except DataUnavailableError as err:
            return _die(str(err), 1)
        print(
            f"multi-{kind} ({args.variant}, data seed {args.data_seed}): train "
            f"{len(s.train_images)}, dev {len(s.dev_images)}, test {len(s.test_images)}"
        )
    return 0


def cmd_nlu_predict(args: argparse.Namespace) -> int:
    from alphavil.nlu.predict import write_predictions

    try:
        paths = write_predictions(args.runs, args.out, args.data_dir, all_tasks=args.all_tasks)
    except (OSError, ValueError) as err:
        return _die(str(err).splitlines()[0] if str(err) else type(err).__name__)
    for task, path in paths.items():
        print(f"{task}: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    p = argparse.ArgumentParser(prog="alphavil", description=__doc__.split("\n")[0])
    p.add_argument("-v", "--verbose", action="store_true", help="log data preparation details")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="train one config and write its run directory")
    r.add_argument("config", help="TOML run config (see configs/)")
    r.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.epochs=5")
    r.add_argument("--run-dir", help="run directory (default: OUT_DIR/NAME from the config)")
    r.add_argument("--overwrite", action="store_true", help="replace a finished run")
    r.add_argument("--quiet", action="store_true", help="no progress output")
    r.set_defaults(func=cmd_run)

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
    n.set_defaults(func=cmd_nlu_predict)

    pp = sub.add_parser("plot-pareto", help="MT2O fronts, hypervolume curves, epochs-to-95%%")
    pp.add_argument("runs", nargs="+", help="MT2O / ls / pmtl run directories")
    pp.add_argument("--out", required=True, help="output folder")
    pp.add_argument("--fraction", type=float, default=0.95, help="hypervolume fraction")
    pp.set_defaults(func=cmd_plot_pareto)

    from alphavil import sweep

    sweep.add_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``alphavil`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alphavil").setLevel(logging.INFO)
    try:
        return int(args.func(args))
    except ConfigError as err:
        return _die(str(err))
    except KeyboardInterrupt:
        return _die("interrupted; finished files are kept", 130)


if __name__ == "__main__":
    sys.exit(main())
