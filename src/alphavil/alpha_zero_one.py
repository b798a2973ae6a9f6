"""Line 9 of Algorithm 1 on the target's dev 0-1 loss (``alphavil.fit_loss = "zero_one"``).

The dev cross-entropy that line 9 minimises rewards short steps over one epoch: it falls when a
step makes the network less confident where it is wrong, and the fit shortens the target's own
update as readily as it cuts an auxiliary share (docs/fewlabel). The error rate does not move
unless a prediction changes. ForkMerge (Jiang et al., NeurIPS 2023) chooses its merge
coefficients on the target's dev metric over a grid; this is the same choice for αVIL's fit
variables: every point of a grid over [0, 1]^T, the one of least dev error, and among equal
errors the one nearest the multitask step, so that the fit leaves equal weighting only when
the dev set's predictions say so. Not differentiable, so not solved: ``points``^T forward
passes over the dev set per epoch.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from alphavil.alpha import AlphaFit, dev_mean_value
from alphavil.tasks import Task


def target_error_value(
    model: nn.Module,
    theta: Mapping[str, Tensor],
    deltas: Mapping[str, Tensor],
    batches: Iterable[Any] | Callable[[], Iterable[Any]],
    task: Task,
    *,
    eval_mode: bool = True,
) -> Callable[[Tensor], float]:
    """α -> the share of dev examples ``task`` gets wrong at θ + Σ α δ (one forward pass, no
    graph; a classification target). Arguments as :func:`alphavil.alpha.target_loss_value`."""
    if task.kind != "classification":
        raise ValueError(
            f"the 0-1 loss needs a classification target, {task.name!r} is {task.kind}"
        )

    def wrong(out: Tensor, y: Tensor) -> float:
        return float(len(y) - int(task.correct(out, y)))

    return dev_mean_value(model, theta, deltas, batches, task, wrong, eval_mode=eval_mode)


def grid_fit(error: Callable[[Tensor], float], home: Tensor, points: int) -> AlphaFit:
    """The point of a ``points``-per-axis grid over [0, 1]^d (d = ``len(home)``) of least
    ``error``; among equal errors the one nearest ``home`` (L1; the multitask step), then the
    first in grid order. ``start`` is ``home`` with its error, ``final_loss`` the chosen error."""
    if points < 2:
        raise ValueError(f"the grid needs at least 2 points per axis, got {points}")
    axis = torch.linspace(0.0, 1.0, points, dtype=torch.float64).tolist()
    home = home.double()
    best: tuple[tuple[float, float], Tensor] | None = None
    for combo in itertools.product(axis, repeat=len(home)):
        z = torch.tensor(combo, dtype=torch.float64)
        key = (error(z), float((z - home).abs().sum()))
        if best is None or key < best[0]:
            best = (key, z)
    assert best is not None
    at_home = error(home)
    return AlphaFit(
        alphas=best[1],
        forward_passes=points ** len(home) + 1,
        start=home,
        start_loss=at_home,
        final_loss=best[0][0],
    )
