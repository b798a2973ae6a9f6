"""The calibrated dev loss of line 9 (alphavil.dev_calibration): the inverse temperature, the
envelope gradient, and the invariance to steps that only scale the logits."""

from __future__ import annotations

import math

import pytest
import torch

from alphavil.alpha import target_loss_value
from alphavil.data.toy import toy_model
from alphavil.deltas import snapshot, stack_deltas
from alphavil.dev_calibration import SCALE_RANGE, best_scale, calibrated_objective, scaled_loss
from alphavil.tasks import Task


def _logits(seed: int = 0, n: int = 40, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g)
    z = torch.randn(n, k, generator=g, dtype=torch.float64) + 2.0 * torch.eye(k)[y]
    return z, y


def test_best_scale_is_the_minimum_of_the_loss_over_the_scale() -> None:
    z, y = _logits()
    s, loss = best_scale(z, y)
    grid = [math.exp(u / 200) for u in range(-600, 601)]
    assert loss <= min(scaled_loss(z, y, t) for t in grid) + 1e-9
    assert loss == pytest.approx(scaled_loss(z, y, s))
    # stationary: d/ds of the mean cross-entropy, E_p[z] − z_y averaged, is 0 at s*
    p = torch.softmax(s * z, dim=1)
    slope = ((p * z).sum(1) - z.gather(1, y[:, None])[:, 0]).mean()
    assert abs(float(slope)) < 1e-6


def test_best_scale_divides_out_a_scaling_of_the_logits() -> None:
    z, y = _logits(seed=3)
    s, loss = best_scale(z, y)
    s3, loss3 = best_scale(3.0 * z, y)
    assert s3 == pytest.approx(s / 3, rel=1e-6)
    assert loss3 == pytest.approx(loss, abs=1e-10)


def test_a_separated_dev_set_goes_to_large_scales_and_no_loss() -> None:
    # every example right with margin 1: the loss falls for ever with s (to float64's floor)
    y = torch.tensor([0, 1, 1, 0])
    z = torch.nn.functional.one_hot(y, 2).double()
    s, loss = best_scale(z, y)
    assert 30 < s <= SCALE_RANGE[1]
    assert loss < 1e-12


def _setup() -> tuple:  # type: ignore[type-arg]
    model = toy_model(dim=5, hidden=7).to(torch.float64)
    theta = snapshot(model)
    g = torch.Generator().manual_seed(1)
    deltas = stack_deltas(
        [
            {
                k: 0.3 * torch.randn(v.shape, generator=g, dtype=torch.float64)
                for k, v in theta.items()
            }
            for _ in range(3)
        ]
    )
    x = torch.randn(23, 5, generator=g, dtype=torch.float64)
    with torch.no_grad():  # labels the network at θ mostly gets right: s* is interior
        y = model(x, ["main"])["main"].argmax(1)
    y[:6] = 1 - y[:6]
    batches = [(x[:10], {"main": y[:10]}), (x[10:], {"main": y[10:]})]
    return model, theta, deltas, batches, Task("main", 2)


def test_the_gradient_is_the_derivative_of_the_calibrated_loss() -> None:
    # envelope theorem: the gradient at the fixed s* is the derivative of min_s (float64)
    model, theta, deltas, batches, task = _setup()
    value_and_grad, value = calibrated_objective(model, theta, deltas, batches, task)
    a = torch.tensor([0.9, 0.4, -0.3], dtype=torch.float64)
    f, grad = value_and_grad(a)
    assert float(f) == pytest.approx(value(a), abs=1e-10)
    eps = 1e-5
    numeric = torch.tensor(
        [
            (value(a + eps * e) - value(a - eps * e)) / (2 * eps)
            for e in torch.eye(3, dtype=a.dtype)
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(grad, numeric, rtol=1e-5, atol=1e-7)


def test_a_step_that_only_scales_the_logits_leaves_the_calibrated_loss() -> None:
    # δ = the target head's own weights and bias: θ + α δ has logits (1 + α) z. The plain dev
    # loss moves with α; the calibrated one does not (the reason for the option)
    model, theta, _, batches, task = _setup()
    step = {
        k: (v.clone() if k.startswith("heads.main.") else torch.zeros_like(v))
        for k, v in theta.items()
    }
    deltas = stack_deltas([step])
    _, calibrated = calibrated_objective(model, theta, deltas, batches, task)
    plain = target_loss_value(model, theta, deltas, batches, task)
    alphas = [torch.tensor([a], dtype=torch.float64) for a in (-0.5, 0.0, 1.0, 3.0)]
    values = [calibrated(a) for a in alphas]
    assert max(values) - min(values) < 1e-9
    plains = [plain(a) for a in alphas]
    assert max(plains) - min(plains) > 1e-3


def test_a_regression_target_is_refused() -> None:
    model, theta, deltas, batches, _ = _setup()
    with pytest.raises(ValueError, match="classification target; 'main' is regression"):
        calibrated_objective(model, theta, deltas, batches, Task("main", 1, "regression"))
