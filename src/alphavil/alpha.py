"""αVIL's meta-step: fit mixing factors α of task deltas on the target's dev loss.

Kourdis, Gordon-Hall & Gorinski, "αVIL: Learning to Leverage Auxiliary Tasks for Multitask
Learning" (arXiv 2405.07769), Algorithm 1, lines 8-11. Given task deltas δ_t collected from the same
θ, α minimises L_dev^{t*}(θ + Σ_t α_t δ_t) by a few steps of any ``torch.optim`` optimiser, and the
task weights move by α − 1.

The dev loss is linear-in-α composed with the network, so ∂L/∂α_t = ⟨∇_θ L(θ'), δ_t⟩ at
θ' = θ + Σ α δ. :func:`target_loss_and_grad` uses that identity: it backpropagates each dev chunk
into the mixed point θ' once and contracts with the deltas, so the dev set can be processed in
chunks of any size without keeping their graphs (memory O(chunk), result exact).

Floating-point buffers are part of θ' as well (:func:`alphavil.deltas.mix`; batch-norm running
statistics are mixed convexly). In eval mode a batch norm's running statistics enter its output
directly, so they are differentiated too: PyTorch's batch norm refuses gradients for them, and
:func:`with_statistics_gradients` rewrites the layer's affine parameters so that the output has
the same value and the running statistics' gradient. Value, gradient and Hessian therefore all
belong to the one function α ↦ L_dev(mix(θ, δ, α)) that is written back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from alphavil.deltas import mix, mix_grad
from alphavil.distributed import all_sum, rank, world_size
from alphavil.task_weights import update_weights
from alphavil.tasks import Task

__all__ = [
    "AlphaFit",
    "autograd_value_and_grad",
    "dev_chunks",
    "differentiable_mix",
    "evaluation_mode",
    "fit_alpha",
    "target_loss",
    "target_loss_and_grad",
    "target_loss_value",
    "update_weights",
    "with_statistics_gradients",
]

ValueAndGrad = Callable[[Tensor], tuple[Tensor, Tensor]]
OptimizerFactory = Callable[[list[Tensor]], torch.optim.Optimizer]


def default_alpha_optimizer(params: list[Tensor]) -> torch.optim.Optimizer:
    """SGD, lr 0.005, momentum 0.5: the paper's MultiMNIST α optimiser (§4.1)."""
    return torch.optim.SGD(params, lr=0.005, momentum=0.5)


@dataclass
class AlphaFit:
    """Result of an α fit: final α ``(T,)`` and what it cost.

    Attributes:
        alphas: The fitted α.
        losses: The objective at every α the solver evaluated with a gradient, in order (for
            :func:`fit_alpha`: before each step).
        passes: Dev passes with a backward pass (one per objective-and-gradient evaluation).
        forward_passes: Dev passes without a backward pass (objective only).
        start: The α the solver started from (``None``: ``init`` of :func:`fit_alpha`).
        start_loss: The objective at ``start`` (``None`` when not evaluated).
        final_loss: The objective at ``alphas`` (``None`` when not evaluated).
        factors: The factors of every row of the stacked deltas, where they are not a function
            of ``alphas`` (``alphavil.second_scale``: :mod:`alphavil.second_scale`); else
            ``None``.
    """

    alphas: Tensor
    losses: list[float] = field(default_factory=list)
    passes: int = 0
    forward_passes: int = 0
    start: Tensor | None = None
    start_loss: float | None = None
    final_loss: float | None = None
    factors: Tensor | None = None


def fit_alpha(
    value_and_grad: ValueAndGrad,
    n_tasks: int,
    *,
    steps: int = 10,
    optimizer: OptimizerFactory = default_alpha_optimizer,
    init: float = 1.0,
    dtype: torch.dtype = torch.float32,
    value: Callable[[Tensor], float] | None = None,
) -> AlphaFit:
    """Run ``steps`` optimiser steps on α, starting from α = ``init`` (line 8-9).

    On finite objectives this is the paper's fit exactly: the α after the last step is returned.
    A non-finite objective or gradient (counted as +∞) stops the steps, and the best α with a
    finite objective evaluated so far is returned instead (the start when none was finite).

    Args:
        value_and_grad: α ``(T,)`` -> (objective, ∂objective/∂α ``(T,)``); see
            :func:`target_loss_and_grad` or :func:`autograd_value_and_grad`.
        n_tasks: T.
        steps: s, the number of α tuning steps (paper: 10).
        optimizer: Builds a ``torch.optim`` optimiser over ``[alphas]`` (fresh every call, so no
            momentum carries over between epochs).
        init: Starting α; 1 means "the plain sum of the task updates".
        value: α -> objective, forward only. When given, the final α is evaluated with it (one
            forward pass, ``final_loss``), and a non-finite result is replaced by the best finite
            α evaluated during the steps.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    alphas = torch.full((n_tasks,), float(init), dtype=dtype, requires_grad=True)
    opt = optimizer([alphas])
    losses: list[float] = []
    best: tuple[Tensor, float] | None = None
    diverged = False
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss, grad = value_and_grad(alphas.detach())
        losses.append(float(loss))
        if not (math.isfinite(losses[-1]) and bool(torch.isfinite(grad).all())):
            diverged = True
            break
        if best is None or losses[-1] < best[1]:
            best = (alphas.detach().clone(), losses[-1])
        alphas.grad = grad.to(alphas.dtype)
        opt.step()
    start = torch.full((n_tasks,), float(init), dtype=dtype)
    fit = AlphaFit(
        alphas.detach().clone(),
        losses,
        passes=len(losses),
        start=start,
        start_loss=losses[0] if losses else None,
    )
    if diverged and best is not None:
        fit.alphas, fit.final_loss = best
    elif diverged:
        fit.final_loss = losses[-1]
    elif value is not None:
        fit.final_loss = value(fit.alphas)  # one forward pass: what the steps achieved
        fit.forward_passes += 1
        if not math.isfinite(fit.final_loss) and best is not None:
            fit.alphas, fit.final_loss = best
    return fit


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
        point = differentiable_mix(model, theta, deltas, alphas)
        total = torch.zeros((), dtype=alphas.dtype)
        for inputs, targets in batches:
            out = functional_call(
                model, with_statistics_gradients(model, point), (inputs, [task.name])
            )
            total = total + task.loss_sum(out[task.name], targets[task.name])
        return total / n

    return objective


def differentiable_mix(
    model: nn.Module, theta: Mapping[str, Tensor], deltas: Mapping[str, Tensor], alphas: Tensor
) -> dict[str, Tensor]:
    """:func:`~alphavil.deltas.mix` (θ + Σ α δ; running statistics convexly) with gradients to
    ``alphas`` through every mixed tensor, parameters and floating-point buffers alike.

    Evaluate the model at it through :func:`with_statistics_gradients` so that eval-mode batch
    norm passes gradients to its running statistics. ``model`` is kept for compatibility.
    """
    del model
    return mix(theta, deltas, alphas)


def _norm_layers(model: nn.Module) -> Iterator[tuple[str, nn.modules.batchnorm._NormBase]]:
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats:
            yield (f"{name}." if name else ""), m


def with_statistics_gradients(model: nn.Module, point: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``point`` rewritten so that ``functional_call(model, ...)`` has the same value and lets
    gradients reach the running statistics of batch / instance norm layers.

    Eval mode: a norm layer computes (x − m) / √(v + ε) · w + b, and PyTorch cannot differentiate
    its kernel in m and v. With m₀, v₀ their detached values, the layer is handed m₀, v₀,
    w' = w · √(v₀ + ε) / √(v + ε) and b' = b − (m − m₀) · w' / √(v₀ + ε): the same output (w' = w
    and b' = b in value, exactly) with the exact first and second derivatives in m and v.
    Train mode: the output does not depend on the statistics, which the layer updates in place,
    so it is handed detached copies. Tensors that need no gradient are passed through.
    """
    out = dict(point)
    for prefix, m in _norm_layers(model):
        mean, var = out.get(prefix + "running_mean"), out.get(prefix + "running_var")
        if mean is None or var is None or not (mean.requires_grad or var.requires_grad):
            continue
        mean0, var0 = mean.detach(), var.detach()
        if m.training:
            out[prefix + "running_mean"], out[prefix + "running_var"] = mean0.clone(), var0.clone()
            continue
        weight = out.get(prefix + "weight") if m.affine else None
        bias = out.get(prefix + "bias") if m.affine else None
        weight = torch.ones_like(var) if weight is None else weight
        bias = torch.zeros_like(mean) if bias is None else bias
        root0 = torch.sqrt(var0 + m.eps)
        w = weight * (root0 / torch.sqrt(var + m.eps))
        out[prefix + "weight"] = w
        out[prefix + "bias"] = bias - (mean - mean0) * (w / root0)
        out[prefix + "running_mean"], out[prefix + "running_var"] = mean0, var0
    return out


def dev_chunks(
    batches: Iterable[Any] | Callable[[], Iterable[Any]], task: Task
) -> tuple[list[Any], int]:
    """The dev chunks (calling ``batches`` when it is a factory) and the number of examples."""
    chunks = list(batches() if callable(batches) else batches)
    return chunks, sum(len(y[task.name]) for _, y in chunks)


def my_chunks(chunks: list[Any]) -> list[Any]:
    """This rank's dev chunks: every W-th from its rank on (all of them in one process)."""
    return chunks[rank() :: world_size()] if world_size() > 1 else chunks


@contextmanager
def evaluation_mode(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Put every submodule of ``model`` in eval mode (dropout off, batch-norm statistics frozen)
    for the duration, then give each submodule back the mode it had."""
    if not enabled:
        yield
        return
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def target_loss_value(
    model: nn.Module,
    theta: Mapping[str, Tensor],
    deltas: Mapping[str, Tensor],
    batches: Iterable[Any] | Callable[[], Iterable[Any]],
    task: Task,
    *,
    eval_mode: bool = True,
) -> Callable[[Tensor], float]:
    """α -> mean dev loss of ``task`` at θ + Σ α δ: one forward pass over the dev chunks, no graph.

    Same arguments as :func:`target_loss_and_grad`; used to compare starting points and for the
    grid diagnostic.
    """
    return dev_mean_value(
        model, theta, deltas, batches, task, lambda out, y: float(task.loss_sum(out, y)),
        eval_mode=eval_mode,
    )  # fmt: skip


def dev_mean_value(
    model: nn.Module,
    theta: Mapping[str, Tensor],
    deltas: Mapping[str, Tensor],
    batches: Iterable[Any] | Callable[[], Iterable[Any]],
    task: Task,
    chunk_sum: Callable[[Tensor, Tensor], float],
    *,
    eval_mode: bool = True,
) -> Callable[[Tensor], float]:
    """α -> the mean over the dev examples of ``chunk_sum(outputs, targets)`` (a chunk's sum of
    ``task``'s per-example values) at θ + Σ α δ: one forward pass, no graph, each rank its share
    of the chunks under data parallelism."""

    @torch.no_grad()
    def value(alphas: Tensor) -> float:
        point = mix(theta, deltas, alphas.detach())
        chunks, n = dev_chunks(batches, task)
        total = 0.0
        with evaluation_mode(model, eval_mode):
            for inputs, targets in my_chunks(chunks):
                out = functional_call(model, point, (inputs, [task.name]))
                total += chunk_sum(out[task.name], targets[task.name]) / n
        if world_size() > 1:  # data parallel: each rank evaluated its share of the chunks
            total = float(all_sum(torch.tensor(total, dtype=torch.float64)))
        return total

    return value


def target_loss_and_grad(
    model: nn.Module,
    theta: Mapping[str, Tensor],
    deltas: Mapping[str, Tensor],
    batches: Iterable[Any] | Callable[[], Iterable[Any]],
    task: Task,
    *,
    eval_mode: bool = True,
) -> ValueAndGrad:
    """α -> (mean dev loss of ``task`` at θ + Σ α δ, its gradient in α), chunk by chunk.

    Only the target's head is run: other tasks' heads are not part of the objective, so their
    entries of α get gradient only through the shared tensors.

    Args:
        model: The module whose structure is evaluated (its own tensors are not used or changed).
        theta: Start point θ (all parameters and buffers).
        deltas: Stacked task deltas ``(T, ...)``.
        batches: Dev batches ``(inputs, {task: targets})`` or a callable returning a fresh
            iterable of them (used for every α step).
        task: The target task t*.
        eval_mode: Evaluate with every submodule in eval mode (dropout off, batch-norm running
            statistics used and not updated) and restore each submodule's mode afterwards. With
            ``False`` the module is evaluated in whatever mode it is in.
    """

    def value_and_grad(alphas: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            mixed = mix(theta, deltas, alphas.detach())
        point = {k: (v.requires_grad_(True) if k in deltas else v) for k, v in mixed.items()}
        chunks, n = dev_chunks(batches, task)
        total = 0.0
        with evaluation_mode(model, eval_mode):
            for inputs, targets in my_chunks(chunks):
                call = with_statistics_gradients(model, point)
                out = functional_call(model, call, (inputs, [task.name]))
                loss = task.loss_sum(out[task.name], targets[task.name]) / n
                loss.backward()
                total += float(loss.detach())
        grad = mix_grad(deltas, alphas, {k: point[k].grad for k in deltas})
        if world_size() > 1:  # sum the ranks' shares: T + 1 numbers
            summed = all_sum(torch.cat([torch.tensor([total], dtype=torch.float64), grad]))
            total, grad = float(summed[0]), summed[1:]
        return torch.tensor(total, dtype=torch.float64), grad.to(alphas.dtype)

    return value_and_grad
