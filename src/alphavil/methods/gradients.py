"""Per-task gradients: compute them, compare them, combine them into ``.grad``.

Shared by the gradient-similarity methods (:mod:`~alphavil.methods.cosine`,
:mod:`~alphavil.methods.olaux`, :mod:`~alphavil.methods.autolambda`) and usable from a
hand-written loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Grads", "inner", "target_reference", "task_gradients", "write_gradients"]

Grads = list[Tensor | None]  # one entry per trainable parameter; None: the loss does not reach it


def task_gradients(
    model: nn.Module, losses: Mapping[str, Tensor]
) -> tuple[list[Tensor], dict[str, Grads]]:
    """The trainable parameters and each task's gradient of its own loss (one backward each)."""
    params: list[Tensor] = [p for p in model.parameters() if p.requires_grad]
    grads: dict[str, Grads] = {}
    for i, (t, loss) in enumerate(losses.items()):
        last = i == len(losses) - 1
        grads[t] = list(torch.autograd.grad(loss, params, retain_graph=not last, allow_unused=True))
    return params, grads


def inner(a: Sequence[Tensor | None], b: Sequence[Tensor | None]) -> tuple[float, float, float]:
    """⟨a, b⟩, ‖a‖², ‖b‖² over the parameters both reach (those the two losses share)."""
    sums = [
        torch.stack([(x * y).sum(), (x * x).sum(), (y * y).sum()]).double()
        for x, y in zip(a, b, strict=True)
        if x is not None and y is not None
    ]
    if not sums:
        return 0.0, 0.0, 0.0
    ab, aa, bb = torch.stack(sums).sum(0).tolist()  # one device sync
    return ab, aa, bb


def write_gradients(params: Sequence[Tensor], terms: Iterable[tuple[Grads, Any]]) -> None:
    """``p.grad = Σ scale · g`` over ``(g, scale)`` terms; a scale is a number or one per
    parameter. Parameters no term reaches keep no gradient."""
    terms = list(terms)
    for i, p in enumerate(params):
        total = None
        for g, scale in terms:
            s, gi = (scale[i] if isinstance(scale, (list, tuple)) else scale), g[i]
            if gi is None or s == 0.0:
                continue
            term = gi if s == 1.0 else s * gi
            total = term if total is None else total + term
        p.grad = total


def target_reference(
    grads: dict[str, Grads], target: str, kept: Any, keep: bool
) -> tuple[Any, Any]:
    """(the target's gradient to compare against, the reference to keep): this batch's target
    gradient, else the last one kept (batches holding one task, as in text data)."""
    reference = grads.get(target, kept)
    if keep and target in grads:
        kept = [None if g is None else g.detach().clone() for g in grads[target]]
    return reference, kept
