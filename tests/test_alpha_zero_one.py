"""Line 9 on the dev 0-1 loss (alphavil.alpha_zero_one): the error at a mixed point, and the
grid search with its ties to the multitask step."""

from __future__ import annotations

import pytest
import torch

from alphavil.alpha_zero_one import grid_fit, target_error_value
from alphavil.data.toy import toy_model
from alphavil.deltas import mix, snapshot, stack_deltas
from alphavil.tasks import Task


def test_the_error_is_the_share_of_dev_examples_wrong_at_the_mixed_point() -> None:
    model = toy_model(dim=5, hidden=7).to(torch.float64)
    theta = snapshot(model)
    g = torch.Generator().manual_seed(2)
    deltas = stack_deltas(
        [{k: torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in theta.items()}] * 2
    )
    x = torch.randn(23, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (23,), generator=g)
    batches = [(x[:10], {"main": y[:10]}), (x[10:], {"main": y[10:]})]
    error = target_error_value(model, theta, deltas, batches, Task("main", 2))
    for alphas in ([0.0, 0.0], [1.0, 0.5], [-0.3, 2.0]):
        a = torch.tensor(alphas, dtype=torch.float64)
        point = mix(theta, deltas, a)
        out = torch.func.functional_call(model, point, (x, ["main"]))["main"]
        want = float((out.argmax(1) != y).double().mean())
        assert error(a) == pytest.approx(want, abs=1e-15)
    with pytest.raises(ValueError, match="needs a classification target"):
        target_error_value(model, theta, deltas, batches, Task("main", 1, kind="regression"))


def test_the_grid_takes_the_least_error_and_ties_go_to_the_multitask_step() -> None:
    home = torch.tensor([0.0, 1.0], dtype=torch.float64)  # (c, α_aux) of the multitask step
    seen: list[list[float]] = []

    def error(z: torch.Tensor) -> float:
        seen.append(z.tolist())
        return 0.25 if z[1] < 0.5 else 0.5  # least where α_aux < 0.5, flat elsewhere

    fit = grid_fit(error, home, points=5)
    # among the least-error points (α_aux in {0, .25}), the nearest to (0, 1) is (0, 0.25)
    assert fit.alphas.tolist() == [0.0, 0.25]
    assert (fit.final_loss, fit.start_loss) == (0.25, 0.5)
    assert fit.forward_passes == len(seen) == 5**2 + 1
    flat = grid_fit(lambda z: 0.1, home, points=3)  # every point ties: the multitask step
    assert flat.alphas.tolist() == home.tolist()
    with pytest.raises(ValueError, match="at least 2 points"):
        grid_fit(error, home, points=1)
