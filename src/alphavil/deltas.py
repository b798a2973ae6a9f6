"""Parameter snapshots, task deltas and functional evaluation at θ + u.

State here means a module's parameters plus its floating-point buffers (e.g. batch-norm running
statistics), keyed as in ``named_parameters()`` / ``named_buffers()``. Integer buffers (such as
``num_batches_tracked``) are snapshot and restored but never mixed.
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


def mix(theta: Mapping[str, Tensor], deltas: Mapping[str, Tensor], alphas: Tensor) -> Params:
    """θ + Σ_t α_t δ_t for every mixable tensor (line 9-10 of Algorithm 1).

    Args:
        theta: The start point θ (tensors not in ``deltas`` are passed through unchanged).
        deltas: Stacked task deltas, each ``(T, ...)`` (see :func:`stack_deltas`).
        alphas: Mixing factors ``(T,)``; gradients flow to ``alphas``.
    """
    out = dict(theta)
    for k, d in deltas.items():
        if d.shape[0] != alphas.shape[0]:
            raise ValueError(f"{k}: {d.shape[0]} task deltas but {alphas.shape[0]} alphas")
        mixed = theta[k] + torch.tensordot(alphas.to(d.device, d.dtype), d, dims=1)
        if mixed.stride() != theta[k].stride():  # keep θ's memory format (e.g. channels_last):
            mixed = torch.empty_like(theta[k]).copy_(mixed)  # otherwise convs take a slow path
        out[k] = mixed
    return out


def norms(deltas: Mapping[str, Tensor]) -> Tensor:
    """Euclidean norm of each task's delta over all tensors, ``(T,)``."""
    sq = sum(d.flatten(1).pow(2).sum(1) for d in deltas.values())
    return torch.as_tensor(sq).sqrt()
