from __future__ import annotations

import numpy as np
import pytest
import torch

from alphavil.pareto.hypervolume import nondominated_mask
from alphavil.pareto.problems import (
    SPEC,
    PointModel,
    SyntheticConfig,
    concave_front,
    convex_front,
    convex_optimum,
    default_dim,
    objectives,
    pareto_front,
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


@pytest.mark.parametrize("problem", ["zdt1", "zdt2", "zdt3"])
def test_zdt_optimal_set_maps_onto_the_analytic_front(problem: str) -> None:
    """x_1 = t, x_{2..n} = 0 (g = 1) gives (t, h(t)); the sampled front is non-dominated."""
    t = torch.linspace(0, 1, 20_001, dtype=torch.float64)  # the front's own parameter grid
    x = torch.cat([t[:, None], torch.zeros(20_001, 29, dtype=torch.float64)], dim=1)
    f = objectives(x, problem).numpy()
    front = pareto_front(problem)
    assert nondominated_mask(front).all()
    # every front point is attained by the g = 1 point with the same x_1 (up to the 1e-3 of
    # the smoothed square root)
    idx = np.rint(front[:, 0] * 20_000).astype(int)
    np.testing.assert_allclose(f[idx], front, atol=1.1e-3)
    assert len(front) == (20_001 if problem != "zdt3" else len(front)) and len(front) > 1000
    if problem == "zdt3":
        assert front[:, 1].min() < -0.7 and front[:, 0].max() < 0.86  # disconnected pieces
    # g > 1 is dominated by g = 1 at the same x_1
    worse = x.clone()
    worse[:, 1] = 0.5
    assert (objectives(worse, problem)[:, 1] > objectives(x, problem)[:, 1] - 1e-12).all()


@pytest.mark.parametrize("problem", ["dtlz1", "dtlz2"])
def test_dtlz_optimal_set_maps_onto_the_analytic_front(problem: str) -> None:
    g = torch.Generator().manual_seed(0)
    head = torch.rand(50, 2, generator=g, dtype=torch.float64)
    tail = torch.full((50, default_dim(problem) - 2), 0.5, dtype=torch.float64)  # g = 0
    f = objectives(torch.cat([head, tail], 1), problem).numpy()
    if problem == "dtlz1":
        np.testing.assert_allclose(f.sum(1), 0.5, atol=1e-12)
        np.testing.assert_allclose(pareto_front(problem).sum(1), 0.5, atol=1e-12)
    else:
        np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-12)
        np.testing.assert_allclose(np.linalg.norm(pareto_front(problem), axis=1), 1.0)
    assert (f >= 0).all() and nondominated_mask(pareto_front(problem, resolution=20)).all()
    # off the optimal set every objective grows by the factor (1 + g)
    off = torch.cat([head, tail + 0.1], 1)
    assert (objectives(off, problem).numpy() >= f - 1e-12).all()


def test_box_problems_build_with_defaults_and_reject_bad_dims() -> None:
    data, make_model = SPEC.build(SyntheticConfig(problem="dtlz2", dim=0, n_objectives=3))
    assert [t.name for t in data.tasks] == ["f1", "f2", "f3"]
    model = make_model()
    assert model.x.shape == (12,) and model.box == (0.0, 1.0)
    assert ((model.x >= 0) & (model.x <= 1)).all()
    with pytest.raises(ValueError, match="needs dim"):
        PointModel(2, "dtlz1", n_obj=3)
    with pytest.raises(ValueError, match="unknown problem"):
        objectives(torch.zeros(3), "zdt4")
