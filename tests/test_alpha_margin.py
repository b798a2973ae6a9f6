"""The greedy merge's dev-noise margin (:mod:`alphavil.alpha_margin`): McNemar's rule in closed
form, its place in the merge's ranking, and the discordant counts against the loop's own dev
evaluation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from alphavil.alpha_greedy import greedy_merge, merge_candidates
from alphavil.alpha_margin import beats, discordance_value
from alphavil.deltas import mix, restore
from alphavil.methods.merging import Key
from alphavil.runner import load_data
from alphavil.target_branch import full_alphas
from alphavil.tasks import Task
from alphavil.training import Trainer
from tests.helpers import TOY_BUDGET, toy_config

pytestmark = pytest.mark.usefixtures("one_thread")

GRID = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


@pytest.mark.parametrize(
    ("gains", "losses", "z", "want"),
    [
        (5, 0, 1.0, True),  # 5 > √5
        (3, 1, 1.0, False),  # 2 = √4: not more
        (3, 1, 0.99, True),
        (10, 4, 1.96, False),  # 6 < 1.96 √14 = 7.33
        (12, 2, 1.96, True),  # 10 > 7.33
        (0, 0, 0.0, False),  # a tie is no evidence
        (1, 0, 0.0, True),
    ],
)
def test_beats_is_mcnemars_rule(gains: int, losses: int, z: float, want: bool) -> None:
    assert beats(gains, losses, z) is want


def test_negative_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="discordant counts must be >= 0"):
        beats(-1, 2, 1.0)


def alone_scores_higher(z: torch.Tensor) -> Key:
    """The target alone (c = 1) scores one point of accuracy above the joint pass."""
    return (0.9 + 0.01 * float(z[0]), 0.0)


def fixed(counts: tuple[int, int]) -> Callable[[torch.Tensor], tuple[int, int]]:
    return lambda z: counts


def test_without_evidence_the_joint_pass_leads() -> None:
    cands = merge_candidates(2, 0)
    _, plain = greedy_merge(alone_scores_higher, cands, GRID)
    assert plain["ranking"][0] == "alone" and "margin" not in plain
    _, kept = greedy_merge(alone_scores_higher, cands, GRID, fixed((3, 1)), 1.0)
    assert kept["ranking"] == ["joint", "alone"]
    assert kept["margin"] == {"candidate": "alone", "gains": 3, "losses": 1, "beats": False}
    _, won = greedy_merge(alone_scores_higher, cands, GRID, fixed((5, 0)), 1.0)
    assert won["ranking"] == ["alone", "joint"] and won["margin"]["beats"] is True


def test_the_margin_reorders_only_the_lead() -> None:
    """Three auxiliaries' worth of candidates: the test demotes the best-scored one behind the
    joint pass and leaves the others in score order."""
    cands = merge_candidates(3, 0)  # joint, alone, pair 1, pair 2
    order = {"joint": 0.0, "alone": 0.3, "pair 1": 0.1, "pair 2": 0.2}
    names = {tuple(z.tolist()): n for n, z in cands}

    def score(z: torch.Tensor) -> Key:
        name = names.get(tuple(z.tolist()))
        return (order[name] if name else -1.0,)  # every mix scores below every candidate

    _, record = greedy_merge(score, cands, GRID, fixed((0, 0)), 1.0)
    assert record["ranking"] == ["joint", "alone", "pair 2", "pair 1"]


def test_the_margin_is_not_asked_when_the_joint_pass_leads() -> None:
    def never(z: torch.Tensor) -> tuple[int, int]:
        raise AssertionError("asked")

    cands = merge_candidates(2, 0)
    _, record = greedy_merge(lambda z: (1.0 - float(z[0]),), cands, GRID, never, 1.0)
    assert record["ranking"][0] == "joint" and "margin" not in record


def toy_loop(tmp_path: Path) -> tuple[Trainer, dict, dict, list, Task]:
    """A toy αVIL loop's first epoch with one joint scale (T + 1 rows of deltas)."""
    cfg = toy_config(
        tmp_path,
        *TOY_BUDGET,
        "data.budget.dev=96",
        "train.method=alphavil",
        "train.threads=1",
        "alphavil.second_scale=none",
    )
    data, make_model = load_data(cfg)
    torch.manual_seed(0)
    loop = Trainer(cfg, data, make_model())
    theta, deltas, _ = loop.method.collect_deltas()  # type: ignore[attr-defined]
    dev = list(loop.method.alpha_dev_batches())  # type: ignore[attr-defined]
    return loop, theta, deltas, dev, loop.task_map[loop.target]


def test_the_counts_agree_with_the_loops_dev_accuracy(tmp_path: Path) -> None:
    """g − l is the difference in correct dev examples the loop's own evaluation sees between
    the two written models, g + l at most the dev set, and a point against itself (0, 0)."""
    loop, theta, deltas, dev, task = toy_loop(tmp_path)
    target, n = loop.tasks.index(loop.target), len(loop.tasks)
    reference = full_alphas(torch.ones(n, dtype=torch.float64), target)
    counts = discordance_value(loop.model, theta, deltas, dev, task, reference)
    size = sum(len(y[task.name]) for _, y in dev)

    def correct(factors: torch.Tensor) -> float:
        restore(loop.model, mix(theta, deltas, factors))
        accuracy = loop.evaluate("dev", [loop.target])[loop.target].accuracy
        assert accuracy is not None
        return accuracy * size

    at_ref = correct(reference)
    assert counts(reference) == (0, 0)
    seen = set()
    for z in [torch.zeros(n), torch.full((n,), -3.0), torch.full((n,), 6.0)]:
        full = full_alphas(z.double(), target)
        g, lost = counts(full)
        assert 0 <= g + lost <= size
        assert g - lost == pytest.approx(correct(full) - at_ref, abs=1e-9)
        seen.add(g - lost)
    assert len(seen) > 1  # the points differ on dev: the counts are not all ties


def test_dev_batches_in_another_order_are_refused(tmp_path: Path) -> None:
    loop, theta, deltas, dev, task = toy_loop(tmp_path)
    calls = iter([dev, dev + dev])
    counts = discordance_value(loop.model, theta, deltas, lambda: next(calls), task,
                               torch.ones(len(loop.tasks) + 1, dtype=torch.float64))  # fmt: skip
    with pytest.raises(RuntimeError, match="dev batches changed between calls"):
        counts(torch.zeros(len(loop.tasks) + 1, dtype=torch.float64))


def test_a_regression_target_is_refused() -> None:
    task = Task("y", 1, "regression")
    with pytest.raises(ValueError, match="needs a classification target, 'y' is regression"):
        discordance_value(torch.nn.Linear(1, 1), {}, {}, [], task, torch.ones(1))
