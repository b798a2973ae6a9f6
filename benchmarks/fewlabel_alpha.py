"""Few-label pilot for the α fit: why the exact fit fails on a small dev set, and candidates.

Protocol (MultiMNIST, target = left digit): per data seed, a permutation of the 50k training
images gives N target-labelled images, the next M = N/5 as the target's dev set (the only dev data
anything reads), and the next A as the auxiliary pool; test = the full 10k test set. LeNet with one
head per task, SGD lr 0.05 momentum 0.9, batch 256; target test accuracy at the best dev epoch.

Written with the library's public functions (snapshot / delta / mix / solve_alpha / ...) so that
candidates can be compared before one of them becomes the method's default. Usage::

    python benchmarks/fewlabel_alpha.py --out docs/fewlabel/alpha_candidates \
        --arms single multitask paper exact box shrink bag --aux coarse random right --seeds 0 1

Each (arm, aux, seed) writes one JSON file; existing files are skipped (resumable).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

import alphavil as av
from alphavil.alpha import fit_alpha
from alphavil.data.multimnist_spec import MultiMnistConfig, build

AUX_KINDS = ("coarse", "random", "right", "coarse+random")
BASE_ARMS = ("single", "multitask", "paper", "exact", "box", "shrink", "bag", "gate", "sum")
# "joint-<fit>-<rule>": the multitask trajectory (every step a batch of every task), each task's
# share of the update tracked through SGD's momentum (exact: SGD is linear in the gradients), α
# fitted on those shares; fit "box" (α in [0, 1]^T) or "aux" (α_target = 1, the rest in [0, 1])
JOINT_ARMS = ("joint-box-ema", "joint-aux-ema", "joint-box-fixed", "joint-aux-fixed", "joint-one")
# "<fit>-long": every task's update runs as many steps as the longest task's pass (cycling);
# "<fit>-fixed" / "<fit>-ema": task weights never move / move by an average of clip(α_t/α_*, 0, 1)
RULES = ("fixed", "ema", "emareset")  # "emareset": ema, and a rejected task's optimiser reset
ARMS = (*BASE_ARMS, "single-long", *(f"{a}-long" for a in BASE_ARMS[2:]))
ARMS = (ARMS
        + tuple(f"{a}-{r}" for a in BASE_ARMS[2:] for r in RULES)
        + tuple(f"{a}-{r}-long" for a in BASE_ARMS[2:] for r in RULES))  # fmt: skip
ARMS = ARMS + JOINT_ARMS
LAMBDAS = (0.0, 0.1, 1.0, 10.0)


def make_data(seed: int, n: int, m: int, a: int, aux: str) -> dict[str, Any]:
    """Target pool, target dev, auxiliary pool (with its tasks' labels) and the full test set."""
    data, _ = build(MultiMnistConfig(data_seed=0))
    x, y = data.inputs["train"], data.targets["train"]
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(1000 + seed))
    tr, dv, ap = perm[:n], perm[n : n + m], perm[n + m : n + m + a]
    rng = torch.Generator().manual_seed(2000 + seed)
    aux_tasks: dict[str, tuple[int, Tensor, Tensor]] = {}  # name -> classes, train y, test y
    xt, yt = data.inputs["test"], data.targets["test"]
    for kind in aux.split("+"):
        if kind == "coarse":
            aux_tasks["coarse"] = (5, y["left"][ap] // 2, yt["left"] // 2)
        elif kind == "right":
            aux_tasks["right"] = (10, y["right"][ap], yt["right"])
        elif kind == "random":
            r = torch.randint(0, 10, (len(ap),), generator=rng)
            aux_tasks["random"] = (10, r, torch.randint(0, 10, (len(xt),), generator=rng))
        else:
            raise SystemExit(f"unknown auxiliary kind {kind!r}; choose from {AUX_KINDS}")
    return {
        "x": x[tr], "y": y["left"][tr], "x_dev": x[dv], "y_dev": y["left"][dv],
        "x_aux": x[ap], "aux": {k: v[1] for k, v in aux_tasks.items()},
        "classes": {k: v[0] for k, v in aux_tasks.items()},
        "x_test": xt, "y_test": yt["left"],
    }  # fmt: skip


def accuracy(model: torch.nn.Module, x: Tensor, y: Tensor) -> float:
    model.eval()
    with torch.no_grad():
        correct = sum(
            int((model(xb, ["left"])["left"].argmax(1) == yb).sum())
            for xb, yb in zip(x.split(1000), y.split(1000), strict=True)
        )
    return 100.0 * correct / len(y)


def batches(n: int, gen: torch.Generator, bs: int = 256) -> list[Tensor]:
    return list(torch.randperm(n, generator=gen).split(bs))


def penalised(vg: Callable, lam: float) -> Callable:
    """α -> (L(α) + λ/2 ‖α − 1‖², gradient)."""

    def f(a: Tensor) -> tuple[Tensor, Tensor]:
        v, g = vg(a)
        d = a.double() - 1.0
        return v + 0.5 * lam * float(d @ d), g.double() + lam * d

    return f


def solve(model, theta, deltas, x_dev, y_dev, task, target, lam=0.0):
    dev = [(x_dev, {"left": y_dev})]
    vg = av.target_loss_and_grad(model, theta, deltas, dev, task)
    val = av.target_loss_value(model, theta, deltas, dev, task)
    n = deltas[next(iter(deltas))].shape[0]
    if lam:
        vg, val0 = penalised(vg, lam), val
        val = lambda a: val0(a) + 0.5 * lam * float(((a.double() - 1) ** 2).sum())  # noqa: E731
    return av.solve_alpha(vg, av.start_candidates(n, target), value=val)


def box_solve(model, theta, deltas, x_dev, y_dev, task, target, lo=0.0, hi=1.0, fix_target=False):
    """L-BFGS-B (scipy) on α ∈ [lo, hi]^T from the best clipped start candidate (α_target = 1
    with ``fix_target``)."""
    from scipy.optimize import minimize

    dev = [(x_dev, {"left": y_dev})]
    vg = av.target_loss_and_grad(model, theta, deltas, dev, task)
    val = av.target_loss_value(model, theta, deltas, dev, task)
    n = deltas[next(iter(deltas))].shape[0]
    starts = [s.clamp(lo, hi) for s in av.start_candidates(n, target)]
    bounds = [(lo, hi)] * n
    if fix_target:
        bounds[target] = (1.0, 1.0)
        for s in starts:
            s[target] = 1.0
    x0 = min(starts, key=lambda s: val(s))

    def fg(a: np.ndarray) -> tuple[float, np.ndarray]:
        v, g = vg(torch.tensor(a, dtype=torch.float64))
        return float(v), g.double().numpy()

    res = minimize(fg, x0.numpy(), jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": 30, "ftol": 1e-7})  # fmt: skip
    return torch.tensor(res.x, dtype=torch.float64)


def per_example(model, theta, deltas, d, alphas: Tensor) -> Tensor:
    """The target's dev loss of every dev example at θ + Σ α δ (eval mode)."""
    from torch.func import functional_call

    model.eval()
    with torch.no_grad():
        out = functional_call(model, av.mix(theta, deltas, alphas), (d["x_dev"], ["left"]))
        return torch.nn.functional.cross_entropy(out["left"], d["y_dev"], reduction="none")


def cv_lambda(model, theta, deltas, x_dev, y_dev, task, target, folds=4, seed=0) -> float:
    """λ minimising the K-fold cross-validated dev loss of the penalised fit."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(y_dev), generator=gen).chunk(folds)
    scores = []
    for lam in LAMBDAS:
        total = 0.0
        for k in range(folds):
            fit_idx = torch.cat([idx[j] for j in range(folds) if j != k])
            a = solve(model, theta, deltas, x_dev[fit_idx], y_dev[fit_idx], task, target, lam)
            held = av.target_loss_value(
                model, theta, deltas, [(x_dev[idx[k]], {"left": y_dev[idx[k]]})], task
            )
            total += held(a.alphas) * len(idx[k])
        scores.append(total / len(y_dev))
    return LAMBDAS[int(np.argmin(scores))]


def result(log: list[dict[str, Any]], t0: float, **meta: Any) -> dict[str, Any]:
    """A run's JSON: its settings, the best dev epoch's dev and test accuracy, every epoch."""
    best = max(range(len(log)), key=lambda i: (log[i]["dev"], -i))
    return {
        **meta, "best_epoch": best + 1, "dev": log[best]["dev"], "test": log[best]["test"],
        "seconds": time.perf_counter() - t0, "log": log,
    }  # fmt: skip


def run(arm: str, aux: str, seed: int, n: int, epochs: int, diagnose: bool) -> dict[str, Any]:
    torch.set_num_threads(1)
    label = arm
    if arm in JOINT_ARMS:
        return run_joint(arm, aux, seed, n, epochs)
    long = arm.endswith("-long")
    arm = arm.removesuffix("-long")
    rule = next((r for r in RULES if arm.endswith(f"-{r}")), "")
    arm = arm.removesuffix(f"-{rule}") if rule else arm
    d = make_data(seed, n, n // 5, 10000, aux)
    tasks = [av.Task("left", 10)] + [av.Task(k, c) for k, c in d["classes"].items()]
    from alphavil.datasets import build_model
    from alphavil.models.lenet import multi_lenet

    torch.manual_seed(seed)
    model = build_model(multi_lenet, tasks)
    names = [t.name for t in tasks]
    gen = torch.Generator().manual_seed(seed)
    sgd = lambda: torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)  # noqa: E731
    pools = {"left": (d["x"], d["y"])} | {k: (d["x_aux"], v) for k, v in d["aux"].items()}
    if arm == "single":
        names, tasks = ["left"], tasks[:1]
    opts = {t: sgd() for t in names}
    joint = sgd()
    w = torch.ones(len(names), dtype=torch.float64)
    log: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for epoch in range(epochs):
        rec: dict[str, Any] = {"epoch": epoch + 1}
        if arm in ("single", "multitask"):
            model.train()
            order = {t: batches(len(pools[t][1]), gen) for t in names}
            steps = max(len(o) for o in order.values())
            if long:  # as many steps as one pass over the largest pool, the target cycling
                steps = max(math.ceil(len(v[1]) / 256) for v in pools.values())
            for s in range(steps):
                loss = 0.0
                for i, t in enumerate(names):
                    if s % len(order[t]) == 0 and s:
                        order[t] = batches(len(pools[t][1]), gen)
                    b = order[t][s % len(order[t])]
                    out = model(pools[t][0][b], [t])[t]
                    loss = loss + tasks[i].loss(out, pools[t][1][b])
                joint.zero_grad()
                loss.backward()
                joint.step()
        else:
            theta = av.snapshot(model)
            ds = []
            longest = max(math.ceil(len(pools[t][1]) / 256) for t in names)
            for i, t in enumerate(names):
                av.restore(model, theta)
                model.train()
                order = batches(len(pools[t][1]), gen)
                while long and len(order) < longest:
                    order += batches(len(pools[t][1]), gen)
                for b in order[:longest] if long else order:
                    out = model(pools[t][0][b], [t])[t]
                    loss = float(w[i] / w.sum()) * tasks[i].loss(out, pools[t][1][b])
                    opts[t].zero_grad()
                    loss.backward()
                    opts[t].step()
                ds.append(av.delta(model, theta))
            deltas = av.stack_deltas(ds)
            av.restore(model, theta)
            model.eval()
            args = (model, theta, deltas, d["x_dev"], d["y_dev"], tasks[0], 0)
            if arm == "paper":
                dev = [(d["x_dev"], {"left": d["y_dev"]})]
                vg = av.target_loss_and_grad(model, theta, deltas, dev, tasks[0])
                alphas = fit_alpha(vg, len(names), steps=10).alphas.double()
            elif arm == "exact":
                alphas = solve(*args).alphas
            elif arm == "box":
                alphas = box_solve(*args)
            elif arm == "sum":  # α = 1: the separate task updates summed
                alphas = torch.ones(len(names), dtype=torch.float64)
            elif arm == "gate":  # the box fit only where dev says it beats α = 1 significantly
                fitted = box_solve(*args)
                ones = torch.ones(len(names), dtype=torch.float64)
                diff = per_example(model, theta, deltas, d, ones) - per_example(
                    model, theta, deltas, d, fitted
                )
                z = float(diff.mean() / (diff.std() / math.sqrt(len(diff)) + 1e-12))
                rec["gate_z"] = z
                alphas = fitted if z > 1.645 else ones
            elif arm == "shrink":
                lam = cv_lambda(*args, seed=seed * 100 + epoch)
                rec["lambda"] = lam
                alphas = solve(*args, lam=lam).alphas
            elif arm == "bag":
                bg = torch.Generator().manual_seed(seed * 100 + epoch)
                fits = []
                for _ in range(10):
                    i = torch.randint(0, len(d["y_dev"]), (len(d["y_dev"]),), generator=bg)
                    fits.append(solve(model, theta, deltas, d["x_dev"][i], d["y_dev"][i],
                                      tasks[0], 0).alphas)  # fmt: skip
                alphas = torch.stack(fits).mean(0)
            else:
                raise SystemExit(f"unknown arm {arm!r}")
            if diagnose:
                bg = torch.Generator().manual_seed(7 + epoch)
                boots = []
                for _ in range(5):
                    i = torch.randint(0, len(d["y_dev"]), (len(d["y_dev"]),), generator=bg)
                    boots.append(solve(model, theta, deltas, d["x_dev"][i], d["y_dev"][i],
                                       tasks[0], 0).alphas.tolist())  # fmt: skip
                sub = torch.arange(0, 10000, 5)  # 2,000 test images: the oracle α (diagnostic)
                x_sub, y_sub = d["x_test"][sub], d["y_test"][sub]
                oracle = solve(model, theta, deltas, x_sub, y_sub, tasks[0], 0)
                test_val = av.target_loss_value(
                    model, theta, deltas, [(d["x_test"][sub], {"left": d["y_test"][sub]})], tasks[0]
                )
                rec |= {"alpha_boot": boots, "alpha_oracle": oracle.alphas.tolist(),
                        "test_loss_fit": test_val(alphas), "test_loss_oracle": oracle.final_loss,
                        "test_loss_one": test_val(torch.ones(len(names)).double())}  # fmt: skip
            av.restore(model, av.mix(theta, deltas, alphas))
            if rule == "fixed":
                pass
            elif rule in ("ema", "emareset"):
                if rule == "emareset":  # as the library does: forget a rejected update's momentum
                    for i, t in enumerate(names):
                        if float(alphas[i]) <= 0:
                            opts[t] = sgd()
                r = (alphas / max(float(alphas[0]), 1e-3)).clamp(0.0, 1.0)
                w = 0.7 * w + 0.3 * r
                w[0] = 1.0
            elif arm == "paper":
                w = av.update_weights(w, alphas)
            else:
                w = av.update_weights_relative(w, alphas, target=0)
            rec |= {"alpha": alphas.tolist(), "weights": w.tolist()}
        rec["dev"] = accuracy(model, d["x_dev"], d["y_dev"])
        rec["test"] = accuracy(model, d["x_test"], d["y_test"])
        log.append(rec)
    return result(log, t0, arm=label, aux=aux, seed=seed, n=n, epochs=epochs)


def run_joint(arm: str, aux: str, seed: int, n: int, epochs: int) -> dict[str, Any]:
    """The multitask trajectory with each task's share of the update tracked, α fitted on them."""
    torch.set_num_threads(1)
    d = make_data(seed, n, n // 5, 10000, aux)
    tasks = [av.Task("left", 10)] + [av.Task(k, c) for k, c in d["classes"].items()]
    from alphavil.datasets import build_model
    from alphavil.models.lenet import multi_lenet

    torch.manual_seed(seed)
    model = build_model(multi_lenet, tasks)
    names = [t.name for t in tasks]
    gen = torch.Generator().manual_seed(seed)
    pools = {"left": (d["x"], d["y"])} | {k: (d["x_aux"], v) for k, v in d["aux"].items()}
    named = [(k, p) for k, p in model.named_parameters()]
    params = [p for _, p in named]
    lr, mu = 0.05, 0.9
    bufs = {t: [torch.zeros_like(p) for p in params] for t in names}
    w = torch.ones(len(names), dtype=torch.float64)
    log: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for epoch in range(epochs):
        rec: dict[str, Any] = {"epoch": epoch + 1}
        theta = av.snapshot(model)
        share = {t: [torch.zeros_like(p) for p in params] for t in names}
        model.train()
        order = {t: batches(len(pools[t][1]), gen) for t in names}
        steps = max(len(o) for o in order.values())
        for s in range(steps):
            for i, t in enumerate(names):
                if s % len(order[t]) == 0 and s:
                    order[t] = batches(len(pools[t][1]), gen)
                b = order[t][s % len(order[t])]
                loss = float(w[i]) * tasks[i].loss(model(pools[t][0][b], [t])[t], pools[t][1][b])
                grads = torch.autograd.grad(loss, params, allow_unused=True)
                for j, g in enumerate(grads):
                    bufs[t][j].mul_(mu)
                    if g is not None:
                        bufs[t][j].add_(g)
            with torch.no_grad():
                for t in names:
                    for j, p in enumerate(params):
                        p.sub_(lr * bufs[t][j])
                        share[t][j].sub_(lr * bufs[t][j])
        ds = []
        for t in names:
            dt = {k: torch.zeros_like(v) for k, v in theta.items()}
            for j, (k, _) in enumerate(named):
                dt[k] = share[t][j].clone()
            ds.append(dt)
        deltas = av.stack_deltas(ds)
        av.restore(model, theta)
        model.eval()
        args = (model, theta, deltas, d["x_dev"], d["y_dev"], tasks[0], 0)
        if arm == "joint-one":
            alphas = torch.ones(len(names), dtype=torch.float64)
        else:
            alphas = box_solve(*args, fix_target=arm.startswith("joint-aux"))
        av.restore(model, av.mix(theta, deltas, alphas))
        for i, t in enumerate(names):  # the momentum of what was taken
            for b_ in bufs[t]:
                b_.mul_(float(alphas[i]))
        if arm.endswith("-ema"):
            r = (alphas / max(float(alphas[0]), 1e-3)).clamp(0.0, 1.0)
            w = 0.7 * w + 0.3 * r
            w[0] = 1.0
        rec |= {"alpha": alphas.tolist(), "weights": w.tolist()}
        rec["dev"] = accuracy(model, d["x_dev"], d["y_dev"])
        rec["test"] = accuracy(model, d["x_test"], d["y_test"])
        log.append(rec)
    return result(log, t0, arm=arm, aux=aux, seed=seed, n=n, epochs=epochs)


def code_version() -> str:
    """The checkout's commit, with "+dirty" when alphavil's sources differ from it."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    git = ["git", "-C", str(root)]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    dirty = subprocess.run([*git, "status", "--porcelain", "src"], capture_output=True, text=True)
    return head.strip() + ("+dirty" if dirty.stdout.strip() else "")


def job(spec: tuple[str, str, int, int, int, bool, str]) -> str:
    arm, aux, seed, n, epochs, diagnose, out = spec
    path = Path(out) / f"{arm}-{aux}-n{n}-s{seed}.json"
    if path.exists():
        return f"skip {path.name}"
    res = run(arm, aux, seed, n, epochs, diagnose) | {"code": code_version()}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=1))
    tmp.replace(path)
    return f"{path.name}: test {res['test']:.2f} (epoch {res['best_epoch']}, {res['seconds']:.0f}s)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    p.add_argument("--aux", nargs="+", default=["coarse", "random"], choices=AUX_KINDS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--diagnose", action="store_true", help="log bootstrap and oracle α")
    p.add_argument("--workers", type=int, default=1)
    a = p.parse_args()
    Path(a.out).mkdir(parents=True, exist_ok=True)
    specs = [(arm, aux, s, a.n, a.epochs, a.diagnose, a.out)
             for s in a.seeds for aux in a.aux for arm in a.arms
             if not (arm == "single" and aux != a.aux[0])]  # fmt: skip
    with ProcessPoolExecutor(a.workers) as pool:
        for line in pool.map(job, specs):
            print(line, flush=True)


if __name__ == "__main__":
    main()
