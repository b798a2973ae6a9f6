"""Seconds per epoch: multitask vs αVIL (both α solvers), and our loop vs a hand-written one.

All timings come from one process on the same data and model, interleaved round by round so
machine noise hits every variant alike; the medians and their ratios are printed.

    python benchmarks/bench_epoch.py                    # paper setting (50k train, 10k dev)
    python benchmarks/bench_epoch.py --train-limit 10000 --rounds 2

Goals: αVIL / multitask <= 4.2 at paper settings (with the paper's SGD α fit and with the exact
L-BFGS fit, `alphavil.alpha_solver = "lbfgs"`); ours / hand-written <= 1.05.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from alphavil.config import load_config
from alphavil.datasets import get_dataset
from alphavil.training import Trainer


def hand_written_epoch(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    ys: dict[str, torch.Tensor],
    batch_size: int,
    gen: torch.Generator,
) -> None:
    """The plainest PyTorch loop: randperm batches, mean of the two cross-entropies, SGD step."""
    model.train()
    perm = torch.randperm(len(x), generator=gen)
    for i in range(0, len(x), batch_size):
        idx = perm[i : i + batch_size]
        out = model(x[idx].contiguous(memory_format=torch.channels_last), ["left", "right"])
        loss = 0.5 * (
            F.cross_entropy(out["left"], ys["left"][idx])
            + F.cross_entropy(out["right"], ys["right"][idx])
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--train-limit", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config("configs/multimnist_paper.toml", [f"data.train_limit={args.train_limit}"])
    data, make_model = get_dataset("multimnist").build(cfg.data)
    cfg_mt = load_config("configs/multimnist_paper.toml", ["train.method=multitask"])
    cfg_exact = load_config(
        "configs/multimnist_paper.toml",
        [
            f"data.train_limit={args.train_limit}",
            "alphavil.alpha_solver=lbfgs",
            "alphavil.weight_rule=relative",
        ],
    )
    torch.manual_seed(0)
    trainers = {
        "multitask": Trainer(cfg_mt, data, make_model()),
        "alphavil": Trainer(cfg, data, make_model()),
        "alphavil-lbfgs": Trainer(cfg_exact, data, make_model()),
    }
    hand_model = make_model().to(memory_format=torch.channels_last)
    hand_opt = torch.optim.SGD(hand_model.parameters(), lr=0.05, momentum=0.9)
    x, ys = data.inputs["train"], data.targets["train"]
    gen = torch.Generator().manual_seed(0)
    times: dict[str, list[float]] = {k: [] for k in ("hand-written", *trainers)}
    passes: dict[str, list[int]] = {"alphavil": [], "alphavil-lbfgs": []}
    for r in range(args.rounds):
        t0 = time.perf_counter()
        hand_written_epoch(hand_model, hand_opt, x, ys, 256, gen)
        times["hand-written"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        trainers["multitask"].method.epoch()
        times["multitask"].append(time.perf_counter() - t0)
        infos = {}
        for name in ("alphavil", "alphavil-lbfgs"):
            t0 = time.perf_counter()
            infos[name] = trainers[name].method.epoch()
            times[name].append(time.perf_counter() - t0)
            passes[name].append(infos[name]["alpha_fit"]["passes"])
        print(
            f"round {r + 1}: "
            + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items())
            + "".join(
                f" ({k}: deltas {i['seconds_deltas']:.2f}s, alpha {i['seconds_alpha']:.2f}s,"
                f" {i['alpha_fit']['passes']} f+b + {i['alpha_fit']['forward_passes']} fwd passes)"
                for k, i in infos.items()
            ),
            flush=True,
        )
    med = {k: statistics.median(v) for k, v in times.items()}
    n = data.num_examples("train", "left")
    print(
        f"\n{n} train / {data.num_examples('dev', 'left')} dev examples, {args.threads} threads,"
        f" {args.rounds} rounds, median seconds per epoch (training only, no evaluation):"
    )
    for k, v in med.items():
        print(f"  {k:13s} {v:7.2f}")
    for name in ("alphavil", "alphavil-lbfgs"):
        print(
            f"  {name} / multitask = {med[name] / med['multitask']:.2f}  (goal <= 4.2); "
            f"dev passes per epoch {passes[name]}"
        )
    print(
        f"  multitask / hand-written  = {med['multitask'] / med['hand-written']:.3f} (goal <= 1.05)"
    )


if __name__ == "__main__":
    main()
