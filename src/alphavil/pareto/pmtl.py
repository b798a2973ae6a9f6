"""Pareto MTL (Lin et al., NeurIPS 2019) on the stacked population: the Pareto baseline.

Subproblem k restricts the search to the region of its preference direction u_k (unit vector):

    G_j(θ) = (u_j − u_k)ᵀ L(θ) / ‖L(θ)‖ ≤ 0   for all j ≠ k.

Each step takes the min-norm element of the convex hull of {∇L_1, …, ∇L_m} ∪ {∇G_j : G_j > 0}
(MGDA with the active constraints), expressed as task weights w (m,), rescaled to Σ|w_i| = m, and
steps along Σ_i w_i ∇L_i. Before that, up to ``init_epochs`` epochs of the feasibility phase step
along the min-norm element of the active constraints only. Implemented by us from the paper and
``Xi-L/ParetoMTL``'s description. [reconstructed for the population form: PMTL runs its K
subproblems one after another, each stopping its feasibility phase at the first feasible batch;
here all K step together and, during the feasibility epochs, models that are already feasible
take the main-phase step. Reference directions: see :func:`pmtl_directions`.]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from alphavil.pareto.population import Population

__all__ = ["min_norm_weights", "pmtl_directions", "pmtl_step", "pmtl_weights"]


def pmtl_directions(prefs: Tensor) -> Tensor:
    """ParetoMTL's unit reference directions u_k for MT2O's weight vectors λ^k, ``(K, m)``.

    For 2 tasks u_k = (cos t, sin t) with t = (π/2)·λ^k_1: ParetoMTL's ``circle_points`` for
    evenly spaced λ. For m ≥ 3, u_k ∝ 1 − λ^k. [reconstructed: a direction u in loss space means
    small losses where u is small, so model k of every method favours the same tasks as λ^k.]
    """
    p = prefs.to(torch.float64)
    if p.shape[1] == 2:
        t = 0.5 * torch.pi * p[:, 0]
        return torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    u = 1.0 - p
    return u / u.norm(dim=1, keepdim=True)


def min_norm_weights(gram: Tensor, mask: Tensor, *, iters: int = 250, tol: float = 1e-9) -> Tensor:
    """argmin_{c ∈ simplex, c_i = 0 off mask} cᵀ Q c, batched Frank–Wolfe with exact line search.

    Args:
        gram: Gram matrices Q ``(K, n, n)`` of the candidate vectors.
        mask: Which candidates are allowed ``(K, n)``; a row without any gives c = 0.
    Returns:
        Convex weights c ``(K, n)`` (Sener & Koltun 2018's min-norm problem).
    """
    q = gram.to(torch.float64)
    inf = torch.tensor(float("inf"), dtype=torch.float64)
    diag = torch.where(mask, q.diagonal(dim1=1, dim2=2), inf)
    c = torch.nn.functional.one_hot(diag.argmin(dim=1), q.shape[1]).to(torch.float64)
    for it in range(iters):
        qc = torch.einsum("kij,kj->ki", q, c)  # (K, n)
        t = torch.where(mask, qc, inf).argmin(dim=1, keepdim=True)  # (K, 1)
        uu = (c * qc).sum(dim=1, keepdim=True)
        uv = qc.gather(1, t)
        vv = torch.diagonal(q, dim1=1, dim2=2).gather(1, t)
        denom = uu - 2 * uv + vv
        gamma = torch.where(denom > 1e-18, (uu - uv) / denom.clamp_min(1e-18), 0.0).clamp(0, 1)
        new = (1 - gamma) * c
        new.scatter_add_(1, t, gamma)
        done = it % 10 == 9 and bool((new - c).abs().max() < tol)
        c = new
        if done:
            break
    return torch.where(mask.any(dim=1, keepdim=True), c, torch.zeros_like(c))


def pmtl_weights(
    jacobian: Tensor, losses: Tensor, prefs: Tensor, init: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Task weights ``(K, m)`` of the ParetoMTL direction of each model.

    Args:
        jacobian: Per-model task gradients ``(K, m, P)``.
        losses: Per-model task losses ``(K, m)`` (detached).
        prefs: MT2O weight vectors λ^k ``(K, m)``, mapped by :func:`pmtl_directions`.
        init: Which models are still in the feasibility phase ``(K,)`` bool (None: none).
            Such a model takes the min-norm element of its active constraints' gradients; once
            it is feasible it leaves that phase for good (ParetoMTL's early stop).

    Returns:
        The weights and the updated feasibility-phase mask.
    """
    k, m = losses.shape
    u = pmtl_directions(prefs)
    lv = losses.detach().to(torch.float64)
    diff = u.unsqueeze(0) - u.unsqueeze(1)  # (K, K, m): diff[k, j] = u_j − u_k
    g = torch.einsum("kjm,km->kj", diff, lv / lv.norm(dim=1, keepdim=True))  # G_j for model k
    active = g > 0  # (K, K); the diagonal is 0, never active
    eye = torch.eye(m, dtype=torch.float64).expand(k, m, m)
    coeff = torch.cat([eye, diff], dim=1)  # (K, m + K, m): candidates in task-gradient space
    jd = jacobian.detach().to(torch.float64)
    gram = coeff @ (jd @ jd.transpose(1, 2)) @ coeff.transpose(1, 2)  # (K, m + K, m + K)
    main_mask = torch.cat([torch.ones(k, m, dtype=torch.bool), active], dim=1)
    w = torch.einsum("kn,knm->km", min_norm_weights(gram, main_mask), coeff)
    w = m * w / w.abs().sum(dim=1, keepdim=True).clamp_min(1e-12)
    in_init = torch.zeros(k, dtype=torch.bool) if init is None else init.cpu()
    in_init = in_init & active.any(dim=1)  # feasible models leave the phase
    if in_init.any():
        init_mask = torch.cat([torch.zeros(k, m, dtype=torch.bool), active], dim=1)
        w_init = torch.einsum("kn,knm->km", min_norm_weights(gram, init_mask), coeff)
        w = torch.where(in_init.unsqueeze(1), w_init, w)
    return w.to(losses.dtype), in_init


def pmtl_step(
    pop: Population,
    optimizer: torch.optim.Optimizer,
    inputs: Any,
    targets: Mapping[str, Tensor],
    prefs: Tensor,
    init: Tensor | None = None,
    *,
    ideal: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One ParetoMTL step for all K models.

    ``ideal``: optional origin z* of the loss vectors in the sector constraints (L − z*), for
    objectives that can be negative (ZDT3); gradients are unchanged by the shift.

    Returns:
        The batch losses ``(K, m)`` (detached) and the updated feasibility-phase mask ``(K,)``.
    """
    optimizer.zero_grad(set_to_none=True)
    losses = pop.losses(inputs, targets)
    jac = pop.task_jacobian(losses)  # (K, m, P)
    lv = losses.detach().cpu()
    if ideal is not None:
        lv = lv - ideal.to(lv)
    weights, init = pmtl_weights(jac, lv, prefs.cpu(), init)
    pop.set_grads(torch.einsum("km,kmp->kp", weights.to(jac), jac))
    optimizer.step()
    return losses.detach(), init
