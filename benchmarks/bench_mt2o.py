"""One MT2O step on K stacked LeNets versus K independent LeNet steps, measured in one run.

    python benchmarks/bench_mt2o.py                        # K=5, batch 64 and 256, 1 thread
    python benchmarks/bench_mt2o.py --models 10 --threads 2 --json out.json

Both sides do the same work per step on one shared batch: K forward/backward passes of the
MultiMNIST LeNet, K linearly scalarised losses, K SGD-momentum updates; MT2O additionally mixes
the K parameter sets with the transfer matrix (β = 0.05, T = 2). The independent side is what a
user would write: K ``nn.Module``s, K optimisers, a Python loop. MT2O runs in both population
modes: ``vmap`` (one batched forward/backward) and ``loop`` (stacked parameters, a loop over the
K slices). Timed blocks alternate between the sides, so background load hits them alike; ratios
use medians over ``--repeats`` blocks of ``--steps`` steps. Goal: vmap ratio <= 0.6.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import torch

from alphavil.models.lenet import multi_lenet
from alphavil.pareto.population import Population, mtgd_step
from alphavil.pareto.transfer import transfer_matrix
from alphavil.pareto.weights import evenly_spaced
from alphavil.tasks import Task


def _time(fn: Callable[[], object], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def bench(k: int, batch_size: int, steps: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per step of each side, ``repeats`` alternating blocks each."""
    tasks = [Task("left", 10), Task("right", 10)]
    x = torch.randn(batch_size, 1, 28, 28)
    y = {t.name: torch.randint(0, 10, (batch_size,)) for t in tasks}
    prefs = evenly_spaced(k)
    mixing = transfer_matrix(prefs, 0.05, 2).float()
    models = [multi_lenet() for _ in range(k)]
    opts = [torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for m in models]

    def independent() -> None:
        for m, opt, pref in zip(models, opts, prefs.tolist(), strict=True):
            opt.zero_grad(set_to_none=True)
            out = m(x)
            sum(
                w * t.loss(out[t.name], y[t.name]) for w, t in zip(pref, tasks, strict=True)
            ).backward()
            opt.step()

    sides: dict[str, Callable[[], object]] = {"independent": independent}
    for mode in ("vmap", "loop"):
        pop = Population(models, tasks, vectorize=mode == "vmap")
        opt = torch.optim.SGD(pop.parameters(), lr=0.01, momentum=0.9)
        sides[f"mt2o-{mode}"] = lambda p=pop, o=opt: mtgd_step(p, o, x, y, prefs, mixing=mixing)
    for fn in sides.values():  # warm-up
        _time(fn, 2)
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, fn in sides.items():
            times[name].append(_time(fn, steps))
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", type=int, default=5, help="K")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=5, help="steps per timed block")
    p.add_argument("--repeats", type=int, default=7, help="timed blocks per side")
    p.add_argument("--json", help="also write the numbers to this file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"K={args.models} threads={args.threads} torch={torch.__version__} "
        f"{platform.machine()} {platform.processor() or ''}".rstrip()
    )
    print("| batch | independent ms/step | mt2o vmap ms/step | ratio | mt2o loop ms/step | ratio |")
    print("|---|---|---|---|---|---|")
    results = {}
    for b in args.batch_sizes:
        times = bench(args.models, b, args.steps, args.repeats)
        med = {name: statistics.median(v) for name, v in times.items()}
        base = med["independent"]
        print(
            f"| {b} | {1e3 * base:.1f} | {1e3 * med['mt2o-vmap']:.1f} | "
            f"{med['mt2o-vmap'] / base:.2f} | {1e3 * med['mt2o-loop']:.1f} | "
            f"{med['mt2o-loop'] / base:.2f} |"
        )
        results[b] = {"median_s": med, "times_s": times}
    print("goal: vmap ratio <= 0.6")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "args": vars(args),
                    "results": results,
                    "torch": torch.__version__,
                    "machine": platform.platform(),
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
