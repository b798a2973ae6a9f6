from __future__ import annotations

import math

import pytest
import torch

from alphavil.pareto.scalarize import linear, scalarize, tchebycheff

LOSSES = torch.tensor([[1.0, 2.0], [3.0, 0.5], [0.2, 0.2]], dtype=torch.float64)
PREFS = torch.tensor([[0.25, 0.75], [0.5, 0.5], [1.0, 0.0]], dtype=torch.float64)


def test_linear_values() -> None:
    torch.testing.assert_close(
        linear(LOSSES, PREFS), torch.tensor([1.75, 1.75, 0.2], dtype=torch.float64)
    )


def test_tchebycheff_values_with_and_without_ideal() -> None:
    torch.testing.assert_close(
        tchebycheff(LOSSES, PREFS), torch.tensor([1.5, 1.5, 0.2], dtype=torch.float64)
    )
    ideal = torch.tensor([0.2, 0.5], dtype=torch.float64)
    torch.testing.assert_close(
        tchebycheff(LOSSES, PREFS, ideal), torch.tensor([1.125, 1.4, 0.0], dtype=torch.float64)
    )


def test_smooth_tchebycheff_bounds_the_max() -> None:
    mu = 0.01
    hard, soft = tchebycheff(LOSSES, PREFS), tchebycheff(LOSSES, PREFS, smooth=mu)
    assert (soft >= hard).all()
    assert (soft <= hard + mu * math.log(2) + 1e-12).all()


def test_gradients_flow_per_model() -> None:
    losses = LOSSES.clone().requires_grad_(True)
    scalarize(losses, PREFS, "linear").sum().backward()
    assert losses.grad is not None
    torch.testing.assert_close(losses.grad, PREFS)


def test_errors() -> None:
    with pytest.raises(ValueError, match="shape"):
        linear(LOSSES, PREFS[:, :1])
    with pytest.raises(ValueError, match=r"^scalarization 'ls' was renamed: use 'linear'$"):
        scalarize(torch.ones(2, 2), torch.ones(2, 2), "ls")
    with pytest.raises(ValueError, match=r"^scalarization 'tch' was renamed: use 'tchebycheff'$"):
        scalarize(torch.ones(2, 2), torch.ones(2, 2), "tch")
    with pytest.raises(ValueError, match="unknown scalarization"):
        scalarize(LOSSES, PREFS, "pbi")
    with pytest.raises(ValueError, match="smooth"):
        tchebycheff(LOSSES, PREFS, smooth=-1.0)
