"""Per-task gradient helpers: closed forms in float64."""

from __future__ import annotations

import torch
from torch import nn

from alphavil.methods.gradients import inner, target_reference, task_gradients, write_gradients


def test_task_gradients_inner_and_write_match_closed_forms() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(3, 1, bias=False).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    w = lin.weight.detach().clone()
    losses = {"a": lin(x).sum(), "b": (lin(x) ** 2).sum()}
    params, grads = task_gradients(lin, losses)
    ga, gb = x.sum(0, keepdim=True), 2 * ((x @ w.T) * x).sum(0, keepdim=True)  # d/dw
    (a0,), (b0,) = grads["a"], grads["b"]
    assert a0 is not None and b0 is not None
    assert torch.allclose(a0, ga) and torch.allclose(b0, gb)
    ab, aa, bb = inner(grads["a"], grads["b"])
    assert abs(ab - float((ga * gb).sum())) < 1e-12 and abs(aa - float((ga * ga).sum())) < 1e-12
    assert abs(bb - float((gb * gb).sum())) < 1e-12
    write_gradients(params, [(grads["a"], 1.0), (grads["b"], 0.25)])
    assert params[0].grad is not None and torch.allclose(params[0].grad, ga + 0.25 * gb)
    assert inner([None], [gb]) == (0.0, 0.0, 0.0)  # no shared parameter


def test_target_reference_keeps_the_last_target_gradient() -> None:
    g: list[torch.Tensor | None] = [torch.ones(2)]
    ref, kept = target_reference({"t": g}, "t", None, keep=True)
    assert ref is g and kept is not None and kept[0] is not g[0]
    aux: list[torch.Tensor | None] = [torch.zeros(2)]
    ref2, kept2 = target_reference({"aux": aux}, "t", kept, keep=True)
    assert ref2 is kept and kept2 is kept
