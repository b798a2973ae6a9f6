"""Training methods, one module each, registered by name (``train.method``).

A method is a class with the :class:`~alphavil.methods.base.Method` interface: it says which
tasks it trains and runs one epoch through the training loop's primitives
(:class:`~alphavil.training.Trainer`). Adding a method = one module + its test + one line in
:data:`REGISTRY` (see docs/adding_a_method.md).
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> "module:Class"; imported only when used
REGISTRY: dict[str, str] = {
    "single": "alphavil.methods.single:Single",
    "multitask": "alphavil.methods.multitask:Multitask",
    "alphavil": "alphavil.methods.alphavil:AlphaVIL",
    "diw": "alphavil.methods.diw:DIW",
}


def method_names() -> tuple[str, ...]:
    """Every registered method name."""
    return tuple(REGISTRY)


def get_method(name: str) -> Any:
    """The method class registered as ``name``."""
    if name not in REGISTRY:
        raise KeyError(f"unknown method {name!r}; allowed: {', '.join(REGISTRY)}")
    module, attr = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), attr)
