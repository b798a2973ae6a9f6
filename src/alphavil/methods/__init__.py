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
    # general weightings (Kendall et al. 2018; Chen et al. 2018)
    "uncertainty": "alphavil.methods.uncertainty:Uncertainty",
    "gradnorm": "alphavil.methods.gradnorm:GradNorm",
    # gradient aggregators, thin wrappers of TorchJD (pip install "alphavil[aggregators]")
    "mgda": "alphavil.methods.aggregators:MGDA",
    "pcgrad": "alphavil.methods.aggregators:PCGrad",
    "cagrad": "alphavil.methods.aggregators:CAGrad",
    "nashmtl": "alphavil.methods.aggregators:NashMTL",
    "upgrad": "alphavil.methods.aggregators:UPGrad",
    # target-aware auxiliary-task weightings
    "cosine": "alphavil.methods.cosine:Cosine",  # Du et al. 2018
    "olaux": "alphavil.methods.olaux:OLAux",  # Lin et al. 2019
    "autolambda": "alphavil.methods.autolambda:AutoLambda",  # Liu et al. 2022
    "forkmerge": "alphavil.methods.forkmerge:ForkMerge",  # Jiang et al. 2023
}

# config section -> "module:ConfigDataclass" for methods with their own options table
SECTIONS: dict[str, str] = {
    "uncertainty": "alphavil.methods.uncertainty:UncertaintyConfig",
    "gradnorm": "alphavil.methods.gradnorm:GradNormConfig",
    "aggregator": "alphavil.methods.aggregators:AggregatorConfig",
    "cosine": "alphavil.methods.cosine:CosineConfig",
    "olaux": "alphavil.methods.olaux:OLAuxConfig",
    "autolambda": "alphavil.methods.autolambda:AutoLambdaConfig",
    "forkmerge": "alphavil.methods.forkmerge:ForkMergeConfig",
}


# the TorchJD aggregators share one options table
_AGGREGATORS = ("mgda", "pcgrad", "cagrad", "nashmtl", "upgrad")


def options_section(method: str) -> str | None:
    """The config section holding ``method``'s options (``[olaux]``, ``[aggregator]``, ...), or
    None for a method without one (its options, if any, live in a built-in table)."""
    if method in SECTIONS:
        return method
    return "aggregator" if method in _AGGREGATORS else None


def method_names() -> tuple[str, ...]:
    """Every registered method name."""
    return tuple(REGISTRY)


def get_method(name: str) -> Any:
    """The method class registered as ``name``."""
    if name not in REGISTRY:
        raise KeyError(f"unknown method {name!r}; allowed: {', '.join(REGISTRY)}")
    module, attr = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), attr)
