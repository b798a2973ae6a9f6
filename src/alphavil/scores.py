"""Task scores on a split: :class:`TaskScore`, the sums over evaluation batches that make them
(:class:`ScoreTally`), and the score a task's best snapshot is chosen by
(:func:`selection_score`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from alphavil.tasks import Task

__all__ = ["ScoreTally", "TaskScore", "selection_score"]


@dataclass
class TaskScore:
    """Loss and accuracy of one task on one split (``None`` where labels are hidden)."""

    loss: float | None
    accuracy: float | None
    n: int
    probs: np.ndarray | None = None


class ScoreTally:
    """Per task, over the batches of one evaluation pass: the loss sum, correct predictions and
    labelled examples (labels < 0, hidden, are skipped), every example, and with
    ``keep_probs`` a classification task's class probabilities."""

    def __init__(self, task_map: Mapping[str, Task], tasks: list[str], keep_probs: bool) -> None:
        self.task_map, self.keep_probs = task_map, keep_probs
        self.sums = {t: [0.0, 0, 0] for t in tasks}  # loss sum, correct, labelled count
        self.probs: dict[str, list[Tensor]] = {t: [] for t in tasks}
        self.counts = dict.fromkeys(tasks, 0)

    def add(self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> None:
        """Add one batch: the model's outputs and the targets, per task."""
        sums, probs, counts = self.sums, self.probs, self.counts
        for t, y in targets.items():
            task, out = self.task_map[t], outputs[t]
            counts[t] += len(y)
            if self.keep_probs and task.kind == "classification":
                probs[t].append(out.float().softmax(-1).cpu())
            labelled = task.kind == "classification"
            mask = y >= 0 if labelled else torch.ones_like(y, dtype=torch.bool)
            if mask.any():
                sums[t][0] += float(task.loss_sum(out[mask], y[mask]))
                sums[t][2] += int(mask.sum())
                if task.kind == "classification":
                    sums[t][1] += int(task.correct(out[mask], y[mask]))

    def scores(self) -> dict[str, TaskScore]:
        """Mean loss and accuracy per task (``None`` without labelled examples)."""
        scores = {}
        for t, (loss_sum, correct, n) in self.sums.items():
            cls = self.task_map[t].kind == "classification"
            scores[t] = TaskScore(
                loss=loss_sum / n if n else None,
                accuracy=correct / n if (n and cls) else None,
                n=self.counts[t],
                probs=torch.cat(self.probs[t]).numpy() if self.probs[t] else None,
            )
        return scores


def selection_score(score: TaskScore) -> float:
    """Higher is better: accuracy, or minus the loss for regression (a loss of 0 is the best)."""
    if score.accuracy is not None:
        return score.accuracy
    return -score.loss if score.loss is not None else -math.inf
