from __future__ import annotations

import torch

from alphavil.pareto.hypervolume import nondominated_mask
from alphavil.pareto.problems import (
    SPEC,
    SyntheticConfig,
    concave_front,
    convex_front,
    convex_optimum,
    objectives,
)
from alphavil.pareto.scalarize import linear
from alphavil.pareto.weights import evenly_spaced


def test_convex_optimum_is_stationary_for_linear_scalarisation() -> None:
    prefs = evenly_spaced(7)
    x = convex_optimum(prefs, 6).requires_grad_(True)
    f = objectives(x, "convex")  # (K, 2)
    (grad,) = torch.autograd.grad(linear(f, prefs).sum(), x)
    assert grad.abs().max() < 1e-12
    torch.testing.assert_close(f.detach(), convex_front(prefs))


def test_fronts_are_non_dominated() -> None:
    assert nondominated_mask(convex_front(evenly_spaced(9)).numpy()).all()
    assert nondominated_mask(concave_front(21).numpy()).all()
    ends = objectives(torch.stack(list(convex_optimum(evenly_spaced(2), 4))), "concave")
    torch.testing.assert_close(ends, concave_front(2))


def test_synthetic_spec_builds_point_models() -> None:
    data, make_model = SPEC.build(SyntheticConfig(problem="concave", dim=5, steps_per_epoch=3))
    assert data.num_examples("train", "f1") == 3
    model = make_model()
    out = model(torch.zeros(2, 1))
    assert out["f1"].shape == (2, 1)
    torch.testing.assert_close(out["f2"][0, 0], objectives(model.x, "concave")[1])
    task = data.tasks[0]
    assert task.loss(out["f1"], torch.zeros(2)) == out["f1"][0, 0]
