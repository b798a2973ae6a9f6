"""αVIL's meta-step: fit mixing factors α of task deltas on the target's dev loss.

Kourdis, Gordon-Hall & Gorinski, "αVIL: Learning to Leverage Auxiliary Tasks for Multitask
Learning" (arXiv 2405.07769), Algorithm 1, lines 8-11. Given task deltas δ_t collected from the same
θ, α minimises L_dev^{t*}(θ + Σ_t α_t δ_t) by a few steps of any ``torch.optim`` optimiser, and the
task weights move by α − 1.

The dev loss is linear-in-α composed with the network, so ∂L/∂α_t = ⟨∇_θ L(θ'), δ_t⟩ at
θ' = θ + Σ α δ. :func:`target_loss_and_grad` uses that identity: it backpropagates each dev chunk
into the mixed point θ' once and contracts with the deltas, so the dev set can be processed in
chunks of any size without keeping their graphs (memory O(chunk), result exact).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from alphavil.deltas import mix
from alphavil.tasks import Task

ValueAndGrad = Callable[[Tensor], tuple[Tensor, Tensor]]
OptimizerFactory = Callable[[list[Tensor]], torch.optim.Optimizer]


def default_alpha_optimizer(params: list[Tensor]) -> torch.optim.Optimizer:
    """SGD, lr 0.005, momentum 0.5: the paper's MultiMNIST α optimiser (§4.1)."""
    return torch.optim.SGD(params, lr=0.005, momentum=0.5)


@dataclass
class AlphaFit:
    """Result of :func:`fit_alpha`: final α ``(T,)`` and the objective before each step."""

    alphas: Tensor
    losses: list[float] = field(default_factory=list)


def fit_alpha(
    value_and_grad: ValueAndGrad,
    n_tasks: int,
    *,
    steps: int = 10,
    optimizer: OptimizerFactory = default_alpha_optimizer,
    init: float = 1.0,
    dtype: torch.dtype = torch.float32,
) -> AlphaFit:
    """Run ``steps`` optimiser steps on α, starting from α = ``init`` (line 8-9).

    Args:
        value_and_grad: α ``(T,)`` -> (objective, ∂objective/∂α ``(T,)``); see
            :func:`target_loss_and_grad` or :func:`autograd_value_and_grad`.
        n_tasks: T.
        steps: s, the number of α tuning steps (paper: 10).
        optimizer: Builds a ``torch.optim`` optimiser over ``[alphas]`` (fresh every call, so no
            momentum carries over between epochs).
        init: Starting α; 1 means "the plain sum of the task updates".
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    alphas = torch.full((n_tasks,), float(init), dtype=dtype, requires_grad=True)
    opt = optimizer([alphas])
    losses: list[float] = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss, grad = value_and_grad(alphas.detach())
        alphas.grad = grad.to(alphas.dtype)
        opt.step()
        losses.append(float(loss))
    return AlphaFit(alphas.detach().clone(), losses)


def update_weights(weights: Tensor, alphas: Tensor, *, floor: float = 1e-6) -> Tensor:
    """w_t ← max(w_t + (α_t − 1), floor) (line 11; clamp to [1e-6, ∞) as in §4.1, footnote 1)."""
    return (weights + (alphas - 1.0)).clamp_min(floor)


def autograd_value_and_grad(objective: Callable[[Tensor], Tensor]) -> ValueAndGrad:
    """Wrap a differentiable scalar objective of α into a ``value_and_grad`` function."""

    def value_and_grad(alphas: Tensor) -> tuple[Tensor, Tensor]:
        a = alphas.detach().requires_grad_(True)
        loss = objective(a)
        (grad,) = torch.autograd.grad(loss, a)
        return loss.detach(), grad

    return value_and_grad


def target_loss(
    model: nn.Module,
    theta: Mapping[str, Tensor],
    deltas: Mapping[str, Tensor],
    batches: Sequence[Any],
    task: Task,
) -> Callable[[Tensor], Tensor]:
    """α -> mean dev loss of ``task`` at θ + Σ α δ, differentiable end to end (keeps all graphs).

    Evaluates the model functionally (``torch.func.functional_call``): the module is not modified.
    Use it for checks and small dev sets; training uses :func:`target_loss_and_grad`.
    """
    n = sum(len(y[task.name]) for _, y in batches)

    def objective(alphas: Tensor) -> Tensor:
        point = mix(theta, deltas, alphas)
        total = torch.zeros((), dtype=alphas.dtype)
        for inputs, targets in batches:
            out = functional_call(model, point, (inputs, [task.name]))
            total = total + task.loss_sum(out[task.name], targets[task.name])
        return total / n

    return objective


def target_loss_and_grad(
    model: nn.Module,
    theta: Mapping[str, Tensor],
    deltas: Mapping[str, Tensor],
    batches: Iterable[Any] | Callable[[], Iterable[Any]],
    task: Task,
) -> ValueAndGrad:
    """α -> (mean dev loss of ``task`` at θ + Σ α δ, its gradient in α), chunk by chunk.

    Args:
        model: The module whose structure is evaluated (its own tensors are not used or changed).
        theta: Start point θ (all parameters and buffers).
        deltas: Stacked task deltas ``(T, ...)``.
        batches: Dev batches ``(inputs, {task: targets})`` or a callable returning a fresh
            iterable of them (used for every α step).
        task: The target task t*.
    """

    def value_and_grad(alphas: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            mixed = mix(theta, deltas, alphas.detach())
        point = {k: (v.requires_grad_(True) if k in deltas else v) for k, v in mixed.items()}
        chunks = list(batches() if callable(batches) else batches)
        n = sum(len(y[task.name]) for _, y in chunks)
        total = 0.0
        for inputs, targets in chunks:
            out = functional_call(model, point, (inputs, [task.name]))
            loss = task.loss_sum(out[task.name], targets[task.name]) / n
            loss.backward()
            total += float(loss.detach())
        grad = torch.zeros(alphas.shape[0], dtype=torch.float64)
        with torch.no_grad():
            for k, d in deltas.items():
                g = point[k].grad
                if g is not None:
                    grad += (d.flatten(1) @ g.flatten().to(d.dtype)).double().cpu()
        return torch.tensor(total, dtype=torch.float64), grad.to(alphas.dtype)

    return value_and_grad
