"""Task-weight rules: how α moves the task weights (Algorithm 1, line 11, and a guarded variant).

α carries two things at once: an overall step scale (how far to move along the task updates) and a
relative mix (how much of each task's update to take *compared with the target's*). The paper's
additive rule reads both as importance, so an α fit that merely shrinks the target's own step
(α < 1 everywhere) lowers every weight, the target's included, until all sit at the floor and the
normalised weights are equal again. The relative rule reads only the mix.

Both move a weight by the whole of one epoch's evidence, and a weight at the floor is absorbing:
its task's update is then ~0, so α can no longer measure it. On a small dev set one noisy epoch
sends a useful auxiliary task to the floor for good (docs/fewlabel). The average rule moves each
auxiliary weight a step η towards the epoch's clipped ratio α_t / α_target, so a weight is an
exponential average of the evidence and comes back when the evidence does. The fixed rule
leaves the weights alone: each epoch's α then acts once (line 10) and is not carried into the
next epoch's losses.
"""

from __future__ import annotations

import torch
from torch import Tensor

WEIGHT_RULES = ("additive", "relative", "average", "fixed")
LOSS_SCALES = ("mean", "target")


def loss_scales(weights: dict[str, float], target: str, rule: str) -> dict[str, float]:
    """Each task's loss scale in αVIL's updates from its weight (``alphavil.loss_scale``):
    ``"mean"`` = w_t / Σw (the paper's §3: the weighted mean, so that T equal weights give every
    task 1/T of a single-task step); ``"target"`` = w_t / w_target, the target's loss at the scale
    of single-task training and each auxiliary task's added at its weight relative to the
    target's (the weighted sum that LibMTL, PCGrad or ForkMerge step on)."""
    if rule == "mean":
        total = sum(weights.values())
        return {t: w / total for t, w in weights.items()}
    if rule == "target":
        if not weights[target] > 0:
            raise ValueError(f"the target's weight must be > 0, got {weights[target]}")
        return {t: w / weights[target] for t, w in weights.items()}
    raise ValueError(f"loss scale {rule!r} is not one of {', '.join(map(repr, LOSS_SCALES))}")


def update_weights(weights: Tensor, alphas: Tensor, *, floor: float = 1e-6) -> Tensor:
    """w_t ← max(w_t + (α_t − 1), floor) (line 11; clamp to [1e-6, ∞) as in §4.1, footnote 1)."""
    return (weights + (alphas - 1.0)).clamp_min(floor)


def update_weights_relative(
    weights: Tensor,
    alphas: Tensor,
    target: int,
    *,
    floor: float = 1e-6,
    cap: float = 1.0,
    min_scale: float = 1e-3,
) -> Tensor:
    """Line 11 on α relative to the target's: w_t ← clip(w_t + r (α_t / α_t* − 1), floor, cap w_t*).

    The target's weight never changes (its ratio is 1), so it cannot be drained, and no auxiliary
    weight exceeds ``cap`` times it (``cap = 1``: the target is never outweighed). α_t* is the step
    scale the fit chose and is divided out; when it is below ``min_scale`` (the fit rejected the
    target's own update, so the ratios carry no mix information) the weights stay as they are.
    Between ``min_scale`` and 2 · ``min_scale`` the move is ramped in, r = α_t* / min_scale − 1
    (r = 1 above), so the weights are continuous in α: a tiny change of α_t* across ``min_scale``
    cannot throw a weight from unchanged to the cap or the floor.

    Args:
        weights: Current task weights ``(T,)``.
        alphas: Fitted α ``(T,)``.
        target: Index of the target task in ``weights``.
        floor: Lower clamp of the auxiliary weights.
        cap: Upper clamp of the auxiliary weights, as a multiple of the target's weight.
        min_scale: Smallest α_t* for which the ratios are used.
    """
    if weights.shape != alphas.shape or weights.dim() != 1:
        raise ValueError(f"weights {tuple(weights.shape)} and alphas {tuple(alphas.shape)} differ")
    if not 0 <= target < weights.shape[0]:
        raise ValueError(f"target index {target} is out of range for {weights.shape[0]} tasks")
    scale = float(alphas[target])
    if scale < min_scale:
        return weights.clone()
    ramp = min(scale / min_scale - 1.0, 1.0)
    w_target = weights[target]
    # full move: the expression of the unramped rule, so its results stay bit-identical
    new = weights + alphas / scale - 1.0 if ramp == 1.0 else weights + ramp * (alphas / scale - 1.0)
    new = new.clamp(min=floor, max=float(cap * w_target))
    new[target] = w_target
    return new


def all_at_floor(weights: Tensor, floor: float) -> bool:
    """Whether every weight sits at the floor (normalised, that is equal weighting in disguise)."""
    return bool(torch.all(weights <= floor * (1 + 1e-9)))


def update_weights_average(
    weights: Tensor,
    alphas: Tensor,
    target: int,
    *,
    step: float = 0.3,
    floor: float = 1e-6,
    cap: float = 1.0,
    min_scale: float = 1e-3,
) -> Tensor:
    """w_t ← (1 − η) w_t + η · clip(α_t / α_t*, 0, cap) · w_t*, the target's weight fixed.

    An exponential average (step η) of each epoch's relative mix, clipped to [0, cap] times the
    target's weight and floored at ``floor``. Unlike the additive and relative rules a weight
    is never stuck at the floor: it rises again as soon as α takes the task's update again.
    When α_t* < ``min_scale`` the epoch says nothing about the mix and the weights stay.

    Args:
        weights: Current task weights ``(T,)``.
        alphas: Fitted α ``(T,)``.
        target: Index of the target task in ``weights``.
        step: η in (0, 1]: how far one epoch moves a weight (1 = to the epoch's ratio).
        floor: Lower clamp of the auxiliary weights.
        cap: Upper clamp, as a multiple of the target's weight.
        min_scale: Smallest α_t* for which the ratios are used.
    """
    if weights.shape != alphas.shape or weights.dim() != 1:
        raise ValueError(f"weights {tuple(weights.shape)} and alphas {tuple(alphas.shape)} differ")
    if not 0 <= target < weights.shape[0]:
        raise ValueError(f"target index {target} is out of range for {weights.shape[0]} tasks")
    if not 0.0 < step <= 1.0:
        raise ValueError(f"step must be in (0, 1], got {step}")
    scale = float(alphas[target])
    if scale < min_scale:
        return weights.clone()
    w_target = weights[target]
    ratio = (alphas / scale).clamp(0.0, cap) * w_target
    new = ((1.0 - step) * weights + step * ratio).clamp(min=floor)
    new[target] = w_target
    return new


def move_weights(
    rule: str,
    weights: Tensor,
    alphas: Tensor,
    target: int,
    *,
    step: float = 0.3,
    floor: float = 1e-6,
    cap: float = 1.0,
) -> Tensor:
    """Line 11 by ``rule`` (one of :data:`WEIGHT_RULES`): :func:`update_weights` (the paper),
    :func:`update_weights_relative`, :func:`update_weights_average`, or ``"fixed"``: line 11
    off, the weights stay where they are (a copy), so only line 10's mix acts on the tasks."""
    if rule == "additive":
        return update_weights(weights, alphas, floor=floor)
    if rule == "relative":
        return update_weights_relative(weights, alphas, target, floor=floor, cap=cap)
    if rule == "average":
        return update_weights_average(weights, alphas, target, step=step, floor=floor, cap=cap)
    if rule == "fixed":
        return weights.clone()
    raise ValueError(f"weight rule {rule!r} is not one of {', '.join(map(repr, WEIGHT_RULES))}")
