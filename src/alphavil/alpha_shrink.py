"""Cross-validated shrinkage of αVIL's fitted factors toward the multitask step
(``alphavil.shrink_folds``).

On a small dev set the fit of line 9 is mostly noise: it moves far from α = 1 on evidence that
another draw of the same 20-200 examples would not repeat. Shrinkage writes

    z(λ) = z_ref + λ (z_fit − z_ref),      λ ∈ [0, 1],

between the multitask step z_ref (every task's share whole: α = 1, and with the target branch
c = 0) and the fit z_fit, and chooses the strength λ by K-fold cross-validation on the same dev
set: for every fold k the fit is repeated without fold k (z_k), and λ minimises the held-out
loss summed over folds, Σ_k n_k L_k(z_ref + λ (z_k − z_ref)). λ = 0 keeps the multitask step
(the fit did not predict held-out examples better than doing nothing), λ = 1 the fit as it is.
Ties go to the smaller λ. This is the issue's "shrinkage toward α = 1 with its strength
cross-validated on dev folds"; the idea is James-Stein-like shrinkage with the strength chosen
by held-out loss (Hastie, Tibshirani & Friedman, *The Elements of Statistical Learning*, §7.10).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from torch import Tensor


def shrink(ref: Tensor, fitted: Tensor, strength: float) -> Tensor:
    """``(1 − strength) · ref + strength · fitted``: the point a fraction ``strength`` of the way
    from the reference to the fit (inside any box that holds both, the box being convex); the
    ends are ``ref`` and ``fitted`` exactly."""
    return (1 - strength) * ref + strength * fitted


def held_out_curve(
    ref: Tensor,
    fold_fits: Sequence[Tensor],
    held_out: Sequence[Callable[[Tensor], float]],
    sizes: Sequence[int],
    grid: Sequence[float],
) -> list[float]:
    """For each strength λ of ``grid``, the mean held-out loss Σ_k n_k L_k(z_k(λ)) / Σ_k n_k,
    where z_k(λ) shrinks fold k's fit (made without fold k) toward ``ref`` and L_k is the mean
    loss on fold k (``held_out[k]``, of ``sizes[k]`` examples). A non-finite loss counts as +∞."""
    if not (len(fold_fits) == len(held_out) == len(sizes)) or not fold_fits:
        raise ValueError(
            f"one fit, loss and size per fold, got {len(fold_fits)}, {len(held_out)}, {len(sizes)}"
        )
    total = sum(sizes)
    curve = []
    for lam in grid:
        loss = 0.0
        for z, loss_k, n_k in zip(fold_fits, held_out, sizes, strict=True):
            v = float(loss_k(shrink(ref, z, lam)))
            loss += n_k * (v if math.isfinite(v) else math.inf)
        curve.append(loss / total)
    return curve


def best_strength(grid: Sequence[float], curve: Sequence[float]) -> float:
    """The strength with the lowest held-out loss (ties and an all-infinite curve: the
    smallest strength, the nearest to the multitask step)."""
    order = sorted(range(len(grid)), key=lambda i: grid[i])
    best = order[0]
    for i in order[1:]:
        if curve[i] < curve[best]:
            best = i
    return float(grid[best])


def folds(n_chunks: int, k: int) -> list[list[int]]:
    """Chunk indices of up to ``k`` folds over ``n_chunks`` dev chunks (chunk i in fold
    i mod k; empty folds dropped)."""
    out = [list(range(i, n_chunks, k)) for i in range(k)]
    return [f for f in out if f]
