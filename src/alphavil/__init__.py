"""alphavil: target-task-oriented multitask learning (αVIL, DIW, baselines) and MT2O.

αVIL: Kourdis, Gordon-Hall & Gorinski, "αVIL: Learning to Leverage Auxiliary Tasks for
Multitask Learning", arXiv 2405.07769.
"""

from alphavil.alpha import (
    AlphaFit,
    autograd_value_and_grad,
    fit_alpha,
    target_loss,
    target_loss_and_grad,
    update_weights,
)
from alphavil.deltas import delta, mix, restore, snapshot, stack_deltas
from alphavil.models.multihead import MultiHeadModel
from alphavil.tasks import Task

__version__ = "0.1.0"

__all__ = [
    "AlphaFit",
    "MultiHeadModel",
    "Task",
    "__version__",
    "autograd_value_and_grad",
    "delta",
    "fit_alpha",
    "mix",
    "restore",
    "snapshot",
    "stack_deltas",
    "target_loss",
    "target_loss_and_grad",
    "update_weights",
]
