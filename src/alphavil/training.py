"""The training loop: one loop for every target-task method; it names no method.

Every epoch the method (``train.method``, :mod:`alphavil.methods`) runs its update through the
loop's primitives; then the loop evaluates dev and test for every task the method trains, keeps
each task's best snapshot by **dev** accuracy (test is only read at that snapshot), logs one
metrics record and writes the resumable state. A task without dev examples (an auxiliary task
under a label budget, :mod:`alphavil.data.budget`) is trained and tested but has no snapshot.

A training step is a batch, or a :class:`~alphavil.data.batching.JointBatch` holding a batch of
every task (one forward pass over all their rows; each task's loss is the mean over its own),
so methods see a loss for every task of the step either way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from alphavil import distributed as dist
from alphavil.config import ConfigError, RunConfig, build_optimizer, resolve_device
from alphavil.data.batching import Batch, JointBatch, MultiTaskData, Step, move_to
from alphavil.methods import get_method
from alphavil.progress import Progress, epoch_line
from alphavil.runs import RunWriter
from alphavil.scores import ScoreTally, TaskScore, selection_score
from alphavil.tasks import Task, mean_loss

if TYPE_CHECKING:
    from alphavil.methods.base import BatchMethod, Method


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


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
        self.method_name = tc.method
        self.target = tc.target
        self.tasks = list(tc.tasks) or [t.name for t in self.data.tasks]
        self.task_map: dict[str, Task] = self.data.task_map
        self.device = resolve_device(tc.device)  # "auto": cuda where this process has one
        self.model.to(self.device)
        if tc.channels_last:
            self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.generator = torch.Generator().manual_seed(tc.seed)
        self.dev_generator = torch.Generator().manual_seed(tc.seed + 1)
        self.weights = dict.fromkeys(self.tasks, 1.0)
        method_class = get_method(tc.method)
        if dist.world_size() > 1 and not method_class.data_parallel:
            raise ValueError(
                f"train.method = {tc.method!r} does not run data parallel yet; "
                "launch it without torchrun"
            )
        self.method: Method = method_class(self)
        self.trained = self.method.trained_tasks()
        check_stream(tc.method, self.data, self.trained)
        self.optimizer = build_optimizer(tc.optimizer, self.model.parameters())
        self.task_optimizers: dict[str, torch.optim.Optimizer] = {}

    # ----------------------------------------------------------------------------- steps
    def inputs(self, batch: Batch) -> tuple[Any, dict[str, Tensor]]:
        """A batch moved to the device (4-D inputs in channels-last when configured)."""
        inputs, targets = move_to(batch, self.device)
        if self.cfg.train.channels_last and isinstance(inputs, Tensor) and inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return inputs, targets

    def train_stream(self, tasks: list[str], fraction: float) -> Iterator[Step]:
        """One pass of training steps over a ``fraction`` sample of ``tasks``' data (drawn from
        the loop's batch generator)."""
        return self.data.train_stream(
            tasks, batch_size=self.cfg.train.batch_size, generator=self.generator, fraction=fraction
        )

    def model_outputs(self, inputs: Any, tasks: list[str]) -> dict[str, Tensor]:
        """The model's outputs for ``tasks``, under ``torch.autocast`` with ``train.autocast =
        "bf16"`` and then in float32 (losses, accuracies and probabilities from float32)."""
        bf16 = self.cfg.train.autocast == "bf16"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            outputs = self.model(inputs, tasks)
        if bf16:
            outputs = {t: o.float() for t, o in outputs.items()}
        return outputs

    def forward(
        self, step: Step, shard: bool = False
    ) -> tuple[dict[str, Tensor], dict[str, Tensor], float]:
        """The model's outputs for a training step (each task's on its own rows), its targets
        and, with ``shard`` under torchrun, this rank's share of the step."""
        rows = None
        if isinstance(step, JointBatch):
            rows = step.rows
            inputs, targets = self.inputs((step.inputs, step.targets))
        else:
            inputs, targets = self.inputs(step)
        share = 1.0
        if shard:
            inputs, targets, share = self.shard(inputs, targets)
        outputs = self.model_outputs(inputs, list(targets))
        if rows is not None:
            outputs = {t: outputs[t][rows[t]] for t in targets}
        return outputs, targets, share

    def train_steps(
        self,
        optimizer: torch.optim.Optimizer,
        tasks: list[str],
        scales: dict[str, float],
        fraction: float,
        what: str,
        shard: bool = True,
    ) -> float:
        """One pass over a ``fraction`` sample of ``tasks``' training data; mean batch loss.

        Under torchrun each rank runs its shard of every batch (``shard``), or, with
        ``shard=False``, the whole batches on its own (task-parallel phases)."""
        self.model.train()
        total, n = 0.0, 0
        together = shard and dist.world_size() > 1
        for step in self.train_stream(tasks, fraction):
            outputs, targets, share = self.forward(step, shard=together)
            loss = mean_loss(self.task_map, outputs, targets, scales)
            if share != 1.0:  # data parallel: this rank's part of the whole batch's mean
                loss = loss * share
            reported = float(dist.all_sum(loss.detach()) if together else loss.detach())
            if not math.isfinite(reported):
                raise NonFiniteLossError(
                    f"{what}: loss is {reported} at batch {n + 1}; lower the learning rate "
                    f"(train.optimizer.lr = {self.cfg.train.optimizer.get('lr')})"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if together:
                dist.sum_gradients(self.model)
            optimizer.step()
            total += reported
            n += 1
            if self.progress:
                self.progress.phase(f"{what} batch {n}")
        return total / max(n, 1)

    def train_with(
        self, method: BatchMethod, tasks: list[str], fraction: float, what: str
    ) -> float:
        """One pass over a ``fraction`` sample of ``tasks``' training data where ``method``
        turns each batch's task losses into gradients; mean reported loss."""
        self.model.train()
        total, n = 0.0, 0
        for step in self.train_stream(tasks, fraction):
            outputs, targets, share = self.forward(step, shard=True)
            losses = {t: self.task_map[t].loss(outputs[t], y) for t, y in targets.items()}
            if share != 1.0:
                losses = {t: v * share for t, v in losses.items()}
            values = dist.all_sum(torch.stack([v.detach() for v in losses.values()]))
            bad = [t for t, v in zip(losses, values.tolist(), strict=True) if not math.isfinite(v)]
            if bad:
                raise NonFiniteLossError(
                    f"{what}: loss of {bad} is not finite at batch {n + 1}; lower the learning "
                    f"rate (train.optimizer.lr = {self.cfg.train.optimizer.get('lr')})"
                )
            self.optimizer.zero_grad(set_to_none=True)
            total += float(dist.all_sum(torch.tensor(method.backward(losses))))
            dist.sum_gradients(self.model)
            self.optimizer.step()
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
        tally = ScoreTally(self.task_map, tasks, keep_probs)
        gen = self.dev_generator if fraction < 1.0 else None
        for batch in self.data.eval_batches(
            split,
            tasks,
            batch_size=self.cfg.train.eval_batch_size,
            fraction=fraction,
            generator=gen,
        ):
            inputs, targets = self.inputs(batch)
            tally.add(self.model_outputs(inputs, list(targets)), targets)
        return tally.scores()

    def skip_pass(self, tasks: list[str], fraction: float) -> None:
        """Draw a pass's batch order without training (keeps the batch RNG in step)."""
        self.train_stream(tasks, fraction)

    def share_task_optimizer(self, task: str, owner: int) -> None:
        """Give every rank the state of ``task``'s optimiser as rank ``owner`` has it."""
        opt = self.task_optimizer(task, "per_task")
        states = [opt.state_dict() if dist.rank() == owner else None]
        dist.broadcast_object(states, owner)
        if dist.rank() != owner and states[0] is not None:
            opt.load_state_dict(states[0])

    def shard(
        self, inputs: Any, targets: dict[str, Tensor]
    ) -> tuple[Any, dict[str, Tensor], float]:
        """This rank's rows of a batch and their share of it (the whole batch in one process)."""
        if dist.world_size() == 1:
            return inputs, targets, 1.0
        n = len(next(iter(targets.values())))
        sl = dist.shard_slice(n)
        return dist.take(inputs, sl), dist.take(targets, sl), (sl.stop - sl.start) / n

    def dev_tasks(self) -> list[str]:
        """The trained tasks that have dev examples (evaluated on dev, given snapshots)."""
        return [t for t in self.trained if self.data.num_examples("dev", t) > 0]

    def target_accuracy(self) -> float:
        """The target's dev accuracy (minus the loss for regression) at the current weights."""
        score = self.evaluate("dev", [self.target])[self.target]
        return selection_score(score)

    def task_optimizer(self, task: str, policy: str) -> torch.optim.Optimizer:
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
            "method": self.method.state_dict(),
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
        self.method.load_state_dict(state["method"])
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
        first = self.load_state_dict(resume) + 1 if resume is not None else 1
        start = time.perf_counter()
        status, error, epoch = "completed", None, first - 1
        try:
            for epoch in range(first, tc.epochs + 1):
                if self.progress:
                    self.progress.start_epoch(epoch)
                t0 = time.perf_counter()
                info = self.method.epoch()
                t_train = time.perf_counter() - t0
                dev = self.evaluate("dev", self.dev_tasks())
                bad = [
                    t for t, sc in dev.items() if sc.loss is not None and not math.isfinite(sc.loss)
                ]
                if bad:
                    raise NonFiniteLossError(f"dev loss of {bad} is not finite after epoch {epoch}")
                # tasks without dev data (auxiliary tasks under a label budget) get no best
                # snapshot, so their test score would never be read: not evaluated
                test = self.evaluate("test", self.dev_tasks(), keep_probs=tc.save_predictions)
                self.method.after_evaluation(dev)
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
                    self.progress.end_epoch(epoch_line(record))
        except NonFiniteLossError as err:
            status, error = "diverged", str(err)
        summary = {
            "method": self.method_name,
            "target": self.target if self.method.per_target else None,
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
            key = selection_score(score)
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


def check_stream(method: str, data: MultiTaskData, tasks: list[str]) -> None:
    """Refuse to train ``tasks`` with ``method`` on ``data`` when its steps would not mean what
    the method says: a method that combines per-task gradients (``needs_all_tasks_per_step``)
    on a stream of one-task steps, or a joint stream under torchrun."""
    needs_all = getattr(get_method(method), "needs_all_tasks_per_step", False)
    if needs_all and len(tasks) > 1 and not data.all_tasks_per_step:
        raise ConfigError(
            f"train.method = {method!r} combines per-task gradients, but this data's tasks have "
            "their own examples and its stream gives each step one task; set "
            'data.stream = "joint" (a batch of every task per step)'
        )
    if getattr(data, "stream", "") == "joint" and dist.world_size() > 1:
        raise ConfigError(
            'data.stream = "joint" does not run data parallel yet; launch it without torchrun'
        )
