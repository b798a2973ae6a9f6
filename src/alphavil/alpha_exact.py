"""Solving line 9 of Algorithm 1: α* = argmin_α L_dev(θ + Σ_t α_t δ_t), not a few steps towards it.

The paper takes 10 SGD steps on α (lr 0.005, momentum 0.5 on MultiMNIST). That moves α by about
0.09 × its gradient per epoch, far from the argmin when the objective is steep, and a fixed larger
step overshoots when it is flat; the best fixed step depends on the data size. T is tiny (2-5), so
the argmin can simply be solved for.

:func:`solve_alpha` is a thin wrapper around ``torch.optim.LBFGS`` with a strong-Wolfe line search
(no new maths): each closure call is one forward+backward dev pass through the exact chunked
objective of :func:`alphavil.alpha.target_loss_and_grad`. Around it:

* **Starting point**: the objective is evaluated (forward only) at a few candidates, by default the
  plain sum of the updates (α = 1), the target's own update alone and no update (α = 0), and the
  solver starts from the lowest. A harmful task can put θ + Σ δ_t on a chance-level plateau where
  ∂L/∂α ≈ 0 and no local method moves.
* **Stopping**: when an iteration lowers the objective by less than ``tol`` or moves α by less,
  or when ``max_passes`` forward+backward passes are spent, whichever comes first.
* **Safeguard**: the α returned is the best one evaluated, so its objective is never above the
  objective at the starting point. A non-finite objective counts as +∞ (it never wins the
  ranking or the best-tracking) and stops the solver.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from alphavil.alpha import (
    AlphaFit,
    ValueAndGrad,
    dev_chunks,
    differentiable_mix,
    evaluation_mode,
    my_chunks,
    with_statistics_gradients,
)
from alphavil.distributed import all_sum, world_size
from alphavil.tasks import Task

Value = Callable[[Tensor], float]
ValueGradHess = Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]


class _BudgetSpent(Exception):
    """Raised inside the L-BFGS closure when the pass budget is spent."""


class _NonFinite(Exception):
    """Raised inside the L-BFGS closure when the objective or its gradient is not finite."""


def finite_or_inf(f: float | None) -> float:
    """``f`` for ranking and best-tracking: a non-finite (or missing) objective counts as +∞."""
    return f if f is not None and math.isfinite(f) else math.inf


def best_start(value: Value, starts: Sequence[Tensor]) -> tuple[Tensor, float]:
    """The candidate with the lowest objective (non-finite ones count as +∞; ties: the first)
    and its objective; one forward pass per candidate."""
    scored = [(value(s.detach().to(torch.float64)), s.detach().to(torch.float64)) for s in starts]
    loss, start = min(scored, key=lambda p: finite_or_inf(p[0]))
    return start, loss


def start_candidates(n_tasks: int, target: int, init: float = 1.0) -> list[Tensor]:
    """α = ``init`` everywhere, the target's own update alone, and α = 0 (without duplicates)."""
    if not 0 <= target < n_tasks:
        raise ValueError(f"target index {target} is out of range for {n_tasks} tasks")
    own = torch.zeros(n_tasks, dtype=torch.float64)
    own[target] = 1.0
    out: list[Tensor] = []
    for c in (torch.full((n_tasks,), float(init), dtype=torch.float64), own, torch.zeros(n_tasks)):
        c = c.to(torch.float64)
        if not any(torch.equal(c, o) for o in out):
            out.append(c)
    return out


def solve_alpha(
    value_and_grad: ValueAndGrad,
    starts: Sequence[Tensor],
    *,
    value: Value | None = None,
    tol: float = 1e-6,
    max_passes: int = 30,
    history: int = 10,
) -> AlphaFit:
    """Minimise the α objective with L-BFGS from the best of ``starts``.

    ``torch.optim.LBFGS`` runs one iteration (a strong-Wolfe line search) per ``step``; the
    stopping rule is this function's own, so ``tol`` is a tolerance on the objective and on α
    only (given to L-BFGS as ``tolerance_change`` it also acts as a threshold on the squared
    gradient norm, and fits stopped at the start). A non-finite objective or gradient counts
    as +∞ and stops the solver at once; the best finite α evaluated is returned.

    Args:
        value_and_grad: α -> (objective, gradient); one call = one forward+backward dev pass.
        starts: Candidate starting points ``(T,)``; the first is the nominal start (reported as
            ``AlphaFit.start_loss``'s reference when only one is given).
        value: α -> objective, forward only; used to rank several ``starts`` (required then).
        tol: Stop when an iteration lowers the best objective by less than this, or moves α by
            less (in every entry).
        max_passes: Budget of forward+backward passes (closure calls); a hard limit. The
            forward passes that rank ``starts`` are not part of it.
        history: L-BFGS history size.

    Returns:
        The best α evaluated, with ``passes``, ``forward_passes``, the chosen ``start`` and the
        objective there (``start_loss``) and at the result (``final_loss``; non-finite only
        when every α evaluated was).
    """
    if not starts:
        raise ValueError("need at least one starting point")
    if max_passes < 1:
        raise ValueError(f"max_passes must be >= 1, got {max_passes}")
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    forward = 0
    start, start_loss = starts[0].detach().to(torch.float64), None
    if len(starts) > 1:
        if value is None:
            raise ValueError("ranking several starting points needs a forward-only `value`")
        start, start_loss = best_start(value, starts)
        forward += len(starts)
    alpha = start.clone().requires_grad_(True)
    best: dict[str, Any] = {"loss": start_loss, "alpha": start.clone()}
    losses: list[float] = []
    seen: dict[bytes, tuple[float, Tensor]] = {}  # α -> (objective, gradient) evaluated

    def closure() -> float:
        key = alpha.detach().numpy().tobytes()
        if key in seen:  # L-BFGS re-evaluates the point its last line search ended at
            f, grad = seen[key]
        else:
            if len(losses) >= max_passes:
                raise _BudgetSpent
            loss, grad = value_and_grad(alpha.detach())
            f = float(loss)
            losses.append(f)
            seen[key] = (f, grad.detach().to(alpha.dtype).clone())
            if not (math.isfinite(f) and bool(torch.isfinite(grad).all())):
                raise _NonFinite
            if f < finite_or_inf(best["loss"]):
                best["loss"], best["alpha"] = f, alpha.detach().clone()
        alpha.grad = seen[key][1].clone()
        return f

    opt = torch.optim.LBFGS(
        [alpha],
        lr=1.0,
        max_iter=1,
        max_eval=max_passes,
        tolerance_grad=1e-12,
        tolerance_change=0.0,
        history_size=history,
        line_search_fn="strong_wolfe",
    )
    with contextlib.suppress(_BudgetSpent, _NonFinite):  # the budget is a hard limit
        while len(losses) < max_passes:
            before, passes, at = finite_or_inf(best["loss"]), len(losses), alpha.detach().clone()
            opt.step(closure)
            gain = before - finite_or_inf(best["loss"])
            moved = float((alpha.detach() - at).abs().max())
            if len(losses) == passes or moved <= tol or (math.isfinite(before) and gain < tol):
                break
    if start_loss is None and losses:
        start_loss = losses[0]  # the first closure call is at the start point
    if best["loss"] is None and losses:
        best["loss"] = losses[0]  # not finite: nothing better was evaluated
    return AlphaFit(
        alphas=best["alpha"],
        losses=losses,
        passes=len(losses),
        forward_passes=forward,
        start=start,
        start_loss=start_loss,
        final_loss=best["loss"],
    )


def grid_check(
    value: Value, n_tasks: int, points: int, lo: float, hi: float
) -> tuple[Tensor, float]:
    """Brute-force α over a ``points``^T grid on [lo, hi]^T (diagnostic for T <= 3).

    Returns the best grid point and its objective; costs ``points``^T forward passes.
    """
    if n_tasks > 3:
        raise ValueError(f"the grid check is for T <= 3 tasks, got {n_tasks}")
    if points < 2 or not lo < hi:
        raise ValueError(f"need points >= 2 and lo < hi, got {points}, [{lo}, {hi}]")
    axis = torch.linspace(lo, hi, points, dtype=torch.float64)
    best_alpha, best_loss = None, float("inf")
    for combo in itertools.product(axis.tolist(), repeat=n_tasks):
        a = torch.tensor(combo, dtype=torch.float64)
        f = value(a)
        if f < best_loss:
            best_alpha, best_loss = a, f
    assert best_alpha is not None
    return best_alpha, best_loss


def target_loss_grad_hess(
    model: nn.Module,
    theta: Mapping[str, Tensor],
    deltas: Mapping[str, Tensor],
    batches: Iterable[Any] | Callable[[], Iterable[Any]],
    task: Task,
    *,
    eval_mode: bool = True,
) -> ValueGradHess:
    """α -> (dev loss, gradient ``(T,)``, exact Hessian ``(T, T)``) at θ + Σ α δ, chunk by chunk.

    The Hessian is Dᵀ∇²L D, obtained by differentiating the α-gradient once more (one backward
    pass with ``create_graph`` and T double-backward passes per chunk). Arguments as
    :func:`alphavil.alpha.target_loss_and_grad`.
    """

    def value_grad_hess(alphas: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        a = alphas.detach().clone().requires_grad_(True)
        n_tasks = a.shape[0]
        chunks, n = dev_chunks(batches, task)
        total = torch.zeros((), dtype=torch.float64)
        grad = torch.zeros(n_tasks, dtype=torch.float64)
        hess = torch.zeros(n_tasks, n_tasks, dtype=torch.float64)
        with evaluation_mode(model, eval_mode):
            for inputs, targets in my_chunks(chunks):
                point = with_statistics_gradients(
                    model, differentiable_mix(model, theta, deltas, a)
                )
                out = functional_call(model, point, (inputs, [task.name]))
                loss = task.loss_sum(out[task.name], targets[task.name]) / n
                (g,) = torch.autograd.grad(loss, a, create_graph=True)
                for i in range(n_tasks):
                    (row,) = torch.autograd.grad(g[i], a, retain_graph=i < n_tasks - 1)
                    hess[i] += row.detach().double()
                grad += g.detach().double()
                total += float(loss.detach())
        if world_size() > 1:  # sum the ranks' shares: 1 + T + T² numbers
            flat = all_sum(torch.cat([total.reshape(1), grad, hess.flatten()]))
            total, grad = flat[0], flat[1 : 1 + n_tasks]
            hess = flat[1 + n_tasks :].view(n_tasks, n_tasks)
        return total, grad.to(alphas.dtype), hess.to(alphas.dtype)

    return value_grad_hess


def solve_alpha_newton(
    value_grad_hess: ValueGradHess,
    value: Value,
    starts: Sequence[Tensor],
    *,
    tol: float = 1e-6,
    max_passes: int = 30,
    max_tries: int = 8,
) -> AlphaFit:
    """Levenberg-Marquardt-damped Newton on α with the exact T × T Hessian.

    Each iteration spends one second-order pass (``value_grad_hess``) and one forward pass
    (``value``) per trial step Δ = −(H + λI)⁻¹ g. λ starts at 0 where H is positive definite
    (so the first step on a quadratic objective lands on the closed-form minimiser) and at just
    above −λ_min(H) otherwise; a trial that does not lower the objective (a non-finite one counts
    as +∞) multiplies λ by 10 (towards a short gradient step, at most ``max_tries`` trials), an
    accepted one divides it by 10. Stops when a step lowers the objective by less than ``tol``,
    when no trial is accepted, when the objective, gradient or Hessian is not finite, or when
    ``max_passes`` dev passes are spent: second-order and trial forward passes count one each
    (the forward passes that rank ``starts`` do not). Returns the best α evaluated.
    """
    if not starts:
        raise ValueError("need at least one starting point")
    if max_passes < 1:
        raise ValueError(f"max_passes must be >= 1, got {max_passes}")
    ranking = 0
    start_loss: float | None = None
    start = starts[0].detach().to(torch.float64)
    if len(starts) > 1:
        start, start_loss = best_start(value, starts)
        ranking = len(starts)
    alpha = start.clone()
    losses: list[float] = []
    loss = start_loss
    trials = 0
    lam = 0.0
    while len(losses) + trials < max_passes:
        fv, gv, hv = value_grad_hess(alpha)
        f, g, h = float(fv), gv.double(), 0.5 * (hv.double() + hv.double().T)
        losses.append(f)
        if start_loss is None:
            start_loss = f
        if not (math.isfinite(f) and bool(torch.isfinite(g).all() & torch.isfinite(h).all())):
            loss = loss if math.isfinite(finite_or_inf(loss)) else f
            break
        loss = f
        eye = torch.eye(len(g), dtype=h.dtype)
        scale = float(h.diagonal().abs().max()) + float(g.abs().max()) + 1e-12
        eig_min = float(torch.linalg.eigvalsh(h)[0])
        lam_min = 0.0 if eig_min > 1e-10 * scale else -eig_min + 1e-6 * scale
        lam = max(lam, lam_min)
        accepted = None
        for _ in range(max_tries):
            if len(losses) + trials >= max_passes:
                break
            trial = alpha + -torch.linalg.solve(h + lam * eye, g)
            f_trial = value(trial)
            trials += 1
            if finite_or_inf(f_trial) < f:
                accepted = (trial, f_trial)
                lam = lam / 10
                break
            lam = max(10 * lam, 1e-4 * scale)
        if accepted is None:
            break
        alpha, loss = accepted
        if f - loss < tol:
            break
    return AlphaFit(
        alphas=alpha,
        losses=losses,
        passes=len(losses),
        forward_passes=ranking + trials,
        start=start,
        start_loss=start_loss,
        final_loss=loss,
    )
