"""Snapshots, restores and functional evaluation at θ + Σ α δ."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from alphavil.data.toy import toy_model
from alphavil.deltas import delta, mix, mixable_names, restore, snapshot, stack_deltas


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
