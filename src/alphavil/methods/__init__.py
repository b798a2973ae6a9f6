"""Training methods, one module each, registered by name (``train.method``).

A method is a class with the :class:`~alphavil.methods.base.Method` interface: it says which
tasks it trains and runs one epoch through the training loop's primitives
(:class:`~alphavil.training.Trainer`). Adding a method = one module + its test + one line in
:data:`REGISTRY` (see docs/adding_a_method.md); a method of one's own may instead be named by
import path, ``train.method = "package.module:Class"``.

Population methods (K models, one per preference vector, trained together: MT2O and its
baselines) are rows of a step-function table (:mod:`alphavil.pareto.steps`), registered in
:data:`POPULATION` and run by one loop, :func:`alphavil.pareto.mt2o.train_population`.
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

# config section -> "module:ConfigDataclass" for methods with their own options table. An
# options dataclass may define two hooks that alphavil.config calls for every table it builds:
# ``prepare(table) -> table`` (classmethod; the raw TOML table before validation, e.g. αVIL's
# presets) and ``check(self, cfg, tasks)`` (after the whole config is resolved; raises
# ConfigError for rules that span keys or tables).
SECTIONS: dict[str, str] = {
    "alphavil": "alphavil.methods.alphavil_options:AlphaVILConfig",
    "diw": "alphavil.methods.diw_options:DIWConfig",
    "uncertainty": "alphavil.methods.uncertainty:UncertaintyConfig",
    "gradnorm": "alphavil.methods.gradnorm:GradNormConfig",
    "aggregator": "alphavil.methods.aggregators:AggregatorConfig",
    "cosine": "alphavil.methods.cosine:CosineConfig",
    "olaux": "alphavil.methods.olaux:OLAuxConfig",
    "autolambda": "alphavil.methods.autolambda:AutoLambdaConfig",
    "forkmerge": "alphavil.methods.forkmerge:ForkMergeConfig",
}

# Sections every run config records right after [train], whether or not its method uses them
# (the paper's two methods: every config.json since the first release holds them, and stored
# runs are matched key by key against new requests); ``cfg.alphavil`` and ``cfg.diw``.
RECORDED: tuple[str, ...] = ("alphavil", "diw")

# Population methods: name -> "module:PopulationMethod", the row of the step-function table that
# alphavil.pareto.mt2o.train_population runs (its step function per mini-batch, its settings); their
# options are the [mt2o] table. Imported only when used.
POPULATION: dict[str, str] = {
    "mt2o": "alphavil.pareto.steps:MT2O",
    "no_transfer": "alphavil.pareto.steps:NO_TRANSFER",
    "ls": "alphavil.pareto.steps:NO_TRANSFER",  # old name of no_transfer
    "pmtl": "alphavil.pareto.steps:PMTL",
    "epo": "alphavil.pareto.steps:EPO",
    "pareto_mgda": "alphavil.pareto.steps:PARETO_MGDA",  # `mgda` is the aggregator
}

# the TorchJD aggregators share one options table
_AGGREGATORS = ("mgda", "pcgrad", "cagrad", "nashmtl", "upgrad")


def options_section(method: str) -> str | None:
    """The config section holding ``method``'s options (``[olaux]``, ``[aggregator]``, ...), or
    None for a method without one (its options, if any, live in a built-in table)."""
    if method in SECTIONS:
        return method
    if method in _AGGREGATORS:
        return "aggregator"
    if method not in REGISTRY and ":" in method:
        table: str | None = getattr(get_method(method), "options_table", None)
        return table
    return None


def method_names() -> tuple[str, ...]:
    """Every registered method name."""
    return tuple(REGISTRY)


class MethodImportError(KeyError):
    """``train.method`` is an import path (``package.module:Class``) that does not resolve to a
    :class:`~alphavil.methods.base.Method` subclass; the message is one line."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _import_method(path: str) -> Any:
    from alphavil.methods.base import Method

    module_name, _, attr = path.partition(":")
    if not module_name or not attr or ":" in attr:
        raise MethodImportError(
            f"train.method: {path!r} is not an import path; use 'package.module:Class'"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # any import-time failure of the user's module
        first = str(err).splitlines()[0] if str(err) else ""
        raise MethodImportError(
            f"train.method: cannot import {module_name!r} for {path!r}: "
            f"{type(err).__name__}: {first}"
        ) from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise MethodImportError(f"train.method: module {module_name!r} has no attribute {attr!r}")
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise MethodImportError(
            f"train.method: {path!r} is a {type(cls).__name__}, not a subclass of "
            "alphavil.methods.base.Method"
        )
    return cls


def get_method(name: str) -> Any:
    """The method class registered as ``name``, or imported from an import path
    ``"package.module:Class"`` (a :class:`~alphavil.methods.base.Method` subclass; works the
    same in this process, the CLI and sweep workers, which re-resolve the config).

    Raises ``KeyError`` naming the allowed names, or :class:`MethodImportError` naming what
    failed to import."""
    if name in REGISTRY:
        module, attr = REGISTRY[name].split(":")
        return getattr(importlib.import_module(module), attr)
    if ":" in name:
        return _import_method(name)
    raise KeyError(
        f"unknown method {name!r}; allowed: {', '.join(REGISTRY)}, or an import path "
        "'package.module:Class'"
    )


def get_population_method(name: str) -> Any:
    """The :class:`~alphavil.pareto.steps.PopulationMethod` registered as ``name`` in
    :data:`POPULATION`; ``KeyError`` naming the allowed names if there is none."""
    if name not in POPULATION:
        raise KeyError(f"unknown population method {name!r}; allowed: {', '.join(POPULATION)}")
    module, attr = POPULATION[name].split(":")
    return getattr(importlib.import_module(module), attr)
