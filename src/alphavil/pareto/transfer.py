"""MT2O parameter transfer: the row-stochastic transfer matrix M, ``mix`` and its schedule.

MT2O's multi-task gradient descent (Bai, Gupta & Ong 2024, arXiv 2403.16162, §IV) transfers
model parameters among subproblems during optimisation. Its exact rule is not known; this module
lifts the predecessor MGD's verified rule (Bai et al. 2020, code ``BaiLu-BL/MGD_MultiMNIST``)
from tasks to preference subproblems (shared/notes/mt2o-reconstruction.md §2.2):

    θ̃_k = Σ_j M_kj θ_j,
    M_kj = β · s_kj / Σ_{l∈N(k)} s_kl  for j ∈ N(k),   M_kk = 1 − β,   0 elsewhere,

with N(k) the T nearest other weight vectors (Euclidean, as in MOEA/D) and s_kj = cos(λ^k, λ^j).
[reconstructed: neighbourhood structure, cosine coefficients, the strength β and its decay;
MGD used a fixed weight α·η₀·relatedness between its two task models, every step.]
"""

from __future__ import annotations

from dataclasses import dataclass
from math import cos, pi

import torch
from torch import Tensor

__all__ = ["DECAYS", "TransferSchedule", "mix", "neighbourhoods", "transfer_matrix"]

DECAYS: tuple[str, ...] = ("constant", "linear", "cosine")


def neighbourhoods(prefs: Tensor, n_neighbours: int) -> Tensor:
    """Indices of the ``T`` nearest other weight vectors of each λ^k.  ``(K, m) -> (K, T)``.

    Distances are Euclidean; ties go to the lower index. ``T`` is capped at ``K − 1``.
    """
    if prefs.ndim != 2:
        raise ValueError(f"prefs must have shape (K, m), got {tuple(prefs.shape)}")
    if n_neighbours < 0:
        raise ValueError(f"n_neighbours must be >= 0, got {n_neighbours}")
    k = prefs.shape[0]
    t = min(n_neighbours, k - 1)
    p = prefs.to(torch.float64)
    dist = torch.cdist(p, p).round(decimals=12)  # (K, K); rounding makes ties exact
    dist.fill_diagonal_(float("inf"))
    order = torch.sort(dist, dim=1, stable=True).indices  # stable: ties keep index order
    return order[:, :t]


def transfer_matrix(
    prefs: Tensor, beta: float, n_neighbours: int, *, coefficients: str = "cosine"
) -> Tensor:
    """The row-stochastic transfer matrix M ``(K, K)`` (float64) of the module docstring.

    Args:
        prefs: Weight vectors ``(K, m)``.
        beta: Transfer strength β ∈ [0, 1]: the mass each model takes from its neighbours.
            β = 0 gives the identity (no transfer: K independent runs).
        n_neighbours: Neighbourhood size T (capped at K − 1; K − 1 = all-to-all).
        coefficients: ``"cosine"`` (s_kj = cos(λ^k, λ^j)) or ``"uniform"`` (s_kj = 1).
            A row whose neighbour cosines are all 0 (e.g. K = 2 with the two single-task
            extremes) falls back to uniform [reconstructed].
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    if coefficients not in ("cosine", "uniform"):
        raise ValueError(f"coefficients must be 'cosine' or 'uniform', got {coefficients!r}")
    p = prefs.to(torch.float64)
    k = p.shape[0]
    nbrs = neighbourhoods(p, n_neighbours)  # (K, T)
    m = torch.eye(k, dtype=torch.float64)
    if nbrs.shape[1] == 0 or beta == 0.0:
        return m
    unit = p / p.norm(dim=1, keepdim=True).clamp_min(1e-300)
    s = (unit @ unit.T).clamp_min(0.0) if coefficients == "cosine" else torch.ones(k, k)
    s_nbr = torch.gather(s.to(torch.float64), 1, nbrs)  # (K, T)
    total = s_nbr.sum(dim=1, keepdim=True)
    s_nbr = torch.where(total > 0, s_nbr, torch.ones_like(s_nbr))
    w = beta * s_nbr / s_nbr.sum(dim=1, keepdim=True)
    m = (1.0 - beta) * m
    m.scatter_add_(1, nbrs, w)
    return m


def mix(params: Tensor, mixing: Tensor, /) -> Tensor:
    """θ̃_k = Σ_j M_kj θ_j.  ``params (K, ...)`` stacked per model, ``mixing (K, K)``.

    Equals ``einsum("kj,j...->k...", mixing, params)``, computed as one (K, K) @ (K, P) matmul.
    """
    if mixing.shape != (params.shape[0], params.shape[0]):
        raise ValueError(
            f"mixing must be (K, K) with K = {params.shape[0]}, got {tuple(mixing.shape)}"
        )
    k = params.shape[0]
    return (mixing.to(params) @ params.reshape(k, -1)).reshape(params.shape)


@dataclass(frozen=True)
class TransferSchedule:
    """When and how strongly to transfer: β_t and the period P.

    β_t = β until ``decay_start`` (a fraction of all training steps), then decays to 0 at
    ``decay_end`` (linearly or along a half cosine) and stays 0. ``decay="constant"`` keeps
    β_t = β throughout (MGD never annealed its transfer weight). Transfer happens on steps
    t with t % P == 0. [reconstructed: MT2O's annealing is unknown; constant transfer biases each
    model towards its neighbours (reconstruction §3), decaying it to 0 removes that bias.]
    """

    beta: float = 0.05
    period: int = 1
    decay: str = "constant"
    decay_start: float = 0.7
    decay_end: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {self.beta}")
        if self.period < 1:
            raise ValueError(f"period must be >= 1, got {self.period}")
        if self.decay not in DECAYS:
            raise ValueError(f"decay must be one of {', '.join(DECAYS)}, got {self.decay!r}")
        if not 0.0 <= self.decay_start <= self.decay_end <= 1.0:
            raise ValueError(
                f"need 0 <= decay_start <= decay_end <= 1, got {self.decay_start}, {self.decay_end}"
            )

    def strength(self, step: int, total_steps: int) -> float:
        """β_t at optimiser step ``step`` (0-based) of ``total_steps``."""
        if self.decay == "constant" or self.beta == 0.0:
            return self.beta
        frac = step / max(total_steps, 1)
        if frac <= self.decay_start:
            return self.beta
        if frac >= self.decay_end:
            return 0.0
        u = (frac - self.decay_start) / (self.decay_end - self.decay_start)
        scale = 1.0 - u if self.decay == "linear" else 0.5 * (1.0 + cos(pi * u))
        return self.beta * scale

    def applies(self, step: int) -> bool:
        """Whether step ``step`` (0-based) is a transfer step."""
        return step % self.period == 0
