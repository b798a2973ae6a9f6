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
    length_scale,
    multitask_point,
    normalized_branch_objective,
    scaled_branch_objective,
    step_gram,
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


def _stacked(seed: int) -> dict[str, torch.Tensor]:
    """Stacked deltas [δ_target, δ_aux, δ_alone] (target 0): a shared layer all three move, the
    target's head (its share and branch) and the auxiliary head (the auxiliary share only)."""
    torch.manual_seed(seed)
    shared, target_head = torch.randn(3, 4, 2, dtype=torch.float64), torch.randn(3, 5)
    aux_head = torch.zeros(3, 6, dtype=torch.float64)
    target_head[1] = 0.0
    aux_head[1] = 100.0 * torch.randn(6, dtype=torch.float64)
    stats = torch.randn(3, 4, dtype=torch.float64)  # batch norm's, moved by every row
    return {
        "shared": shared,
        "head.target": target_head.double(),
        "head.aux": aux_head,
        "bn.running_mean": stats,
    }


def test_the_step_gram_leaves_out_what_the_target_does_not_move_and_statistics() -> None:
    deltas = _stacked(2)
    flat = torch.cat([deltas["shared"].reshape(3, -1), deltas["head.target"]], dim=1)
    torch.testing.assert_close(step_gram(deltas, 0), flat @ flat.T)


def test_every_normalized_step_has_the_multitask_length() -> None:
    # alphavil.step_length = "multitask": the written step Σ k F(z)_i δ_i has the multitask
    # step's norm over the parameters the target moves, whatever the mix
    deltas = _stacked(3)
    gram = step_gram(deltas, 0)
    reference = full_alphas(multitask_point(2, 0), 0)
    flat = torch.cat([deltas["shared"].reshape(3, -1), deltas["head.target"]], dim=1)
    want = torch.linalg.vector_norm(reference @ flat)
    for z in ([0.0, 1.0], [1.0, 0.0], [0.3, 0.2], [0.0, 0.0]):
        f = full_alphas(torch.tensor(z, dtype=torch.float64), 0)
        step = length_scale(f, gram, reference) * f @ flat
        torch.testing.assert_close(torch.linalg.vector_norm(step), want)
    assert float(length_scale(reference, gram, reference)) == 1.0


def test_the_normalized_objective_has_the_chain_rule_gradient() -> None:
    # float64 autograd check of z's gradient through k(z) F(z), and its value there
    f, value_and_grad = _quadratic(4)
    gram = step_gram({"w": torch.randn(4, 7, dtype=torch.float64)}, 1)  # T + 1 = 4 rows
    vg, value = normalized_branch_objective(value_and_grad, lambda x: float(f(x)), 1, gram)
    z = torch.tensor([0.4, 0.2, 0.9], dtype=torch.float64, requires_grad=True)
    fz = full_alphas(z, 1)
    reference = full_alphas(multitask_point(3, 1), 1)
    f(fz * length_scale(fz, gram, reference)).backward()
    loss, grad = vg(z.detach())
    torch.testing.assert_close(grad, z.grad)
    assert float(loss) == value(z.detach())


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
