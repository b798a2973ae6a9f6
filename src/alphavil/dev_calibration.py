"""Line 9's dev loss with the temperature re-fitted at every α (``alphavil.fit_loss =
"calibrated"``).

On a small dev set the target's dev cross-entropy turns up after a few epochs while its dev
accuracy still climbs: the network grows more confident faster than it grows more right
(Guo et al., "On Calibration of Modern Neural Networks", ICML 2017). A fit of α on that loss
then prefers the shorter step whatever the tasks are, the short-horizon bias of greedy
meta-optimisation (Wu et al., "Understanding Short-Horizon Bias in Stochastic
Meta-Optimization", ICLR 2018), and cuts an informative auxiliary share as readily as a
harmful one (docs/fewlabel). Here the objective is

    F(α) = min_s (1/M) Σ_i CE(s · z_i(α), y_i),

the dev loss after temperature scaling (s = 1/τ) at the point θ + Σ α δ, so a step that only
scales the logits neither helps nor hurts. F is evaluated by one forward pass over the dev set
and a one-dimensional solve on the cached logits; its gradient is ∂/∂α of the loss at the
fixed s* (the envelope theorem), computed by :func:`alphavil.alpha.target_loss_and_grad` on
the target task scaled by s*.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar
from torch import Tensor, nn
from torch.func import functional_call

from alphavil.alpha import dev_chunks, evaluation_mode, target_loss_and_grad
from alphavil.deltas import mix
from alphavil.tasks import Task

# the inverse temperature's search interval: wide enough for any trained network's logits,
# bounded so that a perfectly separated dev set (whose loss falls for ever with s) has an answer
SCALE_RANGE = (1e-3, 1e3)

ValueAndGrad = Callable[[Tensor], tuple[Tensor, Tensor]]
Value = Callable[[Tensor], float]


@dataclass(frozen=True)
class ScaledTask(Task):
    """A classification task whose loss is taken at the logits times ``scale`` (1/τ)."""

    scale: float = 1.0

    def loss_sum(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return super().loss_sum(outputs * self.scale, targets)


def scaled_loss(logits: Tensor, targets: Tensor, scale: float) -> float:
    """Mean cross-entropy of ``logits`` times ``scale`` (float64)."""
    return float(F.cross_entropy(logits.double() * scale, targets))


def best_scale(logits: Tensor, targets: Tensor) -> tuple[float, float]:
    """(s*, its mean cross-entropy): the inverse temperature in :data:`SCALE_RANGE` that
    minimises the mean cross-entropy of ``s · logits``. The loss is convex in s, so a bounded
    scalar search over log s (Brent) finds the minimum."""
    z, lo, hi = logits.detach().double(), *map(math.log, SCALE_RANGE)
    res = minimize_scalar(
        lambda u: scaled_loss(z, targets, math.exp(u)),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-9},
    )
    s = math.exp(float(res.x))
    return s, scaled_loss(z, targets, s)


def dev_logits(
    model: nn.Module,
    point: Mapping[str, Tensor],
    batches: Iterable[Any] | Callable[[], Iterable[Any]],
    task: Task,
) -> tuple[Tensor, Tensor]:
    """The target's dev logits and labels at ``point`` (eval mode, no graph)."""
    chunks, _ = dev_chunks(batches, task)
    params, outs, ys = dict(point), [], []
    with torch.no_grad(), evaluation_mode(model, True):
        for inputs, targets in chunks:
            outs.append(functional_call(model, params, (inputs, [task.name]))[task.name])
            ys.append(targets[task.name])
    return torch.cat(outs), torch.cat(ys)


def calibrated_objective(
    model: nn.Module,
    theta: Mapping[str, Tensor],
    deltas: Mapping[str, Tensor],
    batches: Iterable[Any] | Callable[[], Iterable[Any]],
    task: Task,
) -> tuple[ValueAndGrad, Value]:
    """α -> F(α) with its gradient, and α -> F(α) alone (module docstring). s* is found on the
    whole dev set in every process; the gradient at s* is summed over the ranks' chunks as
    :func:`alphavil.alpha.target_loss_and_grad` does."""
    if task.kind != "classification":
        raise ValueError(
            f"a calibrated dev loss is for a classification target; {task.name!r} is {task.kind}"
        )

    def at(alphas: Tensor) -> tuple[float, float]:
        with torch.no_grad():
            point = mix(theta, deltas, alphas.detach())
        return best_scale(*dev_logits(model, point, batches, task))

    def value(alphas: Tensor) -> float:
        return at(alphas)[1]

    def value_and_grad(alphas: Tensor) -> tuple[Tensor, Tensor]:
        s, _ = at(alphas)
        scaled = ScaledTask(task.name, task.num_outputs, task.kind, scale=s)
        return target_loss_and_grad(model, theta, deltas, batches, scaled)(alphas)

    return value_and_grad, value
