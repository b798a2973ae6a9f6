"""αVIL's line 9 every k loop epochs (``alphavil.fit_every``), for joint updates.

Each loop epoch runs one pass of the joint trajectory and (with the target branch) one of the
target alone over the same batches (and with ``alphavil.second_scale`` one of the joint steps at
the second loss scale), each continuing from where the previous epoch left it; the model the
loop evaluates stays at the interval's θ. Every k-th epoch (and at the last) the trajectories'
task shares since θ are the deltas of lines 8-11. This is ForkMerge's merge
interval (Jiang et al. 2023) with ``train.epochs`` still counting passes over the data: the
fits, the writes and the weights are those of ``alphavil.passes = k`` with ``train.epochs / k``
loop epochs, and between fits the loop's evaluations read the written model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from alphavil.deltas import restore, snapshot
from alphavil.methods.alphavil_joint import BestPass, joint_pass
from alphavil.target_branch import with_branch
from alphavil.task_shares import ShareAdam, ShareSGD, share_deltas
from alphavil.task_weights import loss_scales

if TYPE_CHECKING:
    from alphavil.methods.alphavil import AlphaVIL

Params = dict[str, Tensor]
TRAJECTORIES = ("joint", "alone", "second")  # the order of the stacked deltas' row blocks


class Interval:
    """The state of one fit interval carried across loop epochs: θ, where each trajectory has
    got to, each one's best pass (``restore_best``), and the epochs run."""

    def __init__(self) -> None:
        self.epochs = 0  # loop epochs run so far
        self.theta: Params | None = None  # None between intervals
        self.ends: dict[str, Params] = {}  # "joint", "alone", "second": each one's state now
        self.best = {name: BestPass() for name in TRAJECTORIES}
        self.passes = 0  # passes of this interval so far

    def advance(self, av_method: AlphaVIL) -> tuple[dict[str, float], bool]:
        """One pass of each trajectory; each task's mean batch loss in it, and whether the
        interval is over (this is the ``fit_every``-th pass, or the run's last epoch). The
        model is left at θ (:meth:`collect` then gives the deltas)."""
        m, loop = av_method, av_method.loop
        av = loop.cfg.alphavil
        every = av.fit_every
        opts = self.optimizers(m)
        if self.theta is None:  # the interval's first pass
            self.theta, self.ends, self.passes = snapshot(loop.model), {}, 0
            self.best = {name: BestPass() for name in TRAJECTORIES}
            for opt in opts.values():
                opt.reset_shares()
        self.passes += 1
        self.epochs += 1
        k, theta = self.passes, self.theta
        scales = loss_scales(loop.weights, loop.target, av.loss_scale)
        batch_order = loop.generator.get_state()
        losses: dict[str, float] = {}
        after = batch_order
        for name, opt in opts.items():
            restore(loop.model, self.ends.get(name, theta))
            tasks, task_scales, what = loop.tasks, scales, "joint updates"
            if name == "alone":
                scale = 1.0 if av.branch_scale == "full" else scales[loop.target]
                tasks, task_scales, what = [loop.target], {loop.target: scale}, "target alone"
            elif name == "second":
                task_scales = loss_scales(loop.weights, loop.target, av.second_scale)
                what = f"joint updates ({av.second_scale} scale)"
            if name != "joint":
                loop.generator.set_state(batch_order)  # the joint pass's batches again
            got = joint_pass(loop, opt, tasks, task_scales, f"{what} (pass {k}/{every})")
            if name == "joint":
                losses, after = got, loop.generator.get_state()
            if av.restore_best:
                self.best[name].see(m.pass_score(), k, opt, loop.model)
            self.ends[name] = snapshot(loop.model)
        loop.generator.set_state(after)  # where the joint pass left the batch order
        restore(loop.model, theta)
        return losses, k == every or self.epochs == loop.cfg.train.epochs

    def collect(self, av_method: AlphaVIL) -> tuple[Params, Params, list[int]]:
        """The closed interval's θ and stacked deltas (the joint pass's T rows, the target
        branch's row, then the second joint pass's T rows: the layout of
        :meth:`~alphavil.methods.alphavil.AlphaVIL.collect_joint_deltas`), and the pass each
        trajectory's delta ends at (1 for a missing one); the model is at θ and the next
        :meth:`advance` starts a new interval."""
        m, loop = av_method, av_method.loop
        theta = self.theta
        if theta is None:
            raise RuntimeError("no fit interval is open")
        opts = self.optimizers(m)
        ended, rows = [], {}
        for name, opt in opts.items():
            restore(loop.model, self.ends[name])
            ended.append(self.best[name].settle(opt, loop.model, self.passes))
            rows[name] = share_deltas(loop.model, theta, opt)
        deltas = rows["joint"]
        if "alone" in rows:
            deltas = with_branch(deltas, {k: v[0] for k, v in rows["alone"].items()})
        if "second" in rows:
            deltas = {k: torch.cat([d, rows["second"][k]]) for k, d in deltas.items()}
        restore(loop.model, theta)
        self.theta, self.ends = None, {}
        got = dict(zip(opts, ended, strict=True))
        return theta, deltas, [got.get(name, 1) for name in TRAJECTORIES]

    @staticmethod
    def optimizers(m: AlphaVIL) -> dict[str, ShareSGD | ShareAdam]:
        """The joint trajectory's optimiser, with the target branch the branch's, and with
        ``alphavil.second_scale`` the second joint pass's (in :data:`TRAJECTORIES` order)."""
        opts = {"joint": m.share_optimizer()}
        if m.branching:
            opts["alone"] = m.branch_optimizer()
        if m.two_scales:
            opts["second"] = m.second_optimizer()
        return opts

    def state_dict(self, m: AlphaVIL) -> dict[str, Any]:
        """For exact resume within an interval: the optimisers' shares are kept here (their own
        state_dict keeps only the momentum)."""
        open_ = self.theta is not None
        return {
            "epochs": self.epochs,
            "passes": self.passes,
            "theta": self.theta,
            "ends": self.ends,
            "shares": {n: o.shares for n, o in self.optimizers(m).items()} if open_ else {},
            "best": {n: b.state_dict() for n, b in self.best.items()},
        }

    def load_state_dict(self, m: AlphaVIL, state: dict[str, Any]) -> None:
        self.epochs, self.passes = state["epochs"], state["passes"]
        self.theta, self.ends = state["theta"], state["ends"]
        for name, opt in self.optimizers(m).items():
            if name in state["shares"]:
                opt.shares = state["shares"][name]
        for name, b in self.best.items():
            if name in state["best"]:
                b.load_state_dict(state["best"][name])
