"""αVIL's target branch (``alphavil.target_branch``): the α fit may also choose the target alone.

With joint updates (:mod:`alphavil.task_shares`) every epoch's pass is one multitask trajectory,
and α_aux = 0 keeps only the target's share of it: a point *off* the trajectory, computed in the
company of the auxiliary tasks, which the one-epoch fit rarely prefers. The target branch adds
the trajectory the target takes on its own: over the same batches (the target's rows of each
joint step), from the same θ, with the target's loss alone (``branch_scale = "full"``, as in
single-task training, or ``"share"``: at the scale w_target/Σw it has in the joint pass, so that
the two differ only by the auxiliary tasks' company), giving δ_alone. The fit then mixes

    θ + (1 − c) δ_target + c δ_alone + Σ_a α_a δ_a,     c, α_a ∈ [0, 1],

so c = 0, α = 1 is the multitask step, c = 1, α = 0 is the single-task step, and the fit can
trade between them. The fit variables are kept in one vector ``z`` of length T (the target's
coordinate holds c, the auxiliaries' hold α_a), mapped linearly to the T + 1 factors of the
stacked deltas ``[δ_1 .. δ_T, δ_alone]``. ForkMerge (Jiang et al., NeurIPS 2023) merges a
target-alone branch with joint branches on the target's dev metric every few epochs; this is the
same choice inside αVIL's one-epoch fit on the dev loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from alphavil.deltas import Params, is_statistic

ValueAndGrad = Callable[[Tensor], tuple[Tensor, Tensor]]
Value = Callable[[Tensor], float]


def full_alphas(z: Tensor, target: int) -> Tensor:
    """The T + 1 mixing factors of ``[δ_1 .. δ_T, δ_alone]`` for fit variables ``z`` ``(T,)``:
    the target's share gets 1 − c, the branch c = ``z[target]``, each auxiliary its own."""
    c = z[target]
    out = torch.cat([z, c.reshape(1)])
    out[target] = 1.0 - c
    return out


def fit_alphas(full: Tensor, target: int) -> Tensor:
    """The inverse of :func:`full_alphas` (reads c from the branch's factor)."""
    z = full[:-1].clone()
    z[target] = full[-1]
    return z


def branch_objective(
    value_and_grad: ValueAndGrad, value: Value, target: int
) -> tuple[ValueAndGrad, Value]:
    """The α objective (and its forward-only twin) over ``[δ_1 .. δ_T, δ_alone]`` as functions
    of ``z``; the gradient is the chain rule through :func:`full_alphas`
    (∂/∂c = g_alone − g_target)."""

    def vg(z: Tensor) -> tuple[Tensor, Tensor]:
        loss, g = value_and_grad(full_alphas(z, target))
        gz = g[:-1].clone()
        gz[target] = g[-1] - g[target]
        return loss, gz

    return vg, lambda z: value(full_alphas(z, target))


def scaled_branch_objective(
    value_and_grad: ValueAndGrad, value: Value, target: int
) -> tuple[ValueAndGrad, Value]:
    """``alphavil.step_scale``: the objective over ``y = [z, s]`` at the factors
    s · :func:`full_alphas` (z), so that the length of the step (s) is fitted apart from its
    mix (c, α_a): otherwise the only way to shorten the step is to cut the auxiliary shares,
    and a task whose share points where the target's does is cut for the length alone. The
    gradient: ∂/∂z = s · (the chain rule of :func:`branch_objective`), ∂/∂s = F(z) · g."""

    def vg(y: Tensor) -> tuple[Tensor, Tensor]:
        z, s = y[:-1], y[-1]
        f = full_alphas(z, target)
        loss, g = value_and_grad(s * f)
        gz = g[:-1].clone()
        gz[target] = g[-1] - g[target]
        return loss, torch.cat([s * gz, (f * g).sum().reshape(1)])

    return vg, lambda y: value(y[-1] * full_alphas(y[:-1], target))


def step_gram(deltas: Params, target: int) -> Tensor:
    """The Gram matrix ``(T + 1, T + 1)`` (float64) of the stacked deltas
    ``[δ_1 .. δ_T, δ_alone]`` over the parameters the target's updates move (its joint share or
    its branch non-zero): the shared layers and the target's head. An auxiliary head does not
    change the target's dev loss, so its length is left out of the step's, and so are running
    statistics (batch norm's), which are not parameters."""
    rows = next(iter(deltas.values())).shape[0]
    gram = torch.zeros(rows, rows, dtype=torch.float64)
    for k, d in deltas.items():
        if not is_statistic(k) and (bool(d[target].any()) or bool(d[-1].any())):
            flat = d.reshape(rows, -1).double()
            gram += flat @ flat.T
    return gram


def length_scale(factors: Tensor, gram: Tensor, reference: Tensor) -> Tensor:
    """``alphavil.step_length = "multitask"``: the scale k that gives the step Σ f_i δ_i of
    ``factors`` the length of the step of ``reference`` (the multitask step's factors), in the
    norm of ``gram`` (:func:`step_gram`): k = ‖Δ(reference)‖ / ‖Δ(factors)‖."""
    ref = reference.to(gram.dtype)
    own = factors.to(gram.dtype) @ gram @ factors.to(gram.dtype)
    return torch.sqrt((ref @ gram @ ref) / own.clamp_min(torch.finfo(gram.dtype).tiny))


def normalized_branch_objective(
    value_and_grad: ValueAndGrad, value: Value, target: int, gram: Tensor
) -> tuple[ValueAndGrad, Value]:
    """``alphavil.step_length = "multitask"``: the objective over ``z`` at the factors
    k(z) · :func:`full_alphas` (z), every candidate step stretched or shrunk to the multitask
    step's length (:func:`length_scale`), so that the fit chooses the step's direction (its mix
    of the tasks' shares and the branch) and not its length: a one-epoch dev loss prefers short
    steps, and without this the only way to shorten one is to cut the auxiliary shares. The
    gradient is the chain rule through k(z) F(z) (autograd over the T fit variables)."""
    reference = full_alphas(multitask_point(gram.shape[0] - 1, target), target)

    def factors(z: Tensor) -> Tensor:
        f = full_alphas(z, target)
        return f * length_scale(f, gram, reference).to(f.dtype)

    def vg(z: Tensor) -> tuple[Tensor, Tensor]:
        zz = z.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            f = factors(zz)
        loss, g = value_and_grad(f.detach())
        (gz,) = torch.autograd.grad(f, zz, g.to(f.dtype))
        return loss, gz

    return vg, lambda z: value(factors(z))


def multitask_point(n_tasks: int, target: int, *, branching: bool = True) -> Tensor:
    """The fit's variables at the multitask step: every task's share whole (α = 1), and with
    the target branch none of the branch (c = 0 in the target's coordinate)."""
    point = torch.ones(n_tasks, dtype=torch.float64)
    if branching:
        point[target] = 0.0
    return point


def branch_starts(n_tasks: int, target: int) -> list[Tensor]:
    """Starting points for the fit: the multitask step (c = 0, α = 1), the single-task step
    (c = 1, α = 0) and the target's joint share alone (c = 0, α = 0)."""
    multitask = multitask_point(n_tasks, target)
    single = torch.zeros(n_tasks, dtype=torch.float64)
    single[target] = 1.0
    return [multitask, single, torch.zeros(n_tasks, dtype=torch.float64)]


def with_branch(deltas: Params, alone: Params) -> Params:
    """The stacked task deltas ``(T, ...)`` with the branch's delta appended ``(T + 1, ...)``."""
    return {k: torch.cat([d, alone[k].unsqueeze(0)]) for k, d in deltas.items()}


@torch.no_grad()
def blend_states(
    joint: Sequence[Tensor | None], alone: Sequence[Tensor | None], c: float
) -> list[Tensor | None]:
    """The target's optimiser state after the fit: (1 − c) of its state on the joint trajectory
    plus c of the branch's (a missing buffer counts as zero; both missing stays missing). Both
    trajectories continue from the blend: it is the momentum of what was taken."""
    out: list[Tensor | None] = []
    for a, b in zip(joint, alone, strict=True):
        if a is None and b is None:
            out.append(None)
            continue
        first = a if a is not None else torch.zeros_like(b)  # type: ignore[arg-type]
        second = b if b is not None else torch.zeros_like(first)
        out.append(first * (1.0 - c) + second * c)
    return out
