"""One training loop for the target-task methods: single, multitask, αVIL and DIW.

Every epoch applies the method's update (below), then evaluates dev and test for every trained
task, keeps each task's best snapshot by **dev** accuracy (test is only read at that snapshot) and
logs one metrics record. Methods (paper §4.1):

* ``single``: only the target head is trained (the other heads are disabled).
* ``multitask``: all heads trained jointly on the mean of the task losses ("averaging their
  updates"); one best snapshot per task.
* ``alphavil``: Algorithm 1 (:meth:`Trainer.alphavil_epoch`).
* ``diw``: Discriminative Importance Weighting as §4.1 describes it (:meth:`Trainer.diw_epoch`).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from alphavil.alpha import fit_alpha, target_loss_and_grad, target_loss_value
from alphavil.alpha_exact import (
    grid_check,
    solve_alpha,
    solve_alpha_newton,
    start_candidates,
    target_loss_grad_hess,
)
from alphavil.config import RunConfig, build_optimizer
from alphavil.data.batching import Batch, MultiTaskData, move_to
from alphavil.deltas import delta, mix, norms, restore, snapshot, stack_deltas
from alphavil.progress import Progress
from alphavil.runs import RunWriter
from alphavil.task_weights import all_at_floor, update_weights, update_weights_relative
from alphavil.tasks import Task, mean_loss


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


@dataclass
class TaskScore:
    """Loss and accuracy of one task on one split (``None`` where labels are hidden)."""

    loss: float | None
    accuracy: float | None
    n: int
    probs: np.ndarray | None = None


@dataclass
class Trainer:
    """Trains ``model`` on ``data`` with the method named in ``cfg.train.method``."""

    cfg: RunConfig
    data: MultiTaskData
    model: nn.Module
    run: RunWriter | None = None
    progress: Progress | None = None
    weights: dict[str, float] = field(init=False)
    best: dict[str, dict[str, Any]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        tc = self.cfg.train
        self.method = tc.method
        self.target = tc.target
        self.tasks = list(tc.tasks) or [t.name for t in self.data.tasks]
        self.task_map: dict[str, Task] = self.data.task_map
        self.device = torch.device(tc.device)
        self.model.to(self.device)
        if tc.channels_last:
            self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.generator = torch.Generator().manual_seed(tc.seed)
        self.dev_generator = torch.Generator().manual_seed(tc.seed + 1)
        self.weights = dict.fromkeys(self.tasks, 1.0)
        self.trained = [self.target] if self.method == "single" else list(self.tasks)
        self.optimizer = build_optimizer(tc.optimizer, self.model.parameters())
        self.task_optimizers: dict[str, torch.optim.Optimizer] = {}
        self.last_target_dev: float | None = None

    # ----------------------------------------------------------------------------- steps
    def _inputs(self, batch: Batch) -> tuple[Any, dict[str, Tensor]]:
        inputs, targets = move_to(batch, self.device)
        if self.cfg.train.channels_last and isinstance(inputs, Tensor) and inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return inputs, targets

    def train_steps(
        self,
        optimizer: torch.optim.Optimizer,
        tasks: list[str],
        scales: dict[str, float],
        fraction: float,
        what: str,
    ) -> float:
        """One pass over a ``fraction`` sample of ``tasks``' training data; mean batch loss."""
        self.model.train()
        total, n = 0.0, 0
        batches = self.data.train_batches(
            tasks, batch_size=self.cfg.train.batch_size, generator=self.generator, fraction=fraction
        )
        for batch in batches:
            inputs, targets = self._inputs(batch)
            outputs = self.model(inputs, list(targets))
            loss = mean_loss(self.task_map, outputs, targets, scales)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"{what}: loss is {loss.item()} at batch {n + 1}; lower the learning rate "
                    f"(train.optimizer.lr = {self.cfg.train.optimizer.get('lr')})"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            n += 1
            if self.progress:
                self.progress.phase(f"{what} batch {n}")
        return total / max(n, 1)

    @torch.no_grad()
    def evaluate(
        self, split: str, tasks: list[str], keep_probs: bool = False, fraction: float = 1.0
    ) -> dict[str, TaskScore]:
        """Mean loss and accuracy per task on ``split``; labels < 0 (hidden) are skipped."""
        self.model.eval()
        sums = {t: [0.0, 0, 0] for t in tasks}  # loss sum, correct, labelled count
        probs: dict[str, list[Tensor]] = {t: [] for t in tasks}
        counts = dict.fromkeys(tasks, 0)
        gen = self.dev_generator if fraction < 1.0 else None
        for batch in self.data.eval_batches(
            split,
            tasks,
            batch_size=self.cfg.train.eval_batch_size,
            fraction=fraction,
            generator=gen,
        ):
            inputs, targets = self._inputs(batch)
            outputs = self.model(inputs, list(targets))
            for t, y in targets.items():
                task, out = self.task_map[t], outputs[t]
                counts[t] += len(y)
                if keep_probs and task.kind == "classification":
                    probs[t].append(out.float().softmax(-1).cpu())
                labelled = task.kind == "classification"
                mask = y >= 0 if labelled else torch.ones_like(y, dtype=torch.bool)
                if mask.any():
                    sums[t][0] += float(task.loss_sum(out[mask], y[mask]))
                    sums[t][2] += int(mask.sum())
                    if task.kind == "classification":
                        sums[t][1] += int(task.correct(out[mask], y[mask]))
        scores = {}
        for t, (loss_sum, correct, n) in sums.items():
            cls = self.task_map[t].kind == "classification"
            scores[t] = TaskScore(
                loss=loss_sum / n if n else None,
                accuracy=correct / n if (n and cls) else None,
                n=counts[t],
                probs=torch.cat(probs[t]).numpy() if probs[t] else None,
            )
        return scores

    def _target_accuracy(self) -> float:
        score = self.evaluate("dev", [self.target])[self.target]
        return _selection_score(score)

    def _task_optimizer(self, task: str, policy: str) -> torch.optim.Optimizer:
        """The model optimiser for ``task``'s updates.

        The paper is silent on optimiser state across task updates. ``per_task`` (default) keeps
        one optimiser per task for the whole run, so momentum/Adam moments follow that task's
        own updates as in single-task training; ``fresh`` starts every update from zero state.
        """
        if policy == "fresh" or task not in self.task_optimizers:
            self.task_optimizers[task] = build_optimizer(
                self.cfg.train.optimizer, self.model.parameters()
            )
        return self.task_optimizers[task]

    # ---------------------------------------------------------------------------- methods
    def single_epoch(self) -> dict[str, Any]:
        """Train the target head (and the shared encoder) only."""
        loss = self.train_steps(
            self.optimizer,
            [self.target],
            {self.target: 1.0},
            self.cfg.train.train_fraction,
            "single",
        )
        return {"train_loss": loss}

    def multitask_epoch(self) -> dict[str, Any]:
        """Train all heads on the mean of the task losses."""
        scales = {t: 1.0 / len(self.tasks) for t in self.tasks}
        loss = self.train_steps(
            self.optimizer, self.tasks, scales, self.cfg.train.train_fraction, "multitask"
        )
        return {"train_loss": loss}

    def collect_deltas(self) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, float]]:
        """Lines 3-6 of Algorithm 1: θ, the stacked task deltas ``(T, ...)`` and each task's
        mean training loss; the model is back at θ afterwards."""
        av = self.cfg.alphavil
        theta = snapshot(self.model)
        total_w = sum(self.weights.values())
        task_deltas, task_losses = [], {}
        for t in self.tasks:
            restore(self.model, theta)
            opt = self._task_optimizer(t, av.task_optimizer)
            task_losses[t] = self.train_steps(
                opt, [t], {t: self.weights[t] / total_w}, av.rho, f"delta {t}"
            )
            task_deltas.append(delta(self.model, theta))
        restore(self.model, theta)
        return theta, stack_deltas(task_deltas), task_losses

    def alpha_dev_batches(self) -> list[tuple[Any, dict[str, Tensor]]]:
        """The target's dev batches for this epoch's α fit (a fresh random sample when
        ``alphavil.dev_fraction < 1``)."""
        av = self.cfg.alphavil
        gen = self.dev_generator if av.dev_fraction < 1.0 else None
        return [
            self._inputs(b)
            for b in self.data.eval_batches(
                "dev",
                [self.target],
                batch_size=self.cfg.train.eval_batch_size,
                fraction=av.dev_fraction,
                generator=gen,
            )
        ]

    def alphavil_epoch(self) -> dict[str, Any]:
        """Algorithm 1, one epoch.

        Lines 3-6: from the same θ, each task t trains on a ρ-sample of its data with loss
        (w_t / Σw)·L_t, giving δ_t = θ_t − θ. Lines 8-9: α minimises the target's dev loss at
        θ + Σ α_t δ_t, by ``steps`` optimiser steps from α = 1 (``alpha_solver = "sgd"``, the
        paper) or solved for (``"lbfgs"``, :mod:`alphavil.alpha_exact`). Line 10: that point is
        written back. Line 11: the task weights move (:mod:`alphavil.task_weights`).
        """
        av = self.cfg.alphavil
        t0 = time.perf_counter()
        theta, deltas, task_losses = self.collect_deltas()
        t1 = time.perf_counter()
        dev = self.alpha_dev_batches()
        self.model.eval()  # α is fitted on the deterministic (eval-mode) network
        task = self.task_map[self.target]
        value_and_grad = target_loss_and_grad(self.model, theta, deltas, dev, task)
        value = target_loss_value(self.model, theta, deltas, dev, task)
        n, target = len(self.tasks), self.tasks.index(self.target)
        init = 1.0 if av.alpha_start == "sum" else 1.0 / n
        if self.progress:
            what = f"{av.steps} steps" if av.alpha_solver == "sgd" else "solve"
            self.progress.phase(f"alpha ({what})", force=True)
        if av.alpha_solver == "sgd":
            fit = fit_alpha(
                value_and_grad,
                n,
                steps=av.steps,
                optimizer=lambda p: build_optimizer(av.optimizer, p),
                init=init,
            )
            fit.final_loss = value(fit.alphas)  # one forward pass: what the steps achieved
            fit.forward_passes += 1
        elif av.alpha_solver == "lbfgs":
            fit = solve_alpha(
                value_and_grad,
                start_candidates(n, target, init),
                value=value,
                tol=av.solver_tol,
                max_passes=av.solver_passes,
            )
        else:
            fit = solve_alpha_newton(
                target_loss_grad_hess(self.model, theta, deltas, dev, task),
                value,
                start_candidates(n, target, init),
                tol=av.solver_tol,
                max_passes=av.solver_passes,
            )
        if not torch.isfinite(fit.alphas).all() or not all(map(math.isfinite, fit.losses)):
            raise NonFiniteLossError(
                f"alpha fit diverged (alpha {fit.alphas.tolist()}, dev losses {fit.losses}); "
                f"lower alphavil.optimizer.lr (= {av.optimizer.get('lr')})"
            )
        info: dict[str, Any] = {}
        if av.grid_points:
            grid_alpha, grid_loss = grid_check(value, n, av.grid_points, *av.grid_range)
            info["alpha_grid"] = {
                "points": av.grid_points,
                "best_alpha": dict(zip(self.tasks, grid_alpha.tolist(), strict=True)),
                "best_loss": grid_loss,
                "gap": float(fit.final_loss) - grid_loss if fit.final_loss is not None else None,
            }
        restore(self.model, mix(theta, deltas, fit.alphas))
        old = torch.tensor([self.weights[t] for t in self.tasks], dtype=torch.float64)
        alphas = fit.alphas.double()
        if av.weight_rule == "additive":
            w = update_weights(old, alphas, floor=av.weight_floor)
        else:
            w = update_weights_relative(
                old, alphas, target, floor=av.weight_floor, cap=av.weight_cap
            )
        self.weights = dict(zip(self.tasks, w.tolist(), strict=True))
        if n > 1 and all_at_floor(w, av.weight_floor):
            info["warnings"] = [
                f"every task weight is at the floor {av.weight_floor:g}: normalised they are "
                "equal, i.e. equal weighting (consider alphavil.weight_rule = 'relative')"
            ]
        fit_info: dict[str, Any] = {"passes": fit.passes, "forward_passes": fit.forward_passes}
        if fit.start is not None:
            fit_info["start"] = fit.start.tolist()
        fit_info["objective_start"] = fit.start_loss
        fit_info["objective_end"] = fit.final_loss
        return {
            "task_train_loss": task_losses,
            "alpha": dict(zip(self.tasks, fit.alphas.tolist(), strict=True)),
            "alpha_dev_loss": fit.losses,
            "alpha_fit": fit_info,
            **info,
            "delta_norm": dict(zip(self.tasks, norms(deltas).tolist(), strict=True)),
            "seconds_deltas": t1 - t0,
            "seconds_alpha": time.perf_counter() - t1,
        }

    def diw_epoch(self) -> dict[str, Any]:
        """Discriminative Importance Weighting, one epoch, as the αVIL paper runs it (§4.1).

        1. From θ, one *unweighted* single-task update per task (ρ-sample); s_t = the target's
           dev accuracy after task t's update.
        2. Up to ``patience`` tries: reset to θ (and the joint optimiser's state), train a weighted
           multitask update (loss Σ (w_t/Σw)·L_t), evaluate its target dev accuracy a, then move
           every weight by w_t ← max(w_t + lr·scale·(s_t − a), floor); stop once a beats the
           previous iteration's target accuracy (that of θ).

        Choices where the paper is silent: the difference is s_t − a, accuracy as a fraction
        (times ``score_scale``, 1 by default), so a task whose own update helps the target more
        than the joint update gains weight (percent points made lr 0.1 throw the weights to the
        floor within one try on MultiMNIST, the target's included); the weights are
        adjusted after every try, including the successful one; when all tries fail the *last*
        try is kept, so training moves on with the newest weights instead of stalling at θ
        (keeping the best try would select on dev accuracy ``patience`` times per epoch, which
        deepens the dev overfitting the paper observes in §4.2).
        """
        dc = self.cfg.diw
        theta = snapshot(self.model)
        if self.last_target_dev is None:
            self.last_target_dev = self._target_accuracy()
        previous = self.last_target_dev
        scores = {}
        for t in self.tasks:
            restore(self.model, theta)
            self.train_steps(
                self._task_optimizer(t, dc.task_optimizer), [t], {t: 1.0}, dc.rho, f"probe {t}"
            )
            scores[t] = self._target_accuracy()
        joint_state = copy.deepcopy(self.optimizer.state_dict())
        tries: list[dict[str, Any]] = []
        for attempt in range(1, dc.patience + 1):
            restore(self.model, theta)
            self.optimizer.load_state_dict(joint_state)
            total_w = sum(self.weights.values())
            scales = {t: self.weights[t] / total_w for t in self.tasks}
            self.train_steps(self.optimizer, self.tasks, scales, dc.rho, f"joint try {attempt}")
            joint = self._target_accuracy()
            for t in self.tasks:
                step = dc.lr * dc.score_scale * (scores[t] - joint)
                self.weights[t] = max(self.weights[t] + step, dc.weight_floor)
            tries.append({"target_dev": joint, "weights": dict(self.weights)})
            if joint > previous:
                break
        self.last_target_dev = tries[-1]["target_dev"]
        return {
            "probe_target_dev": scores,
            "previous_target_dev": previous,
            "tries": tries,
            "improved": tries[-1]["target_dev"] > previous,
        }

    # ------------------------------------------------------------------------------- loop
    # ---------------------------------------------------------------------------- resume
    def state_dict(self, epoch: int) -> dict[str, Any]:
        """Everything the loop needs to continue after ``epoch`` exactly as if never stopped:
        model, every optimiser (joint and per task), task weights, DIW's last target accuracy,
        best-snapshot bookkeeping and the RNG states (batching, dev sampling, torch global)."""
        return {
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "task_optimizers": {t: o.state_dict() for t, o in self.task_optimizers.items()},
            "weights": dict(self.weights),
            "last_target_dev": self.last_target_dev,
            "best": self.best,
            "rng": {
                "batches": self.generator.get_state(),
                "dev": self.dev_generator.get_state(),
                "torch": torch.get_rng_state(),
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> int:
        """Restore :meth:`state_dict`'s output; returns the epoch it was taken after."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for t, opt_state in state["task_optimizers"].items():
            opt = build_optimizer(self.cfg.train.optimizer, self.model.parameters())
            opt.load_state_dict(opt_state)
            self.task_optimizers[t] = opt
        self.weights = dict(state["weights"])
        self.last_target_dev = state["last_target_dev"]
        self.best = state["best"]
        self.generator.set_state(state["rng"]["batches"])
        self.dev_generator.set_state(state["rng"]["dev"])
        torch.set_rng_state(state["rng"]["torch"])
        return int(state["epoch"])

    def fit(self, resume: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run all epochs (after ``resume``'s epoch when given, a :meth:`state_dict`); returns
        the summary (also written to ``summary.json``). With a run directory and
        ``train.save_state``, a resumable state is written atomically after every epoch."""
        tc = self.cfg.train
        epoch_fn = {
            "single": self.single_epoch,
            "multitask": self.multitask_epoch,
            "alphavil": self.alphavil_epoch,
            "diw": self.diw_epoch,
        }[self.method]
        first = self.load_state_dict(resume) + 1 if resume is not None else 1
        start = time.perf_counter()
        status, error, epoch = "completed", None, first - 1
        try:
            for epoch in range(first, tc.epochs + 1):
                if self.progress:
                    self.progress.start_epoch(epoch)
                t0 = time.perf_counter()
                info = epoch_fn()
                t_train = time.perf_counter() - t0
                dev = self.evaluate("dev", self.trained)
                bad = [
                    t for t, sc in dev.items() if sc.loss is not None and not math.isfinite(sc.loss)
                ]
                if bad:
                    raise NonFiniteLossError(f"dev loss of {bad} is not finite after epoch {epoch}")
                test = self.evaluate("test", self.trained, keep_probs=tc.save_predictions)
                if self.method == "diw" and dev[self.target].accuracy is not None:
                    self.last_target_dev = dev[self.target].accuracy
                self._bookkeep(epoch, dev, test)
                record = {
                    "epoch": epoch,
                    "dev": {t: {"loss": s.loss, "accuracy": s.accuracy} for t, s in dev.items()},
                    "test": {t: {"loss": s.loss, "accuracy": s.accuracy} for t, s in test.items()},
                    "weights": dict(self.weights),
                    **info,
                    "seconds_train": t_train,
                    "seconds": time.perf_counter() - t0,
                }
                if self.run:
                    self.run.log_epoch(record)
                    if tc.save_state:
                        self.run.save_state(self.state_dict(epoch))
                if self.progress:
                    self.progress.end_epoch(_epoch_line(record))
        except NonFiniteLossError as err:
            status, error = "diverged", str(err)
        summary = {
            "method": self.method,
            "target": None if self.method == "multitask" else self.target,
            "tasks": self.tasks,
            "status": status,
            "error": error,
            "epochs_completed": epoch - (status != "completed"),
            "resumed_after_epoch": first - 1 if resume is not None else None,
            "best": self.best,
            "final_weights": dict(self.weights),
            "seconds": time.perf_counter() - start,
        }
        if self.run:
            self.run.write_summary(summary)
        if error:
            raise NonFiniteLossError(error)
        return summary

    def _bookkeep(self, epoch: int, dev: dict[str, TaskScore], test: dict[str, TaskScore]) -> None:
        """Keep each task's best snapshot by dev accuracy (dev loss for regression)."""
        for t, score in dev.items():
            key = _selection_score(score)
            if t in self.best and key <= self.best[t]["selection_score"]:
                continue
            self.best[t] = {
                "epoch": epoch,
                "selection_score": key,
                "dev_accuracy": score.accuracy,
                "dev_loss": score.loss,
                "test_accuracy": test[t].accuracy,
                "test_loss": test[t].loss,
            }
            if self.run and self.cfg.train.save_checkpoints:
                self.run.save(
                    f"best_{t}.pt",
                    {
                        "model": self.model.state_dict(),
                        "epoch": epoch,
                        "task": t,
                        "weights": dict(self.weights),
                    },
                )
            if self.run and test[t].probs is not None:
                probs = test[t].probs
                self.run.save_array(f"test_probs_{t}.npy", probs)


def _selection_score(score: TaskScore) -> float:
    """Higher is better: accuracy, or minus the loss for regression (a loss of 0 is the best)."""
    if score.accuracy is not None:
        return score.accuracy
    return -score.loss if score.loss is not None else -math.inf


def _epoch_line(record: dict[str, Any]) -> str:
    dev = " ".join(
        f"{t}={s['accuracy']:.4f}" for t, s in record["dev"].items() if s["accuracy"] is not None
    )
    extra = ""
    if "alpha" in record:
        extra = " alpha " + " ".join(f"{v:.3f}" for v in record["alpha"].values())
    if len(record["weights"]) > 1:
        extra += " w " + " ".join(f"{v:.3f}" for v in record["weights"].values())
    for warning in record.get("warnings", []):
        extra += f" WARNING: {warning}"
    return f"dev acc {dev}{extra} ({record['seconds']:.1f}s)"
