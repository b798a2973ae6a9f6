"""Cross-validated shrinkage of αVIL's fitted factors toward the multitask step
(``alphavil.shrink_folds``).

On a small dev set the fit of line 9 may be mostly noise: it can move far from α = 1 on evidence
that another draw of the same 20-200 examples would not repeat. Shrinkage writes

    z(λ) = z_ref + λ (z_fit − z_ref),      λ ∈ [0, 1],

between the multitask step z_ref (every task's share whole: α = 1, and with the target branch
c = 0) and the fit z_fit, and chooses the strength λ by K-fold cross-validation on the same dev
set: for every fold k the fit is repeated without fold k (z_k), and λ minimises the held-out
loss summed over folds, Σ_k n_k L_k(z_ref + λ (z_k − z_ref)). λ = 0 keeps the multitask step
(the fit did not predict held-out examples better than doing nothing), λ = 1 the fit as it is.
Ties go to the smaller λ; with the one-standard-error rule (``shrink_rule = "one_se"``) the
smallest λ within one standard error of the best (Hastie, Tibshirani & Friedman, *The
Elements of Statistical Learning*, §7.10).
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


def fold_losses(
    ref: Tensor,
    fold_fits: Sequence[Tensor],
    held_out: Sequence[Callable[[Tensor], float]],
    grid: Sequence[float],
) -> list[list[float]]:
    """For each strength λ of ``grid``, each fold k's mean held-out loss L_k(z_k(λ)), where
    z_k(λ) shrinks fold k's fit (made without fold k) toward ``ref`` and L_k is ``held_out[k]``.
    A non-finite loss counts as +∞."""
    if len(fold_fits) != len(held_out) or not fold_fits:
        raise ValueError(f"one fit and loss per fold, got {len(fold_fits)}, {len(held_out)}")
    out = []
    for lam in grid:
        row = [
            float(loss_k(shrink(ref, z, lam)))
            for z, loss_k in zip(fold_fits, held_out, strict=True)
        ]
        out.append([v if math.isfinite(v) else math.inf for v in row])
    return out


def held_out_curve(per_fold: Sequence[Sequence[float]], sizes: Sequence[int]) -> list[float]:
    """The cross-validated loss per strength: Σ_k n_k L_k / Σ_k n_k over the folds (``sizes``:
    the folds' example counts), i.e. the mean held-out loss per dev example."""
    total = sum(sizes)
    return [sum(n * v for n, v in zip(sizes, row, strict=True)) / total for row in per_fold]


def standard_errors(per_fold: Sequence[Sequence[float]]) -> list[float]:
    """The standard error of each strength's cross-validated loss: the folds' standard
    deviation over √K (Hastie, Tibshirani & Friedman, §7.10); +∞ with a non-finite fold."""
    out = []
    for row in per_fold:
        k = len(row)
        if k < 2 or not all(map(math.isfinite, row)):
            out.append(math.inf)
            continue
        mean = sum(row) / k
        out.append(math.sqrt(sum((v - mean) ** 2 for v in row) / (k - 1) / k))
    return out


def best_strength(
    grid: Sequence[float], curve: Sequence[float], slack: Sequence[float] | None = None
) -> float:
    """The smallest strength whose held-out loss is at most the lowest one plus that lowest
    point's ``slack`` (none: the strength of the lowest loss; the standard errors: the
    one-standard-error rule, which keeps the multitask step unless the fit's held-out gain
    exceeds its own noise). Ties and an all-infinite curve go to the smallest strength, the
    nearest to the multitask step."""
    order = sorted(range(len(grid)), key=lambda i: grid[i])
    best = order[0]
    for i in order[1:]:
        if curve[i] < curve[best]:
            best = i
    bound = curve[best] + (slack[best] if slack is not None and math.isfinite(curve[best]) else 0.0)
    return float(next(grid[i] for i in order if curve[i] <= bound))


def folds(n_chunks: int, k: int) -> list[list[int]]:
    """Chunk indices of up to ``k`` folds over ``n_chunks`` dev chunks (chunk i in fold
    i mod k; empty folds dropped)."""
    out = [list(range(i, n_chunks, k)) for i in range(k)]
    return [f for f in out if f]
