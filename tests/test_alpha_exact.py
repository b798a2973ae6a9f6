"""The exact α solver (alphavil.alpha_exact): closed forms, safeguards, budget, starting points."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from alphavil.alpha import (
    autograd_value_and_grad,
    target_loss,
    target_loss_and_grad,
    target_loss_value,
)
from alphavil.alpha_exact import (
    grid_check,
    solve_alpha,
    solve_alpha_newton,
    start_candidates,
    target_loss_grad_hess,
)
from alphavil.deltas import snapshot, stack_deltas
from alphavil.models.multihead import MultiHeadModel
from alphavil.tasks import Task


def _quadratic(h: torch.Tensor, b: torch.Tensor):  # type: ignore[no-untyped-def]
    """f(α) = ½ αᵀHα − bᵀα, minimiser H⁻¹b; counts calls."""
    calls = {"n": 0}

    def value_and_grad(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls["n"] += 1
        return 0.5 * a @ h @ a - b @ a, h @ a - b

    return value_and_grad, calls


@pytest.mark.parametrize("t", [1, 2, 3])
def test_newton_lands_on_the_closed_form_minimiser_of_a_quadratic_in_one_iteration(t: int) -> None:
    g = torch.Generator().manual_seed(t)
    m = torch.randn(t, t, generator=g, dtype=torch.float64)
    h = m @ m.T + t * torch.eye(t, dtype=torch.float64)
    b = torch.randn(t, generator=g, dtype=torch.float64)
    vg, _ = _quadratic(h, b)

    def vgh(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (*vg(a), h)

    def value(a: torch.Tensor) -> float:
        return float(vg(a)[0])

    expected = torch.linalg.solve(h, b)
    fit = solve_alpha_newton(vgh, value, [torch.ones(t, dtype=torch.float64)], max_passes=2)  # 1 Hessian + 1 trial pass
    torch.testing.assert_close(fit.alphas, expected, rtol=1e-10, atol=1e-10)
    assert fit.passes == 1 and fit.forward_passes == 1  # one Newton pass, one accepted trial


@pytest.mark.parametrize("t", [1, 2, 3])
def test_lbfgs_reaches_the_closed_form_minimiser_of_a_quadratic(t: int) -> None:
    g = torch.Generator().manual_seed(t)
    m = torch.randn(t, t, generator=g, dtype=torch.float64)
    h = m @ m.T + t * torch.eye(t, dtype=torch.float64)
    b = torch.randn(t, generator=g, dtype=torch.float64)
    vg, calls = _quadratic(h, b)
    fit = solve_alpha(vg, [torch.ones(t, dtype=torch.float64)], tol=1e-14, max_passes=50)
    torch.testing.assert_close(fit.alphas, torch.linalg.solve(h, b), rtol=1e-6, atol=1e-6)
    # torch's strong-Wolfe search accepts the first Wolfe point, not the exact line minimum, so
    # L-BFGS needs a few more than T iterations; it stays well inside the default budget.
    assert calls["n"] == fit.passes <= 30


def test_newton_hessian_matches_autograd_in_float64() -> None:
    model, theta, deltas, batches, task = _real_problem()
    objective = target_loss(model, theta, deltas, batches, task)
    a = torch.tensor([0.7, -0.3], dtype=torch.float64)
    f, g, h = target_loss_grad_hess(model, theta, deltas, batches, task)(a)
    torch.testing.assert_close(f, objective(a).detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        g, torch.autograd.functional.jacobian(objective, a), rtol=1e-10, atol=1e-12
    )
    torch.testing.assert_close(
        h, torch.autograd.functional.hessian(objective, a), rtol=1e-8, atol=1e-10
    )
    # and finite differences of the gradient along a direction
    v, eps = torch.tensor([0.6, 0.8], dtype=torch.float64), 1e-6
    _, g_plus, _ = target_loss_grad_hess(model, theta, deltas, batches, task)(a + eps * v)
    _, g_minus, _ = target_loss_grad_hess(model, theta, deltas, batches, task)(a - eps * v)
    torch.testing.assert_close((g_plus - g_minus) / (2 * eps), h @ v, rtol=1e-5, atol=1e-8)


def test_solver_result_is_never_worse_than_its_start_and_the_budget_is_hard() -> None:
    # A nasty 1-D objective: steep, oscillating; the solver must not return anything worse.
    def f(a: torch.Tensor) -> torch.Tensor:
        return (torch.sin(7 * a) + 0.1 * (a - 3) ** 2).sum()

    vg = autograd_value_and_grad(f)
    calls = {"n": 0}

    def counted(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls["n"] += 1
        return vg(a)

    for budget in (1, 2, 5, 30):
        calls["n"] = 0
        start = torch.tensor([0.3], dtype=torch.float64)
        fit = solve_alpha(counted, [start], max_passes=budget)
        assert calls["n"] == fit.passes <= budget
        assert float(f(fit.alphas)) <= float(f(start)) + 1e-12
        assert fit.final_loss == pytest.approx(float(f(fit.alphas)))
        assert fit.start_loss == pytest.approx(float(f(start)))


def test_best_of_three_starts_escapes_a_flat_plateau() -> None:
    # Flat (zero gradient) around α = 1; a valley near the target-only start e_0 = (1, 0).
    def f(a: torch.Tensor) -> torch.Tensor:
        return 1.0 - torch.exp(-((a[0] - 0.8) ** 2 + a[1] ** 2) * 4)

    vg = autograd_value_and_grad(f)
    starts = start_candidates(2, target=0)
    assert [s.tolist() for s in starts] == [[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]
    fit = solve_alpha(vg, starts, value=lambda a: float(f(a)), max_passes=40)
    assert fit.forward_passes == 3
    assert fit.start is not None and fit.start.tolist() == [1.0, 0.0]
    torch.testing.assert_close(
        fit.alphas, torch.tensor([0.8, 0.0], dtype=torch.float64), atol=1e-4, rtol=0
    )
    # From α = 1 alone a local method does not move off the plateau.
    stuck = solve_alpha(vg, [torch.tensor([3.0, 3.0], dtype=torch.float64)], max_passes=40)
    assert float(f(stuck.alphas)) > 0.99


def test_start_candidates_deduplicate_and_validate() -> None:
    assert [s.tolist() for s in start_candidates(1, 0)] == [[1.0], [0.0]]
    assert [s.tolist() for s in start_candidates(3, 2, init=1 / 3)][1] == [0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="out of range"):
        start_candidates(2, 2)


def test_solver_rejects_bad_arguments() -> None:
    vg = autograd_value_and_grad(lambda a: (a**2).sum())
    with pytest.raises(ValueError, match="at least one"):
        solve_alpha(vg, [])
    with pytest.raises(ValueError, match="max_passes"):
        solve_alpha(vg, [torch.ones(1)], max_passes=0)
    with pytest.raises(ValueError, match="forward-only"):
        solve_alpha(vg, [torch.ones(1), torch.zeros(1)])


def _real_problem():  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = MultiHeadModel(
        nn.Sequential(nn.Linear(6, 12), nn.Tanh()), {"a": nn.Linear(12, 3), "b": nn.Linear(12, 3)}
    ).double()
    theta = snapshot(model)
    deltas = stack_deltas(
        [{k: 0.5 * torch.randn_like(v) for k, v in theta.items()} for _ in range(2)]
    )
    x = torch.randn(64, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (64,))
    batches = [(x[:40], {"a": y[:40]}), (x[40:], {"a": y[40:]})]
    return model, theta, deltas, batches, Task("a", 3)


@pytest.fixture(scope="module")
def grid_optimum() -> tuple[torch.Tensor, float]:
    model, theta, deltas, batches, task = _real_problem()
    return grid_check(target_loss_value(model, theta, deltas, batches, task), 2, 21, -1.0, 2.0)


@pytest.mark.parametrize("solver", ["lbfgs", "newton"])
def test_solvers_reach_a_fine_grid_argmin_on_a_real_network(
    solver: str, grid_optimum: tuple[torch.Tensor, float]
) -> None:
    model, theta, deltas, batches, task = _real_problem()
    vg = target_loss_and_grad(model, theta, deltas, batches, task)
    value = target_loss_value(model, theta, deltas, batches, task)
    starts = start_candidates(2, 0)
    if solver == "lbfgs":
        fit = solve_alpha(vg, starts, value=value, tol=1e-10, max_passes=60)
    else:
        vgh = target_loss_grad_hess(model, theta, deltas, batches, task)
        fit = solve_alpha_newton(vgh, value, starts, tol=1e-10, max_passes=30)
    grid_alpha, grid_loss = grid_optimum
    assert fit.final_loss is not None and fit.final_loss <= grid_loss + 1e-12
    assert fit.start_loss is not None and fit.final_loss <= fit.start_loss
    assert bool((grid_alpha.abs() < 2.0).all()) and bool((grid_alpha > -1.0).all())
    assert float((fit.alphas - grid_alpha).abs().max()) <= 3 / 20 + 1e-9  # grid resolution


def test_grid_check_validates() -> None:
    with pytest.raises(ValueError, match="T <= 3"):
        grid_check(lambda a: 0.0, 4, 3, 0, 1)
    with pytest.raises(ValueError, match="points >= 2"):
        grid_check(lambda a: 0.0, 2, 1, 0, 1)
    best, loss = grid_check(lambda a: float(((a - 0.5) ** 2).sum()), 2, 3, 0, 1)
    assert best.tolist() == [0.5, 0.5] and loss == 0.0
