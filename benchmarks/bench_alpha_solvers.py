"""Line 9 of Algorithm 1 on identical problems: the paper's SGD steps, L-BFGS, Newton, a grid.

Trains αVIL on MultiMNIST (target left, seed 0) and, at every epoch, hands the *same* objective
(same θ, same task deltas, same dev sample) to each solver, then continues the run with the
L-BFGS α and the relative weight rule (the setting of configs/multimnist_full.toml). Per solver and
epoch it prints the objective reached, the gap to the best point of a grid over [-0.5, 1.5]^2, the
dev passes spent and the wall time. Solvers run back to back in one process, so machine noise hits
them alike; run it on an otherwise idle machine.

    python benchmarks/bench_alpha_solvers.py                     # 3 epochs, 50k train, 21x21 grid
    python benchmarks/bench_alpha_solvers.py --epochs 5 --grid 11 --dev-fraction 1.0
"""

from __future__ import annotations

import argparse
import time

import torch

from alphavil.alpha import fit_alpha, target_loss_and_grad, target_loss_value
from alphavil.alpha_exact import (
    grid_check,
    solve_alpha,
    solve_alpha_newton,
    start_candidates,
    target_loss_grad_hess,
)
from alphavil.config import build_optimizer, load_config
from alphavil.datasets import get_dataset
from alphavil.deltas import mix, restore
from alphavil.task_weights import update_weights_relative
from alphavil.training import Trainer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--grid", type=int, default=21, help="grid points per axis")
    p.add_argument("--dev-fraction", type=float, default=0.2)
    p.add_argument("--train-limit", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(
        "configs/multimnist_paper.toml",
        [
            f"data.train_limit={args.train_limit}",
            f"alphavil.dev_fraction={args.dev_fraction}",
            "train.target=left",
        ],
    )
    data, make_model = get_dataset("multimnist").build(cfg.data)
    torch.manual_seed(0)
    trainer = Trainer(cfg, data, make_model())
    task = trainer.task_map["left"]
    av = cfg.alphavil
    print(
        f"{data.num_examples('train', 'left')} train, alpha on {args.dev_fraction:.0%} of dev, "
        f"{args.threads} thread(s); objective = target dev loss at θ + Σ α δ"
    )
    print("epoch solver  alpha(left,right)   objective  gap-to-grid  passes(f+b) fwd  seconds")
    for epoch in range(1, args.epochs + 1):
        theta, deltas, _ = trainer.method.collect_deltas()
        dev = trainer.method.alpha_dev_batches()
        model = trainer.model
        vg = target_loss_and_grad(model, theta, deltas, dev, task)
        value = target_loss_value(model, theta, deltas, dev, task)
        starts = start_candidates(2, 0)
        fits = {}
        t0 = time.perf_counter()
        sgd = fit_alpha(vg, 2, steps=av.steps, optimizer=lambda q: build_optimizer(av.optimizer, q))
        sgd.final_loss = value(sgd.alphas)
        fits["sgd"] = (sgd, time.perf_counter() - t0)
        t0 = time.perf_counter()
        fits["lbfgs"] = (
            solve_alpha(vg, starts, value=value, tol=av.solver_tol, max_passes=av.solver_passes),
            time.perf_counter() - t0,
        )
        t0 = time.perf_counter()
        vgh = target_loss_grad_hess(model, theta, deltas, dev, task)
        fits["newton"] = (
            solve_alpha_newton(vgh, value, starts, tol=av.solver_tol, max_passes=av.solver_passes),
            time.perf_counter() - t0,
        )
        t0 = time.perf_counter()
        grid_alpha, grid_loss = grid_check(value, 2, args.grid, -0.5, 1.5)
        t_grid = time.perf_counter() - t0
        for name, (fit, seconds) in fits.items():
            a = ", ".join(f"{v:6.3f}" for v in fit.alphas.tolist())
            final = float(fit.final_loss) if fit.final_loss is not None else float("nan")
            print(
                f"{epoch:5d} {name:7s} ({a})  {final:9.5f}  {final - grid_loss:+11.2e}  "
                f"{fit.passes:11d} {fit.forward_passes:4d}  {seconds:7.2f}"
            )
        a = ", ".join(f"{v:6.3f}" for v in grid_alpha.tolist())
        print(
            f"{epoch:5d} grid    ({a})  {grid_loss:9.5f}  {0:+11.2e}  {0:11d} "
            f"{args.grid**2:4d}  {t_grid:7.2f}"
        )
        chosen = fits["lbfgs"][0].alphas
        restore(model, mix(theta, deltas, chosen))
        w = torch.tensor([trainer.weights[t] for t in trainer.tasks], dtype=torch.float64)
        w = update_weights_relative(w, chosen, 0, floor=av.weight_floor, cap=av.weight_cap)
        trainer.weights = dict(zip(trainer.tasks, w.tolist(), strict=True))


if __name__ == "__main__":
    main()
