"""Parameter snapshots, task deltas and functional evaluation at θ + u.

State here means a module's parameters plus its floating-point buffers (e.g. batch-norm running
statistics), keyed as in ``named_parameters()`` / ``named_buffers()``. Integer buffers (such as
``num_batches_tracked``) are snapshot and restored but never mixed.

The mixing rule (:func:`mix`) is the paper's θ + Σ_t α_t δ_t (Algorithm 1, line 9-10) for
parameters and every floating-point buffer except running statistics (names ending in
``running_mean`` / ``running_var``, as PyTorch's batch and instance norm call them). Those are
mixed as a convex combination of θ's and the tasks' statistics, θ_s + Σ_t w_t δ_t with
w = α⁺ / max(1, Σ_t α_t⁺) (:func:`statistics_weights`): a running statistic is an average of
activations, not a step, so task updates' statistics are averaged rather than added (the additive
rule makes a running variance negative as soon as the tasks' variances sum below (T − 1) θ_v,
typical in epoch 1). The rule is continuous in α, gives θ's statistics at α = 0, task t's at
α = e_t, and their mean at α = 1. :func:`mix_grad` is its exact α-gradient contraction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

Params = dict[str, Tensor]


def _state(model: nn.Module) -> dict[str, Tensor]:
    state: dict[str, Tensor] = dict(model.named_parameters())
    state.update(dict(model.named_buffers()))
    return state


def mixable_names(model: nn.Module) -> list[str]:
    """Names of the tensors a task delta covers: parameters and floating-point buffers."""
    names = [n for n, _ in model.named_parameters()]
    names += [n for n, b in model.named_buffers() if b.is_floating_point()]
    return names


def snapshot(model: nn.Module) -> Params:
    """Detached copies of all parameters and buffers of ``model`` (θ in Algorithm 1)."""
    return {k: v.detach().clone() for k, v in _state(model).items()}


@torch.no_grad()
def restore(model: nn.Module, state: Mapping[str, Tensor]) -> None:
    """Copy ``state`` into ``model`` in place (bitwise; the model's tensors keep their identity)."""
    current = _state(model)
    missing = set(current) - set(state)
    if missing:
        raise KeyError(f"state lacks {sorted(missing)[:3]}... ({len(missing)} tensors)")
    for k, v in current.items():
        v.copy_(state[k])


def delta(model: nn.Module, start: Mapping[str, Tensor]) -> Params:
    """δ = θ_t − θ: the realised update of ``model`` since the snapshot ``start`` (line 6)."""
    current = _state(model)
    return {k: current[k].detach() - start[k] for k in mixable_names(model)}


def stack_deltas(deltas: Sequence[Mapping[str, Tensor]]) -> Params:
    """Stack T per-task deltas into one tensor per name with a leading task axis ``(T, ...)``."""
    if not deltas:
        raise ValueError("need at least one task delta")
    return {k: torch.stack([d[k] for d in deltas]) for k in deltas[0]}


def is_statistic(name: str) -> bool:
    """Whether ``name`` is a running statistic, mixed convexly (see the module docstring)."""
    return name.endswith(("running_mean", "running_var"))


def statistics_weights(alphas: Tensor) -> Tensor:
    """w = α⁺ / max(1, Σ_t α_t⁺) ``(T,)``: nonnegative, summing to at most 1 (θ's statistics
    get the remaining 1 − Σ w); differentiable in ``alphas`` (almost everywhere)."""
    positive = alphas.clamp_min(0)
    return positive / positive.sum().clamp_min(1.0)


def mix(theta: Mapping[str, Tensor], deltas: Mapping[str, Tensor], alphas: Tensor) -> Params:
    """θ + Σ_t α_t δ_t for every mixable tensor (line 9-10 of Algorithm 1), running statistics
    at θ_s + Σ_t w_t δ_t with w = :func:`statistics_weights` (see the module docstring).

    Args:
        theta: The start point θ (tensors not in ``deltas`` are passed through unchanged).
        deltas: Stacked task deltas, each ``(T, ...)`` (see :func:`stack_deltas`).
        alphas: Mixing factors ``(T,)``; gradients flow to ``alphas``.
    """
    out = dict(theta)
    for k, d in deltas.items():
        if d.shape[0] != alphas.shape[0]:
            raise ValueError(f"{k}: {d.shape[0]} task deltas but {alphas.shape[0]} alphas")
        a = alphas.to(d.device, d.dtype)
        mixed = theta[k] + torch.tensordot(statistics_weights(a) if is_statistic(k) else a, d, 1)
        if mixed.stride() != theta[k].stride():  # keep θ's memory format (e.g. channels_last):
            mixed = torch.empty_like(theta[k]).copy_(mixed)  # otherwise convs take a slow path
        out[k] = mixed
    return out


def mix_grad(
    deltas: Mapping[str, Tensor], alphas: Tensor, grads: Mapping[str, Tensor | None]
) -> Tensor:
    """Σ_k ⟨g_k, ∂mix_k/∂α⟩ ``(T,)`` in float64 on the CPU: the α-gradient of a loss whose
    gradient in the tensors :func:`mix` returns at ``alphas`` is ``grads`` (``None``: unused).

    ∂mix_k/∂α_t is δ_t for additively mixed tensors; for running statistics the contractions
    ⟨g_k, δ_t⟩ are pulled back through :func:`statistics_weights`.
    """
    out = torch.zeros(alphas.shape[0], dtype=torch.float64)
    stats = torch.zeros(alphas.shape[0], dtype=torch.float64)
    with torch.no_grad():
        for k, d in deltas.items():
            g = grads.get(k)
            if g is not None:
                dot = (d.flatten(1) @ g.flatten().to(d.dtype)).double().cpu()
                if is_statistic(k):
                    stats += dot
                else:
                    out += dot
    if bool(stats.any()):
        a = alphas.detach().cpu().double().requires_grad_(True)
        (pulled,) = torch.autograd.grad(statistics_weights(a), a, grad_outputs=stats)
        out += pulled
    return out


def norms(deltas: Mapping[str, Tensor]) -> Tensor:
    """Euclidean norm of each task's delta over all tensors, ``(T,)``."""
    sq = sum(d.flatten(1).pow(2).sum(1) for d in deltas.values())
    return torch.as_tensor(sq).sqrt()
