"""Controlled MT2O studies: transfer vs no transfer and baselines, lr chosen on validation, paired
statistics over test seeds.

    python -m alphavil.pareto.study --problems convex zdt1 --out docs/figures/mt2o/study
    python -m alphavil.pareto.study --problems multimnist --workers 2 --out docs/figures/mt2o/real

For each problem and arm (method × scalarisation × optimiser variant) every learning rate of the
problem's grid is run on the validation seeds and scored by HV-AUC (the mean HV over all epochs;
rewards speed and end quality). Synthetic problems score the test HV of validation seeds that
are never reported; real data (MultiMNIST, MultiFashion, Multi-(Fashion+MNIST)) scores the *dev*
split's HV. When the best lr sits at an edge of the grid, the grid is extended by one geometric
step in that direction and the new value is scored, up to ``--max-extend`` times. The chosen lr
is then run on the test seeds. Every arm starts from the same initial models for a given seed
(``mt2o.init = "identical"`` makes the K models equal too; MGDA draws K independent starts).

Every finished run is stored as ``<out>/runs/<problem>/<arm>/lr<lr>_s<seed>.json``; a rerun of
the same command skips those, so an interrupted study resumes. ``--workers N`` runs N runs at a
time in separate 1-thread processes. Statistics: :mod:`alphavil.pareto.study_stats`; figures
from the written JSON: :mod:`alphavil.pareto.study_plots`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
import warnings
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch

from alphavil.builtin_configs import builtin_config_dir
from alphavil.config import load_config
from alphavil.pareto.study_stats import hv_auc, markdown, pair, summarise

__all__ = [
    "ARMS",
    "LR_GRIDS",
    "PROBLEMS",
    "assemble",
    "choose_lr",
    "main",
    "render",
    "report",
    "run_arm",
    "study",
]

CONFIGS = builtin_config_dir()  # the shipped configs (alphavil/configs/), also from a wheel
SYNTHETIC = ("convex", "concave", "zdt1", "zdt2", "zdt3", "dtlz1", "dtlz2")
# problem -> (config file, overrides); real-data problems choose the lr on their dev split
PROBLEMS: dict[str, tuple[str, list[str]]] = {
    **{p: (f"mt2o_synthetic_{p}.toml", []) for p in SYNTHETIC},
    "multimnist": ("mt2o_multimnist_full.toml", []),
    "multifashion": ("mt2o_multimnist.toml", ["data.kind='fashion'"]),
    "multifashion_mnist": ("mt2o_multimnist.toml", ["data.kind='fashion_mnist'"]),
}
REAL = frozenset({"multimnist", "multifashion", "multifashion_mnist"})
LR_GRIDS: dict[str, tuple[float, ...]] = {
    "convex": (0.5, 1.0, 2.0),
    "concave": (0.02, 0.05, 0.1),
    "zdt1": (0.1, 0.3, 1.0),
    "zdt2": (0.1, 0.3, 1.0),
    "zdt3": (0.1, 0.3, 1.0),
    "dtlz1": (1e-3, 3e-3, 1e-2),
    "dtlz2": (0.1, 0.3, 1.0),
    "multimnist": (0.025, 0.05, 0.1),
    "multifashion": (0.025, 0.05, 0.1),
    "multifashion_mnist": (0.025, 0.05, 0.1),
}
# arm -> config overrides (besides the lr)
ARMS: dict[str, list[str]] = {
    "mt2o/linear": ["train.method=mt2o", "mt2o.scalarization='linear'"],
    "no_transfer/linear": ["train.method=no_transfer", "mt2o.scalarization='linear'"],
    "mt2o/tchebycheff": ["train.method=mt2o", "mt2o.scalarization='tchebycheff'"],
    "no_transfer/tchebycheff": ["train.method=no_transfer", "mt2o.scalarization='tchebycheff'"],
    "pmtl": ["train.method=pmtl"],
    "pmtl/plain-sgd": ["train.method=pmtl", "train.optimizer.momentum=0.0"],
    "epo": ["train.method=epo"],
    "pareto_mgda": ["train.method=pareto_mgda"],
}
PAIRS = (("mt2o/linear", "no_transfer/linear"), ("mt2o/tchebycheff", "no_transfer/tchebycheff"))

Job = tuple[str, str, float, int]  # problem, arm, lr, seed


def run_arm(problem: str, arm: str, lr: float, seed: int) -> dict[str, Any]:
    """One run; its seed, lr and resolved config, its curves (test HV, dev HV, IGD+, mean
    subproblem distance), final per-model scalarised test loss, status and seconds. A run whose
    loss diverges returns its status."""
    from alphavil.runner import load_data
    from alphavil.training import NonFiniteLossError

    file, extra = PROBLEMS[problem]
    overrides = [*extra, *ARMS[arm], f"train.optimizer.lr={lr}", f"train.seed={seed}"]
    cfg = load_config(CONFIGS / file, overrides)
    torch.set_num_threads(1)
    data, make_model = load_data(cfg)
    made = {"seed": seed, "lr": lr, "config": cfg.to_dict()}  # what made the run, stored with it
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            s = run_population(cfg, data, make_model)
    except NonFiniteLossError as err:
        return {
            **made,
            "status": "diverged",
            "error": str(err),
            "seconds": time.perf_counter() - t0,
        }
    dist = s.get("subproblem_distance_curve")
    return {
        **made,
        "hv": s["hv_curve"],
        "hv_dev": s.get("hv_dev_curve"),
        "igd_plus": s.get("igd_plus_curve"),
        "subproblem_distance": [float(np.mean(d)) for d in dist] if dist else None,
        "scalarized_test": s["final_scalarized"].get("test") if problem in REAL else None,
        "seconds": time.perf_counter() - t0,
        "status": s["status"],
    }


def run_population(cfg: Any, data: Any, make_model: Any) -> dict[str, Any]:
    from alphavil.pareto.mt2o import run_population as run

    return run(cfg, data, make_model, None, None)


def _path(out: Path, job: Job) -> Path:
    problem, arm, lr, seed = job
    return out / "runs" / problem / arm.replace("/", "+") / f"lr{lr:g}_s{seed}.json"


def _run_and_store(job: Job, out: Path) -> dict[str, Any]:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    result = run_arm(*job)
    path = _path(out, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(path)
    return result


def run_jobs(jobs: Iterable[Job], out: Path, workers: int) -> dict[Job, dict[str, Any]]:
    """Run ``jobs`` (skipping those stored under ``out``), ``workers`` at a time."""
    results: dict[Job, dict[str, Any]] = {}
    todo: list[Job] = []
    for job in dict.fromkeys(jobs):
        path = _path(out, job)
        if path.exists():
            results[job] = json.loads(path.read_text())
        else:
            todo.append(job)
    if workers <= 1 or len(todo) <= 1:
        for job in todo:
            results[job] = _run_and_store(job, out)
            _log(job, results[job])
        return results
    with ProcessPoolExecutor(min(workers, len(todo)), mp_context=get_context("spawn")) as pool:
        futures = {job: pool.submit(_run_and_store, job, out) for job in todo}
        for job, fut in futures.items():
            results[job] = fut.result()
            _log(job, results[job])
    return results


def _log(job: Job, r: dict[str, Any]) -> None:
    problem, arm, lr, seed = job
    hv = f"HV {r['hv'][-1]:.4g}" if r["status"] == "completed" else r["status"]
    print(f"  {problem} {arm} lr {lr:g} seed {seed}: {hv} ({r['seconds']:.0f} s)", flush=True)


def criterion(problem: str, r: dict[str, Any]) -> float:
    """Validation score: HV-AUC on the dev split (real data) or test HV of validation seeds."""
    if r["status"] != "completed":
        return -math.inf
    return hv_auc(r["hv_dev"] if problem in REAL else r["hv"])


def _extend(grid: list[float], best: float) -> float | None:
    """The next lr beyond the edge where ``best`` sits (one geometric step), or None (also for a
    one-value grid, which has no step to repeat)."""
    if len(grid) < 2:
        return None
    if best == grid[-1]:
        return float(f"{grid[-1] * grid[-1] / grid[-2]:.4g}")
    if best == grid[0]:
        return float(f"{grid[0] * grid[0] / grid[1]:.4g}")
    return None


def choose_lr(
    problem: str, arms: list[str], val_seeds: list[int], out: Path, workers: int, max_extend: int
) -> dict[str, dict[str, Any]]:
    """Per arm: the lr with the best mean validation score, the scores, and whether it is still
    at an edge of the (extended) grid."""
    grids = {arm: sorted(LR_GRIDS[problem]) for arm in arms}
    scores: dict[str, dict[float, float]] = {arm: {} for arm in arms}
    mid = LR_GRIDS[problem][len(LR_GRIDS[problem]) // 2]
    chosen: dict[str, dict[str, Any]] = {}
    pending = list(arms)
    for round_ in range(max_extend + 1):
        jobs = [
            (problem, arm, lr, s)
            for arm in pending
            for lr in grids[arm]
            if lr not in scores[arm]
            for s in val_seeds
        ]
        results = run_jobs(jobs, out, workers)
        still: list[str] = []
        for arm in pending:
            for lr in grids[arm]:
                if lr not in scores[arm]:
                    vals = [criterion(problem, results[(problem, arm, lr, s)]) for s in val_seeds]
                    scores[arm][lr] = float(np.mean(vals))
            best = max(grids[arm], key=lambda lr: (scores[arm][lr], -abs(math.log(lr / mid))))
            nxt = _extend(grids[arm], best)
            if nxt is not None and round_ < max_extend:
                grids[arm] = sorted([*grids[arm], nxt])
                still.append(arm)
            chosen[arm] = {
                "lr": best,
                "validation_hv_auc": scores[arm],
                "lr_at_edge": nxt is not None,
            }
        pending = still
        if not pending:
            break
    return chosen


def study(
    problem: str,
    arms: list[str],
    val_seeds: list[int],
    test_seeds: list[int],
    out: Path,
    workers: int = 1,
    max_extend: int = 2,
) -> dict[str, Any]:
    """Tune the lr per arm on ``val_seeds``, then run ``test_seeds``; all results."""
    chosen = choose_lr(problem, arms, val_seeds, out, workers, max_extend)
    jobs = [(problem, arm, chosen[arm]["lr"], s) for arm in arms for s in test_seeds]
    results = run_jobs(jobs, out, workers)
    runs = {
        arm: [results[(problem, arm, chosen[arm]["lr"], s)] for s in test_seeds] for arm in arms
    }
    for arm in arms:
        print(f"{problem} {arm}: lr {chosen[arm]['lr']:g}", flush=True)
    return assemble(problem, chosen, runs)


def assemble(
    problem: str, chosen: dict[str, dict[str, Any]], runs: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """The result of one problem: per arm its lr choice, test runs and summary, and the paired
    comparisons of :data:`PAIRS` (test runs in the same seed order in every arm)."""
    result: dict[str, Any] = {"problem": problem, "arms": {}, "pairs": {}}
    for arm, rs in runs.items():
        result["arms"][arm] = {**chosen[arm], "runs": rs, **summarise(rs)}
    for a, b in PAIRS:
        if a in result["arms"] and b in result["arms"]:
            p = pair(result["arms"][a]["runs"], result["arms"][b]["runs"])
            if p:
                result["pairs"][f"{a} − {b}"] = p
    return result


def report(result: dict[str, Any]) -> str:
    """The Markdown tables of one problem's result plus its compute line."""
    return markdown(result) + (
        f"\nwall time {result['wall_seconds']:.0f} s (last invocation); "
        f"{result['run_seconds_total']:.0f} s in all stored runs\n"
    )


def render(path: Path) -> dict[str, Any]:
    """Recompute the statistics of a written ``<problem>.json`` from the test runs it holds and
    rewrite it and its ``.md`` (after a change to :mod:`alphavil.pareto.study_stats`); the runs,
    lr choices, timings and metadata are kept as they are."""
    old = json.loads(path.read_text())
    if not isinstance(old, dict) or "arms" not in old or "problem" not in old:
        raise ValueError(f"{path} is not a study result (no 'problem'/'arms')")
    keys = ("lr", "validation_hv_auc", "lr_at_edge")
    chosen = {arm: {k: r[k] for k in keys if k in r} for arm, r in old["arms"].items()}
    runs = {arm: r["runs"] for arm, r in old["arms"].items()}
    result = {**old, **assemble(old["problem"], chosen, runs)}
    path.write_text(json.dumps(result))
    path.with_suffix(".md").write_text(report(result))
    return result


def _run_seconds(out: Path, problem: str, arms: list[str]) -> float:
    """Seconds of every stored run of ``problem`` and ``arms`` (all lrs and seeds): the compute
    the study cost, however many invocations it took to finish."""
    total = 0.0
    for arm in arms:
        for path in (out / "runs" / problem / arm.replace("/", "+")).glob("*.json"):
            total += float(json.loads(path.read_text())["seconds"])
    return total


def main(argv: list[str] | None = None) -> int:
    """CLI: run the studies, write ``<out>/<problem>.json`` and ``.md``."""
    p = argparse.ArgumentParser(prog="python -m alphavil.pareto.study", description=__doc__)
    p.add_argument("--problems", nargs="+", default=list(SYNTHETIC), choices=list(PROBLEMS))
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--val-seeds", nargs="+", type=int, default=[1000, 1001])
    p.add_argument("--test-seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--workers", type=int, default=1, help="runs at a time (1 thread each)")
    p.add_argument(
        "--max-extend", type=int, default=2, help="grid extensions when the best lr is at an edge"
    )
    p.add_argument("--out", default="docs/figures/mt2o/study")
    p.add_argument(
        "--render",
        nargs="+",
        metavar="JSON",
        help="only recompute the statistics and tables of these written <problem>.json files",
    )
    args = p.parse_args(argv)
    if args.render:
        for name in args.render:
            try:
                render(Path(name))
            except (OSError, ValueError, KeyError) as e:
                p.error(f"cannot render {name}: {e}")
            print(Path(name).with_suffix(".md"), flush=True)
        return 0
    if args.workers < 1 or args.max_extend < 0:
        p.error("--workers must be >= 1 and --max-extend >= 0")
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for problem in args.problems:
        t0 = time.perf_counter()
        result = study(
            problem, args.arms, args.val_seeds, args.test_seeds, out, args.workers, args.max_extend
        )
        result["wall_seconds"] = time.perf_counter() - t0
        result["run_seconds_total"] = _run_seconds(out, problem, args.arms)
        result["meta"] = {
            "val_seeds": args.val_seeds,
            "test_seeds": args.test_seeds,
            "lr_grid": LR_GRIDS[problem],
            "max_extend": args.max_extend,
            "workers": args.workers,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
        (out / f"{problem}.json").write_text(json.dumps(result))
        md = report(result)
        (out / f"{problem}.md").write_text(md)
        print(md, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
