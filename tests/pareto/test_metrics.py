"""IGD/IGD+ (moocore wrappers) and per-model subproblem distance on analytic fronts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alphavil.pareto.metrics import igd, igd_plus, subproblem_distance, subproblem_optima
from alphavil.pareto.problems import concave_front, convex_front, pareto_front
from alphavil.pareto.weights import evenly_spaced

pytest.importorskip("moocore")


def test_igd_plus_closed_form() -> None:
    front = np.array([[0.0, 1.0], [1.0, 0.0]])
    # (0.5, 0.5) is worse than each reference point by 0.5 in one objective only
    assert igd_plus([[0.5, 0.5]], front) == pytest.approx(0.5, abs=1e-15)
    assert igd([[0.5, 0.5]], front) == pytest.approx(np.sqrt(0.5), abs=1e-15)
    # a point that dominates every reference point has IGD+ 0 (but IGD > 0)
    assert igd_plus([[0.0, 0.0]], front) == 0.0
    assert igd([[0.0, 0.0]], front) == pytest.approx(1.0)
    # the front itself: both 0
    assert igd(front, front) == igd_plus(front, front) == 0.0


def test_igd_plus_is_a_mean_of_hand_distances() -> None:
    rng = np.random.default_rng(0)
    pts, front = rng.random((7, 3)), rng.random((11, 3))
    d = np.linalg.norm(np.maximum(pts[None, :, :] - front[:, None, :], 0.0), axis=2).min(axis=1)
    assert igd_plus(pts, front) == pytest.approx(d.mean(), rel=1e-12)


def test_igd_plus_on_the_analytic_front() -> None:
    """Points on the convex front √f1 + √f2 = 1 have IGD+ -> 0 as they cover it."""
    front = pareto_front("convex")
    on = convex_front(evenly_spaced(101)).numpy()
    shifted = on + 0.1  # every point worse by 0.1 in each objective
    assert igd_plus(on, front) < 5e-3  # the gaps between the 101 points only
    # each shifted point is worse than any front point by >= 0.1 in some objective (neither
    # dominates the other on the front), and by <= 0.1 in each beyond the unshifted distance
    assert 0.1 <= igd_plus(shifted, front) <= 0.1 * np.sqrt(2) + igd_plus(on, front)


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="same m"):
        igd_plus(np.zeros((2, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="finite"):
        igd(np.array([[np.nan, 0.0]]), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="unknown scalarization"):
        subproblem_optima(np.zeros((2, 2)), np.full((1, 2), 0.5), "pbi")


def test_linear_subproblem_optima_are_the_closed_form_on_the_convex_front() -> None:
    prefs = evenly_spaced(5).numpy()
    best, sets = subproblem_optima(pareto_front("convex"), prefs, "linear")
    expected = convex_front(torch.from_numpy(prefs)).numpy()
    for k in range(5):
        assert len(sets[k]) == 1
        np.testing.assert_allclose(sets[k][0], expected[k], atol=1e-12)
    np.testing.assert_allclose(best, (prefs * expected).sum(1), atol=1e-12)


def test_subproblem_distance_and_gap() -> None:
    prefs = evenly_spaced(5).numpy()
    opt = convex_front(torch.from_numpy(prefs)).numpy()
    dist, gap = subproblem_distance(opt, pareto_front("convex"), prefs, "linear")
    assert np.abs(dist).max() < 1e-12 and np.abs(gap).max() < 1e-12
    # swapping two models' points keeps HV and IGD+ but not the subproblem distance
    swapped = opt[[1, 0, 2, 3, 4]]
    dist, gap = subproblem_distance(swapped, pareto_front("convex"), prefs, "linear")
    np.testing.assert_allclose(dist[:2], np.linalg.norm(opt[0] - opt[1]), rtol=1e-12)
    assert (gap[:2] > 0).all() and np.abs(dist[2:]).max() < 1e-12
    # a point off the front by δ in f1: distance δ, gap λ1·δ
    off = opt.copy()
    off[2, 0] += 0.05
    dist, gap = subproblem_distance(off, pareto_front("convex"), prefs, "linear")
    assert dist[2] == pytest.approx(0.05, abs=1e-12) and gap[2] == pytest.approx(0.025)


def test_tchebycheff_optimum_is_on_the_ray_of_the_concave_front() -> None:
    """min max_i λ_i f_i over the front lies where λ_1 f_1 = λ_2 f_2 (MOEA/D)."""
    prefs = np.array([[0.3, 0.7], [0.5, 0.5]])
    _, sets = subproblem_optima(concave_front(200_001).numpy(), prefs, "tchebycheff")
    for k, s in enumerate(sets):
        f = s.mean(axis=0)
        assert prefs[k, 0] * f[0] == pytest.approx(prefs[k, 1] * f[1], rel=1e-4)
    # linear scalarisation on this (mostly) concave front: two symmetric optima near the ends
    _, sets = subproblem_optima(concave_front(2001).numpy(), np.array([[0.5, 0.5]]), "linear")
    assert len(sets[0]) == 2 and (sets[0].min(axis=1) < 0.01).all()
    np.testing.assert_allclose(sets[0][0], sets[0][1][::-1], atol=1e-12)
