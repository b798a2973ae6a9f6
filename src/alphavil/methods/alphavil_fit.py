"""Line 9 of αVIL's Algorithm 1 by ``[alphavil]``: which solver fits α, over which variables and
from which starting points (:mod:`alphavil.alpha`, :mod:`alphavil.alpha_exact`,
:mod:`alphavil.alpha_box`; the target branch's variables in :mod:`alphavil.target_branch`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from alphavil.alpha import AlphaFit, fit_alpha
from alphavil.alpha_box import solve_alpha_box
from alphavil.alpha_exact import solve_alpha, solve_alpha_newton, start_candidates
from alphavil.config import build_optimizer
from alphavil.target_branch import (
    Value,
    ValueAndGrad,
    branch_objective,
    branch_starts,
    scaled_branch_objective,
)

if TYPE_CHECKING:
    from alphavil.methods.alphavil_options import AlphaVILConfig


def solve_line9(
    av: AlphaVILConfig,
    value_and_grad: ValueAndGrad,
    value: Value,
    n: int,
    target: int,
    *,
    branching: bool,
    grad_hess: Callable[[], object],
) -> AlphaFit:
    """α for ``n`` tasks (target index ``target``) from the objective over the stacked deltas'
    factors (``value_and_grad``, ``value``). With the target branch (``branching``) the box fit
    is over z = (c, α_aux), and with ``step_scale`` over [z, s] (the fit's last variable, s);
    otherwise by ``alpha_solver`` (SGD steps, L-BFGS boxed or not, Newton: ``grad_hess()``
    builds its objective)."""
    if branching:
        starts = branch_starts(n, target)
        if av.step_scale:
            value_and_grad, value = scaled_branch_objective(value_and_grad, value, target)
            starts = [torch.cat([z, torch.ones(1, dtype=z.dtype)]) for z in starts]
        else:
            value_and_grad, value = branch_objective(value_and_grad, value, target)
        return solve_alpha_box(
            value_and_grad,
            starts,
            value=value,
            lo=av.alpha_bounds[0],
            hi=av.alpha_bounds[1],
            tol=av.solver_tol,
            max_passes=av.solver_passes,
        )
    init = 1.0 if av.alpha_start == "sum" else 1.0 / n
    if av.alpha_solver == "sgd":
        return fit_alpha(
            value_and_grad,
            n,
            steps=av.steps,
            optimizer=lambda p: build_optimizer(av.optimizer, p),
            init=init,
            value=value,
        )
    if av.alpha_solver == "lbfgs" and av.alpha_bounds:
        return solve_alpha_box(
            value_and_grad,
            start_candidates(n, target, init),
            value=value,
            lo=av.alpha_bounds[0],
            hi=av.alpha_bounds[1],
            tol=av.solver_tol,
            max_passes=av.solver_passes,
            fixed={target: 1.0} if av.target_alpha == "one" else None,
        )
    if av.alpha_solver == "lbfgs":
        return solve_alpha(
            value_and_grad,
            start_candidates(n, target, init),
            value=value,
            tol=av.solver_tol,
            max_passes=av.solver_passes,
        )
    return solve_alpha_newton(
        grad_hess(),  # type: ignore[arg-type]
        value,
        start_candidates(n, target, init),
        tol=av.solver_tol,
        max_passes=av.solver_passes,
    )
