"""Cross-validated shrinkage of the α fit toward the multitask step (:mod:`alphavil.alpha_shrink`
and :func:`alphavil.methods.alphavil_fit.shrunk_fit`): closed forms on quadratic dev losses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import torch
from torch import Tensor

from alphavil.alpha_shrink import (
    best_strength,
    fold_losses,
    folds,
    held_out_curve,
    shrink,
    standard_errors,
)
from alphavil.methods.alphavil_fit import shrunk_fit, solve_line9
from alphavil.methods.alphavil_options import AlphaVILConfig
from alphavil.schema import ConfigError
from alphavil.target_branch import multitask_point

GRID = [0.0, 0.25, 0.5, 0.75, 1.0]


def test_shrink_is_the_point_that_fraction_of_the_way_to_the_fit() -> None:
    ref = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)
    fit = torch.tensor([0.6, 0.2, 1.0], dtype=torch.float64)
    assert torch.equal(shrink(ref, fit, 0.0), ref)
    assert torch.equal(shrink(ref, fit, 1.0), fit)
    assert torch.allclose(
        shrink(ref, fit, 0.25), torch.tensor([0.15, 0.8, 1.0], dtype=torch.float64)
    )


def test_folds_deal_the_chunks_and_drop_empty_folds() -> None:
    assert folds(7, 3) == [[0, 3, 6], [1, 4], [2, 5]]
    assert folds(2, 5) == [[0], [1]]
    assert sorted(i for f in folds(23, 5) for i in f) == list(range(23))


def test_the_held_out_curve_is_the_size_weighted_mean_of_the_fold_losses() -> None:
    ref = torch.zeros(1, dtype=torch.float64)
    fits = [torch.tensor([1.0], dtype=torch.float64), torch.tensor([3.0], dtype=torch.float64)]
    centres, sizes = [2.0, -1.0], [3, 1]
    losses = [lambda z, c=c: float((z[0] - c) ** 2) for c in centres]
    curve = held_out_curve(fold_losses(ref, fits, losses, GRID), sizes)
    for lam, got in zip(GRID, curve, strict=True):
        want = (3 * (lam * 1.0 - 2.0) ** 2 + 1 * (lam * 3.0 + 1.0) ** 2) / 4
        assert got == pytest.approx(want, abs=1e-12)
    # d/dλ of 3(λ − 2)² + (3λ + 1)² = 24λ − 6 = 0 at λ = 0.25: on the grid, its best
    assert best_strength(GRID, curve) == 0.25


def test_ties_and_non_finite_losses_go_to_the_multitask_step() -> None:
    assert best_strength([1.0, 0.5, 0.0], [2.0, 2.0, 2.0]) == 0.0
    assert best_strength([0.0, 1.0], [float("inf"), float("inf")]) == 0.0
    ref = torch.zeros(1, dtype=torch.float64)
    per_fold = fold_losses(
        ref, [torch.ones(1, dtype=torch.float64)], [lambda z: float("nan") if z[0] > 0 else 1.0],
        [0.0, 1.0],
    )  # fmt: skip
    assert per_fold == [[1.0], [float("inf")]]
    assert held_out_curve(per_fold, [4]) == [1.0, float("inf")]
    with pytest.raises(ValueError, match="one fit and loss per fold"):
        fold_losses(ref, [], [], GRID)


def test_the_one_standard_error_rule_takes_the_smallest_strength_within_one_se() -> None:
    """Fold losses by strength (rows) and fold (columns): the minimum at λ = 1 (mean 1.0,
    sd over the folds 0.2, SE 0.2 / √4 = 0.1); λ = 0.5 (mean 1.08) is within it, λ = 0 (1.2)
    is not."""
    per_fold = [[1.2, 1.2, 1.2, 1.2], [1.08, 1.08, 1.08, 1.08], [0.8, 1.2, 0.8, 1.2]]
    grid = [0.0, 0.5, 1.0]
    curve = held_out_curve(per_fold, [5, 5, 5, 5])
    se = standard_errors(per_fold)
    sd = (4 * 0.2**2 / 3) ** 0.5
    assert se == pytest.approx([0.0, 0.0, sd / 2], abs=1e-12)
    assert best_strength(grid, curve) == 1.0
    assert best_strength(grid, curve, se) == 0.5
    assert standard_errors([[1.0], [1.0, float("inf")]]) == [float("inf"), float("inf")]


def quadratic(points: Tensor) -> Any:
    """``objective(chunks)`` for :func:`shrunk_fit`: the mean of ‖α − p_i‖² over the examples
    i of the chunks, each chunk ``(indices, {"y": indices})`` of rows of ``points``."""

    def objective(chunks: Sequence[Any]) -> Any:
        idx = torch.cat([c[0] for c in chunks])
        p = points[idx]

        def vg(a: Tensor) -> tuple[Tensor, Tensor]:
            d = a.double() - p
            return (d**2).sum(1).mean(), 2 * d.mean(0)

        return vg, lambda a: float(vg(a)[0]), None

    return objective


def chunks_of(n: int, size: int) -> list[Any]:
    return [(torch.arange(i, min(i + size, n)), {"y": torch.arange(i, min(i + size, n))})
            for i in range(0, n, size)]  # fmt: skip


def test_without_the_branch_the_strength_is_the_grid_point_of_least_held_out_loss() -> None:
    """Two tasks, target α fixed at 1 by the box fit: each fold's fit is the mean of its other
    examples' auxiliary coordinate (clipped to [0, 1]), computed here by hand."""
    av = AlphaVILConfig()
    torch.manual_seed(0)
    aux = torch.rand(20, dtype=torch.float64)
    points = torch.stack([torch.ones(20, dtype=torch.float64), aux], 1)
    chunks = chunks_of(20, 4)
    fold_chunks = [[chunks[i] for i in f] for f in folds(len(chunks), 5)]
    objective = quadratic(points)
    vg, value, _ = objective(chunks)
    fit = solve_line9(av, vg, value, 2, 0, branching=False, grad_hess=lambda: None)
    assert float(fit.alphas[1]) == pytest.approx(float(aux.mean()), abs=1e-5)
    written, info = shrunk_fit(av, fit, fold_chunks, objective, 2, 0, branching=False)
    curve = []
    for lam in GRID:  # by hand: the fold fit is the mean of the other 16 examples
        total = 0.0
        for k in range(5):
            rest = torch.cat([aux[: 4 * k], aux[4 * k + 4 :]]).mean()
            z = 1 + lam * (rest - 1)
            total += float(((z - aux[4 * k : 4 * k + 4]) ** 2).sum())
        curve.append(total / 20)
    assert list(info["held_out_loss"].values()) == pytest.approx(curve, abs=1e-8)
    lam = GRID[min(range(len(GRID)), key=curve.__getitem__)]
    assert info["strength"] == lam and info["fold_sizes"] == [4] * 5
    assert written[0] == 1.0
    assert float(written[1]) == pytest.approx(1 + lam * (float(fit.alphas[1]) - 1), abs=1e-12)


@pytest.mark.parametrize("branching", [False, True], ids=["no-branch", "branch"])
def test_a_fit_every_fold_repeats_is_kept_and_pure_noise_is_dropped(branching: bool) -> None:
    """Every example wanting the same point: the folds' fits agree, λ = 1 and the fit is
    written as it is. Examples scattered symmetrically about the multitask step: each fold's
    fit leans away from its own examples, λ = 0 keeps the multitask step."""
    av = AlphaVILConfig()
    n, target = 3, 0
    ref = multitask_point(n, target, branching=branching)
    rows = n + 1 if branching else n
    want = torch.tensor([1.0, 0.3, 0.6, 0.0][:rows], dtype=torch.float64)  # c = 0 with branch
    chunks = chunks_of(10, 2)
    fold_chunks = [[chunks[i] for i in f] for f in folds(len(chunks), 5)]
    objective = quadratic(want.expand(10, rows).clone())
    vg, value, _ = objective(chunks)
    fit = solve_line9(av, vg, value, n, target, branching=branching, grad_hess=lambda: None)
    written, info = shrunk_fit(av, fit, fold_chunks, objective, n, target, branching=branching)
    assert info["strength"] == 1.0 and torch.equal(written, fit.alphas.double())
    assert not torch.allclose(written, ref)
    # noise: example i wants the multitask point plus ±0.4 on the auxiliary coordinates
    full_ref = torch.cat(
        [torch.ones(n, dtype=torch.float64), torch.zeros(rows - n, dtype=torch.float64)]
    )
    signs = torch.tensor([1.0, -1.0] * 5, dtype=torch.float64)
    noisy = full_ref.expand(10, rows).clone()
    noisy[:, 1:n] += 0.4 * signs[:, None] * torch.tensor([1.0, -1.0][: n - 1], dtype=torch.float64)
    objective = quadratic(noisy[torch.tensor([0, 2, 1, 3, 4, 6, 5, 7, 8, 9])])
    vg, value, _ = objective(chunks)
    fit = solve_line9(av, vg, value, n, target, branching=branching, grad_hess=lambda: None)
    written, info = shrunk_fit(av, fit, fold_chunks, objective, n, target, branching=branching)
    assert info["strength"] == 0.0 and torch.equal(written, ref)


def test_one_dev_fold_is_a_one_line_refusal() -> None:
    av = AlphaVILConfig()
    objective = quadratic(torch.ones(1, 2, dtype=torch.float64))
    vg, value, _ = objective(chunks_of(1, 1))
    fit = solve_line9(av, vg, value, 2, 0, branching=False, grad_hess=lambda: None)
    with pytest.raises(ConfigError, match=r"^alphavil\.shrink_folds: the dev set gives 1 fold"):
        shrunk_fit(av, fit, [chunks_of(1, 1)], objective, 2, 0, branching=False)
