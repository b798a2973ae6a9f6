"""Registry of datasets a run config can name in its ``[data]`` table.

Each entry is a :class:`DatasetSpec` living in its own module and imported lazily, so optional
dependencies (``transformers`` for the NLU study) load only when that dataset is used.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from alphavil.data.batching import MultiTaskData
from alphavil.tasks import Task


@dataclass(frozen=True)
class DatasetSpec:
    """How to validate, load and model one dataset.

    Attributes:
        config: Dataclass type of the ``[data]`` table (every field has a default; the ``name``
            key selects the spec and is not a field).
        tasks: data config -> the tasks, without loading any data (used to validate ``target``).
        build: data config -> (the data, a factory returning a freshly initialised model whose
            heads are named after the tasks). The factory is called after seeding; when it
            takes an argument it is given the run's task list (:class:`~alphavil.tasks.Task`
            objects, the dataset's own plus any ``[[data.extra_tasks]]``) and should build one
            head per task from its kind and ``num_outputs``.
    """

    config: type
    tasks: Callable[[Any], list[Task]]
    build: Callable[[Any], tuple[MultiTaskData, Callable[..., nn.Module]]]


def build_model(factory: Callable[..., nn.Module], tasks: Sequence[Task]) -> nn.Module:
    """Call a spec's model factory, with the task list when it accepts one.

    Raises:
        ValueError: the factory takes no task list and its model lacks a head for some task.
    """
    try:
        takes_tasks = bool(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        takes_tasks = False
    if takes_tasks:
        return factory(list(tasks))
    model = factory()
    heads = getattr(model, "heads", None)
    missing = [t.name for t in tasks if heads is not None and t.name not in heads]
    if missing:
        raise ValueError(
            f"the dataset's model factory takes no task list, so its model has no head for "
            f"{missing}; give the factory a `tasks` argument and build one head per task"
        )
    return model


_BUILTIN = {
    "multimnist": "alphavil.data.multimnist_spec:SPEC",
    "toy": "alphavil.data.toy:SPEC",
    "digits": "alphavil.data.digits:SPEC",
    "files": "alphavil.data.files:SPEC",
    "nlu": "alphavil.nlu.spec:SPEC",
    "text": "alphavil.nlu.text_tables:SPEC",
    "synthetic": "alphavil.pareto.problems:SPEC",
    "regression": "alphavil.pareto.regression:SPEC",
}
_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(name: str, spec: DatasetSpec) -> None:
    """Make ``name`` usable as ``data.name`` in run configs."""
    _REGISTRY[name] = spec


def dataset_names() -> list[str]:
    """All dataset names a config may use."""
    return sorted(set(_REGISTRY) | set(_BUILTIN))


class DatasetImportError(KeyError):
    """``data.name`` is an import path (``package.module:SPEC``) that does not resolve."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _import_spec(path: str) -> DatasetSpec:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise DatasetImportError(
            f"data.name: {path!r} is not an import path; use 'package.module:SPEC'"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # any import-time failure of the user's module
        raise DatasetImportError(
            f"data.name: cannot import {module_name!r} for {path!r}: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from None
    spec = getattr(module, attr, None)
    if spec is None:
        raise DatasetImportError(f"data.name: module {module_name!r} has no attribute {attr!r}")
    if not isinstance(spec, DatasetSpec):
        raise DatasetImportError(
            f"data.name: {path!r} is a {type(spec).__name__}, not an alphavil.DatasetSpec"
        )
    return spec


def get_dataset(name: str) -> DatasetSpec:
    """The spec registered as ``name``, or imported from ``name = "package.module:SPEC"``.

    An import path works the same in this process, in the CLI and in sweep workers (they
    re-resolve the config). Raises ``KeyError`` naming the allowed names, or
    :class:`DatasetImportError` naming what failed to import.
    """
    if name not in _REGISTRY and name in _BUILTIN:
        module, attr = _BUILTIN[name].split(":")
        _REGISTRY[name] = getattr(importlib.import_module(module), attr)
    if name not in _REGISTRY and ":" in name:
        return _import_spec(name)
    if name not in _REGISTRY:
        raise KeyError(
            f"unknown dataset {name!r}; allowed: {', '.join(dataset_names())}, or an import "
            "path 'package.module:SPEC'"
        )
    return _REGISTRY[name]
