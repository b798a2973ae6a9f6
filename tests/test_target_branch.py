"""The target branch's fit variables (:mod:`alphavil.target_branch`): the map to the stacked
deltas' factors, the chain rule, the starts and the blended optimiser state."""

from __future__ import annotations

from collections.abc import Callable

import torch

from alphavil.target_branch import (
    blend_states,
    branch_objective,
    branch_starts,
    fit_alphas,
    full_alphas,
    scaled_branch_objective,
    with_branch,
)


def test_fit_variables_map_to_the_rows_and_back() -> None:
    z = torch.tensor([0.3, 0.25, 0.8], dtype=torch.float64)  # target 1: c = 0.25
    full = full_alphas(z, 1)
    assert full.tolist() == [0.3, 0.75, 0.8, 0.25]  # target's joint share 1 - c, branch c
    assert torch.equal(fit_alphas(full, 1), z)
    assert full[1] + full[-1] == 1.0  # the target's update is always taken whole


Quadratic = tuple[
    Callable[[torch.Tensor], torch.Tensor],
    Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
]


def _quadratic(seed: int) -> Quadratic:
    """A convex quadratic in the T + 1 = 4 factors and its (value, gradient), float64."""
    torch.manual_seed(seed)
    a = torch.randn(4, 4, dtype=torch.float64)
    h, b = a @ a.T + torch.eye(4, dtype=torch.float64), torch.randn(4, dtype=torch.float64)

    def f(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x @ h @ x + b @ x

    return f, lambda x: (f(x), h @ x + b)


def test_the_objective_in_z_has_the_chain_rule_gradient() -> None:
    # z's gradient checked against autograd in float64
    f, value_and_grad = _quadratic(0)
    vg, value = branch_objective(value_and_grad, lambda x: float(f(x)), target=0)
    z = torch.tensor([0.4, 0.2, 0.9], dtype=torch.float64, requires_grad=True)
    f(full_alphas(z, 0)).backward()
    loss, grad = vg(z.detach())
    torch.testing.assert_close(grad, z.grad)
    assert float(loss) == value(z.detach())


def test_the_scaled_objective_has_the_chain_rule_gradient_and_s_1_is_the_branch() -> None:
    # alphavil.step_scale: y = [z, s] at the factors s F(z); float64 autograd check, and at
    # s = 1 the objective and z's gradient are the branch objective's
    f, value_and_grad = _quadratic(1)
    vg, value = scaled_branch_objective(value_and_grad, lambda x: float(f(x)), target=1)
    y = torch.tensor([0.4, 0.2, 0.9, 0.6], dtype=torch.float64, requires_grad=True)
    f(y[-1] * full_alphas(y[:-1], 1)).backward()
    loss, grad = vg(y.detach())
    torch.testing.assert_close(grad, y.grad)
    assert float(loss) == value(y.detach())
    branch_vg, _ = branch_objective(value_and_grad, lambda x: float(f(x)), target=1)
    z = torch.tensor([0.4, 0.2, 0.9], dtype=torch.float64)
    at_one, on_z = vg(torch.cat([z, torch.ones(1, dtype=torch.float64)])), branch_vg(z)
    torch.testing.assert_close(at_one[0], on_z[0])
    torch.testing.assert_close(at_one[1][:-1], on_z[1])


def test_the_starts_are_multitask_single_task_and_the_joint_share() -> None:
    starts = [full_alphas(s, 0).tolist() for s in branch_starts(3, 0)]
    assert starts == [
        [1.0, 1.0, 1.0, 0.0],  # the multitask step
        [0.0, 0.0, 0.0, 1.0],  # the target alone
        [1.0, 0.0, 0.0, 0.0],  # the target's share of the joint pass
    ]


def test_the_branch_row_is_appended() -> None:
    deltas = {"w": torch.zeros(2, 3), "b": torch.ones(2)}
    out = with_branch(deltas, {"w": torch.full((3,), 7.0), "b": torch.tensor(5.0)})
    assert out["w"].shape == (3, 3) and out["w"][2].tolist() == [7.0] * 3
    assert out["b"].tolist() == [1.0, 1.0, 5.0]


def test_blended_state_is_the_convex_mix_and_missing_counts_as_zero() -> None:
    joint = [torch.tensor([2.0]), None, None]
    alone = [torch.tensor([4.0]), torch.tensor([8.0]), None]
    out = blend_states(joint, alone, 0.25)
    assert out[0] is not None and out[0].item() == 2.5
    assert out[1] is not None and out[1].item() == 2.0
    assert out[2] is None
