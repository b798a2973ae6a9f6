"""αVIL, Algorithm 1 of Kourdis, Gordon-Hall & Gorinski, "αVIL: Learning to Leverage Auxiliary
Tasks for Multitask Learning" (arXiv 2405.07769), one epoch at a time.

The maths lives in :mod:`alphavil.alpha` (α objective, the paper's SGD fit), :mod:`alphavil.
alpha_exact` (solving line 9), :mod:`alphavil.task_weights` (line 11) and :mod:`alphavil.deltas`;
the default's joint updates in :mod:`alphavil.task_shares` and
:mod:`alphavil.methods.alphavil_joint`, its target branch in :mod:`alphavil.target_branch`.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from alphavil import distributed as dist
from alphavil.alpha_exact import grid_check
from alphavil.alpha_shrink import folds
from alphavil.deltas import delta, mix, norms, restore, snapshot, stack_deltas
from alphavil.methods.alphavil_fit import (
    discrete_fit,
    fit_failed,
    line9_objective,
    non_finite_cause,
    shrunk_fit,
    solve_line9,
)
from alphavil.methods.alphavil_interval import Interval
from alphavil.methods.alphavil_joint import joint_passes
from alphavil.methods.base import Method
from alphavil.methods.merging import Key, score_key
from alphavil.second_scale import taken_states
from alphavil.target_branch import (
    blend_states,
    branch_objective,
    full_alphas,
    length_scale,
    multitask_point,
    step_gram,
    with_branch,
)
from alphavil.task_shares import ShareAdam, ShareSGD, share_deltas, share_optimizer
from alphavil.task_weights import all_at_floor, loss_scales, move_weights
from alphavil.training import NonFiniteLossError


class AlphaVIL(Method):
    """Task deltas from the same θ, α fitted on the target's dev loss, θ + Σ α δ written back,
    task weights moved by α (``[alphavil]``: updates, solver, weight rule, ρ, dev sample)."""

    def __init__(self, loop: Any) -> None:
        super().__init__(loop)
        self.shares: ShareSGD | ShareAdam | None = None  # the joint updates' optimiser
        self.alone: ShareSGD | ShareAdam | None = None  # the target branch's (target_branch)
        self.second: ShareSGD | ShareAdam | None = None  # the second joint pass's (second_scale)
        self.written: Tensor | None = None  # line 10's averaged factors (write_step < 1)
        # the passes the joint, branch (and second joint) deltas end at (restore_best)
        self.best_passes = [1, 1, 1]
        self.interval = Interval()  # alphavil.fit_every: the open fit interval

    @property
    def branching(self) -> bool:
        """Whether this run has a target branch (``alphavil.target_branch`` with auxiliary tasks:
        with the target alone the branch would be the joint pass itself)."""
        return bool(self.loop.cfg.alphavil.target_branch) and len(self.loop.tasks) > 1

    @property
    def two_scales(self) -> bool:
        """Whether this run keeps a second joint pass (``alphavil.second_scale`` with the target
        branch: with the target alone both loss scales are 1 and the pass would be the first)."""
        return self.loop.cfg.alphavil.second_scale != "none" and self.branching

    def pass_score(self) -> Key:
        """The target's dev score of the model now (``alphavil.restore_best``)."""
        target = self.loop.target
        return score_key(self.loop.evaluate("dev", [target])[target], "accuracy")

    def share_optimizer(self) -> ShareSGD | ShareAdam:
        """The optimiser that splits each joint step into task shares (built on first use from
        ``train.optimizer``; its state persists across epochs as the joint optimiser's)."""
        if self.shares is None:
            self.shares = self.joint_optimizer()
        return self.shares

    def joint_optimizer(self) -> ShareSGD | ShareAdam:
        """A new share-tracking ``train.optimizer`` over every task of the loop."""
        loop = self.loop
        params = [p for p in loop.model.parameters() if p.requires_grad]
        return share_optimizer(
            loop.cfg.train.optimizer, params, len(loop.tasks), loop.tasks.index(loop.target)
        )

    def branch_optimizer(self) -> ShareSGD | ShareAdam:
        """The target branch's optimiser (``alphavil.target_branch``): ``train.optimizer`` on
        the target's loss alone, its state kept across epochs."""
        if self.alone is None:
            loop = self.loop
            params = [p for p in loop.model.parameters() if p.requires_grad]
            self.alone = share_optimizer(loop.cfg.train.optimizer, params, 1, 0)
        return self.alone

    def second_optimizer(self) -> ShareSGD | ShareAdam:
        """The second joint pass's optimiser (``alphavil.second_scale``): as
        :meth:`share_optimizer`, its state kept across epochs."""
        if self.second is None:
            self.second = self.joint_optimizer()
        return self.second

    def collect_joint_deltas(
        self,
    ) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, float]]:
        """Lines 3-6 with ``updates = "joint"``: one pass (``alphavil.passes``) of multitask
        steps from θ (each step's loss Σ_t s_t L_t over the tasks it holds, s_t by
        ``loss_scale``), δ_t = task t's share of the realised update
        (:mod:`alphavil.task_shares`), so that θ + Σ_t δ_t is where the pass ended.
        Floating-point buffers (batch-norm statistics) change along the one trajectory; every
        task's δ carries that change (mixed convexly: α = 1 and α = e_t both give it).

        With ``target_branch`` the same batches are replayed from θ with the target's rows and
        loss alone (:mod:`alphavil.target_branch`) and its delta is appended as row T + 1;
        with ``second_scale`` they are replayed once more as joint steps at that loss scale,
        rows T + 2 to 2T + 1 (:meth:`replay`). The model is back at θ afterwards."""
        loop, av = self.loop, self.loop.cfg.alphavil
        theta = snapshot(loop.model)
        opt = self.share_optimizer()
        opt.reset_shares()
        scales = loss_scales(loop.weights, loop.target, av.loss_scale)
        batch_order = loop.generator.get_state()
        score = self.pass_score if av.restore_best else None
        losses, self.best_passes[0] = joint_passes(
            loop, opt, loop.tasks, scales, "joint updates", av.passes, score
        )
        deltas = share_deltas(loop.model, theta, opt)
        after = loop.generator.get_state()
        if self.branching:
            alone = self.branch_optimizer()
            scale = 1.0 if av.branch_scale == "full" else scales[loop.target]
            what, one = "target alone", {loop.target: scale}
            self.best_passes[1] = self.replay(theta, batch_order, alone, [loop.target], one, what)
            branch = share_deltas(loop.model, theta, alone)
            deltas = with_branch(deltas, {k: v[0] for k, v in branch.items()})
        if self.two_scales:  # the same batches again, as a joint pass at the second scale
            other = self.second_optimizer()
            second = loss_scales(loop.weights, loop.target, av.second_scale)
            what = f"joint updates ({av.second_scale} scale)"
            self.best_passes[2] = self.replay(theta, batch_order, other, loop.tasks, second, what)
            rows = share_deltas(loop.model, theta, other)
            deltas = {k: torch.cat([d, rows[k]]) for k, d in deltas.items()}
        loop.generator.set_state(after)  # where the joint pass left the batch order
        restore(loop.model, theta)
        return theta, deltas, losses

    def replay(
        self,
        theta: dict[str, Tensor],
        batch_order: Tensor,
        opt: ShareSGD | ShareAdam,
        tasks: list[str],
        scales: dict[str, float],
        what: str,
    ) -> int:
        """The joint pass's batches (``batch_order``, the generator's state before it) again
        from θ, as ``alphavil.passes`` passes of ``opt`` on ``tasks`` at loss ``scales``, its
        shares reset; the model is left where they end. The pass it ends at (``restore_best``)."""
        loop, av = self.loop, self.loop.cfg.alphavil
        restore(loop.model, theta)
        loop.generator.set_state(batch_order)
        opt.reset_shares()
        score = self.pass_score if av.restore_best else None
        return joint_passes(loop, opt, tasks, scales, what, av.passes, score)[1]

    def collect_deltas(self) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, float]]:
        """Lines 3-6 of Algorithm 1: θ, the stacked task deltas ``(T, ...)`` and each task's
        mean training loss; the model is back at θ afterwards.

        With ``alphavil.parallel_deltas`` under torchrun, task i's update runs on rank i mod W
        only (on its whole batches) and the deltas are summed over ranks, so the phase costs the
        slowest rank's tasks instead of all tasks; every rank draws every task's batch order, so
        the updates are those of the sequential phase.
        """
        loop, av = self.loop, self.loop.cfg.alphavil
        if av.updates == "joint":
            return self.collect_joint_deltas()
        theta = snapshot(loop.model)
        scales = loss_scales(loop.weights, loop.target, av.loss_scale)
        task_deltas, task_losses = [], {}
        split = av.parallel_deltas and dist.world_size() > 1
        for i, t in enumerate(loop.tasks):
            restore(loop.model, theta)
            opt = loop.task_optimizer(t, av.task_optimizer)
            mine = not split or i % dist.world_size() == dist.rank()
            if mine:
                task_losses[t] = loop.train_steps(
                    opt, [t], {t: scales[t]}, av.rho, f"delta {t}", shard=not split
                )
                task_deltas.append(delta(loop.model, theta))
            else:
                loop.skip_pass([t], av.rho)  # same batch order as the sequential phase
                task_losses[t] = 0.0
                task_deltas.append(
                    {k: torch.zeros_like(v) for k, v in delta(loop.model, theta).items()}
                )
        restore(loop.model, theta)
        if split:
            stacked = {k: dist.all_sum(v) for k, v in stack_deltas(task_deltas).items()}
            losses = dist.all_sum(torch.tensor(list(task_losses.values()), dtype=torch.float64))
            task_losses = dict(zip(loop.tasks, losses.tolist(), strict=True))
            for i, t in enumerate(loop.tasks):  # every rank keeps every task's optimiser state
                loop.share_task_optimizer(t, owner=i % dist.world_size())
            return theta, stacked, task_losses
        return theta, stack_deltas(task_deltas), task_losses

    def alpha_dev_batches(self) -> list[tuple[Any, dict[str, Tensor]]]:
        """The target's dev batches for this epoch's α fit (a fresh random sample when
        ``alphavil.dev_fraction < 1``); with ``shrink_folds`` = K at most ⌈M/K⌉ examples each,
        so that they can be dealt into K folds."""
        av, loop = self.loop.cfg.alphavil, self.loop
        gen = self.loop.dev_generator if av.dev_fraction < 1.0 else None
        size = loop.cfg.train.eval_batch_size
        if av.shrink_folds:
            m = max(1, round(av.dev_fraction * loop.data.num_examples("dev", loop.target)))
            size = min(size, -(-m // av.shrink_folds))
        return [
            self.loop.inputs(b)
            for b in self.loop.data.eval_batches(
                "dev",
                [self.loop.target],
                batch_size=size,
                fraction=av.dev_fraction,
                generator=gen,
            )
        ]

    def delta_names(self, deltas: dict[str, Tensor]) -> list[str]:
        """Who made each row of the stacked deltas: the tasks, then (``target_branch``) the
        target alone, then (``second_scale``) the tasks on the second joint pass."""
        tasks, rows = self.loop.tasks, next(iter(deltas.values())).shape[0]
        extra = [f"{self.loop.target} alone"] if rows > len(tasks) else []
        if rows > len(tasks) + 1:  # alphavil.second_scale
            extra += [f"{t} ({self.loop.cfg.alphavil.second_scale} scale)" for t in tasks]
        return [*tasks, *extra]

    def reset_rejected(self, alphas: Tensor) -> None:
        """Forget the optimiser state (e.g. momentum) of every task whose update the fit rejected
        (α_t <= 0): it follows an update that was not applied, and would push the task's next
        update along it. A fresh optimiser is built at the task's next update."""
        for t, a in zip(self.loop.tasks, alphas.tolist(), strict=True):
            if a <= 0:
                self.loop.task_optimizers.pop(t, None)

    def epoch(self) -> dict[str, Any]:
        """Algorithm 1, one epoch.

        Lines 3-6: from the same θ, each task t trains on a ρ-sample of its data with loss
        s_t·L_t (s_t = w_t / Σw, or w_t / w_target with ``loss_scale = "target"``), giving
        δ_t = θ_t − θ. Lines 8-9: α minimises the target's dev loss at
        θ + Σ α_t δ_t, by ``steps`` optimiser steps from α = 1 (``alpha_solver = "sgd"``, the
        paper) or solved for (``"lbfgs"``, :mod:`alphavil.alpha_exact`). Line 10: that point is
        written back. Line 11: the task weights move (:mod:`alphavil.task_weights`).

        With ``updates = "joint"`` the δ_t are the task shares of one joint pass; with the
        target branch the box fit is over (c, α_aux) and θ + (1 − c) δ_target + c δ_alone +
        Σ α_a δ_a is written back (:mod:`alphavil.target_branch`).
        """
        av = self.loop.cfg.alphavil
        t0 = time.perf_counter()
        if av.fit_every > 1:  # one pass per loop epoch; lines 8-11 at the interval's end
            task_losses, due = self.interval.advance(self)
            if not due:
                k = {"pass": self.interval.passes, "of": av.fit_every}
                seconds = time.perf_counter() - t0
                return {
                    "task_train_loss": task_losses,
                    "fit_interval": k,
                    "seconds_deltas": seconds,
                }
            theta, deltas, self.best_passes = self.interval.collect(self)
        else:
            theta, deltas, task_losses = self.collect_deltas()
        t1 = time.perf_counter()
        dev = self.alpha_dev_batches()
        self.loop.model.eval()  # α is fitted on the deterministic (eval-mode) network
        task, model = self.loop.task_map[self.loop.target], self.loop.model
        value_and_grad, value, grad_hess = line9_objective(av, model, theta, deltas, dev, task)
        n, target = len(self.loop.tasks), self.loop.tasks.index(self.loop.target)
        if self.loop.progress:
            what = f"{av.steps} steps" if av.alpha_solver == "sgd" else "solve"
            self.loop.progress.phase(f"alpha ({what})", force=True)
        full_value = value  # of the factors of every row of the stacked deltas
        gram = step_gram(deltas, target) if av.step_length == "multitask" else None
        info: dict[str, Any] = {}
        if av.fit_loss == "zero_one" or av.merge == "greedy":  # a choice among points of z
            fit, info = discrete_fit(av, model, theta, deltas, dev, task, n, target, self.branching)
        else:
            fit = solve_line9(
                av,
                value_and_grad,
                value,
                n,
                target,
                branching=self.branching,
                grad_hess=grad_hess,
                gram=gram,
            )
        scale = 1.0  # alphavil.step_scale: the fit's last variable, the step's length
        if self.branching and av.step_scale:
            scale = float(fit.alphas[-1])
            fit = replace(fit, alphas=fit.alphas[:-1])
        elif self.branching and gram is not None:  # step_length: the multitask step's length
            reference = full_alphas(multitask_point(n, target), target)
            scale = float(length_scale(full_alphas(fit.alphas.double(), target), gram, reference))
        if fit_failed(av, fit):
            lr, rows = self.loop.cfg.train.optimizer.get("lr"), self.delta_names(deltas)
            raise NonFiniteLossError(non_finite_cause(av, lr, fit, full_value, deltas, rows))
        if av.step_scale or gram is not None:
            info["step_scale"] = scale
        if av.restore_best:
            joint, alone, second = self.best_passes
            info["best_pass"] = {"joint": joint, **({"alone": alone} if self.branching else {})}
            if fit.factors is not None:
                info["best_pass"]["second"] = second
        if av.shrink_folds or av.write_step < 1:  # the fit before shrinking or averaging
            info["alpha_fitted"] = dict(zip(self.loop.tasks, fit.alphas.tolist(), strict=True))
        if av.shrink_folds:
            shrunk, info["shrink"] = shrunk_fit(
                av,
                fit,
                [[dev[i] for i in f] for f in folds(len(dev), av.shrink_folds)],
                lambda ch: line9_objective(av, model, theta, deltas, ch, task),
                n,
                target,
                branching=self.branching,
            )
            fit = replace(fit, alphas=shrunk)
        if av.grid_points:
            on_z = branch_objective(value_and_grad, value, target)[1] if self.branching else value
            grid_alpha, grid_loss = grid_check(on_z, n, av.grid_points, *av.grid_range)
            info["alpha_grid"] = {
                "points": av.grid_points,
                "best_alpha": dict(zip(self.loop.tasks, grid_alpha.tolist(), strict=True)),
                "best_loss": grid_loss,
                "gap": float(fit.final_loss) - grid_loss if fit.final_loss is not None else None,
            }
        written = self.averaged(fit.alphas, target)  # fit.alphas itself with write_step = 1
        alphas = written.double()
        evidence = fit.alphas.double().clone()  # what the weights move on (line 11)
        if self.branching:  # the fit's variable for the target is the branch's share c
            c = float(alphas[target])
            info["target_alone"] = c
            if fit.factors is not None:  # alphavil.second_scale: the merged factors
                info["second_scale_share"] = float(fit.factors[n + 1 + target])
                restore(self.loop.model, mix(theta, deltas, fit.factors))
            else:
                restore(self.loop.model, mix(theta, deltas, scale * full_alphas(alphas, target)))
            alphas = alphas.clone()
            alphas[target] = 1.0  # the target's update is taken whole, (1 - c) + c
            evidence[target] = 1.0
        else:
            restore(self.loop.model, mix(theta, deltas, written))
        if fit.factors is not None:  # alphavil.second_scale
            self.take_states(fit.factors, target)
        elif self.shares is not None and av.updates == "joint":
            self.shares.scale_state([a * scale for a in alphas.tolist()])  # what was taken
            if self.branching and self.alone is not None:
                if scale != 1.0:
                    self.alone.scale_state([scale])
                blend = blend_states(
                    self.shares.task_state(target), self.alone.task_state(0), info["target_alone"]
                )
                self.shares.set_task_state(target, blend)
                self.alone.set_task_state(0, blend)
        else:
            self.reset_rejected(written)
        old = torch.tensor([self.loop.weights[t] for t in self.loop.tasks], dtype=torch.float64)
        w = move_weights(
            av.weight_rule,
            old,
            evidence,
            target,
            step=av.weight_step,
            floor=av.weight_floor,
            cap=av.weight_cap,
        )
        self.loop.weights = dict(zip(self.loop.tasks, w.tolist(), strict=True))
        if n > 1 and all_at_floor(w, av.weight_floor):
            info.setdefault("warnings", []).append(
                f"every task weight is at the floor {av.weight_floor:g}: normalised they are "
                "equal, i.e. equal weighting (consider alphavil.weight_rule = 'relative')"
            )
        fit_info: dict[str, Any] = {"passes": fit.passes, "forward_passes": fit.forward_passes}
        if fit.start is not None:
            fit_info["start"] = fit.start.tolist()
        fit_info["objective_start"] = fit.start_loss
        fit_info["objective_end"] = fit.final_loss
        return {
            "task_train_loss": task_losses,
            "alpha": dict(zip(self.loop.tasks, alphas.tolist(), strict=True)),
            "alpha_dev_loss": fit.losses,
            "alpha_fit": fit_info,
            **info,
            "delta_norm": dict(zip(self.delta_names(deltas), norms(deltas).tolist(), strict=True)),
            "seconds_deltas": t1 - t0,
            "seconds_alpha": time.perf_counter() - t1,
        }

    def take_states(self, factors: Tensor, target: int) -> None:
        """``alphavil.second_scale``: every trajectory's optimiser state becomes the state of
        what was taken (:func:`~alphavil.second_scale.taken_states`)."""
        first, alone, second = self.shares, self.alone, self.second
        assert first is not None and alone is not None and second is not None
        n = len(self.loop.tasks)
        states = taken_states(
            [first.task_state(t) for t in range(n)],
            alone.task_state(0),
            [second.task_state(t) for t in range(n)],
            factors,
            target,
        )
        for t, state in enumerate(states):
            first.set_task_state(t, state)
            second.set_task_state(t, state)
        alone.set_task_state(0, states[target])

    def averaged(self, fitted: Tensor, target: int) -> Tensor:
        """Line 10's factors (``alphavil.write_step`` η): ``fitted`` itself with η = 1, else
        the running average ᾱ ← (1 − η) ᾱ + η α_fit from the multitask step (α = 1; with the
        target branch c = 0 in the target's coordinate)."""
        step = self.loop.cfg.alphavil.write_step
        if step >= 1:
            return fitted
        if self.written is None:
            self.written = multitask_point(len(fitted), target, branching=self.branching)
        self.written = (1 - step) * self.written + step * fitted.double()
        return self.written.clone()

    def state_dict(self) -> dict[str, Any]:
        """The joint updates' and the target branch's optimiser state, for exact resume."""
        state: dict[str, Any] = {}
        if self.loop.cfg.alphavil.fit_every > 1:
            state["interval"] = self.interval.state_dict(self)
        if self.written is not None:
            state["written"] = self.written.clone()
        if self.shares is not None:
            state["shares"] = self.shares.state_dict()
        if self.alone is not None:
            state["alone"] = self.alone.state_dict()
        if self.second is not None:
            state["second"] = self.second.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "written" in state:
            self.written = state["written"].clone()
        if "shares" in state:
            self.share_optimizer().load_state_dict(state["shares"])
        if "alone" in state:
            self.branch_optimizer().load_state_dict(state["alone"])
        if "second" in state:
            self.second_optimizer().load_state_dict(state["second"])
        if "interval" in state:
            self.interval.load_state_dict(self, state["interval"])
