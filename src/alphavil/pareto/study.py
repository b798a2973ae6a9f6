"""Controlled synthetic MT2O studies: transfer vs no transfer and baselines, lr chosen on
validation seeds, paired statistics over test seeds.

    python -m alphavil.pareto.study --problems convex zdt1 --out docs/figures/mt2o/study

For each problem (``configs/mt2o_synthetic_<problem>.toml``) and arm (method × scalarisation ×
optimiser variant) every learning rate of the problem's grid is run on the validation seeds;
the one with the highest mean HV-AUC (mean test HV over all epochs; a criterion that rewards
speed and end quality, on seeds never used for the report) is then run on the test seeds. All
arms start from the same initial models for a given seed (``mt2o.init = "identical"`` makes the
K models equal too; MGDA draws K independent starts). Reported per arm: final HV, IGD+, mean
subproblem distance, epochs to 95% of the run's own final HV, each with a 95% percentile
bootstrap CI (``scipy.stats.bootstrap``); per transfer pair (MT2O vs no transfer, same
scalarisation, each at its own tuned lr) paired differences with bootstrap CIs and Wilcoxon
signed-rank p-values (``scipy.stats.wilcoxon``). Needs scipy and moocore.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from alphavil.config import load_config
from alphavil.pareto.mt2o import epochs_to_fraction, run_population

__all__ = ["ARMS", "LR_GRIDS", "main", "paired", "run_arm", "summarise"]

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
LR_GRIDS: dict[str, tuple[float, ...]] = {
    "convex": (0.5, 1.0, 2.0),
    "concave": (0.02, 0.05, 0.1),
    "zdt1": (0.1, 0.3, 1.0),
    "zdt2": (0.1, 0.3, 1.0),
    "zdt3": (0.1, 0.3, 1.0),
    "dtlz1": (1e-3, 3e-3, 1e-2),
    "dtlz2": (0.1, 0.3, 1.0),
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


def run_arm(problem: str, arm: str, lr: float, seed: int) -> dict[str, Any]:
    """One run; returns its curves (HV, IGD+, mean subproblem distance) and seconds."""
    overrides = [*ARMS[arm], f"train.optimizer.lr={lr}", f"train.seed={seed}"]
    cfg = load_config(CONFIGS / f"mt2o_synthetic_{problem}.toml", overrides)
    torch.set_num_threads(1)
    from alphavil.runner import load_data

    data, make_model = load_data(cfg)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        s = run_population(cfg, data, make_model, None, None)
    dist = s.get("subproblem_distance_curve")
    return {
        "hv": s["hv_curve"],
        "igd_plus": s["igd_plus_curve"],
        "subproblem_distance": [float(np.mean(d)) for d in dist] if dist else None,
        "seconds": time.perf_counter() - t0,
        "status": s["status"],
    }


def _auc(curve: list[float]) -> float:
    return float(np.mean(curve))


def _ci(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% percentile-bootstrap CI (``scipy.stats.bootstrap``, 5,000 resamples)."""
    from scipy.stats import bootstrap

    x = np.asarray(values, dtype=float)
    if len(x) < 2 or np.ptp(x) == 0:
        return float(x.mean()), float(x.mean()), float(x.mean())
    res = bootstrap(
        (x,), np.mean, confidence_level=0.95, n_resamples=5000, method="percentile", rng=0
    )
    return float(x.mean()), float(res.confidence_interval.low), float(res.confidence_interval.high)


def _e95(hv: list[float], target: float | None = None) -> float:
    """Epochs to 95% of the final (or target) HV; censored at len(hv) if never."""
    e = epochs_to_fraction(hv, 0.95, target)
    return float(len(hv) if e is None else e)


def paired(a: list[float], b: list[float]) -> dict[str, Any]:
    """Paired differences a − b: mean, 95% bootstrap CI, Wilcoxon signed-rank p (two-sided)."""
    from scipy.stats import wilcoxon

    d = np.asarray(a, float) - np.asarray(b, float)
    mean, lo, hi = _ci(d.tolist())
    p = float("nan") if np.all(d == 0) else float(wilcoxon(d).pvalue)
    return {"mean": mean, "ci": [lo, hi], "wilcoxon_p": p, "n": len(d)}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-arm statistics over test seeds."""
    out: dict[str, Any] = {}
    out["final_hv"] = _ci([r["hv"][-1] for r in runs])
    out["final_igd_plus"] = _ci([r["igd_plus"][-1] for r in runs])
    if runs[0]["subproblem_distance"] is not None:
        out["final_subproblem_distance"] = _ci([r["subproblem_distance"][-1] for r in runs])
    out["epochs_to_95_own"] = _ci([_e95(r["hv"]) for r in runs])
    out["never_positive"] = sum(r["hv"][-1] <= 0 for r in runs)
    out["seconds"] = float(np.mean([r["seconds"] for r in runs]))
    return out


def study(
    problem: str, arms: list[str], val_seeds: list[int], test_seeds: list[int]
) -> dict[str, Any]:
    """Tune lr per arm on ``val_seeds`` (HV-AUC), then run ``test_seeds``; all results."""
    result: dict[str, Any] = {"problem": problem, "arms": {}, "pairs": {}}
    for arm in arms:
        val = {
            lr: float(np.mean([_auc(run_arm(problem, arm, lr, s)["hv"]) for s in val_seeds]))
            for lr in LR_GRIDS[problem]
        }
        mid = LR_GRIDS[problem][len(LR_GRIDS[problem]) // 2]
        best = max(val, key=lambda lr: (val[lr], -abs(math.log(lr / mid))))
        runs = [run_arm(problem, arm, best, s) for s in test_seeds]
        result["arms"][arm] = {
            "lr": best,
            "validation_hv_auc": val,
            "runs": runs,
            **summarise(runs),
        }
        print(f"{problem} {arm}: lr {best} (val {val})", flush=True)
    for a, b in PAIRS:
        if a not in result["arms"] or b not in result["arms"]:
            continue
        ra, rb = result["arms"][a]["runs"], result["arms"][b]["runs"]
        target = max(np.mean([r["hv"][-1] for r in ra]), np.mean([r["hv"][-1] for r in rb]))
        pair: dict[str, Any] = {
            "final_hv": paired([r["hv"][-1] for r in ra], [r["hv"][-1] for r in rb]),
            "final_igd_plus": paired(
                [r["igd_plus"][-1] for r in ra], [r["igd_plus"][-1] for r in rb]
            ),
            "epochs_to_95_own": paired([_e95(r["hv"]) for r in ra], [_e95(r["hv"]) for r in rb]),
            "epochs_to_95_common": paired(
                [_e95(r["hv"], target) for r in ra], [_e95(r["hv"], target) for r in rb]
            ),
            "common_target_hv": 0.95 * float(target),
        }
        if ra[0]["subproblem_distance"] is not None:
            pair["final_subproblem_distance"] = paired(
                [r["subproblem_distance"][-1] for r in ra],
                [r["subproblem_distance"][-1] for r in rb],
            )
        result["pairs"][f"{a} − {b}"] = pair
    return result


def _fmt(ci: list[float] | tuple[float, float, float], digits: int = 4) -> str:
    mean, lo, hi = ci
    return f"{mean:.{digits}g} [{lo:.{digits}g}, {hi:.{digits}g}]"


def markdown(result: dict[str, Any]) -> str:
    """The per-arm table and the paired-comparison table of one problem."""
    lines = [
        "| arm | lr (val) | final HV | final IGD+ | subproblem dist. "
        "| epochs to 95% own HV | s/run |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, r in result["arms"].items():
        sub = r.get("final_subproblem_distance")
        lines.append(
            f"| {arm} | {r['lr']:g} | {_fmt(r['final_hv'])} | {_fmt(r['final_igd_plus'])} | "
            f"{_fmt(sub, 3) if sub else '–'} | {_fmt(r['epochs_to_95_own'], 3)} | "
            f"{r['seconds']:.1f} |"
        )
    if result["pairs"]:
        lines += [
            "",
            "| paired difference (MT2O − no transfer) | final HV | final IGD+ | subproblem dist. "
            "| epochs to 95% own HV | epochs to 95% common HV |",
            "|---|---|---|---|---|---|",
        ]
        for name, p in result["pairs"].items():

            def cell(key: str, p: dict[str, Any] = p) -> str:
                if key not in p:
                    return "–"
                q = p[key]
                ci = f"[{q['ci'][0]:+.3g}, {q['ci'][1]:+.3g}]"
                return f"{q['mean']:+.3g} {ci} p={q['wilcoxon_p']:.2g}"

            lines.append(
                f"| {name.split('/')[-1]} | {cell('final_hv')} | {cell('final_igd_plus')} | "
                f"{cell('final_subproblem_distance')} | {cell('epochs_to_95_own')} | "
                f"{cell('epochs_to_95_common')} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """CLI: run the studies, write ``<out>/<problem>.json`` and ``.md``."""
    p = argparse.ArgumentParser(prog="python -m alphavil.pareto.study", description=__doc__)
    p.add_argument("--problems", nargs="+", default=list(LR_GRIDS), choices=list(LR_GRIDS))
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--val-seeds", nargs="+", type=int, default=[1000, 1001])
    p.add_argument("--test-seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--out", default="docs/figures/mt2o/study")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for problem in args.problems:
        t0 = time.perf_counter()
        result = study(problem, args.arms, args.val_seeds, args.test_seeds)
        result["wall_seconds"] = time.perf_counter() - t0
        result["meta"] = {
            "val_seeds": args.val_seeds,
            "test_seeds": args.test_seeds,
            "lr_grid": LR_GRIDS[problem],
            "torch": torch.__version__,
            "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
        (out / f"{problem}.json").write_text(json.dumps(result))
        md = markdown(result) + f"\nwall time {result['wall_seconds']:.0f} s\n"
        (out / f"{problem}.md").write_text(md)
        print(md, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
