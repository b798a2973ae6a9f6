"""The ``[data]`` table's own parts that every dataset shares, validated: ``[[data.extra_tasks]]``
(derived tasks, :mod:`alphavil.data.derived`), ``[data.budget]`` (a label budget,
:mod:`alphavil.data.budget`) and ``data.stream``. Errors are one-line
:class:`~alphavil.schema.ConfigError` s naming the key.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from alphavil.data.derived import ExtraTask
from alphavil.schema import ConfigError, build_section
from alphavil.tasks import Task

if TYPE_CHECKING:
    from alphavil.data.budget import Budget

__all__ = ["build_budget", "build_extra_tasks", "check_data_stream"]


def build_budget(table: Any) -> Budget | None:
    """Validate ``[data.budget]`` (None: no budget)."""
    if table is None:
        return None
    from alphavil.data.budget import Budget

    if isinstance(table, dict) and "target" not in table:
        raise ConfigError(
            "data.budget.target: missing; the number of labelled target training examples"
        )
    budget: Budget = build_section(Budget, table, "data.budget")
    budget.check()
    return budget


def check_data_stream(value: Any) -> str:
    """``data.stream``: "auto", "joint" or "interleaved"."""
    allowed = ("auto", "joint", "interleaved")
    if value not in allowed:
        raise ConfigError(f"data.stream: {value!r} is not one of {', '.join(allowed)}")
    return str(value)


def build_extra_tasks(value: Any, known: list[Task]) -> list[ExtraTask]:
    """Validate ``[[data.extra_tasks]]``: name, labels ("random", "coarse" or an import
    path), classes; ``known`` are the dataset's own tasks (what a coarse task may coarsen)."""
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(
            "data.extra_tasks: expected a list of tables like "
            '{name = "noise", labels = "random", classes = 10}'
        )
    tasks = {t.name: t for t in known}
    out = []
    for i, table in enumerate(value):
        if "name" not in table:
            raise ConfigError(f"data.extra_tasks[{i}]: needs a name")
        entry = build_section(ExtraTask, table, f"data.extra_tasks[{i}]")
        if entry.labels == "coarse":
            entry = _coarse(entry, "classes" in table, tasks, i)
        elif "of" in table or "by" in table:
            raise ConfigError(f'data.extra_tasks[{i}]: of and by are for labels = "coarse"')
        try:
            tasks[entry.name] = entry.task()
        except ValueError as err:
            raise ConfigError(f"data.extra_tasks[{i}]: {err}") from None
        if entry.labels not in ("random", "coarse") and ":" not in entry.labels:
            raise ConfigError(
                f'data.extra_tasks[{i}].labels: {entry.labels!r}; use "random", "coarse" or an '
                "import path 'package.module:function'"
            )
        if entry.labels == "random" and (entry.classes < 2 or entry.kind != "classification"):
            raise ConfigError(
                f"data.extra_tasks[{i}]: a random-label task is a classification task with "
                f">= 2 classes, got {entry.kind} with {entry.classes}"
            )
        out.append(entry)
    return out


def _coarse(entry: ExtraTask, has_classes: bool, tasks: dict[str, Task], i: int) -> ExtraTask:
    """A coarse-label entry checked against the tasks before it, its classes filled in."""
    where = f"data.extra_tasks[{i}]"
    source = tasks.get(entry.of)
    if source is None:
        raise ConfigError(f"{where}.of: {entry.of!r} is not a task; tasks: {', '.join(tasks)}")
    if source.kind != "classification" or entry.kind != "classification":
        raise ConfigError(f"{where}: coarse labels are classes of a classification task")
    if entry.by < 1:
        raise ConfigError(f"{where}.by: must be >= 1, got {entry.by}")
    need = math.ceil(source.num_outputs / entry.by)
    if not has_classes:
        return dataclasses.replace(entry, classes=need)
    if entry.classes < need:
        raise ConfigError(
            f"{where}.classes: {entry.of} // {entry.by} takes {need} values, got {entry.classes}"
        )
    return entry
