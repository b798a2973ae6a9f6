from __future__ import annotations

import torch

from alphavil.scores import ScoreTally, TaskScore, selection_score
from alphavil.tasks import Task


def test_selection_prefers_lower_loss_and_a_zero_loss_is_best() -> None:
    assert selection_score(TaskScore(loss=0.0, accuracy=None, n=1)) == 0.0
    assert selection_score(TaskScore(loss=0.5, accuracy=None, n=1)) < 0.0
    assert selection_score(TaskScore(loss=9.0, accuracy=0.7, n=1)) == 0.7
    assert selection_score(TaskScore(loss=None, accuracy=None, n=0)) == float("-inf")


def test_tally_skips_hidden_labels_and_keeps_probabilities_over_batches() -> None:
    task = Task("a", 3)
    tally = ScoreTally({"a": task}, ["a"], keep_probs=True)
    out = [torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]), torch.tensor([[0.0, 0.0, 2.0]])]
    ys = [torch.tensor([0, -1]), torch.tensor([1])]  # -1: hidden, counted but not scored
    for o, y in zip(out, ys, strict=True):
        tally.add({"a": o}, {"a": y})
    score = tally.scores()["a"]
    assert score.n == 3 and score.accuracy == 0.5
    sums = float(task.loss_sum(out[0][:1], ys[0][:1])) + float(task.loss_sum(out[1], ys[1]))
    assert score.loss == sums / 2
    assert score.probs is not None and score.probs.shape == (3, 3)
    torch.testing.assert_close(torch.from_numpy(score.probs).sum(1), torch.ones(3))
    assert ScoreTally({"a": task}, ["a"], keep_probs=False).scores()["a"] == TaskScore(
        None, None, 0
    )
