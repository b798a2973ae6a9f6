"""The greedy merge's dev-noise margin (``alphavil.merge_margin``).

On a dev set of a few hundred examples the greedy merge's ranking (:mod:`alphavil.alpha_greedy`)
follows differences of one or two examples: it takes the target alone over the joint pass in
about half of the fits where equal weighting is the better method (docs/fewlabel). The margin
asks the dev set for evidence first: a candidate ranks above the joint pass only where it gets
more dev examples right that the joint pass gets wrong (g) than the reverse (l) by more than
``z`` standard errors of that paired difference, g − l > z √(g + l): McNemar's statistic
(McNemar, Psychometrika 1947) for two classifiers on one test set, as Dietterich (Neural
Computation 1998) recommends it for comparing them. Ties in accuracy then keep the joint pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from alphavil.alpha import dev_chunks, evaluation_mode, my_chunks
from alphavil.deltas import mix
from alphavil.distributed import all_sum, world_size
from alphavil.tasks import Task

__all__ = ["beats", "discordance_value"]


def beats(gains: int, losses: int, z: float) -> bool:
    """Whether ``gains`` examples right only at a candidate against ``losses`` right only at
    the reference are evidence for the candidate at ``z`` standard errors: g − l > z √(g + l)
    (for z = 0, g > l)."""
    if gains < 0 or losses < 0:
        raise ValueError(f"discordant counts must be >= 0, got {gains} and {losses}")
    return gains - losses > z * math.sqrt(gains + losses)


def discordance_value(
    model: nn.Module,
    theta: Mapping[str, Tensor],
    deltas: Mapping[str, Tensor],
    batches: Iterable[Any] | Callable[[], Iterable[Any]],
    task: Task,
    reference: Tensor,
    *,
    eval_mode: bool = True,
) -> Callable[[Tensor], tuple[int, int]]:
    """factors -> (g, l): the dev examples ``task`` gets right at θ + Σ factors δ and wrong
    at θ + Σ ``reference`` δ, and the reverse (a classification target; one forward pass per
    call and one for the reference, no graph; each rank its share of the chunks)."""
    if task.kind != "classification":
        raise ValueError(f"the margin needs a classification target, {task.name!r} is {task.kind}")
    ref: list[tuple[Tensor, Tensor]] | None = None

    @torch.no_grad()
    def right(factors: Tensor) -> list[tuple[Tensor, Tensor]]:
        point = mix(theta, deltas, factors.detach())
        chunks, _ = dev_chunks(batches, task)
        out = []
        with evaluation_mode(model, eval_mode):
            for inputs, targets in my_chunks(chunks):
                pred = functional_call(model, point, (inputs, [task.name]))[task.name]
                y = targets[task.name]
                out.append((pred.argmax(dim=-1) == y, y))
        return out

    def value(factors: Tensor) -> tuple[int, int]:
        nonlocal ref
        if ref is None:
            ref = right(reference)
        here = right(factors)
        if len(here) != len(ref) or any(
            not torch.equal(y, y_ref) for (_, y), (_, y_ref) in zip(here, ref, strict=False)
        ):
            raise RuntimeError("the dev batches changed between calls; they must come in one order")
        counts = torch.zeros(2, dtype=torch.float64)
        for (a, _), (b, _) in zip(here, ref, strict=True):
            counts[0] += int((a & ~b).sum())
            counts[1] += int((~a & b).sum())
        if world_size() > 1:  # data parallel: each rank counted its share of the chunks
            counts = all_sum(counts)
        return int(counts[0]), int(counts[1])

    return value
