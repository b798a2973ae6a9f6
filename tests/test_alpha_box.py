"""The box-constrained α solve (alphavil.alpha_box): closed forms, safeguards, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from alphavil.alpha_box import solve_alpha_box


def quadratic(center: list[float], scale: list[float]):  # type: ignore[no-untyped-def]
    """A separable quadratic Σ s_t (α_t − c_t)² as (value_and_grad, value) in float64."""
    c, s = torch.tensor(center, dtype=torch.float64), torch.tensor(scale, dtype=torch.float64)

    def value(a: Tensor) -> float:
        return float((s * (a.double() - c) ** 2).sum())

    def value_and_grad(a: Tensor) -> tuple[Tensor, Tensor]:
        return torch.tensor(value(a), dtype=torch.float64), 2 * s * (a.double() - c)

    return value_and_grad, value


STARTS = [torch.ones(2, dtype=torch.float64), torch.tensor([1.0, 0.0]), torch.zeros(2)]


def test_minimiser_inside_the_box_is_found() -> None:
    vg, value = quadratic([0.3, 0.8], [1.0, 5.0])
    fit = solve_alpha_box(vg, STARTS, value=value, tol=1e-12)
    assert torch.allclose(fit.alphas, torch.tensor([0.3, 0.8], dtype=torch.float64), atol=1e-6)
    assert fit.final_loss == pytest.approx(0.0, abs=1e-10)


def test_minimiser_outside_the_box_is_clipped_onto_it() -> None:
    # separable: the constrained argmin is the unconstrained one clipped into [0, 1]
    vg, value = quadratic([4.5, -5.0], [1.0, 2.0])
    fit = solve_alpha_box(vg, STARTS, value=value, tol=1e-12)
    assert fit.alphas.tolist() == pytest.approx([1.0, 0.0], abs=1e-9)
    assert bool(((fit.alphas >= 0) & (fit.alphas <= 1)).all())


def test_other_box_and_never_worse_than_the_best_clipped_start() -> None:
    vg, value = quadratic([2.0, 2.0], [1.0, 1.0])
    fit = solve_alpha_box(vg, [torch.tensor([5.0, -3.0])], value=value, lo=-1.0, hi=1.5)
    assert fit.start is not None and fit.start.tolist() == [1.5, -1.0]  # clipped into the box
    assert fit.alphas.tolist() == pytest.approx([1.5, 1.5], abs=1e-6)
    assert fit.start_loss is not None and fit.final_loss is not None
    assert fit.final_loss <= fit.start_loss


def test_a_nan_candidate_never_wins_and_a_nan_mid_fit_keeps_the_best_finite_alpha() -> None:
    vg, value = quadratic([0.5, 0.5], [1.0, 1.0])

    def nan_at_one(a: Tensor) -> float:
        return math.nan if bool((a == 1).all()) else value(a)

    fit = solve_alpha_box(vg, STARTS, value=nan_at_one, tol=1e-12)
    assert fit.start is not None and not bool((fit.start == 1).all())
    assert fit.alphas.tolist() == pytest.approx([0.5, 0.5], abs=1e-6)

    calls: list[int] = []

    def nan_after_two(a: Tensor) -> tuple[Tensor, Tensor]:
        calls.append(1)
        if len(calls) > 2:
            return torch.tensor(math.nan, dtype=torch.float64), torch.full((2,), math.nan)
        return vg(a)

    fit = solve_alpha_box(nan_after_two, STARTS, value=value)
    assert len(calls) == 3 and fit.passes == 3  # stopped at the first non-finite value
    assert fit.final_loss is not None and math.isfinite(fit.final_loss)
    assert torch.isfinite(fit.alphas).all()
    assert fit.start_loss is not None and fit.final_loss <= fit.start_loss


def test_the_pass_budget_is_a_hard_limit() -> None:
    vg, value = quadratic([0.2, 0.7], [1.0, 100.0])
    fit = solve_alpha_box(vg, STARTS, value=value, max_passes=2, tol=0.0)
    assert fit.passes <= 2 and len(fit.losses) == fit.passes
    assert fit.forward_passes == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lo": 1.0, "hi": 1.0}, "lo < hi"),
        ({"max_passes": 0}, "max_passes must be >= 1"),
    ],
)
def test_bad_input(kwargs: dict[str, float], message: str) -> None:
    vg, value = quadratic([0.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match=message):
        solve_alpha_box(vg, STARTS, value=value, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="starting point"):
        solve_alpha_box(vg, [], value=value)


def test_fixed_coordinate_stays_and_the_rest_is_solved() -> None:
    # the target's update always taken whole: α_0 = 1, α_1 boxed (closed form: clip(c_1))
    vg, value = quadratic([0.2, 0.7], [1.0, 3.0])
    fit = solve_alpha_box(vg, STARTS, value=value, tol=1e-12, fixed={0: 1.0})
    assert fit.alphas.tolist() == pytest.approx([1.0, 0.7], abs=1e-6)
    vg, value = quadratic([0.2, 1.7], [1.0, 3.0])
    fit = solve_alpha_box(vg, STARTS, value=value, tol=1e-12, fixed={0: 1.0})
    assert fit.alphas.tolist() == pytest.approx([1.0, 1.0], abs=1e-9)
    with pytest.raises(ValueError, match="out of range"):
        solve_alpha_box(vg, STARTS, value=value, fixed={2: 1.0})
