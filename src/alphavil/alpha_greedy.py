"""Line 9 of Algorithm 1 as ForkMerge's greedy merge (``alphavil.merge = "greedy"``).

The box fit minimises the target's dev loss over the fit variables; on a small dev set its
optimum lies inside the box, so it never takes a task's update whole (docs/fewlabel). ForkMerge
(Jiang et al., NeurIPS 2023, arXiv 2301.12618) merges whole branches instead: the branches are
ranked by the target's dev score, the best is kept whole, and each next one is added with weight
λ = a · mean(λ so far) only where a grid value a > 0 raises the dev score of the running merge
(:func:`alphavil.methods.merging.greedy_lambdas`). Here the branches are whole updates that the
epoch's deltas already hold, as points of line 9's variables:

* the joint pass, every share whole (the multitask step);
* the target alone (c = 1 and no auxiliary share);
* with two or more auxiliary tasks, the target's share with one auxiliary share whole (ForkMerge's
  pair branches).

The merge is their convex combination Σ λ_i z_i / Σ λ_i, which is a point of line 9's
variables as the box fit's answer is: line 10 writes it and line 11 moves the weights on it.
The dev score is the loop's model-selection key: accuracy, ties to the lower loss (minus the loss
for a regression target). Cost: K + 5 (K − 1) dev evaluations with K candidates and the default
grid, each one forward pass for the error and one for the loss. ``alphavil.merge_margin`` asks
a candidate that outscores the joint pass to do so beyond the dev set's noise before it leads
(:mod:`alphavil.alpha_margin`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from alphavil.alpha import AlphaFit, target_loss_value
from alphavil.alpha_margin import beats
from alphavil.alpha_zero_one import target_error_value
from alphavil.methods.merging import Key, greedy_lambdas
from alphavil.tasks import Task

__all__ = ["greedy_fit", "greedy_merge", "merge_candidates", "target_score_value"]


def merge_candidates(n_tasks: int, target: int) -> list[tuple[str, Tensor]]:
    """The whole updates the greedy merge chooses among, as (name, point of the target branch's
    fit variables z = (c in the target's coordinate, α_aux)) for ``n_tasks`` tasks with the
    target at ``target``."""
    joint = torch.ones(n_tasks, dtype=torch.float64)
    joint[target] = 0.0
    out = [("joint", joint)]
    if n_tasks == 1:
        return out
    alone = torch.zeros(n_tasks, dtype=torch.float64)
    alone[target] = 1.0
    out.append(("alone", alone))
    aux = [i for i in range(n_tasks) if i != target]
    if len(aux) >= 2:
        for a in aux:
            pair = torch.zeros(n_tasks, dtype=torch.float64)
            pair[a] = 1.0
            out.append((f"pair {a}", pair))
    return out


def greedy_merge(
    score: Callable[[Tensor], Key],
    candidates: Sequence[tuple[str, Tensor]],
    grid: Sequence[float],
    margin: Callable[[Tensor], tuple[int, int]] | None = None,
    margin_se: float = 0.0,
) -> tuple[Tensor, dict[str, Any]]:
    """ForkMerge's merge of ``candidates`` (name, point) on the dev ``score`` of a point
    (higher is better): ranked best first (ties keep the given order), the best whole, each next
    added by the greedy λ search over ``grid``. With ``margin`` (a point -> the dev examples
    right only there and right only at the first candidate), a better-scored candidate goes
    before the first only where it :func:`~alphavil.alpha_margin.beats` it at ``margin_se``
    standard errors. Returns the merged point Σ λ z / Σ λ and a record: the ranking, each
    candidate's score, the margin's counts, the λs and the number of score calls."""
    keys = [score(z) for _, z in candidates]
    order = sorted(range(len(candidates)), key=lambda i: keys[i], reverse=True)
    tested: dict[str, Any] = {}
    if margin is not None and order[0] != 0:
        gains, losses = margin(candidates[order[0]][1])
        won = beats(gains, losses, margin_se)
        tested = {
            "candidate": candidates[order[0]][0],
            "gains": gains,
            "losses": losses,
            "beats": won,
        }
        if not won:  # the dev set's evidence is within its noise: the first candidate leads
            order.remove(0)
            order.insert(0, 0)
    points = [candidates[i][1] for i in order]

    def merged(lambdas: Sequence[float]) -> Tensor:
        out = torch.zeros_like(points[0])
        for lam, z in zip(lambdas, points, strict=False):  # the first len(lambdas) points
            out = out + lam * z
        return out / sum(lambdas)

    lambdas, _, best, calls = greedy_lambdas(
        len(points), lambda lam: score(merged(lam)), grid, first=keys[order[0]]
    )
    record = {
        "ranking": [candidates[i][0] for i in order],
        "scores": {candidates[i][0]: list(keys[i]) for i in order},
        **({"margin": tested} if tested else {}),
        "lambdas": lambdas,
        "score": list(best),
        "score_calls": len(candidates) + calls,
    }
    return merged(lambdas), record


def target_score_value(
    model: nn.Module,
    theta: Mapping[str, Tensor],
    deltas: Mapping[str, Tensor],
    batches: Iterable[Any] | Callable[[], Iterable[Any]],
    task: Task,
) -> Callable[[Tensor], Key]:
    """factors -> the target's dev key at θ + Σ factors δ: (accuracy, −loss) for a
    classification target, (−loss, −loss) for a regression one (the loop's selection key)."""
    loss = target_loss_value(model, theta, deltas, batches, task)
    classifies = task.kind == "classification"
    error = target_error_value(model, theta, deltas, batches, task) if classifies else None

    def key(factors: Tensor) -> Key:
        value = loss(factors)
        if not math.isfinite(value):  # a diverged point loses to every finite one
            return (-math.inf, -math.inf)
        return (1.0 - error(factors) if error is not None else -value, -value)

    return key


def greedy_fit(
    score: Callable[[Tensor], Key],
    candidates: Sequence[tuple[str, Tensor]],
    grid: Sequence[float],
    margin: Callable[[Tensor], tuple[int, int]] | None = None,
    margin_se: float = 0.0,
) -> tuple[AlphaFit, dict[str, Any]]:
    """:func:`greedy_merge` as an :class:`~alphavil.alpha.AlphaFit`: ``start`` is the joint
    pass, the losses the dev losses at it and at the merge."""
    point, record = greedy_merge(score, candidates, grid, margin, margin_se)
    start = candidates[0][1]
    start_loss = -record["scores"][candidates[0][0]][-1]
    fit = AlphaFit(
        alphas=point,
        forward_passes=2 * record["score_calls"] + (2 if "margin" in record else 0),
        start=start,
        start_loss=start_loss,
        final_loss=-record["score"][-1],
    )
    return fit, record
