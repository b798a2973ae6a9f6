"""ForkMerge: Jiang et al., "ForkMerge: Mitigating Negative Transfer in Auxiliary-Task Learning"
(NeurIPS 2023, arXiv 2301.12618), written from the paper's description.

Branches forked from one θ train different task sets for Δt epochs; then they are merged into
θ = Σ_b λ_b θ_b / Σ_b λ_b with λ searched greedily on the target's dev metric, and the merged θ
is copied into every branch. Like αVIL it recombines parameters grown from one θ on the target's
dev data; unlike αVIL the branches run whole epochs and the mixing is a convex combination.

**Branches.** Branch k trains the target plus the k top-ranked auxiliary tasks, for each k in
``forkmerge.branches`` (−1 = all auxiliaries; values above the number of auxiliaries are clipped
and repeats dropped, so ``[0, 1, -1]`` on three tasks is target alone, target + best auxiliary,
target + both). Each branch keeps its own parameters (the whole state: encoder, every head and
the batch-norm buffers) and its own optimiser (``train.optimizer``, state kept across merges: a
merge replaces a branch's parameters, not its momentum). A branch's loss is L_target + Σ L_aux
over its tasks (``aux_loss = "sum"``, the paper's joint objective) or their mean (``"mean"``, as
``multitask``).

**Pruning.** The ranking comes from the first ``prune_epochs`` loop epochs: one pair branch
(target + auxiliary j) per auxiliary task, all from the run's initial θ, ranked by the target's
dev score (the best of the pruning epochs with ``restore_best``, else the last). These epochs
count in ``train.epochs``: each costs one training pass per auxiliary task. They are not thrown
away: the pairs are merged like any interval (λ search included), and the main branches start
from that merge (with fresh optimisers; the pairs' are dropped). Pruning only runs when a
branch needs a ranking (some 0 < k < #auxiliaries); otherwise, and with ``prune_epochs = 0``, the
auxiliaries keep the order of ``train.tasks``.

**An epoch** (one loop epoch) trains every branch for one pass over its tasks' data
(``train.train_fraction``) with ``loop.train_steps``, and scores each on the target's dev split.
The score is the loop's selection score (dev accuracy, or minus the loss for a regression
target) with ties broken by the lower dev loss (``metric = "accuracy"``), or the dev loss alone
(``metric = "loss"``). With ``restore_best`` every branch remembers its best-scoring state of the
interval. Every ``merge_every``-th epoch after pruning (and at the run's last epoch) comes the
merge: each branch contributes its interval-best state (``restore_best``) or its current one;
branches are ranked by score; the best gets λ = 1, each next one λ = a · mean(λ so far), with a
from ``lambda_grid`` maximising the target's dev score of the running merge (first maximum in
grid order; a = 0 is the merge so far, whose score is known, so it costs no dev pass). The
merged θ goes into the loop's model and every branch; the interval's best states are dropped.

**What the loop sees.** Between merges the loop's model holds the branch with the best target
dev score this epoch (the merge could not do worse: a = 0 everywhere gives that branch back),
so the loop's dev curve, best-epoch selection and checkpoints follow the method's best current
candidate; at a merge epoch it holds the merged θ.

**Cost per epoch**, with K branches: K training passes (each over its branch's tasks; A passes
of target + one auxiliary during pruning), K target dev passes (the branch scores), and at a
merge (K − 1) · |grid without 0| more (5 (K − 1) with the default grid), besides the loop's own
dev and test passes. Memory: up to 2K + 1 copies of the model state and K optimiser states.

Defaults scaled from the paper to this library's 10-100 epoch runs: the paper merges every 5
of 20 epochs (DomainNet) or 30 of 200 (NYUv2) and prunes for 1 (DomainNet) or 10 of 200 (NYUv2)
epochs; here ``merge_every = 5`` and ``prune_epochs = 1``. ``branches = [0, 1, -1]`` (target
alone, with its best auxiliary, with all) and ``lambda_grid = [0, 0.2, ..., 1]`` follow the
paper's small branch lists and its λ grid.

Runs under torchrun: every branch trains through ``train_steps`` (gradients summed over ranks)
and every rank scores the whole dev split, so all ranks take the same decisions. With one task
(``train.tasks = [target]``) there is one branch and ForkMerge is single-task training (with
``restore_best`` the interval's best state is reloaded every ``merge_every`` epochs).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from alphavil.config import ConfigError, bounded, build_optimizer, choice
from alphavil.deltas import Params, restore, snapshot
from alphavil.methods.base import Method
from alphavil.methods.merging import Key, greedy_lambdas, merge_states, score_key

if TYPE_CHECKING:
    from alphavil.training import Trainer


@dataclass
class ForkMergeConfig:
    """``[forkmerge]`` options (paper defaults scaled to short runs; see the module docstring)."""

    # k per branch: the target plus its k top-ranked auxiliaries; -1 = all of them
    branches: list[int] = field(default_factory=lambda: [0, 1, -1])
    merge_every: int = bounded(5, 1)  # Δt: epochs between merges
    prune_epochs: int = bounded(1, 0)  # epochs of target+auxiliary pairs that rank the auxiliaries
    # a: each next branch's λ = a · mean(λ so far), a from this grid
    lambda_grid: list[float] = field(default_factory=lambda: [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    # the target's dev criterion: accuracy (minus the loss for regression; ties: lower loss), loss
    metric: str = choice("accuracy", "accuracy", "loss")
    restore_best: bool = True  # merge each branch's best state of the interval, not its last
    aux_loss: str = choice("sum", "sum", "mean")  # a branch's loss: sum of its task losses, mean

    def __post_init__(self) -> None:
        if not self.branches:
            raise ConfigError("forkmerge.branches: needs at least one k, e.g. [0, 1, -1]")
        if any(k < -1 for k in self.branches):
            raise ConfigError(
                f"forkmerge.branches: each k must be >= 0 or -1 (all auxiliaries), "
                f"got {self.branches}"
            )
        if not self.lambda_grid:
            raise ConfigError("forkmerge.lambda_grid: needs at least one value, e.g. [0, 0.5, 1]")
        if any(a < 0 for a in self.lambda_grid):
            raise ConfigError(f"forkmerge.lambda_grid: values must be >= 0, got {self.lambda_grid}")


def resolve_branches(ks: Sequence[int], n_aux: int) -> list[int]:
    """The branches' auxiliary counts: −1 → all ``n_aux``, clipped to ``n_aux``, deduplicated,
    ascending."""
    return sorted({n_aux if k < 0 else min(k, n_aux) for k in ks})


@dataclass
class Branch:
    """One branch: its tasks, parameters, optimiser and this interval's scores."""

    label: str
    tasks: list[str]
    state: Params
    optimizer: torch.optim.Optimizer
    key: Key | None = None  # the target's dev score after the last epoch
    dev: dict[str, float | None] = field(default_factory=dict)  # ... as accuracy and loss
    train_loss: float | None = None
    best_key: Key | None = None  # the interval's best (restore_best)
    best_state: Params | None = None
    best_dev: dict[str, float | None] = field(default_factory=dict)
    best_epoch: int | None = None


class ForkMerge(Method):
    """Branches on nested task sets, forked from one θ and merged by a greedy λ search on the
    target's dev score every ``merge_every`` epochs (``[forkmerge]`` options)."""

    data_parallel = True  # train_steps syncs gradients; every rank scores the whole dev split

    def __init__(self, loop: Trainer) -> None:
        super().__init__(loop)
        self.opts: ForkMergeConfig = loop.cfg.extra.get("forkmerge") or ForkMergeConfig()
        self.aux = [t for t in loop.tasks if t != loop.target]
        self.ks = resolve_branches(self.opts.branches, len(self.aux))
        needs_ranking = any(0 < k < len(self.aux) for k in self.ks)
        self.prune = self.opts.prune_epochs if needs_ranking else 0
        self.ranking: list[str] | None = None if self.prune else list(self.aux)
        self.branches: list[Branch] = []
        self.done = 0  # epochs run

    # -------------------------------------------------------------------------- branches
    def _branch(self, tasks: list[str], state: Params) -> Branch:
        opt = build_optimizer(self.loop.cfg.train.optimizer, self.loop.model.parameters())
        return Branch("+".join(tasks), tasks, state, opt)

    def _pairs(self, theta: Params) -> list[Branch]:
        return [self._branch([self.loop.target, t], theta) for t in self.aux]

    def _main(self, theta: Params) -> list[Branch]:
        assert self.ranking is not None
        return [self._branch([self.loop.target, *self.ranking[:k]], theta) for k in self.ks]

    def _scales(self, tasks: list[str]) -> dict[str, float]:
        w = 1.0 if self.opts.aux_loss == "sum" else 1.0 / len(tasks)
        return dict.fromkeys(tasks, w)

    def _score(self) -> tuple[Key, dict[str, float | None]]:
        """The target's dev score of the loop's model now: key and {accuracy, loss}."""
        target = self.loop.target
        sc = self.loop.evaluate("dev", [target])[target]
        return score_key(sc, self.opts.metric), {"accuracy": sc.accuracy, "loss": sc.loss}

    def _merge_inputs(self, b: Branch) -> tuple[Params, Key, dict[str, float | None]]:
        """What ``b`` brings to a merge: its interval-best state (``restore_best``) or its
        current one, with the target's dev score there."""
        if self.opts.restore_best and b.best_state is not None and b.best_key is not None:
            return b.best_state, b.best_key, b.best_dev
        assert b.key is not None
        return b.state, b.key, b.dev

    # ----------------------------------------------------------------------------- epoch
    def epoch(self) -> dict[str, Any]:
        loop = self.loop
        e = self.done + 1
        if not self.branches:
            theta = snapshot(loop.model)
            self.branches = self._pairs(theta) if self.prune else self._main(theta)
        pruning = e <= self.prune
        t0 = time.perf_counter()
        for b in self.branches:
            restore(loop.model, b.state)
            b.train_loss = loop.train_steps(
                b.optimizer,
                b.tasks,
                self._scales(b.tasks),
                loop.cfg.train.train_fraction,
                f"branch {b.label}",
            )
            b.state = snapshot(loop.model)
            b.key, b.dev = self._score()
            if self.opts.restore_best and (b.best_key is None or b.key > b.best_key):
                b.best_key, b.best_state, b.best_dev, b.best_epoch = b.key, b.state, b.dev, e
        t1 = time.perf_counter()
        info: dict[str, Any] = {
            "phase": "prune" if pruning else "branches",
            "branches": {
                b.label: {"tasks": b.tasks, "train_loss": b.train_loss, "dev": b.dev}
                for b in self.branches
            },
            "train_loss": sum(b.train_loss or 0.0 for b in self.branches) / len(self.branches),
        }
        if self.merges_after(e):
            merged, info["merge"] = self.merge()
            if pruning:
                scores = {b.tasks[1]: self._merge_inputs(b)[1:] for b in self.branches}
                self.ranking = sorted(self.aux, key=lambda t: scores[t][0], reverse=True)
                info["pruning"] = {
                    "ranking": self.ranking,
                    "dev": {t: scores[t][1] for t in scores},
                }
                self.branches = self._main(merged)
            else:
                for b in self.branches:
                    b.state, b.best_key, b.best_state, b.best_epoch = merged, None, None, None
                    b.best_dev = {}
            restore(loop.model, merged)
            info["shown"] = "merged"
        else:
            shown = max(self.branches, key=lambda b: b.key or (-math.inf,))
            restore(loop.model, shown.state)
            info["shown"] = shown.label
        self.done = e
        info["ranking"] = self.ranking
        info["seconds_branches"] = t1 - t0
        info["seconds_merge"] = time.perf_counter() - t1
        return info

    def merges_after(self, epoch: int) -> bool:
        """Whether ``epoch`` ends with a merge: the last pruning epoch, every ``merge_every``-th
        epoch after pruning, and the run's last epoch."""
        since = epoch - self.prune
        last = epoch == self.prune or epoch == self.loop.cfg.train.epochs
        return last or (since > 0 and since % self.opts.merge_every == 0)

    def merge(self) -> tuple[Params, dict[str, Any]]:
        """The greedy λ merge of the branches (interval-best states with ``restore_best``);
        returns the merged state and the record of the choice. Leaves the loop's model at the
        last candidate evaluated."""
        loop = self.loop
        if loop.progress:
            loop.progress.phase("merge", force=True)
        inputs = [self._merge_inputs(b) for b in self.branches]
        order = sorted(range(len(inputs)), key=lambda i: inputs[i][1], reverse=True)
        states = [inputs[i][0] for i in order]
        devs = {key: dev for _, key, dev in reversed(inputs)}  # the dev scores behind each key

        def score(lambdas: list[float]) -> Key:
            restore(loop.model, merge_states(states[: len(lambdas)], lambdas))
            key, dev = self._score()
            devs.setdefault(key, dev)
            return key

        lambdas, chosen, key, calls = greedy_lambdas(
            len(states), score, self.opts.lambda_grid, first=inputs[order[0]][1]
        )
        merged = merge_states(states, lambdas)
        labels = [self.branches[i].label for i in order]
        mass = dict.fromkeys(self.aux, 0.0)  # each auxiliary's share of the merged λ mass
        for i, lam in zip(order, lambdas, strict=True):
            for t in self.branches[i].tasks[1:]:
                mass[t] += lam / sum(lambdas)
        record = {
            "order": labels,
            "lambda": dict(zip(labels, lambdas, strict=True)),
            "a": dict(zip(labels[1:], chosen, strict=True)),
            "dev": devs[key],
            "dev_passes": calls,
            "aux_share": mass,
        }
        if self.opts.restore_best:
            record["best_epoch"] = {b.label: b.best_epoch for b in self.branches}
        return merged, record

    # ---------------------------------------------------------------------------- resume
    def state_dict(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "ranking": self.ranking,
            "branches": [
                {
                    "tasks": b.tasks,
                    "state": b.state,
                    "optimizer": b.optimizer.state_dict(),
                    "key": list(b.key) if b.key is not None else None,
                    "dev": b.dev,
                    "train_loss": b.train_loss,
                    "best_key": list(b.best_key) if b.best_key is not None else None,
                    "best_state": b.best_state,
                    "best_dev": b.best_dev,
                    "best_epoch": b.best_epoch,
                }
                for b in self.branches
            ],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = self.loop.device

        def on_device(params: Params | None) -> Params | None:
            return None if params is None else {k: v.to(device) for k, v in params.items()}

        self.done = int(state["done"])
        self.ranking = state["ranking"]
        self.branches = []
        for s in state["branches"]:
            params = on_device(s["state"])
            assert params is not None
            b = self._branch(list(s["tasks"]), params)
            b.optimizer.load_state_dict(s["optimizer"])
            b.key = tuple(s["key"]) if s["key"] is not None else None
            b.dev, b.train_loss = dict(s["dev"]), s["train_loss"]
            b.best_key = tuple(s["best_key"]) if s["best_key"] is not None else None
            b.best_state, b.best_epoch = on_device(s["best_state"]), s["best_epoch"]
            b.best_dev = dict(s["best_dev"])
            self.branches.append(b)
