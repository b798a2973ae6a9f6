"""Snapshots, restores and functional evaluation at θ + Σ α δ."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from alphavil.data.toy import toy_model
from alphavil.deltas import (
    delta,
    mix,
    mix_grad,
    mixable_names,
    restore,
    snapshot,
    stack_deltas,
)


def _train_a_bit(model: nn.Module) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for _ in range(3):
        out = model(torch.randn(8, 16), ["main"])["main"]
        loss = out.logsumexp(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_snapshot_update_restore_is_bitwise_identical() -> None:
    model = nn.Sequential(toy_model().encoder, nn.BatchNorm1d(32))  # buffers too
    whole = toy_model()
    whole.encoder = model
    before = {k: v.clone() for k, v in whole.state_dict().items()}
    theta = snapshot(whole)
    _train_a_bit(whole)
    assert any(not torch.equal(before[k], v) for k, v in whole.state_dict().items())
    restore(whole, theta)
    for k, v in whole.state_dict().items():
        assert torch.equal(before[k], v), k


def test_delta_covers_parameters_and_float_buffers_only() -> None:
    model = toy_model()
    model.encoder.append(nn.BatchNorm1d(32))
    theta = snapshot(model)
    _train_a_bit(model)
    d = delta(model, theta)
    assert set(d) == set(mixable_names(model))
    assert "encoder.2.num_batches_tracked" not in d
    assert "encoder.2.running_mean" in d
    for k, v in d.items():
        torch.testing.assert_close(theta[k] + v, dict(model.state_dict())[k], rtol=0, atol=1e-6)


def test_functional_evaluation_equals_loading_parameters() -> None:
    model = toy_model()
    theta = snapshot(model)
    deltas = stack_deltas([{k: torch.randn_like(theta[k]) for k in theta} for _ in range(3)])
    alphas = torch.tensor([0.5, 1.5, -0.25])
    point = mix(theta, deltas, alphas)
    x = torch.randn(11, 16)
    functional = functional_call(model, point, (x, ["main", "noise"]))
    restore(model, point)
    loaded = model(x, ["main", "noise"])
    for t in loaded:
        assert torch.equal(functional[t], loaded[t])


def test_mix_with_zero_alphas_is_identity_and_unit_alpha_adds() -> None:
    model = toy_model()
    theta = snapshot(model)
    deltas = stack_deltas([{k: torch.ones_like(theta[k]) for k in theta}] * 2)
    same = mix(theta, deltas, torch.zeros(2))
    assert all(torch.equal(same[k], theta[k]) for k in theta)
    plus = mix(theta, deltas, torch.ones(2))
    assert all(torch.allclose(plus[k], theta[k] + 2) for k in theta)


def test_mixed_running_variances_stay_positive_where_the_additive_rule_goes_negative() -> None:
    """Three tasks each shrink a fresh batch norm's variance 1 → 0.3 (typical in epoch 1):
    θ + Σ δ would be 1 − 3 · 0.7 < 0. The statistics are mixed convexly instead: θ's at α = 0,
    task t's at α = e_t, the tasks' mean at α = 1, positive for every α; parameters additively."""
    bn = nn.BatchNorm1d(4).double()
    theta = snapshot(bn)
    task_var = torch.tensor([0.3, 0.2, 0.4], dtype=torch.float64)
    deltas = stack_deltas(
        [
            {
                "weight": torch.full((4,), 0.1, dtype=torch.float64),
                "bias": torch.zeros(4, dtype=torch.float64),
                "running_mean": torch.full((4,), m, dtype=torch.float64),
                "running_var": torch.full((4,), v - 1.0, dtype=torch.float64),
            }
            for m, v in zip([0.5, -0.1, 0.3], task_var.tolist(), strict=True)
        ]
    )
    ones = mix(theta, deltas, torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(ones["running_var"], torch.full((4,), 0.3, dtype=torch.float64))
    torch.testing.assert_close(ones["running_mean"], torch.full((4,), 0.7 / 3, dtype=torch.float64))
    torch.testing.assert_close(ones["weight"], theta["weight"] + 0.3)  # the paper's rule
    assert torch.equal(ones["num_batches_tracked"], theta["num_batches_tracked"])  # never mixed
    for t in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[t] = 1.0
        torch.testing.assert_close(mix(theta, deltas, e)["running_var"][0], task_var[t])
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        a = 3 * torch.randn(3, generator=g, dtype=torch.float64)
        assert bool((mix(theta, deltas, a)["running_var"] >= task_var.min() - 1e-12).all())


def test_mix_grad_is_the_exact_alpha_gradient_of_mix() -> None:
    bn = nn.BatchNorm1d(4).double()
    theta = snapshot(bn)
    g = torch.Generator().manual_seed(1)
    floats = {k: v for k, v in theta.items() if v.is_floating_point()}
    deltas = stack_deltas(
        [
            {
                k: 0.3 * torch.rand(v.shape, generator=g, dtype=torch.float64) - 0.1
                for k, v in floats.items()
            }
            for _ in range(3)
        ]
    )
    grads = {
        k: torch.randn(d.shape[1:], generator=g, dtype=torch.float64) for k, d in deltas.items()
    }
    for alpha in ([0.9, 0.4, 0.3], [0.6, -0.3, 0.2], [-0.5, -0.1, -2.0]):
        a = torch.tensor(alpha, dtype=torch.float64, requires_grad=True)
        mixed = mix(theta, deltas, a)
        inner = sum((mixed[k] * grads[k]).sum() for k in deltas)
        (expected,) = torch.autograd.grad(inner, a)
        torch.testing.assert_close(mix_grad(deltas, a.detach(), grads), expected)
