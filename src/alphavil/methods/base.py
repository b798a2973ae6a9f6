"""The interface every training method implements."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor

if TYPE_CHECKING:
    from alphavil.training import TaskScore, Trainer


class Method:
    """One training method: which tasks it trains and what one epoch does.

    The loop (:class:`~alphavil.training.Trainer`) owns the model, the data, the optimisers,
    evaluation, model selection, logging and resume; a method only calls its primitives
    (``loop.train_steps``, ``loop.evaluate``, ``loop.task_optimizer``, ``loop.weights``, ...).

    Attributes:
        per_target: Whether runs of this method have a target task (multitask has none: it
            keeps a best snapshot per task).
    """

    per_target = True
    # whether it runs under torchrun (data parallel); methods with their own learnt state that
    # is updated per batch say False until that state is synchronised across ranks
    data_parallel = True
    # whether it combines per-task gradients of one step (aggregators, GradNorm, gradient
    # similarity): then every step must hold every task, and the loop refuses data whose stream
    # gives each step one task (separate examples, ``data.stream = "interleaved"``)
    needs_all_tasks_per_step = False
    # A method named by import path (train.method = "package.module:Class") may bring its own
    # options table: its section name and dataclass (registered methods use
    # alphavil.methods.SECTIONS instead). The loop's config then holds it in cfg.extra.
    options_table: str | None = None
    options_class: type | None = None

    def __init__(self, loop: Trainer) -> None:
        self.loop = loop

    def trained_tasks(self) -> list[str]:
        """Tasks this method trains (and the loop evaluates and selects snapshots for)."""
        return list(self.loop.tasks)

    def epoch(self) -> dict[str, Any]:
        """Run one epoch; returns what to add to the epoch's metrics record."""
        raise NotImplementedError

    def after_evaluation(self, dev: dict[str, TaskScore]) -> None:
        """Called with the epoch's dev scores (e.g. DIW remembers the target's accuracy)."""

    def state_dict(self) -> dict[str, Any]:
        """Method state beyond the loop's (weights and task optimisers), for exact resume."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


class BatchMethod(Method):
    """A method that turns each batch's task losses into one update of the joint optimiser
    (loss weightings such as uncertainty weighting, gradient aggregators such as PCGrad).

    Every epoch is one pass over :meth:`trained_tasks`' training data (``train.train_fraction``)
    through :meth:`~alphavil.training.Trainer.train_with`: per batch the loop runs the model,
    computes each task's mean loss, zeroes the gradients, calls :meth:`backward`, then steps
    ``loop.optimizer``.
    """

    per_target = True

    def epoch(self) -> dict[str, Any]:
        loop = self.loop
        name = type(self).__name__
        loss = loop.train_with(self, self.trained_tasks(), loop.cfg.train.train_fraction, name)
        return {"train_loss": loss, **self.epoch_info()}

    def backward(self, losses: dict[str, Tensor]) -> float:
        """Fill the parameters' ``.grad`` from the task losses; return the loss to report."""
        raise NotImplementedError

    def epoch_info(self) -> dict[str, Any]:
        """Extra metrics for the epoch's record (e.g. the current task weights)."""
        return {}
