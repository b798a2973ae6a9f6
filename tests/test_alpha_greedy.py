"""ForkMerge's greedy merge as line 9 (:mod:`alphavil.alpha_greedy`): the candidates, the
merge on closed-form scores, and the dev key against the loop's own evaluation."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from alphavil.alpha_greedy import greedy_fit, greedy_merge, merge_candidates, target_score_value
from alphavil.deltas import mix, restore
from alphavil.methods.merging import Key, score_key
from alphavil.runner import load_data
from alphavil.target_branch import full_alphas
from alphavil.training import Trainer
from tests.helpers import TOY_BUDGET, toy_config

pytestmark = pytest.mark.usefixtures("one_thread")

GRID = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


def points(cands: list[tuple[str, torch.Tensor]]) -> dict[str, list[float]]:
    return {name: z.tolist() for name, z in cands}


def test_the_candidates_take_updates_whole() -> None:
    """z = (c in the target's coordinate, α_aux): the joint pass, the target alone (c = 1),
    and with two or more auxiliaries the target's share with each one whole."""
    assert points(merge_candidates(2, 0)) == {
        "joint": [0.0, 1.0],
        "alone": [1.0, 0.0],
    }
    assert points(merge_candidates(3, 1)) == {
        "joint": [1.0, 0.0, 1.0],
        "alone": [0.0, 1.0, 0.0],
        "pair 0": [1.0, 0.0, 0.0],
        "pair 2": [0.0, 0.0, 1.0],
    }
    assert points(merge_candidates(1, 0)) == {"joint": [0.0]}


def quadratic(best: list[float]) -> Callable[[torch.Tensor], Key]:
    """A score peaked at ``best`` (minus the squared distance), as a one-element key."""
    peak = torch.tensor(best, dtype=torch.float64)

    def score(z: torch.Tensor) -> Key:
        return (-float(((z - peak) ** 2).sum()),)

    return score


def test_the_best_candidate_is_kept_whole_when_no_addition_helps() -> None:
    cands = merge_candidates(2, 0)
    z, record = greedy_merge(quadratic([1.0, 0.0]), cands, GRID)  # the target alone
    assert z.tolist() == [1.0, 0.0]
    assert record["ranking"] == ["alone", "joint"] and record["lambdas"] == [1.0, 0.0]
    assert record["score_calls"] == 2 + 5  # each candidate, then the grid without 0


def test_the_merge_takes_the_grid_value_of_the_best_convex_mix() -> None:
    """With the peak at z = (0.4, 0.6) = (1·joint + (2/3)·alone) / (5/3) only a = 0.6 of the
    grid hits it (λ_alone = a · 1): the merge lands exactly there."""
    cands = merge_candidates(2, 0)
    z, record = greedy_merge(quadratic([0.375, 0.625]), cands, GRID)
    assert record["ranking"] == ["joint", "alone"]
    assert record["lambdas"] == [1.0, 0.6]
    torch.testing.assert_close(z, torch.tensor([0.375, 0.625], dtype=torch.float64))


def test_each_next_lambda_is_a_times_the_mean_so_far() -> None:
    """Three candidates: the second added at a = 1 (λ = 1), the third at a = 0.6 of
    mean(1, 1)."""
    cands = [(n, torch.tensor(v, dtype=torch.float64)) for n, v in
             [("a", [1.0, 0.0, 0.0]), ("b", [0.0, 1.0, 0.0]), ("c", [0.0, 0.0, 1.0])]]  # fmt: skip
    target = torch.tensor([1.0, 1.0, 0.6], dtype=torch.float64) / 2.6  # λ = 1, 1, 0.6
    z, record = greedy_merge(quadratic(target.tolist()), cands, GRID)
    assert record["lambdas"] == pytest.approx([1.0, 1.0, 0.6])
    torch.testing.assert_close(z, target)


def test_ties_keep_the_given_order_and_the_merge_so_far() -> None:
    cands = merge_candidates(2, 0)
    z, record = greedy_merge(lambda z: (0.5, -1.0), cands, GRID)  # every point scores the same
    assert record["ranking"] == ["joint", "alone"] and z.tolist() == [0.0, 1.0]


def test_greedy_fit_reports_the_dev_losses_at_the_joint_pass_and_the_merge() -> None:
    cands = merge_candidates(2, 0)

    def score(z: torch.Tensor) -> Key:
        return (float(z[0]), -(1.0 + float(z[0])))  # accuracy and loss both rise with c

    fit, record = greedy_fit(score, cands, GRID)
    assert fit.alphas.tolist() == [1.0, 0.0]
    assert fit.start_loss == 1.0 and fit.final_loss == 2.0
    assert fit.forward_passes == 2 * record["score_calls"]


def dev_key(
    tmp_path: Path,
) -> tuple[
    Trainer, dict[str, torch.Tensor], dict[str, torch.Tensor], Callable[[torch.Tensor], Key]
]:
    """A toy αVIL loop's first epoch: the loop, θ, the stacked deltas and the target's dev key
    as a function of the factors of every row of the deltas (T + 1 rows: one joint scale)."""
    one_scale = "alphavil.second_scale=none"
    cfg = toy_config(tmp_path, *TOY_BUDGET, "train.method=alphavil", "train.threads=1", one_scale)
    data, make_model = load_data(cfg)
    torch.manual_seed(0)
    loop = Trainer(cfg, data, make_model())
    theta, deltas, _ = loop.method.collect_deltas()  # type: ignore[attr-defined]
    dev = loop.method.alpha_dev_batches()  # type: ignore[attr-defined]
    key = target_score_value(loop.model, theta, deltas, dev, loop.task_map[loop.target])
    return loop, theta, deltas, key


def test_the_dev_key_is_the_loops_selection_key(tmp_path: Path) -> None:
    """At several points of z the key equals (accuracy, −loss) of the loop's own dev
    evaluation of the model written there."""
    loop, theta, deltas, key = dev_key(tmp_path)
    target = loop.tasks.index(loop.target)
    n = len(loop.tasks)
    for z in [torch.zeros(n), torch.ones(n), torch.linspace(0.2, 0.9, n)]:
        full = full_alphas(z.double(), target)
        restore(loop.model, mix(theta, deltas, full))
        want = score_key(loop.evaluate("dev", [loop.target])[loop.target], "accuracy")
        got = key(full)
        assert got[0] == pytest.approx(want[0], abs=1e-12)
        assert got[1] == pytest.approx(want[1], rel=1e-5)


def test_a_diverged_point_loses_to_every_finite_one(tmp_path: Path) -> None:
    _, _, deltas, key = dev_key(tmp_path)
    rows = next(iter(deltas.values())).shape[0]
    huge = torch.full((rows,), 1e30, dtype=torch.float64)
    assert key(huge) == (-math.inf, -math.inf)
    assert key(huge) < key(torch.zeros(rows, dtype=torch.float64))
