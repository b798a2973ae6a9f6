"""Scalarisations g(θ | λ): the K scalar subproblems of MT2O, as pure functions of losses.

All functions take per-model task losses ``losses (K, m)`` and preference vectors
``prefs (K, m)`` and return one scalar per model, ``(K,)``; autograd flows through ``losses``.
MT2O's scalarisation is not known [reconstructed: linear scalarisation by default (smooth, fits a
gradient-descent convergence theorem), weighted Tchebycheff as an option (reaches concave parts
of a front)]; see shared/notes/mt2o-reconstruction.md §1.2.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "RENAMED_SCALARIZATIONS",
    "SCALARIZATIONS",
    "Scalarization",
    "check_scalarization",
    "linear",
    "scalarize",
    "tchebycheff",
]

Scalarization = Literal["linear", "tchebycheff"]
SCALARIZATIONS: tuple[str, ...] = ("linear", "tchebycheff")
# old names, no longer accepted: an error names the new one
RENAMED_SCALARIZATIONS: dict[str, str] = {"ls": "linear", "tch": "tchebycheff"}


def check_scalarization(method: str, key: str = "scalarization") -> None:
    """``ValueError`` (one line, starting with ``key``) unless ``method`` is one of
    :data:`SCALARIZATIONS`; for an old name it names the new one."""
    if method in RENAMED_SCALARIZATIONS:
        raise ValueError(f"{key} {method!r} was renamed: use {RENAMED_SCALARIZATIONS[method]!r}")
    if method not in SCALARIZATIONS:
        raise ValueError(f"unknown {key} {method!r}; allowed: {', '.join(SCALARIZATIONS)}")


def _check(losses: Tensor, prefs: Tensor) -> None:
    if losses.ndim != 2 or losses.shape != prefs.shape:
        raise ValueError(
            f"losses and prefs must both have shape (K, m); got {tuple(losses.shape)} and "
            f"{tuple(prefs.shape)}"
        )


def linear(losses: Tensor, prefs: Tensor) -> Tensor:
    """Linear scalarisation g_k = Σ_i λ^k_i L_i(θ_k).  ``(K, m), (K, m) -> (K,)``."""
    _check(losses, prefs)
    return (prefs.to(losses.dtype) * losses).sum(dim=1)


def tchebycheff(
    losses: Tensor, prefs: Tensor, ideal: Tensor | None = None, *, smooth: float = 0.0
) -> Tensor:
    """Weighted Tchebycheff g_k = max_i λ^k_i (L_i(θ_k) − z*_i).  ``(K, m), (K, m) -> (K,)``.

    Args:
        losses: Per-model task losses ``(K, m)``.
        prefs: Preference vectors ``(K, m)``.
        ideal: Ideal point z* ``(m,)``; ``None`` means 0, a lower bound of non-negative losses
            [reconstructed: z* = 0 rather than a running minimum, so subproblems stay fixed].
        smooth: 0 for the max (autograd's subgradient: ties share the gradient); μ > 0 for the
            smooth log-sum-exp μ·log Σ_i exp(λ_i (L_i − z*_i) / μ), an upper bound within μ·log m.

    The minimiser over a Pareto front lies on the ray z* + t·(1/λ_1, …, 1/λ_m) (MOEA/D, Zhang &
    Li 2007), so unlike :func:`linear` it can reach concave parts of the front.
    """
    _check(losses, prefs)
    shifted = losses if ideal is None else losses - ideal.to(losses)
    terms = prefs.to(losses.dtype) * shifted  # (K, m)
    if smooth > 0:
        return smooth * torch.logsumexp(terms / smooth, dim=1)
    if smooth < 0:
        raise ValueError(f"smooth must be >= 0, got {smooth}")
    return terms.amax(dim=1)


def scalarize(
    losses: Tensor,
    prefs: Tensor,
    method: str = "linear",
    *,
    ideal: Tensor | None = None,
    smooth: float = 0.0,
) -> Tensor:
    """Dispatch to :func:`linear` or :func:`tchebycheff` by name.
    ``(K, m), (K, m) -> (K,)``."""
    check_scalarization(method)
    if method == "linear":
        return linear(losses, prefs)
    return tchebycheff(losses, prefs, ideal, smooth=smooth)
