"""Multitask datasets as batch streams: the one interface the training loop reads.

Two layouts cover the paper's two studies:

* :class:`SharedInputData`: every example carries a label for every task (MultiMNIST: one image,
  a left and a right digit). One forward pass serves all tasks.
* :class:`SeparateInputData`: each task has its own examples (the NLU study: CB, COPA, MRPC, ...;
  a label budget, :mod:`alphavil.data.budget`). Its training stream either interleaves
  single-task batches in random order (``"interleaved"``, the NLU study's) or gives every
  optimiser step one batch of every task (``"joint"``, :class:`JointBatch`).

A batch is ``(inputs, {task: targets})``; the targets dict names the tasks the batch serves.
A training pass (:meth:`MultiTaskData.train_stream`) yields batches or joint batches.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from alphavil.distributed import take
from alphavil.tasks import Task

Batch = tuple[Any, dict[str, Tensor]]
SPLITS = ("train", "dev", "test")
STREAMS = ("interleaved", "joint")


@dataclass
class JointBatch:
    """One optimiser step's batch of every task (LibMTL's multi-input mode): the tasks' own
    examples stacked into one model input, so one forward pass serves them all.

    Attributes:
        inputs: Model inputs holding every task's rows.
        targets: task -> the labels of its rows.
        rows: task -> its rows of ``inputs`` (each task's loss is the mean over its rows).
    """

    inputs: Any
    targets: dict[str, Tensor]
    rows: dict[str, slice]


Step = Batch | JointBatch


def step_for_task(step: Step, task: str) -> Batch | None:
    """The part of a training step that serves ``task`` alone: a joint batch cut to the task's
    rows, a batch with only the task's targets; ``None`` when the step does not serve it."""
    if isinstance(step, JointBatch):
        if task not in step.targets:
            return None
        return take(step.inputs, step.rows[task]), {task: step.targets[task]}
    inputs, targets = step
    return (inputs, {task: targets[task]}) if task in targets else None


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

    def train_stream(
        self,
        tasks: Sequence[str],
        *,
        batch_size: int,
        generator: torch.Generator,
        fraction: float = 1.0,
    ) -> Iterator[Step]:
        """One training pass as optimiser steps: :meth:`train_batches` unless the data gives
        each step a batch of every task (:class:`SeparateInputData` with a joint stream).

        The pass's random draws are made before it returns, so drawing a pass without
        iterating it keeps ``generator`` in step."""
        return self.train_batches(
            tasks, batch_size=batch_size, generator=generator, fraction=fraction
        )

    @property
    def all_tasks_per_step(self) -> bool:
        """Whether every training step holds a batch of every task it trains."""
        return True

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
        examples: task -> split -> the model-input examples: a list (e.g. token id lists,
            batched by ``collate``) or a tensor whose first dimension indexes the examples
            (batched by indexing; tasks may share one tensor). A missing split has none.
        labels: task -> split -> targets ``(N,)``; a split without labels (hidden test labels)
            may hold ``-1`` everywhere.
        collate: Turns a list of examples into model inputs (unused for tensor examples).
        stream: ``"interleaved"``: a training pass is every task's batches in random order,
            one task per step; ``"joint"``: every step holds one batch of every task
            (:meth:`joint_batches`).
    """

    def __init__(
        self,
        tasks: Sequence[Task],
        examples: Mapping[str, Mapping[str, Any]],
        labels: Mapping[str, Mapping[str, Tensor]],
        collate: Callable[[list[Any]], Any] | None = None,
        stream: str = "interleaved",
    ) -> None:
        self.tasks = tuple(tasks)
        self.examples = {t: dict(v) for t, v in examples.items()}
        self.labels = {t: dict(v) for t, v in labels.items()}
        self.collate = collate if collate is not None else torch.stack
        if stream not in STREAMS:
            raise ValueError(f"stream {stream!r} is not one of {', '.join(STREAMS)}")
        self.stream = stream
        for t in self.tasks:
            for split, xs in self.examples[t.name].items():
                if len(self.labels[t.name][split]) != len(xs):
                    raise ValueError(f"task {t.name!r} split {split!r}: examples and labels differ")

    @property
    def all_tasks_per_step(self) -> bool:
        return self.stream == "joint"

    def num_examples(self, split: str, task: str) -> int:
        self.check_tasks([task])
        return len(self.examples[task].get(split, ()))

    def _task_batches(self, task: str, split: str, order: Tensor, batch_size: int) -> list[Tensor]:
        del task, split
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]

    def _inputs(self, parts: Sequence[tuple[str, str, Tensor]]) -> Any:
        """Model inputs holding ``(task, split, indices)``'s examples, in order."""
        xs = [self.examples[t][s] for t, s, _ in parts]
        if all(isinstance(x, Tensor) for x in xs):
            chunks = [x[idx] for x, (_, _, idx) in zip(xs, parts, strict=True)]
            return chunks[0] if len(chunks) == 1 else torch.cat(chunks)
        pairs = zip(xs, parts, strict=True)
        return self.collate([x[int(i)] for x, (_, _, idx) in pairs for i in idx])

    def _make(self, task: str, split: str, idx: Tensor) -> Batch:
        return self._inputs([(task, split, idx)]), {task: self.labels[task][split][idx]}

    def _joint(self, parts: Sequence[tuple[str, Tensor]]) -> JointBatch:
        rows, start = {}, 0
        for t, idx in parts:
            rows[t] = slice(start, start + len(idx))
            start += len(idx)
        inputs = self._inputs([(t, "train", idx) for t, idx in parts])
        targets = {t: self.labels[t]["train"][idx] for t, idx in parts}
        return JointBatch(inputs, targets, rows)

    def train_batches(
        self,
        tasks: Sequence[str],
        *,
        batch_size: int,
        generator: torch.Generator,
        fraction: float = 1.0,
    ) -> Iterator[Batch]:
        """Every task's batches of one pass, interleaved in random order (one task each)."""
        _check_fraction(fraction)
        self.check_tasks(tasks)
        plan: list[tuple[str, Tensor]] = []
        for t in tasks:
            order = _sample(self.num_examples("train", t), fraction, generator)
            plan += [(t, idx) for idx in self._task_batches(t, "train", order, batch_size)]
        shuffle = torch.randperm(len(plan), generator=generator).tolist()
        return (self._make(plan[j][0], "train", plan[j][1]) for j in shuffle)

    def joint_batches(
        self,
        tasks: Sequence[str],
        *,
        batch_size: int,
        generator: torch.Generator,
        fraction: float = 1.0,
    ) -> Iterator[JointBatch]:
        """One pass of joint steps: each holds one batch of every task of ``tasks`` that has
        training examples.

        The pass has ceil(max_t n_t / batch_size) steps (n_t: task t's ``fraction`` sample);
        a task's batches are its sample in a random order cut into ``batch_size`` pieces (the
        last one shorter), and a task that runs out starts again on a fresh random order of
        its sample. Every draw comes from ``generator``, before this returns.
        """
        _check_fraction(fraction)
        self.check_tasks(tasks)
        orders = {}
        for t in tasks:
            n = self.num_examples("train", t)
            if n:
                orders[t] = _sample(n, fraction, generator)
        if not orders:
            return iter(())
        steps = max(math.ceil(len(o) / batch_size) for o in orders.values())
        plans: dict[str, list[Tensor]] = {}
        for t, order in orders.items():
            plans[t] = self._task_batches(t, "train", order, batch_size)
            while len(plans[t]) < steps:
                again = order[torch.randperm(len(order), generator=generator)]
                plans[t] += self._task_batches(t, "train", again, batch_size)
        return (self._joint([(t, plan[k]) for t, plan in plans.items()]) for k in range(steps))

    def train_stream(
        self,
        tasks: Sequence[str],
        *,
        batch_size: int,
        generator: torch.Generator,
        fraction: float = 1.0,
    ) -> Iterator[Step]:
        if self.stream == "joint":
            return self.joint_batches(
                tasks, batch_size=batch_size, generator=generator, fraction=fraction
            )
        return self.train_batches(
            tasks, batch_size=batch_size, generator=generator, fraction=fraction
        )

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
            n = self.num_examples(split, t)
            if not n:  # e.g. auxiliary tasks under a label budget have no dev split
                continue
            order = _sample(n, fraction, generator)
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
