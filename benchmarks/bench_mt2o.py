"""One MT2O step on K stacked LeNets versus K independent LeNet steps, measured in one run.

    python benchmarks/bench_mt2o.py                     # K=5, batch 256, 1 thread
    python benchmarks/bench_mt2o.py --models 10 --threads 2 --json out.json

Both sides do the same work per step on one shared batch: K forward/backward passes of the
MultiMNIST LeNet, K linearly scalarised losses, K SGD-momentum updates; MT2O additionally mixes
the K parameter sets with the transfer matrix (β = 0.05, T = 2). The independent side is the
baseline a user would write: K ``nn.Module``s, K optimisers, a Python loop. Timings alternate
between the two sides (so background load hits both alike); the ratio uses the median of
``--repeats`` blocks of ``--steps`` steps. Goal: ratio <= 0.6.
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", type=int, default=5, help="K")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=5, help="steps per timed block")
    p.add_argument("--repeats", type=int, default=7, help="timed blocks per side")
    p.add_argument("--loop", action="store_true", help="population without vmap (for comparison)")
    p.add_argument("--json", help="also write the numbers to this file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    k, tasks = args.models, [Task("left", 10), Task("right", 10)]
    x = torch.randn(args.batch_size, 1, 28, 28)
    y = {t.name: torch.randint(0, 10, (args.batch_size,)) for t in tasks}
    prefs = evenly_spaced(k)

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

    pop = Population(models, tasks, vectorize=not args.loop)
    opt = torch.optim.SGD(pop.parameters(), lr=0.01, momentum=0.9)
    mixing = transfer_matrix(prefs, 0.05, 2).float()

    def mt2o() -> None:
        mtgd_step(pop, opt, x, y, prefs, mixing=mixing)

    for fn in (independent, mt2o):  # warm-up
        _time(fn, 2)
    times: dict[str, list[float]] = {"independent": [], "mt2o": []}
    for _ in range(args.repeats):
        times["independent"].append(_time(independent, args.steps))
        times["mt2o"].append(_time(mt2o, args.steps))
    med = {name: statistics.median(v) for name, v in times.items()}
    ratio = med["mt2o"] / med["independent"]
    print(
        f"K={k} batch={args.batch_size} threads={args.threads} "
        f"mode={'loop' if args.loop else 'vmap'} torch={torch.__version__}"
    )
    for name, v in times.items():
        print(f"  {name:12s} median {1e3 * med[name]:8.1f} ms/step   min {1e3 * min(v):8.1f} ms")
    print(f"  ratio mt2o / independent = {ratio:.3f}  (goal <= 0.6)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "args": vars(args),
                    "median_s": med,
                    "times_s": times,
                    "ratio": ratio,
                    "torch": torch.__version__,
                    "machine": platform.platform(),
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
