"""αVIL maths: meta-gradient, closed-form α, weight update."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from alphavil.alpha import (
    autograd_value_and_grad,
    fit_alpha,
    target_loss,
    target_loss_and_grad,
    update_weights,
)
from alphavil.data.toy import toy_model
from alphavil.deltas import mix, snapshot, stack_deltas
from alphavil.models.multihead import MultiHeadModel
from alphavil.tasks import Task


def _setup(dtype: torch.dtype = torch.float64, n_tasks: int = 3):
    model = toy_model(dim=5, hidden=7).to(dtype)
    theta = snapshot(model)
    g = torch.Generator().manual_seed(1)
    deltas = stack_deltas(
        [
            {k: 0.3 * torch.randn(v.shape, generator=g, dtype=dtype) for k, v in theta.items()}
            for _ in range(n_tasks)
        ]
    )
    x = torch.randn(23, 5, generator=g, dtype=dtype)
    y = torch.randint(0, 2, (23,), generator=g)
    batches = [(x[:10], {"main": y[:10]}), (x[10:], {"main": y[10:]})]
    return model, theta, deltas, batches, Task("main", 2)


def test_alpha_meta_gradient_matches_finite_differences() -> None:
    model, theta, deltas, batches, task = _setup()
    objective = target_loss(model, theta, deltas, batches, task)
    alphas = torch.tensor([1.0, 0.4, -0.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(objective, (alphas,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("chunk", [1, 7, 23])
def test_chunked_gradient_equals_autograd(chunk: int) -> None:
    model, theta, deltas, batches, task = _setup()
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1]["main"] for b in batches])
    chunks = [(x[i : i + chunk], {"main": y[i : i + chunk]}) for i in range(0, len(x), chunk)]
    alphas = torch.tensor([0.9, 1.2, 0.1], dtype=torch.float64)
    loss_ref, grad_ref = autograd_value_and_grad(target_loss(model, theta, deltas, batches, task))(
        alphas
    )
    loss, grad = target_loss_and_grad(model, theta, deltas, chunks, task)(alphas)
    torch.testing.assert_close(loss.double(), loss_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-10, atol=1e-12)


def test_fit_reaches_closed_form_minimiser_on_quadratic_target() -> None:
    # Linear regression head: the dev MSE is quadratic in α with minimiser lstsq(A, -r0).
    torch.manual_seed(3)
    model = MultiHeadModel(nn.Identity(), {"y": nn.Linear(4, 1)}).double()
    theta = snapshot(model)
    deltas = stack_deltas([{k: torch.randn_like(v) for k, v in theta.items()} for _ in range(2)])
    x, y = torch.randn(50, 4, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    task = Task("y", 1, kind="regression")

    def outputs(params: dict[str, torch.Tensor]) -> torch.Tensor:
        return (x @ params["heads.y.weight"].T + params["heads.y.bias"]).squeeze(1)

    r0 = outputs(theta) - y
    cols = [outputs({k: theta[k] + deltas[k][t] for k in theta}) - outputs(theta) for t in range(2)]
    a = torch.stack(cols, 1)
    expected = torch.linalg.lstsq(a, -r0.unsqueeze(1)).solution.squeeze(1)

    vg = target_loss_and_grad(model, theta, deltas, [(x, {"y": y})], task)
    fit = fit_alpha(
        vg,
        2,
        steps=400,
        dtype=torch.float64,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.5),
    )
    torch.testing.assert_close(fit.alphas, expected, rtol=1e-6, atol=1e-6)
    assert fit.losses[-1] < fit.losses[0]


def test_fit_alpha_zero_steps_returns_init_and_any_optimizer_works() -> None:
    vg = autograd_value_and_grad(lambda a: ((a - 2.0) ** 2).sum())
    assert torch.equal(fit_alpha(vg, 3, steps=0).alphas, torch.ones(3))
    fit = fit_alpha(vg, 3, steps=200, optimizer=lambda p: torch.optim.Adam(p, lr=0.05))
    torch.testing.assert_close(fit.alphas, torch.full((3,), 2.0), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="steps"):
        fit_alpha(vg, 3, steps=-1)


def test_update_weights_rule_and_floor() -> None:
    w = update_weights(torch.tensor([1.0, 1.0, 0.5]), torch.tensor([1.5, 0.2, -3.0]))
    torch.testing.assert_close(w, torch.tensor([1.5, 0.2, 1e-6]))
    assert update_weights(torch.tensor([1e-6]), torch.tensor([-1e9]))[0] == 1e-6


def test_mix_rejects_mismatched_alpha_count() -> None:
    _, theta, deltas, _, _ = _setup(n_tasks=2)
    with pytest.raises(ValueError, match="2 task deltas but 3 alphas"):
        mix(theta, deltas, torch.ones(3, dtype=torch.float64))
