from __future__ import annotations

import itertools
import math

import torch

from alphavil.pareto.pmtl import min_norm_weights, pmtl_directions, pmtl_weights
from alphavil.pareto.weights import das_dennis, evenly_spaced


def _brute_min_norm(vectors: torch.Tensor) -> float:
    """Min ‖Σ c_i v_i‖ over a fine simplex grid (3 vectors)."""
    best = math.inf
    n = 60
    for i, j in itertools.product(range(n + 1), repeat=2):
        if i + j <= n:
            c = torch.tensor([i, j, n - i - j], dtype=torch.float64) / n
            best = min(best, float((c @ vectors).norm()))
    return best


def test_min_norm_matches_brute_force() -> None:
    g = torch.Generator().manual_seed(0)
    vecs = torch.randn(4, 3, 5, generator=g, dtype=torch.float64)
    mask = torch.ones(4, 3, dtype=torch.bool)
    c = min_norm_weights(vecs @ vecs.transpose(1, 2), mask, iters=2000)
    assert torch.allclose(c.sum(1), torch.ones(4, dtype=torch.float64)) and (c >= 0).all()
    for k in range(4):
        assert float((c[k] @ vecs[k]).norm()) <= _brute_min_norm(vecs[k]) + 1e-3


def test_min_norm_respects_the_mask() -> None:
    vecs = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]], dtype=torch.float64)
    c = min_norm_weights(vecs @ vecs.transpose(1, 2), torch.tensor([[True, True, False]]))
    assert c[0, 2] == 0
    torch.testing.assert_close(c[0], torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64))
    none = min_norm_weights(vecs @ vecs.transpose(1, 2), torch.zeros(1, 3, dtype=torch.bool))
    assert (none == 0).all()


def test_directions_are_circle_points_for_two_tasks() -> None:
    u = pmtl_directions(evenly_spaced(5))
    t = torch.linspace(0, math.pi / 2, 5, dtype=torch.float64)
    torch.testing.assert_close(u, torch.stack([torch.cos(t), torch.sin(t)], 1))
    u3 = pmtl_directions(das_dennis(3, 2))
    torch.testing.assert_close(u3.norm(dim=1), torch.ones(6, dtype=torch.float64))


def test_weights_when_feasible_are_the_mgda_direction() -> None:
    prefs = evenly_spaced(3)
    losses = torch.tensor([[1.0, 1.0]] * 3, dtype=torch.float64)  # on the middle direction
    jac = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]] * 3, dtype=torch.float64)
    w, init = pmtl_weights(jac, losses, prefs)
    torch.testing.assert_close(w.abs().sum(1), torch.full((3,), 2.0, dtype=torch.float64))
    # model 1 (middle) is feasible: min-norm of {g1, g2} is 0.8 g1 + 0.2 g2
    torch.testing.assert_close(
        w[1], 2 * torch.tensor([0.8, 0.2], dtype=torch.float64), atol=1e-4, rtol=0
    )
    assert not init.any()


def test_infeasible_models_follow_the_constraint_in_the_first_phase() -> None:
    prefs = evenly_spaced(3)
    losses = torch.tensor([[1.0, 0.1]] * 3, dtype=torch.float64)  # direction near (1, 0)
    jac = torch.eye(2, dtype=torch.float64).expand(3, 2, 2)
    w, init = pmtl_weights(jac, losses, prefs, torch.ones(3, dtype=torch.bool))
    assert init.tolist() == [False, True, True]  # model 0's direction is (1, 0): feasible
    assert w[2, 0] > 0 > w[2, 1]  # model 2 wants small L1: push L1 down, accept L2 up
