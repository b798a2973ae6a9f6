"""αVIL maths: meta-gradient, closed-form α, weight update."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from alphavil.alpha import (
    autograd_value_and_grad,
    differentiable_mix,
    fit_alpha,
    target_loss,
    target_loss_and_grad,
    target_loss_value,
    update_weights,
    with_statistics_gradients,
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


# --------------------------------------------------- models with batch norm (and dropout)
BN_ALPHAS = ([0.9, 0.4, 0.3], [0.6, -0.3, 0.2], [1.3, 0.2, -0.4])  # away from the rule's kinks


def _central_differences(f, a: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:  # type: ignore[no-untyped-def]
    eye = torch.eye(a.shape[0], dtype=torch.float64)
    return torch.stack([(f(a + eps * e) - f(a - eps * e)) / (2 * eps) for e in eye])


@pytest.mark.parametrize("alpha", BN_ALPHAS)
def test_alpha_gradient_matches_finite_differences_on_a_batch_norm_model(alpha: list) -> None:  # type: ignore[type-arg]
    """The running statistics' α-dependence is in the gradient (eval mode: they enter the
    output directly), and the gradient is that of the very value target_loss_value reports."""
    from tests.bn_data import bn_problem

    model, theta, deltas, dev, task = bn_problem()
    value = target_loss_value(model, theta, deltas, dev, task)
    a = torch.tensor(alpha, dtype=torch.float64)
    f, g = target_loss_and_grad(model, theta, deltas, dev, task)(a)
    assert float(f) == pytest.approx(value(a), rel=1e-12)
    fd = _central_differences(lambda x: torch.tensor(value(x), dtype=torch.float64), a)
    torch.testing.assert_close(g, fd, rtol=1e-6, atol=1e-8)


def test_reference_objective_mixes_the_buffers_the_value_uses() -> None:
    """target_loss (differentiable_mix) evaluates the same function as target_loss_value, and
    autograd through it gives the chunked gradient."""
    from tests.bn_data import bn_problem

    model, theta, deltas, dev, task = bn_problem()
    value = target_loss_value(model, theta, deltas, dev, task)
    vg = target_loss_and_grad(model, theta, deltas, dev, task)
    reference = autograd_value_and_grad(target_loss(model.eval(), theta, deltas, dev, task))
    for alpha in BN_ALPHAS:
        a = torch.tensor(alpha, dtype=torch.float64)
        f, g = reference(a)
        assert float(f) == pytest.approx(value(a), rel=1e-12)
        torch.testing.assert_close(g, vg(a)[1], rtol=1e-9, atol=1e-12)
    point = differentiable_mix(model, theta, deltas, torch.tensor(BN_ALPHAS[0]).double())
    for k, v in mix(theta, deltas, torch.tensor(BN_ALPHAS[0]).double()).items():
        torch.testing.assert_close(point[k], v, rtol=0, atol=0)


def test_statistics_gradients_keep_the_value_and_the_modules_untouched() -> None:
    """Rewriting a batch norm's affine parameters changes nothing in value, in eval and train
    mode, with and without affine parameters."""
    for affine in (True, False):
        bn = nn.BatchNorm1d(3, affine=affine).double()
        state = {k: v.clone() for k, v in bn.state_dict().items()}
        point = {k: v.clone() for k, v in state.items()}
        point["running_mean"] = (point["running_mean"] + 0.3).requires_grad_(True)
        point["running_var"] = (point["running_var"] * 0.5).requires_grad_(True)
        x = torch.randn(6, 3, dtype=torch.float64)
        for training in (False, True):
            bn.train(training)
            plain = functional_call(bn, {k: v.detach().clone() for k, v in point.items()}, (x,))
            out = functional_call(bn, with_statistics_gradients(bn, point), (x,))
            assert torch.equal(out.detach(), plain)
            if not training:
                out.sum().backward()
                assert point["running_mean"].grad is not None
                assert point["running_var"].grad is not None
        for k, v in bn.state_dict().items():
            assert torch.equal(v, state[k]), k


def test_paper_fit_keeps_the_best_finite_alpha_when_the_objective_turns_non_finite() -> None:
    """A step into a non-finite region stops the paper's fit (non-finite counts as +inf); the
    best finite α evaluated is returned. On finite objectives the fit is unchanged."""

    def vg(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = ((a - 3.0) ** 2).sum()
        if float(a[0]) > 1.5:
            f = f * float("nan")
        return f.detach().double(), 2 * (a - 3.0)

    fit = fit_alpha(vg, 2, steps=10, optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    assert torch.isfinite(fit.alphas).all() and fit.final_loss is not None
    assert fit.final_loss == min(f for f in fit.losses if f == f)
    assert fit.losses[-1] != fit.losses[-1] and len(fit.losses) < 10  # stopped at the NaN
    # the final α (after the last step, never evaluated in the steps) is checked with `value`
    fit = fit_alpha(
        vg,
        2,
        steps=3,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.1),
        value=lambda a: float(vg(a)[0]),
    )
    assert fit.final_loss is not None and fit.final_loss == fit.final_loss
    assert fit.final_loss <= fit.start_loss  # type: ignore[operator]
