"""EPO and MGDA on the stacked population: gradient-based Pareto baselines beside Pareto MTL.

**EPO** (Mahapatra & Rajan, *Multi-Task Learning with User Preferences: Gradient Descent with
Controlled Ascent in Pareto Optimization*, ICML 2020). Model k has a preference vector r^k and
seeks the Pareto point whose losses satisfy r^k_1 L_1 = … = r^k_m L_m (the ray L ∝ 1/r^k, i.e.
the weighted-Tchebycheff optimum of λ^k = r^k with z* = 0). Each step it solves a small linear
program over the task weights β on the simplex, with C = G Gᵀ (G: task gradients) and the
"adjustment" a_i = r_i (log(m·l̂_i) − μ), l̂ = r⊙L / Σ r⊙L, μ = Σ l̂_i log(m·l̂_i) (the KL
non-uniformity):

* if μ > ε ("balance" mode): maximise βᵀCa s.t. (Cβ)_j ≥ (Ca)_j for j ∉ J, (Cβ)_j ≥ 0 for the
  j with the largest r_j L_j, where J = {j : (Ca)_j > 0} (if J is empty, Cβ ≥ 0);
* else ("descent" mode): maximise 1ᵀCβ s.t. Cβ ≥ 0 and βᵀCa ≥ min(max(Ca), 0), relaxed to
  Cβ ≥ 0 alone if infeasible;

and steps along Σ_i β_i ∇L_i. Implemented by us after the paper and the authors' ``EPO_LP``
description, with scipy's HiGHS ``linprog`` instead of cvxpy/GLPK (scipy is needed only for
this method), ε = 1e-4. [reconstructed: MT2O's weight vectors include the single-task extremes,
where r has a zero and the ray is an axis; we use r = (λ + 0.01) / Σ(λ + 0.01); a non-positive
loss (e.g. ZDT3's f_2) is measured from the ideal point ``mt2o.ideal`` when given, and floored
at 1e-12.] If an LP fails, the step falls back to the MGDA direction (always feasible for
Cβ ≥ 0, Désidéri 2012).

**MGDA Pareto set** (Sener & Koltun, *Multi-Task Learning as Multi-Objective Optimization*,
NeurIPS 2018). Every model follows the min-norm element of the convex hull of its own task
gradients (Frank–Wolfe, :func:`~alphavil.pareto.pmtl.min_norm_weights`), taken w.r.t. all
parameters (exact MGDA, not the MGDA-UB shared-representation bound: these models are small).
MGDA has no preference; the K models differ only through their initialisations, so the
population trainer always initialises MGDA's K models independently. This is the "MGDA from K
different initialisations" Pareto set; the resulting spread is whatever the starts give.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from alphavil.pareto.pmtl import min_norm_weights
from alphavil.pareto.population import Population

__all__ = ["EPO_EPS", "epo_preferences", "epo_step", "epo_weights", "mgda_step", "mgda_weights"]

EPO_EPS = 1e-4
EPO_FLOOR = 0.01


def epo_preferences(prefs: Tensor) -> Tensor:
    """EPO preference r^k for MT2O's weight vector λ^k: (λ + 0.01) / Σ(λ + 0.01), ``(K, m)``."""
    r = prefs.to(torch.float64) + EPO_FLOOR
    return r / r.sum(dim=1, keepdim=True)


def _linprog() -> Any:
    try:
        from scipy.optimize import linprog
    except ImportError as err:  # pragma: no cover - exercised only without scipy
        raise ImportError("method 'epo' needs scipy: pip install 'alphavil[pareto]'") from err
    return linprog


def _lp(
    c: np.ndarray, a_ub: np.ndarray | None, b_ub: np.ndarray | None, m: int
) -> np.ndarray | None:
    """argmax cᵀβ s.t. a_ub β <= b_ub, β on the simplex; None if infeasible."""
    res = _linprog()(
        -c,
        A_ub=a_ub if a_ub is not None and len(a_ub) else None,
        b_ub=b_ub if b_ub is not None and len(b_ub) else None,
        A_eq=np.ones((1, m)),
        b_eq=np.ones(1),
        bounds=[(0.0, None)] * m,
        method="highs",
    )
    if res.status != 0:
        return None
    x: np.ndarray = np.clip(res.x, 0.0, None)
    return x / x.sum()


def _epo_one(losses: np.ndarray, gram: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, str]:
    m = len(losses)
    rl = r * np.maximum(losses, 1e-12)
    l_hat = rl / rl.sum()
    mu = float(np.sum(l_hat * np.log(l_hat * m)))
    a = r * (np.log(l_hat * m) - mu)
    ca = gram @ a
    if mu > EPO_EPS:
        big = np.flatnonzero(ca > 0)
        if big.size:
            star = np.flatnonzero(rl == rl.max())
            rows = [j for j in range(m) if j not in set(big.tolist()) or j in set(star.tolist())]
            rhs = np.array([0.0 if j in set(star.tolist()) else ca[j] for j in rows])
        else:
            rows, rhs = list(range(m)), np.zeros(m)
        beta = _lp(ca, -gram[rows], -rhs, m)
        mode = "balance"
    else:
        restrict = np.vstack([-gram, -ca[None, :]])
        bound = np.concatenate([np.zeros(m), [-min(float(ca.max()), 0.0)]])
        beta = _lp(gram.sum(axis=0), restrict, bound, m)
        if beta is None:
            beta = _lp(gram.sum(axis=0), -gram, np.zeros(m), m)
        mode = "descent"
    if beta is None:
        mode = "mgda"
        q = torch.from_numpy(gram)[None]
        beta = min_norm_weights(q, torch.ones(1, m, dtype=torch.bool))[0].numpy()
    return beta, mode


def epo_weights(
    jacobian: Tensor, losses: Tensor, prefs: Tensor, ideal: Tensor | None = None
) -> tuple[Tensor, list[str]]:
    """EPO task weights β ``(K, m)`` (on the simplex) and each model's mode.

    Args:
        jacobian: Per-model task gradients ``(K, m, P)``.
        losses: Per-model task losses ``(K, m)``.
        prefs: MT2O weight vectors λ^k ``(K, m)``, mapped by :func:`epo_preferences`.
        ideal: Optional ideal point subtracted from the losses ``(m,)``.
    """
    jd = jacobian.detach().to(torch.float64)
    gram = (jd @ jd.transpose(1, 2)).cpu().numpy()
    lv = losses.detach().to(torch.float64).cpu()
    if ideal is not None:
        lv = lv - ideal.to(lv)
    r = epo_preferences(prefs.cpu()).numpy()
    out, modes = [], []
    for k in range(lv.shape[0]):
        beta, mode = _epo_one(lv[k].numpy(), gram[k], r[k])
        out.append(beta)
        modes.append(mode)
    return torch.from_numpy(np.stack(out)), modes


def epo_step(
    pop: Population,
    optimizer: torch.optim.Optimizer,
    inputs: Any,
    targets: Mapping[str, Tensor],
    prefs: Tensor,
    ideal: Tensor | None = None,
) -> Tensor:
    """One EPO step for all K models; returns the batch losses ``(K, m)`` (detached)."""
    optimizer.zero_grad(set_to_none=True)
    losses = pop.losses(inputs, targets)
    jac = pop.task_jacobian(losses)
    weights, _ = epo_weights(jac, losses, prefs, ideal)
    pop.set_grads(torch.einsum("km,kmp->kp", weights.to(jac), jac))
    optimizer.step()
    return losses.detach()


def mgda_weights(jacobian: Tensor) -> Tensor:
    """Min-norm convex weights ``(K, m)`` of each model's task gradients ``(K, m, P)``."""
    jd = jacobian.detach().to(torch.float64)
    mask = torch.ones(jd.shape[:2], dtype=torch.bool)
    return min_norm_weights((jd @ jd.transpose(1, 2)).cpu(), mask)


def mgda_step(
    pop: Population,
    optimizer: torch.optim.Optimizer,
    inputs: Any,
    targets: Mapping[str, Tensor],
) -> Tensor:
    """One MGDA step for all K models; returns the batch losses ``(K, m)`` (detached)."""
    optimizer.zero_grad(set_to_none=True)
    losses = pop.losses(inputs, targets)
    jac = pop.task_jacobian(losses)
    weights = mgda_weights(jac)
    pop.set_grads(torch.einsum("km,kmp->kp", weights.to(jac), jac))
    optimizer.step()
    return losses.detach()
