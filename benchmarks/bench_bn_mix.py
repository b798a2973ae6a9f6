"""How should αVIL mix batch-norm running statistics? Rules compared with recomputed statistics.

Parameters are mixed at θ + Σ_t α_t δ_t (Algorithm 1, line 9-10). A batch-norm layer also holds
running statistics, which every task update moves too; in eval mode they enter the output
directly, so the α objective and the written-back network depend on how they are mixed. This
trains a LeNet with batch norm after every conv/fc layer on a MultiMNIST subset (tasks left =
target, right, and a random-label task), with αVIL's task updates (per-task SGD, momentum 0.9),
and at every epoch compares, over a grid of α (and the usual start candidates), the target's dev
loss of the network θ + Σ α δ evaluated with the statistics of each rule against the same network
evaluated with its *recomputed* statistics (a pass over the training subset in train mode with a
cumulative average; the ideal, at one extra data pass per α):

* ``additive``: θ + Σ α δ for the statistics too (the paper's rule read literally);
* ``log-var``: means additively, variances in log space, θ_v · Π_t (v_t / θ_v)^α_t: positive,
  smooth in α, θ's at α = 0 and task t's at α = e_t;
* ``convex``: both statistics as the convex combination Σ_t w_t s_t with w = α⁺ / Σ α⁺ (θ's when
  no α is positive); discontinuous at α = 0;
* ``convex-theta``: θ_s + Σ_t w_t δ_t with w = α⁺ / max(1, Σ α⁺), a convex combination of θ's and
  the tasks' statistics, continuous in α (the library's rule, :func:`alphavil.deltas.mix`);
* ``add-mean``: means additively, variances as ``convex-theta``;
* ``theta``: θ's statistics, not mixed.

Prints per epoch and rule the mean and max |L_rule − L_recomputed| over the α points, how many are
not finite, and the recomputed-statistics loss at the rule's best grid point (next to the best
recomputed loss over the grid). The run continues with the library's mix at the α of the grid's
best point under ``convex-theta``.

    python benchmarks/bench_bn_mix.py --epochs 3 --grid 4   # 3000 train; ~15 min on 1 busy core
"""

from __future__ import annotations

import argparse
import itertools
import math

import torch
from torch import Tensor, nn
from torch.func import functional_call

from alphavil.config import load_config
from alphavil.datasets import get_dataset
from alphavil.deltas import delta, mix, restore, snapshot, stack_deltas
from alphavil.models.multihead import MultiHeadModel
from alphavil.tasks import Task


def bn_lenet(tasks: list[Task]) -> MultiHeadModel:
    """LeNet (αVIL §4.1) with batch norm after each conv and the fc layer."""
    enc = nn.Sequential(
        nn.Conv2d(1, 10, 5), nn.BatchNorm2d(10), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(10, 20, 5), nn.BatchNorm2d(20), nn.MaxPool2d(2), nn.ReLU(),
        nn.Flatten(), nn.Linear(320, 50), nn.BatchNorm1d(50), nn.ReLU(),
    )  # fmt: skip
    return MultiHeadModel(enc, {t.name: nn.Linear(50, t.num_outputs) for t in tasks})


def mix_rule(rule: str, theta: dict[str, Tensor], deltas: dict[str, Tensor], a: Tensor) -> dict:
    """θ + Σ α δ for parameters; the running statistics by ``rule``."""
    out = dict(theta)
    pos = a.clamp_min(0)
    w = pos / pos.sum() if float(pos.sum()) > 0 else None
    wc = pos / pos.sum().clamp_min(1.0)  # convex-theta: weight 1 - Σ wc on θ's statistics
    for k, d in deltas.items():
        lin = theta[k] + torch.tensordot(a.to(d.dtype), d, dims=1)
        stat = k.endswith(("running_mean", "running_var"))
        if not stat or rule == "additive":
            out[k] = lin
        elif rule == "theta":
            out[k] = theta[k]
        elif rule == "convex":
            out[k] = theta[k] if w is None else torch.tensordot(w.to(d.dtype), theta[k] + d, 1)
        elif rule == "convex-theta" or (rule == "add-mean" and k.endswith("running_var")):
            out[k] = theta[k] + torch.tensordot(wc.to(d.dtype), d, dims=1)
        elif rule == "add-mean" or k.endswith("running_mean"):  # add-mean, or log-var's means
            out[k] = lin
        else:
            logs = torch.log((theta[k] + d).clamp_min(1e-30) / theta[k])
            out[k] = theta[k] * torch.exp(torch.tensordot(a.to(d.dtype), logs, dims=1))
    return out


@torch.no_grad()
def dev_loss(model: nn.Module, point: dict, x: Tensor, y: Tensor) -> float:
    model.eval()
    out = functional_call(model, point, (x, ["left"]))["left"]
    return float(nn.functional.cross_entropy(out, y))


@torch.no_grad()
def recomputed(model: nn.Module, point: dict, x: Tensor) -> dict[str, Tensor]:
    """``point`` with every running statistic recomputed on ``x`` (cumulative average)."""
    bns = {n: m for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    p = {k: v.clone() for k, v in point.items()}
    for n in bns:
        p[f"{n}.running_mean"].zero_()
        p[f"{n}.running_var"].fill_(1.0)
        p[f"{n}.num_batches_tracked"].zero_()
    moms = {n: m.momentum for n, m in bns.items()}
    for m in bns.values():
        m.momentum = None
    model.train()
    for b in x[:1000].split(500):
        functional_call(model, p, (b, ["left"]))
    for n, m in bns.items():
        m.momentum = moms[n]
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--grid", type=int, default=5)
    ap.add_argument("--lr", type=float, default=0.01)
    args = ap.parse_args()
    torch.manual_seed(0)
    limits = [f"data.train_limit={args.train}", "data.dev_limit=2000", "data.test_limit=10"]
    cfg = load_config(None, ["data.name=multimnist", *limits, "train.target=left"])
    data, _ = get_dataset("multimnist").build(cfg.data)
    x, yl, yr = data.inputs["train"], data.targets["train"]["left"], data.targets["train"]["right"]
    ys = {"left": yl, "right": yr, "noise": torch.randint(0, 10, yl.shape)}
    xd, yd = data.inputs["dev"][:1000], data.targets["dev"]["left"][:1000]
    tasks = [Task("left", 10), Task("right", 10), Task("noise", 10)]
    model = bn_lenet(tasks)
    opts = {t.name: torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9) for t in tasks}
    axis = torch.linspace(-0.5, 1.5, args.grid, dtype=torch.float64)
    points = [torch.tensor(c, dtype=torch.float64) for c in itertools.product(axis, repeat=3)]
    points += [torch.tensor(c, dtype=torch.float64) for c in ([1, 1, 1], [1, 0, 0], [1 / 3] * 3)]
    rules = ("additive", "log-var", "convex", "convex-theta", "add-mean", "theta")
    print("epoch rule      mean|dL|  max|dL|  non-finite  L(best a)")
    for epoch in range(1, args.epochs + 1):
        theta, ds = snapshot(model), []
        for t in tasks:
            restore(model, theta)
            model.train()
            for b in torch.randperm(len(x)).split(64):
                loss = t.loss(model(x[b], [t.name])[t.name], ys[t.name][b]) / 3
                opts[t.name].zero_grad()
                loss.backward()
                opts[t.name].step()
            ds.append(delta(model, theta))
        deltas = stack_deltas(ds)
        truth = [dev_loss(model, recomputed(model, mix_rule("theta", theta, deltas, a), x), xd, yd)
                 for a in points]  # fmt: skip
        chosen = None
        for rule in rules:
            vals = [dev_loss(model, mix_rule(rule, theta, deltas, a), xd, yd) for a in points]
            err = [abs(v - t) for v, t in zip(vals, truth, strict=True) if math.isfinite(v)]
            bad = sum(not math.isfinite(v) for v in vals)
            i = min(range(len(vals)), key=lambda j: vals[j] if math.isfinite(vals[j]) else math.inf)
            at = [round(v, 2) for v in points[i].tolist()]
            print(f"{epoch:5d} {rule:12s} {sum(err) / len(err):8.4f} {max(err):8.4f} "
                  f"{bad:4d}/{len(vals)}   {truth[i]:.4f} at {at}")  # fmt: skip
            if rule == "convex-theta":
                chosen = points[i]
        print(f"{epoch:5d} recomputed best {min(truth):.4f}")
        assert chosen is not None
        restore(model, mix(theta, deltas, chosen))


if __name__ == "__main__":
    main()
