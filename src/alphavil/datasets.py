"""Registry of datasets a run config can name in its ``[data]`` table.

Each entry is a :class:`DatasetSpec` living in its own module and imported lazily, so optional
dependencies (``transformers`` for the NLU study) load only when that dataset is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
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
            heads are named after the tasks). The factory is called after seeding.
    """

    config: type
    tasks: Callable[[Any], list[Task]]
    build: Callable[[Any], tuple[MultiTaskData, Callable[[], nn.Module]]]


_BUILTIN = {
    "multimnist": "alphavil.data.multimnist_spec:SPEC",
    "toy": "alphavil.data.toy:SPEC",
    "nlu": "alphavil.nlu.spec:SPEC",
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


def get_dataset(name: str) -> DatasetSpec:
    """The spec registered as ``name``; ``KeyError`` naming the allowed ones otherwise."""
    if name not in _REGISTRY and name in _BUILTIN:
        module, attr = _BUILTIN[name].split(":")
        _REGISTRY[name] = getattr(importlib.import_module(module), attr)
    if name not in _REGISTRY:
        raise KeyError(f"unknown dataset {name!r}; allowed: {', '.join(dataset_names())}")
    return _REGISTRY[name]
