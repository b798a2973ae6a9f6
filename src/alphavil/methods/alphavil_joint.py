"""One pass of joint steps for αVIL's ``updates = "joint"`` (:mod:`alphavil.task_shares`): the
steps of every trained task's stream, each task's gradient handed to a share-tracking optimiser
as its own row (and, for the target branch, the target's rows alone).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from alphavil import distributed as dist
from alphavil.data.batching import step_for_task
from alphavil.deltas import restore, snapshot
from alphavil.methods.merging import Key
from alphavil.task_shares import ShareAdam, ShareSGD
from alphavil.training import NonFiniteLossError

if TYPE_CHECKING:
    from alphavil.training import Trainer


def joint_pass(
    loop: Trainer,
    opt: ShareSGD | ShareAdam,
    tasks: list[str],
    scales: dict[str, float],
    what: str,
) -> dict[str, float]:
    """One pass of joint steps (the stream of every trained task) from the model's current
    state, each step's gradients of ``tasks`` (loss scale ``scales[t]``) given to ``opt``
    as task rows; a step's other tasks' rows are left out. Each task's mean batch loss."""
    av = loop.cfg.alphavil
    together = dist.world_size() > 1
    sums = dict.fromkeys(tasks, 0.0)
    counts = dict.fromkeys(tasks, 0)
    loop.model.train()
    for n, step in enumerate(loop.train_stream(loop.tasks, av.rho), start=1):
        if len(tasks) == 1 and len(loop.tasks) > 1:
            cut = step_for_task(step, tasks[0])
            if cut is None:
                continue
            step = cut
        outputs, targets, share = loop.forward(step, shard=together)
        held = [t for t in tasks if t in targets]
        grads: list[list[Tensor | None]] = []
        for t in tasks:
            if t not in targets:
                grads.append([None] * len(opt.params))
                continue
            loss = loop.task_map[t].loss(outputs[t], targets[t]) * share
            value = float(dist.all_sum(loss.detach()) if together else loss.detach())
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"{what}: loss of {t!r} is {value} at batch {n}; lower the "
                    f"learning rate (train.optimizer.lr = {loop.cfg.train.optimizer.get('lr')})"
                )
            sums[t] += value
            counts[t] += 1
            g = torch.autograd.grad(
                scales[t] * loss, opt.params, retain_graph=t != held[-1], allow_unused=True
            )
            grads.append([x if x is None or not together else dist.all_sum(x) for x in g])
        opt.step(grads)
        if loop.progress:
            loop.progress.phase(f"{what} batch {n}")
    return {t: sums[t] / max(counts[t], 1) for t in tasks}


class BestPass:
    """The best-scoring pass so far of one trajectory (``alphavil.restore_best``): its dev key,
    its number, the task shares and the model state at its end; the first of equal keys."""

    def __init__(self) -> None:
        self.best: tuple[Key, int, list[list[Tensor]], dict[str, Tensor]] | None = None

    def see(self, key: Key, k: int, opt: ShareSGD | ShareAdam, model: torch.nn.Module) -> None:
        """Pass ``k`` ended with dev key ``key`` (``opt``'s shares and ``model`` at its end)."""
        if self.best is None or key > self.best[0]:
            shares = [[x.clone() for x in row] for row in opt.shares]
            self.best = (key, k, shares, snapshot(model))

    def settle(self, opt: ShareSGD | ShareAdam, model: torch.nn.Module, passes: int) -> int:
        """Put ``opt``'s shares and ``model`` back at the best pass's end (nothing to do when
        that is the last, ``passes``, or nothing was scored); the pass they end at. The
        optimiser's own state (momentum) stays where the last pass left it, as a ForkMerge
        branch's does."""
        if self.best is None or self.best[1] == passes:
            return passes
        opt.shares = self.best[2]
        restore(model, self.best[3])
        return self.best[1]

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]


def joint_passes(
    loop: Trainer,
    opt: ShareSGD | ShareAdam,
    tasks: list[str],
    scales: dict[str, float],
    what: str,
    passes: int,
    score: Callable[[], Key] | None = None,
) -> tuple[dict[str, float], int]:
    """``passes`` joint passes in a row (:func:`joint_pass`; ``alphavil.passes``), the shares
    of ``opt`` accumulating over all of them. Each task's mean batch loss over the passes, and
    the pass whose end the model and the shares are left at.

    With ``score`` (the target's dev score of the model, higher is better; ``alphavil.
    restore_best``) the model and the shares go back to the end of the best-scoring pass, the
    first of equal ones (ForkMerge's interval-best state, Jiang et al. 2023; :class:`BestPass`)."""
    if passes == 1:
        return joint_pass(loop, opt, tasks, scales, what), 1
    totals = dict.fromkeys(tasks, 0.0)
    best = BestPass()
    for k in range(1, passes + 1):
        losses = joint_pass(loop, opt, tasks, scales, f"{what} (pass {k}/{passes})")
        for t in tasks:
            totals[t] += losses[t] / passes
        if score is not None:
            best.see(score(), k, opt, loop.model)
    return totals, best.settle(opt, loop.model, passes)
