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
    fit = solve_alpha_newton(
        vgh, value, [torch.ones(t, dtype=torch.float64)], max_passes=2
    )  # 1 Hessian + 1 trial pass
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


# --------------------------------------------------- batch norm, non-finite values, budgets
@pytest.mark.parametrize("alpha", [[0.9, 0.4, 0.3], [0.6, -0.3, 0.2]])
def test_newton_gradient_and_hessian_match_finite_differences_on_a_batch_norm_model(
    alpha: list,  # type: ignore[type-arg]
) -> None:
    """Newton optimises the function target_loss_value reports: its value equals it, its
    gradient is the finite difference of it and its Hessian that of the chunked gradient."""
    from alphavil.alpha import target_loss_value
    from tests.bn_data import bn_problem

    model, theta, deltas, dev, task = bn_problem()
    value = target_loss_value(model, theta, deltas, dev, task)
    vg = target_loss_and_grad(model, theta, deltas, dev, task)
    a = torch.tensor(alpha, dtype=torch.float64)
    f, g, h = target_loss_grad_hess(model, theta, deltas, dev, task)(a)
    assert float(f) == pytest.approx(value(a), rel=1e-12)
    eps, eye = 1e-6, torch.eye(3, dtype=torch.float64)
    fd_g = torch.tensor(
        [(value(a + eps * e) - value(a - eps * e)) / (2 * eps) for e in eye], dtype=torch.float64
    )
    fd_h = torch.stack([(vg(a + eps * e)[1] - vg(a - eps * e)[1]) / (2 * eps) for e in eye])
    torch.testing.assert_close(g, fd_g, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(h, fd_h, rtol=1e-5, atol=1e-7)


def test_both_solvers_improve_on_the_start_of_a_batch_norm_problem() -> None:
    """From the library's start candidates (α = 1 mixes the epoch-1 variances, which the additive
    rule made negative), both solvers end finite and below their start."""
    from alphavil.alpha import target_loss_value
    from tests.bn_data import bn_problem

    model, theta, deltas, dev, task = bn_problem()
    value = target_loss_value(model, theta, deltas, dev, task)
    vg = target_loss_and_grad(model, theta, deltas, dev, task)
    starts = start_candidates(3, 0)
    assert all(value(s) == value(s) for s in starts)
    lbfgs = solve_alpha(vg, starts, value=value, tol=1e-10, max_passes=60)
    newton = solve_alpha_newton(
        target_loss_grad_hess(model, theta, deltas, dev, task),
        value,
        starts,
        tol=1e-10,
        max_passes=60,
    )
    for fit in (lbfgs, newton):
        assert fit.final_loss == pytest.approx(value(fit.alphas), rel=1e-9)
        assert fit.final_loss < fit.start_loss  # type: ignore[operator]


def _nan_where(cond, f):  # type: ignore[no-untyped-def]
    """A quadratic objective ``f`` made NaN where ``cond(α)`` holds."""

    def vg(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = a.detach().requires_grad_(True)
        loss = f(a)
        (grad,) = torch.autograd.grad(loss, a)
        if cond(a.detach()):
            return torch.tensor(float("nan"), dtype=torch.float64), grad * float("nan")
        return loss.detach(), grad

    def vgh(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = torch.autograd.functional.hessian(f, a.detach())
        return (*vg(a), h * float("nan") if cond(a) else h)

    return vg, vgh, lambda a: float(vg(a)[0])


def _bowl(a: torch.Tensor) -> torch.Tensor:
    return ((a - torch.tensor([0.3, 0.6], dtype=a.dtype)) ** 2).sum()


def test_a_nan_candidate_never_wins_the_start_ranking_in_either_solver() -> None:
    vg, vgh, value = _nan_where(lambda a: bool((a == 1).all()), _bowl)  # NaN at α = 1 only
    starts = start_candidates(2, 0)
    for fit in (
        solve_alpha(vg, starts, value=value),
        solve_alpha_newton(vgh, value, starts),
    ):
        assert not torch.equal(fit.start, torch.ones(2, dtype=torch.float64))
        assert fit.start_loss == fit.start_loss and fit.final_loss == fit.final_loss
        torch.testing.assert_close(fit.alphas, torch.tensor([0.3, 0.6], dtype=torch.float64))


def test_a_nan_mid_fit_stops_lbfgs_and_returns_the_best_finite_alpha() -> None:
    """L-BFGS' first step from α = 0 overshoots into a region where the objective is NaN: the
    solver stops there (no pass burnt on NaN) and returns the best finite point."""
    vg, _, value = _nan_where(lambda a: float(a.sum()) > 1.0, lambda a: ((a - 2.0) ** 2).sum())
    fit = solve_alpha(vg, [torch.zeros(2, dtype=torch.float64)], max_passes=30)
    assert sum(f != f for f in fit.losses) == 1 and fit.losses[-1] != fit.losses[-1]
    assert fit.final_loss == fit.final_loss and fit.final_loss <= fit.losses[0]  # type: ignore[operator]
    assert fit.final_loss == value(fit.alphas)


def test_a_nan_mid_fit_is_plus_infinity_for_newton() -> None:
    """A Newton step into the NaN region is rejected like a worse one (damped, retried)."""
    _, vgh, value = _nan_where(lambda a: float(a.sum()) > 1.0, lambda a: ((a - 2.0) ** 2).sum())
    fit = solve_alpha_newton(vgh, value, [torch.zeros(2, dtype=torch.float64)], max_passes=30)
    assert fit.final_loss == value(fit.alphas) and fit.final_loss < fit.start_loss  # type: ignore[operator]
    assert float(fit.alphas.sum()) <= 1.0


def test_newton_counts_its_trial_forward_passes_against_the_budget() -> None:
    def rosen(a: torch.Tensor) -> torch.Tensor:
        return (1 - a[0]) ** 2 + 100 * (a[1] - a[0] ** 2) ** 2

    _, vgh, value = _nan_where(lambda a: False, rosen)
    calls = {"vgh": 0, "value": 0}

    def counted_vgh(a: torch.Tensor):  # type: ignore[no-untyped-def]
        calls["vgh"] += 1
        return vgh(a)

    def counted_value(a: torch.Tensor) -> float:
        calls["value"] += 1
        return value(a)

    for budget in (1, 2, 5, 12):
        calls.update(vgh=0, value=0)
        fit = solve_alpha_newton(
            counted_vgh, counted_value, [torch.tensor([-1.2, 1.0], dtype=torch.float64)],
            max_passes=budget, tol=0.0,
        )  # fmt: skip
        assert calls["vgh"] + calls["value"] <= budget
        assert fit.passes + fit.forward_passes == calls["vgh"] + calls["value"]


def test_lbfgs_does_not_stop_at_a_small_gradient_far_from_the_minimum() -> None:
    """A shallow objective (|∂L/∂α|² < tol at the start) is still minimised: ``tol`` bounds the
    objective's change, not the gradient (torch's tolerance_change also thresholds g·d)."""
    vg, _, _ = _nan_where(lambda a: False, lambda a: 1e-4 * ((a - 2.0) ** 2).sum())
    fit = solve_alpha(vg, [torch.zeros(2, dtype=torch.float64)], tol=1e-6)  # g·d = -3.2e-7
    assert fit.passes > 1
    torch.testing.assert_close(
        fit.alphas, torch.full((2,), 2.0, dtype=torch.float64), atol=1e-2, rtol=0
    )
