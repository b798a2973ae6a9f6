"""Line 9 of αVIL's Algorithm 1 by ``[alphavil]``: which solver fits α, over which variables,
from which starting points (:mod:`alphavil.alpha`, :mod:`alphavil.alpha_exact`,
:mod:`alphavil.alpha_box`; the target branch's variables in :mod:`alphavil.target_branch`) and,
with ``shrink_folds``, how far toward the multitask step the fit is taken
(:mod:`alphavil.alpha_shrink`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from alphavil.alpha import AlphaFit, fit_alpha, target_loss_and_grad, target_loss_value
from alphavil.alpha_box import solve_alpha_box
from alphavil.alpha_exact import (
    finite_or_inf,
    solve_alpha,
    solve_alpha_newton,
    start_candidates,
    target_loss_grad_hess,
)
from alphavil.alpha_greedy import greedy_fit, merge_candidates, target_score_value
from alphavil.alpha_margin import discordance_value
from alphavil.alpha_shrink import (
    best_strength,
    fold_losses,
    held_out_curve,
    shrink,
    standard_errors,
)
from alphavil.alpha_zero_one import grid_fit, target_error_value
from alphavil.config import build_optimizer
from alphavil.deltas import norms
from alphavil.dev_calibration import calibrated_objective
from alphavil.schema import ConfigError
from alphavil.second_scale import scale_candidates, summary_point
from alphavil.target_branch import (
    Value,
    ValueAndGrad,
    branch_objective,
    branch_starts,
    full_alphas,
    multitask_point,
    normalized_branch_objective,
    scaled_branch_objective,
)

if TYPE_CHECKING:
    from torch import nn

    from alphavil.methods.alphavil_options import AlphaVILConfig
    from alphavil.tasks import Task


def line9_objective(
    av: AlphaVILConfig,
    model: nn.Module,
    theta: dict[str, Tensor],
    deltas: dict[str, Tensor],
    dev: Sequence[Any],
    task: Task,
) -> tuple[ValueAndGrad, Value, Callable[[], object]]:
    """Line 9's objective over the dev chunks ``dev`` as a function of the factors of every row
    of the stacked deltas: its value and gradient, its value alone, and the builder of its
    Hessian (Newton). ``fit_loss = "calibrated"``: the dev loss after temperature scaling
    (:mod:`alphavil.dev_calibration`), which has no Hessian builder."""
    if av.fit_loss == "calibrated":
        try:
            vg, value = calibrated_objective(model, theta, deltas, dev, task)
        except ValueError as err:  # not a classification target
            raise ConfigError(f"alphavil.fit_loss: {err}; set fit_loss = 'plain'") from None
        return vg, value, lambda: None
    return (
        target_loss_and_grad(model, theta, deltas, dev, task),
        target_loss_value(model, theta, deltas, dev, task),
        lambda: target_loss_grad_hess(model, theta, deltas, dev, task),
    )


def solve_line9(
    av: AlphaVILConfig,
    value_and_grad: ValueAndGrad,
    value: Value,
    n: int,
    target: int,
    *,
    branching: bool,
    grad_hess: Callable[[], object],
    gram: Tensor | None = None,
) -> AlphaFit:
    """α for ``n`` tasks (target index ``target``) from the objective over the stacked deltas'
    factors (``value_and_grad``, ``value``). With the target branch (``branching``) the box fit
    is over z = (c, α_aux), and with ``step_scale`` over [z, s] (the fit's last variable, s),
    with ``step_length = "multitask"`` over z at the multitask step's length (``gram``);
    otherwise by ``alpha_solver`` (SGD steps, L-BFGS boxed or not, Newton: ``grad_hess()``
    builds its objective)."""
    if branching:
        starts = branch_starts(n, target)
        if av.step_scale:
            value_and_grad, value = scaled_branch_objective(value_and_grad, value, target)
            starts = [torch.cat([z, torch.ones(1, dtype=z.dtype)]) for z in starts]
        elif av.step_length == "multitask":
            if gram is None:
                raise ValueError("step_length = 'multitask' needs the deltas' Gram matrix")
            value_and_grad, value = normalized_branch_objective(value_and_grad, value, target, gram)
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


def shrunk_fit(
    av: AlphaVILConfig,
    fit: AlphaFit,
    fold_chunks: Sequence[Sequence[Any]],
    objective: Callable[[Sequence[Any]], tuple[ValueAndGrad, Value, Callable[[], object]]],
    n: int,
    target: int,
    *,
    branching: bool,
) -> tuple[Tensor, dict[str, Any]]:
    """``alphavil.shrink_folds``: the full-dev fit ``fit`` shrunk toward the multitask step by
    the strength that minimises the held-out loss over the dev folds ``fold_chunks``
    (:mod:`alphavil.alpha_shrink`). ``objective(chunks)`` gives the α objective, its
    forward-only twin and the Newton builder over those dev chunks, as functions of the factors
    of every row of the stacked deltas. Returns the written variables and what to log."""
    if len(fold_chunks) < 2:
        raise ConfigError(
            f"alphavil.shrink_folds: the dev set gives {len(fold_chunks)} fold(s); "
            "cross-validation needs at least 2 dev examples; set shrink_folds = 0"
        )
    ref = multitask_point(n, target, branching=branching)
    fold_fits, held_out, sizes = [], [], []
    for k, chunks in enumerate(fold_chunks):
        rest = [c for j, f in enumerate(fold_chunks) if j != k for c in f]
        vg, value, gh = objective(rest)
        z = solve_line9(av, vg, value, n, target, branching=branching, grad_hess=gh).alphas
        vg_hold, hold, _ = objective(chunks)
        if branching:  # held out as a function of the fit's variables, as z is
            hold = branch_objective(vg_hold, hold, target)[1]
        fold_fits.append(z.detach().double())
        held_out.append(hold)
        sizes.append(sum(len(next(iter(y.values()))) for _, y in chunks))
    grid = sorted(av.shrink_grid)
    per_fold = fold_losses(ref, fold_fits, held_out, grid)
    curve, se = held_out_curve(per_fold, sizes), standard_errors(per_fold)
    lam = best_strength(grid, curve, se if av.shrink_rule == "one_se" else None)
    written = shrink(ref, fit.alphas.detach().double(), lam)
    return written, {
        "strength": lam,
        "held_out_loss": dict(zip(map(str, grid), curve, strict=True)),
        "standard_error": dict(zip(map(str, grid), se, strict=True)),
        "fold_sizes": sizes,
    }


def discrete_fit(
    av: AlphaVILConfig,
    model: torch.nn.Module,
    theta: Any,
    deltas: Any,
    dev: Sequence[Any],
    task: Any,
    n: int,
    target: int,
    branching: bool,
) -> tuple[AlphaFit, dict[str, Any]]:
    """Line 9 as a choice among points of the target branch's fit variables z = (c, α_aux):
    ``fit_loss = "zero_one"``, a grid of ``fit_grid`` points per axis, the least dev error,
    ties to the multitask step (:mod:`alphavil.alpha_zero_one`); ``merge = "greedy"``,
    ForkMerge's greedy merge of whole updates (:mod:`alphavil.alpha_greedy`). Without a branch
    (the target alone in ``train.tasks``) there is nothing to choose: the target's update whole.
    Returns the fit and what to log."""
    if not branching:
        whole = multitask_point(n, target, branching=False)
        loss = target_loss_value(model, theta, deltas, dev, task)(whole)
        return AlphaFit(alphas=whole, forward_passes=1, final_loss=loss), {}
    if av.merge == "greedy":
        return greedy_line9(av, model, theta, deltas, dev, task, n, target)
    try:
        error = target_error_value(model, theta, deltas, dev, task)
    except ValueError as err:  # not a classification target
        raise ConfigError(f"alphavil.fit_loss: {err}; set fit_loss = 'plain'") from None
    home = multitask_point(n, target)
    return grid_fit(lambda z: error(full_alphas(z, target)), home, av.fit_grid), {}


def greedy_line9(
    av: AlphaVILConfig,
    model: torch.nn.Module,
    theta: Any,
    deltas: Any,
    dev: Sequence[Any],
    task: Any,
    n: int,
    target: int,
) -> tuple[AlphaFit, dict[str, Any]]:
    """Line 9 as ForkMerge's greedy merge (:mod:`alphavil.alpha_greedy`) of the target branch's
    whole updates (:func:`~alphavil.alpha_greedy.merge_candidates`, points of z), or with
    ``second_scale`` of the three trajectories' (:func:`~alphavil.second_scale.
    scale_candidates`, factors of every row): then the fit's ``alphas`` and ``start`` are the z
    of the merged factors (:func:`~alphavil.second_scale.summary_point`), its ``factors``
    the merged factors."""
    two = av.second_scale != "none"
    candidates = scale_candidates(n, target) if two else merge_candidates(n, target)

    def factors(point: Tensor) -> Tensor:
        return point if two else full_alphas(point, target)

    key = target_score_value(model, theta, deltas, dev, task)
    margin: Callable[[Tensor], tuple[int, int]] | None = None
    if av.merge_margin:
        try:
            counts = discordance_value(model, theta, deltas, dev, task, factors(candidates[0][1]))
        except ValueError as err:  # not a classification target
            raise ConfigError(f"alphavil.merge_margin: {err}; set merge_margin = 0") from None

        def margin(point: Tensor) -> tuple[int, int]:
            return counts(factors(point))

    fit, record = greedy_fit(
        lambda point: key(factors(point)), candidates, av.merge_grid, margin, av.merge_margin
    )
    if two:
        start = summary_point(candidates[0][1], n, target)
        z = summary_point(fit.alphas, n, target)
        fit = replace(fit, alphas=z, start=start, factors=fit.alphas)
    return fit, {"merge": record}


def fit_failed(av: AlphaVILConfig, fit: AlphaFit) -> bool:
    """Whether the α fit failed: its α or objective is not finite, or (the paper's fixed
    steps, whose iterates have no safeguard) a step reached a non-finite objective. The
    exact solvers' non-finite probes are part of their search and count as +∞."""
    if not torch.isfinite(fit.alphas).all() or not math.isfinite(finite_or_inf(fit.final_loss)):
        return True
    return av.alpha_solver == "sgd" and not all(map(math.isfinite, fit.losses))


def non_finite_cause(
    av: AlphaVILConfig,
    lr: object,
    fit: AlphaFit,
    value: Value,
    deltas: dict[str, Tensor],
    rows: list[str],
) -> str:
    """The error message for a failed α fit (``rows``: who made each row of ``deltas``; ``lr``:
    the model's learning rate), naming the cause: θ itself (α = 0), a task update, or the
    paper's α steps."""
    lower = f"lower the learning rate (train.optimizer.lr = {lr})"
    head = f"alpha fit: the target's dev loss is not finite (dev losses {fit.losses})"
    at_theta = value(torch.zeros(len(rows), dtype=torch.float64))
    if not math.isfinite(at_theta):
        return (
            f"{head}, {at_theta} at alpha = 0, the model before this epoch's updates: "
            f"training diverged earlier; {lower}"
        )
    bad = [t for t, n in zip(rows, norms(deltas).tolist(), strict=True) if not math.isfinite(n)]
    if bad:
        return f"{head}: the update of {bad} is not finite; {lower}"
    if av.alpha_solver == "sgd":
        return (
            f"{head} but finite at alpha = 0: the alpha steps diverged; lower "
            f"alphavil.optimizer.lr (= {av.optimizer.get('lr')})"
        )
    return f"{head} but finite at alpha = 0, which the {av.alpha_solver} fit did not return"
