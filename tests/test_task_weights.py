"""Property tests of the task-weight rules (alphavil.task_weights): permutation of the tasks,
scaling of α, the target's weight, the bounds, fixed points."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from alphavil.task_weights import (
    WEIGHT_RULES,
    loss_scales,
    move_weights,
    update_weights,
    update_weights_average,
    update_weights_relative,
)

FLOOR = 1e-6
SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Tensor, Tensor, int]:
    """(weights, alphas, target index): weights in [floor, 1], α in [-1, 3], the target's α
    at least 2e-3 (above the rules' ramp, where they read the mix)."""
    n = draw(st.integers(2, 6))
    weights = draw(st.lists(st.floats(FLOOR, 1.0), min_size=n, max_size=n))
    alphas = draw(st.lists(st.floats(-1.0, 3.0), min_size=n, max_size=n))
    target = draw(st.integers(0, n - 1))
    alphas[target] = draw(st.floats(2e-3, 3.0))
    f64 = torch.float64
    return torch.tensor(weights, dtype=f64), torch.tensor(alphas, dtype=f64), target


Rule = Callable[[Tensor, Tensor, int], Tensor]
RELATIVE: dict[str, Rule] = {
    "relative": lambda w, a, t: update_weights_relative(w, a, t),
    "average": lambda w, a, t: update_weights_average(w, a, t),
}
ALL: dict[str, Rule] = {
    **RELATIVE,
    "additive": lambda w, a, t: update_weights(w, a),
    "fixed": lambda w, a, t: w.clone(),
}


@pytest.mark.parametrize("rule", ALL)
@SETTINGS
@given(case=cases(), seed=st.integers(0, 10_000))
def test_permuting_the_tasks_permutes_the_weights(
    rule: str, case: tuple[Tensor, Tensor, int], seed: int
) -> None:
    w, a, t = case
    perm = torch.randperm(len(w), generator=torch.Generator().manual_seed(seed))
    moved = int((perm == t).nonzero())  # the target's index after the permutation
    assert torch.equal(ALL[rule](w[perm], a[perm], moved), ALL[rule](w, a, t)[perm])


@pytest.mark.parametrize("rule", RELATIVE)
@SETTINGS
@given(case=cases(), factor=st.floats(0.1, 10.0))
def test_only_the_mix_counts_not_the_step_scale(
    rule: str, case: tuple[Tensor, Tensor, int], factor: float
) -> None:
    # α and c·α take the tasks' updates in the same proportions: same weights
    w, a, t = case
    a = a.clone()
    a[t] = max(float(a[t]), 2e-3 / factor)  # c·α_t* stays above the ramp too
    torch.testing.assert_close(RELATIVE[rule](w, factor * a, t), RELATIVE[rule](w, a, t))


@pytest.mark.parametrize("rule", RELATIVE)
@SETTINGS
@given(case=cases())
def test_the_target_keeps_its_weight_and_no_task_outweighs_it(
    rule: str, case: tuple[Tensor, Tensor, int]
) -> None:
    w, a, t = case
    w = w.clone()
    w[t] = 1.0  # the loop starts every weight at 1; the target's never moves
    new = RELATIVE[rule](w, a, t)
    assert new[t] == w[t]
    assert (new >= FLOOR).all() and (new <= w[t] + 1e-12).all()


@pytest.mark.parametrize("rule", RELATIVE)
@SETTINGS
@given(case=cases())
def test_a_rejected_target_update_leaves_the_weights(
    rule: str, case: tuple[Tensor, Tensor, int]
) -> None:
    w, a, t = case
    a = a.clone()
    a[t] = 0.5e-3  # below min_scale: the fit rejected the target's own update
    assert torch.equal(RELATIVE[rule](w, a, t), w)


@SETTINGS
@given(case=cases())
def test_additive_rule_is_line_11(case: tuple[Tensor, Tensor, int]) -> None:
    w, a, _ = case
    new = update_weights(w, a)
    pairs = zip(w.tolist(), a.tolist(), strict=True)
    expected = torch.tensor([max(wi + ai - 1.0, FLOOR) for wi, ai in pairs])
    torch.testing.assert_close(new, expected.double())
    assert torch.equal(update_weights(w, torch.ones_like(w)), w)  # α = 1 moves nothing


@SETTINGS
@given(case=cases(), step=st.floats(0.05, 1.0))
def test_average_rule_moves_each_weight_towards_the_clipped_ratio(
    case: tuple[Tensor, Tensor, int], step: float
) -> None:
    w, a, t = case
    w = w.clone()
    w[t] = 1.0
    new = update_weights_average(w, a, t, step=step)
    goal = (a / a[t]).clamp(0.0, 1.0)  # times w_t* = 1
    for i in range(len(w)):
        if i == t:
            continue
        lo, hi = sorted((float(w[i]), float(goal[i])))
        assert lo - 1e-12 <= max(float(new[i]), FLOOR) and float(new[i]) <= max(hi, FLOOR) + 1e-12
        expected = max((1 - step) * float(w[i]) + step * float(goal[i]), FLOOR)
        assert float(new[i]) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    # the goal itself is a fixed point
    settled = goal.clamp_min(FLOOR)
    assert torch.allclose(update_weights_average(settled, a, t, step=step), settled)


@SETTINGS
@given(case=cases())
def test_move_weights_is_the_named_rule(case: tuple[Tensor, Tensor, int]) -> None:
    w, a, t = case
    assert set(ALL) == set(WEIGHT_RULES)
    for rule, fn in ALL.items():
        assert torch.equal(move_weights(rule, w, a, t), fn(w, a, t))


def test_move_weights_names_the_rules_on_a_bad_one() -> None:
    w = torch.ones(2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"'mean' is not one of 'additive', 'relative', 'average'"):
        move_weights("mean", w, w, 0)


def test_the_fixed_rule_leaves_the_weights_and_returns_a_copy() -> None:
    w = torch.tensor([1.0, 0.4, 0.7], dtype=torch.float64)
    new = move_weights("fixed", w, torch.tensor([0.2, 0.0, 1.0], dtype=torch.float64), 0)
    assert torch.equal(new, w) and new.data_ptr() != w.data_ptr()


def test_loss_scales_are_the_weighted_mean_or_relative_to_the_target() -> None:
    w = {"main": 2.0, "aux": 1.0, "noise": 0.5}
    assert loss_scales(w, "main", "mean") == pytest.approx(
        {"main": 2 / 3.5, "aux": 1 / 3.5, "noise": 0.5 / 3.5}
    )
    assert loss_scales(w, "main", "target") == {"main": 1.0, "aux": 0.5, "noise": 0.25}
    assert sum(loss_scales(w, "aux", "mean").values()) == pytest.approx(1.0)


def test_loss_scales_refuse_a_bad_rule_and_a_zero_target_weight() -> None:
    with pytest.raises(ValueError, match="'sum' is not one of 'mean', 'target'"):
        loss_scales({"main": 1.0}, "main", "sum")
    with pytest.raises(ValueError, match="target's weight must be > 0"):
        loss_scales({"main": 0.0, "aux": 1.0}, "main", "target")
