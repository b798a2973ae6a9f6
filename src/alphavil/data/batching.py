"""Multitask datasets as batch streams: the one interface the training loop reads.

Two layouts cover the paper's two studies:

* :class:`SharedInputData`: every example carries a label for every task (MultiMNIST: one image,
  a left and a right digit). One forward pass serves all tasks.
* :class:`SeparateInputData`: each task has its own examples (the NLU study: CB, COPA, MRPC, ...).
  A training stream interleaves single-task batches in random order.

A batch is ``(inputs, {task: targets})``; the targets dict names the tasks the batch serves.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from alphavil.tasks import Task

Batch = tuple[Any, dict[str, Tensor]]
SPLITS = ("train", "dev", "test")


def _check_fraction(fraction: float) -> None:
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")


def _sample(n: int, fraction: float, generator: torch.Generator | None) -> Tensor:
    """A random ``fraction`` of ``range(n)`` in random order (all of it, in order, if no rng)."""
    if generator is None and fraction == 1.0:
        return torch.arange(n)
    k = max(1, round(fraction * n))
    return torch.randperm(n, generator=generator)[:k]


class MultiTaskData(ABC):
    """Train, dev and test data for a set of tasks."""

    tasks: tuple[Task, ...]

    @property
    def task_map(self) -> dict[str, Task]:
        """Task name -> :class:`Task`."""
        return {t.name: t for t in self.tasks}

    def check_tasks(self, names: Sequence[str]) -> None:
        """Raise ``KeyError`` naming the allowed tasks if any name is unknown."""
        known = [t.name for t in self.tasks]
        bad = [n for n in names if n not in known]
        if bad:
            raise KeyError(f"unknown task(s) {bad}; the data has {known}")

    @abstractmethod
    def train_batches(
        self,
        tasks: Sequence[str],
        *,
        batch_size: int,
        generator: torch.Generator,
        fraction: float = 1.0,
    ) -> Iterator[Batch]:
        """One shuffled pass over a random ``fraction`` of the training data of ``tasks``."""

    @abstractmethod
    def eval_batches(
        self,
        split: str,
        tasks: Sequence[str],
        *,
        batch_size: int,
        fraction: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Iterator[Batch]:
        """Batches covering ``split`` for ``tasks`` (a random ``fraction`` given a generator)."""

    @abstractmethod
    def num_examples(self, split: str, task: str) -> int:
        """Number of examples of ``task`` in ``split``."""


class SharedInputData(MultiTaskData):
    """In-memory tensors where each input has a target for every task.

    Args:
        tasks: The tasks.
        inputs: split -> input tensor ``(N, ...)`` for "train", "dev" and "test".
        targets: split -> task -> targets ``(N,)``.
    """

    def __init__(
        self,
        tasks: Sequence[Task],
        inputs: Mapping[str, Tensor],
        targets: Mapping[str, Mapping[str, Tensor]],
    ) -> None:
        self.tasks = tuple(tasks)
        self.inputs = dict(inputs)
        self.targets = {s: dict(v) for s, v in targets.items()}
        for split in SPLITS:
            if split not in self.inputs:
                raise ValueError(f"missing split {split!r}; SharedInputData needs {SPLITS}")
            n = len(self.inputs[split])
            for t in self.tasks:
                y = self.targets[split].get(t.name)
                if y is None or len(y) != n:
                    raise ValueError(f"split {split!r}: task {t.name!r} needs {n} targets")

    def num_examples(self, split: str, task: str) -> int:
        self.check_tasks([task])
        return len(self.inputs[split])

    def _batches(
        self, split: str, tasks: Sequence[str], order: Tensor, batch_size: int
    ) -> Iterator[Batch]:
        self.check_tasks(tasks)
        x, ys = self.inputs[split], self.targets[split]
        contiguous = bool(torch.equal(order, torch.arange(len(order)))) and len(order) == len(x)
        for start in range(0, len(order), batch_size):
            if contiguous:  # slicing is a view: no gather cost for evaluation passes
                sl = slice(start, start + batch_size)
                yield x[sl], {t: ys[t][sl] for t in tasks}
            else:
                idx = order[start : start + batch_size]
                yield x[idx], {t: ys[t][idx] for t in tasks}

    def train_batches(
        self,
        tasks: Sequence[str],
        *,
        batch_size: int,
        generator: torch.Generator,
        fraction: float = 1.0,
    ) -> Iterator[Batch]:
        _check_fraction(fraction)
        order = _sample(len(self.inputs["train"]), fraction, generator)
        return self._batches("train", tasks, order, batch_size)

    def eval_batches(
        self,
        split: str,
        tasks: Sequence[str],
        *,
        batch_size: int,
        fraction: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Iterator[Batch]:
        _check_fraction(fraction)
        order = _sample(len(self.inputs[split]), fraction, generator)
        return self._batches(split, tasks, order, batch_size)


class SeparateInputData(MultiTaskData):
    """Per-task example lists, batched with a collate function (dynamic padding for text).

    Args:
        tasks: The tasks.
        examples: task -> split -> list of model-input examples (e.g. token id lists).
        labels: task -> split -> targets ``(N,)``; a split without labels (hidden test labels)
            may hold ``-1`` everywhere.
        collate: Turns a list of examples into model inputs.
    """

    def __init__(
        self,
        tasks: Sequence[Task],
        examples: Mapping[str, Mapping[str, Sequence[Any]]],
        labels: Mapping[str, Mapping[str, Tensor]],
        collate: Callable[[list[Any]], Any],
    ) -> None:
        self.tasks = tuple(tasks)
        self.examples = {t: dict(v) for t, v in examples.items()}
        self.labels = {t: dict(v) for t, v in labels.items()}
        self.collate = collate
        for t in self.tasks:
            for split, xs in self.examples[t.name].items():
                if len(self.labels[t.name][split]) != len(xs):
                    raise ValueError(f"task {t.name!r} split {split!r}: examples and labels differ")

    def num_examples(self, split: str, task: str) -> int:
        self.check_tasks([task])
        return len(self.examples[task].get(split, ()))

    def _task_batches(self, task: str, split: str, order: Tensor, batch_size: int) -> list[Tensor]:
        del task, split
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]

    def _make(self, task: str, split: str, idx: Tensor) -> Batch:
        xs = self.examples[task][split]
        inputs = self.collate([xs[int(i)] for i in idx])
        return inputs, {task: self.labels[task][split][idx]}

    def train_batches(
        self,
        tasks: Sequence[str],
        *,
        batch_size: int,
        generator: torch.Generator,
        fraction: float = 1.0,
    ) -> Iterator[Batch]:
        _check_fraction(fraction)
        self.check_tasks(tasks)
        plan: list[tuple[str, Tensor]] = []
        for t in tasks:
            order = _sample(self.num_examples("train", t), fraction, generator)
            plan += [(t, idx) for idx in self._task_batches(t, "train", order, batch_size)]
        for j in torch.randperm(len(plan), generator=generator).tolist():
            task, idx = plan[j]
            yield self._make(task, "train", idx)

    def eval_batches(
        self,
        split: str,
        tasks: Sequence[str],
        *,
        batch_size: int,
        fraction: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Iterator[Batch]:
        _check_fraction(fraction)
        self.check_tasks(tasks)
        for t in tasks:
            order = _sample(self.num_examples(split, t), fraction, generator)
            for idx in self._task_batches(t, split, order, batch_size):
                yield self._make(t, split, idx)


def move_to(obj: Any, device: torch.device) -> Any:
    """Move a tensor, or a dict/list/tuple of tensors, to ``device``."""
    if isinstance(obj, Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: move_to(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(move_to(v, device) for v in obj)
    return obj
