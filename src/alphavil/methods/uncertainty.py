"""Uncertainty weighting: Kendall, Gal & Cipolla, "Multi-Task Learning Using Uncertainty to Weigh
Losses for Scene Geometry and Semantics", CVPR 2018.

Each task t has a learnable log-variance s_t = log σ_t² and the batch objective is

    Σ_t exp(−s_t) · L_t + s_t

the simplified form most implementations use for both classification and regression (the paper's
Eq. 7 and 10 are, per task, ½·exp(−s)·L + ½·s for a Gaussian likelihood and exp(−s)·L + ½·s for a
softmax; this form drops the ½s, which only rescales a regression task's objective and makes the
classification case the same rule). For an MSE loss its stationary point in s_t is
exp(s_t) = L_t, i.e. exp(s_t) estimates the task's residual variance σ_t².

The loop's joint optimiser owns only the model's parameters, so the method owns a small optimiser
for s (``[uncertainty] optimizer``; by default ``train.optimizer``'s class and settings without
weight decay) and steps it inside :meth:`Uncertainty.backward`, right after the gradients of
model and s are computed from the same objective: s and the model are optimised jointly, one step
each per batch, as in the paper.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from alphavil.config import build_optimizer
from alphavil.methods.base import BatchMethod

if TYPE_CHECKING:
    from alphavil.training import Trainer


@dataclass
class UncertaintyConfig:
    """``[uncertainty]`` options."""

    init_log_var: float = 0.0  # s_t at the start: σ_t² = 1, i.e. equal weights of 1
    # Optimiser for s, e.g. {name = "Adam", lr = 0.01}; omitted (empty) = train.optimizer's class
    # and settings without weight decay (a decay would pull every σ_t² towards 1).
    optimizer: dict[str, Any] = field(default_factory=dict, metadata={"optimizer": 1})


def uncertainty_loss(losses: Tensor, log_vars: Tensor) -> Tensor:
    """Σ_t exp(−s_t)·L_t + s_t for task losses ``losses`` and log-variances ``log_vars`` (T,)."""
    return (torch.exp(-log_vars) * losses + log_vars).sum()


def side_optimizer(
    spec: dict[str, Any], loop: Trainer, params: list[Tensor]
) -> torch.optim.Optimizer:
    """An optimiser for a method's own parameters (loss weights): ``spec`` when given, else
    ``train.optimizer`` with its weight decay set to 0."""
    if not spec:
        spec = dict(loop.cfg.train.optimizer)
        if "weight_decay" in inspect.signature(getattr(torch.optim, spec["name"])).parameters:
            spec["weight_decay"] = 0.0
    return build_optimizer(spec, params)


class Uncertainty(BatchMethod):
    """Homoscedastic-uncertainty loss weighting (Kendall et al. 2018), ``[uncertainty]`` options.

    Trains every task of the run (per-task snapshots, runs have a target). The reported train loss
    is the objective Σ_t exp(−s_t)·L_t + s_t (it can be negative); the epoch record holds the
    weights exp(−s_t) (``uncertainty_weights``, also mirrored into the loop's ``weights``) and the
    log-variances s_t (``log_vars``).
    """

    data_parallel = False  # own per-batch state, not yet synchronised across ranks

    def __init__(self, loop: Trainer) -> None:
        super().__init__(loop)
        cfg = loop.cfg.extra.get("uncertainty") or UncertaintyConfig()
        self.index = {t: i for i, t in enumerate(self.trained_tasks())}
        init = torch.full((len(self.index),), float(cfg.init_log_var), device=loop.device)
        self.log_vars = nn.Parameter(init)
        self.optimizer = side_optimizer(cfg.optimizer, loop, [self.log_vars])

    def backward(self, losses: dict[str, Tensor]) -> float:
        s = torch.stack([self.log_vars[self.index[t]] for t in losses])
        total = uncertainty_loss(torch.stack(list(losses.values())), s)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()  # model gradients for the loop's optimiser, and s's for ours
        self.optimizer.step()
        return float(total.detach())

    def task_weights(self) -> dict[str, float]:
        """The current loss weights exp(−s_t)."""
        return {
            t: math.exp(-s)
            for t, s in zip(self.index, self.log_vars.detach().tolist(), strict=True)
        }

    def epoch(self) -> dict[str, Any]:
        info = super().epoch()
        self.loop.weights.update(self.task_weights())
        return info

    def epoch_info(self) -> dict[str, Any]:
        log_vars = dict(zip(self.index, self.log_vars.detach().tolist(), strict=True))
        return {"uncertainty_weights": self.task_weights(), "log_vars": log_vars}

    def state_dict(self) -> dict[str, Any]:
        return {
            "log_vars": self.log_vars.detach().clone(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.log_vars.copy_(state["log_vars"])
        self.optimizer.load_state_dict(state["optimizer"])
