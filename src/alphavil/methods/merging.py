"""Merging models grown from one θ: the λ-weighted mean of their states (:func:`merge_states`)
and ForkMerge's greedy λ search (:func:`greedy_lambdas`; :mod:`alphavil.methods.forkmerge`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from alphavil.deltas import Params
from alphavil.scores import TaskScore

__all__ = ["Key", "greedy_lambdas", "merge_states", "score_key"]

Key = tuple[float, ...]  # a dev score, compared lexicographically; higher is better


def score_key(score: TaskScore, metric: str) -> Key:
    """A dev score as a comparable key (higher is better). ``"accuracy"``: (accuracy, −loss),
    accuracy being minus the loss for regression; ``"loss"``: (−loss,). A missing or
    non-finite loss counts as −∞."""
    neg_loss = -score.loss if score.loss is not None and math.isfinite(score.loss) else -math.inf
    if metric == "loss":
        return (neg_loss,)
    return (score.accuracy if score.accuracy is not None else neg_loss, neg_loss)


def merge_states(states: Sequence[Mapping[str, Tensor]], lambdas: Sequence[float]) -> Params:
    """Σ_b λ_b θ_b / Σ_b λ_b over every tensor of the states (parameters and buffers).

    Floating tensors are mixed in their own dtype; integer buffers (batch norm's
    ``num_batches_tracked``) get the λ-weighted mean rounded to an integer; boolean ones come
    from the branch with the largest λ. Branches with λ = 0 are skipped.
    """
    if len(states) != len(lambdas) or not states:
        raise ValueError(f"{len(states)} states but {len(lambdas)} lambdas")
    total = float(sum(lambdas))
    if not total > 0 or any(lam < 0 for lam in lambdas):
        raise ValueError(f"lambdas must be >= 0 with a positive sum, got {list(lambdas)}")
    used = [(s, float(lam)) for s, lam in zip(states, lambdas, strict=True) if lam != 0]
    top = states[max(range(len(lambdas)), key=lambda i: lambdas[i])]
    out: Params = {}
    for name, ref in states[0].items():
        if ref.is_floating_point():
            acc = used[0][1] * used[0][0][name]
            for s, lam in used[1:]:
                acc = acc + lam * s[name]
            out[name] = acc / total
        elif ref.dtype == torch.bool:
            out[name] = top[name].clone()
        else:
            mean = sum(lam * s[name].double() for s, lam in used) / total
            out[name] = torch.as_tensor(mean).round().to(ref.dtype)
    return out


def greedy_lambdas(
    n: int,
    score: Callable[[list[float]], Key],
    grid: Sequence[float],
    first: Key | None = None,
) -> tuple[list[float], list[float], Key, int]:
    """ForkMerge's greedy λ search over ``n`` branches ranked best first.

    λ_0 = 1; for i = 1..n−1, λ_i = a · mean(λ_0..λ_{i−1}) with a ∈ ``grid`` maximising
    ``score(λ_0..λ_i)`` (the score of the merge of branches 0..i; the first maximum in grid
    order wins). a = 0 reuses the score of the merge so far instead of calling ``score``;
    ``first`` is branch 0's score when known.

    Returns the λs, the chosen a per later branch, the final merge's score and the number of
    ``score`` calls.
    """
    calls = 0
    if first is None:
        first, calls = score([1.0]), 1
    lambdas, chosen, current = [1.0], [], first
    for _ in range(1, n):
        mean = sum(lambdas) / len(lambdas)
        best_a: float | None = None
        best_key: Key | None = None
        for a in grid:
            if a == 0:
                key = current
            else:
                key, calls = score([*lambdas, a * mean]), calls + 1
            if best_key is None or key > best_key:
                best_a, best_key = a, key
        assert best_a is not None and best_key is not None
        lambdas.append(best_a * mean)
        chosen.append(best_a)
        current = best_key
    return lambdas, chosen, current, calls
