"""Tasks derived from a dataset's own labels or example index, added without copying inputs.

A derived task is a :class:`~alphavil.tasks.Task` plus a label function
``fn(split, targets, index) -> labels``: ``targets`` are the existing tasks' labels of that split
and ``index`` the example positions ``0..N-1``. Two uses:

* a related auxiliary task, e.g. "the left digit is odd": ``lambda s, y, i: y["left"] % 2``, or
  a coarse version of a task (:func:`coarse_labels`, ``label // by``);
* the standard *harmful* auxiliary task, random labels (:func:`random_labels`): it shares no
  structure with anything, so a method that weights auxiliary tasks well should learn to ignore
  it. Its labels depend only on a seed, the task's name and the split, so they are the same for
  every method and training seed of one data seed, and differ between data seeds.

In a run config, ``[[data.extra_tasks]]`` tables add such tasks to any dataset whose examples
share their inputs across tasks (MultiMNIST, the toy problem, tabular data)::

    [[data.extra_tasks]]
    name = "noise"
    labels = "random"        # or "coarse", or an import path "package.module:function"
    classes = 10

    [[data.extra_tasks]]
    name = "left_coarse"
    labels = "coarse"        # left // 2: classes ceil(10 / 2) = 5 unless given
    of = "left"
    by = 2

Derived tasks are labelled on the whole dataset before a label budget
(:mod:`alphavil.data.budget`) splits it, so a budget's auxiliary pool carries them.
"""

from __future__ import annotations

import dataclasses
import importlib
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from alphavil.data.batching import SPLITS, MultiTaskData, SharedInputData
from alphavil.tasks import Task

LabelFn = Callable[[str, Mapping[str, Tensor], Tensor], Tensor]


@dataclass(frozen=True)
class ExtraTask:
    """One ``[[data.extra_tasks]]`` entry: a task name, its label source and its classes.

    ``labels`` is ``"random"``, ``"coarse"`` (task ``of``'s label // ``by``) or an import
    path ``"package.module:function"`` to a :data:`LabelFn`; ``classes`` is the head's number
    of outputs (``kind = "regression"``: 1).
    """

    name: str
    labels: str = "random"
    classes: int = 2
    kind: str = "classification"
    of: str = ""  # labels = "coarse": the task whose labels it coarsens
    by: int = 2  # labels = "coarse": labels // by

    def record(self) -> dict[str, Any]:
        """The entry as ``config.json`` holds it (``of`` and ``by`` only for coarse tasks)."""
        out = dataclasses.asdict(self)
        if self.labels != "coarse":
            del out["of"], out["by"]
        return out

    def task(self) -> Task:
        """The :class:`Task` this entry adds."""
        return Task(self.name, self.classes, self.kind)  # type: ignore[arg-type]


def random_labels(num_classes: int, seed: int, name: str) -> LabelFn:
    """Uniform random labels in ``0..num_classes-1``, fixed per (seed, task name, split)."""
    if num_classes < 2:
        raise ValueError(f"random-label task {name!r} needs >= 2 classes, got {num_classes}")

    def fn(split: str, targets: Mapping[str, Tensor], index: Tensor) -> Tensor:
        key = [seed, zlib.crc32(name.encode()), SPLITS.index(split)]
        rng = np.random.default_rng(np.random.SeedSequence(key))
        return torch.from_numpy(rng.integers(0, num_classes, size=len(index), dtype=np.int64))

    return fn


def coarse_labels(of: str, by: int) -> LabelFn:
    """Task ``of``'s labels integer-divided by ``by`` (digits 0-9 by 2: five classes)."""
    if by < 1:
        raise ValueError(f"coarse labels of {of!r} need by >= 1, got {by}")

    def fn(split: str, targets: Mapping[str, Tensor], index: Tensor) -> Tensor:
        return torch.div(targets[of], by, rounding_mode="floor")

    return fn


def resolve_label_fn(entry: ExtraTask, seed: int) -> LabelFn:
    """The label function of ``entry``: random labels, coarse labels, or the function at its
    import path."""
    if entry.labels == "random":
        return random_labels(entry.classes, seed, entry.name)
    if entry.labels == "coarse":
        return coarse_labels(entry.of, entry.by)
    module_name, _, attr = entry.labels.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(
            f"data.extra_tasks: cannot import labels {entry.labels!r} of task {entry.name!r}: "
            f"{type(err).__name__}: {err}"
        ) from None
    if not callable(fn):
        raise ValueError(f"data.extra_tasks: {entry.labels!r} is not callable")
    return fn


def with_tasks(data: MultiTaskData, new: Sequence[tuple[Task, LabelFn]]) -> SharedInputData:
    """``data`` plus the tasks in ``new``, labelled by their functions; inputs are shared.
    A function sees the labels of the data's tasks and of the new tasks before it.

    Raises:
        ValueError: ``data`` does not share inputs across tasks, a name is taken, or a label
            function returns labels of the wrong length, dtype or range.
    """
    if not isinstance(data, SharedInputData):
        raise ValueError(
            f"derived tasks need a dataset whose tasks share their inputs; "
            f"{type(data).__name__} gives each task its own examples"
        )
    names = [t.name for t in data.tasks]
    targets = {s: dict(data.targets[s]) for s in SPLITS}
    for task, fn in new:
        if task.name in names:
            raise ValueError(f"data.extra_tasks: task {task.name!r} already exists")
        names.append(task.name)
        for split in SPLITS:
            n = len(data.inputs[split])
            y = torch.as_tensor(fn(split, targets[split], torch.arange(n)))
            if y.shape != (n,):
                raise ValueError(
                    f"task {task.name!r}, split {split}: labels have shape {tuple(y.shape)}, "
                    f"expected ({n},)"
                )
            if task.kind == "classification":
                if y.dtype.is_floating_point:
                    raise ValueError(f"task {task.name!r}: class labels must be integers")
                y = y.long()
                if n and (int(y.min()) < 0 or int(y.max()) >= task.num_outputs):
                    raise ValueError(
                        f"task {task.name!r}, split {split}: labels must be in "
                        f"0..{task.num_outputs - 1}, got {int(y.min())}..{int(y.max())}"
                    )
            else:
                y = y.float()
            targets[split][task.name] = y
    tasks = [*data.tasks, *(t for t, _ in new)]
    return SharedInputData(tasks, data.inputs, targets)


def add_extra_tasks(data: MultiTaskData, entries: Sequence[ExtraTask], seed: int) -> MultiTaskData:
    """Apply a config's ``[[data.extra_tasks]]`` (no-op when there are none)."""
    if not entries:
        return data
    return with_tasks(data, [(e.task(), resolve_label_fn(e, seed)) for e in entries])
