"""The ``[mt2o]`` table: the options of every population method, and the checks of a run's
settings against its tasks (:func:`check_population`).

Every [reconstructed] default is a flag (reconstruction note §5.1); see docs/mt2o.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from alphavil.pareto.population import check_elementwise
from alphavil.pareto.scalarize import RENAMED_SCALARIZATIONS, SCALARIZATIONS
from alphavil.pareto.transfer import DECAYS
from alphavil.pareto.weights import preference_vectors
from alphavil.schema import ConfigError, bounded, choice

__all__ = ["MT2OConfig", "check_population"]


@dataclass
class MT2OConfig:
    """The ``[mt2o]`` table: population, scalarisation, transfer and evaluation settings.

    Every [reconstructed] default is a flag (reconstruction note §5.1). ``beta`` is used by
    ``mt2o`` only; ``scalarization`` by ``mt2o`` and ``no_transfer``; ``ideal`` by those and, as
    the origin of the losses, by ``epo`` and ``pmtl``.
    """

    n_models: int = bounded(5, 1)  # K [reconstructed: 5, as ParetoMTL/EPO on MultiMNIST]
    # [reconstructed: linear default]; the old names "ls" and "tch" are refused with the new one
    scalarization: str = choice("linear", *SCALARIZATIONS)
    ideal: list[float] = field(default_factory=list)  # Tchebycheff z*; empty = 0
    smooth: float = bounded(0.0, 0.0)  # Tchebycheff log-sum-exp temperature; 0 = max
    beta: float = bounded(0.05, 0.0, 1.0)  # transfer strength per transfer step [reconstructed]
    n_neighbours: int = bounded(2, 0)  # T nearest weight vectors [reconstructed]
    coefficients: str = choice("cosine", "cosine", "uniform")  # s_kj [reconstructed]
    period: int = bounded(1, 1)  # transfer every P steps (MGD: every step)
    decay: str = choice("constant", *DECAYS)  # β schedule [reconstructed]
    decay_start: float = bounded(0.7, 0.0, 1.0)  # fraction of all steps
    decay_end: float = bounded(1.0, 0.0, 1.0)
    mix_buffers: bool = True  # also mix floating buffers (BN statistics) [reconstructed]
    # identical: all K models start from one random model (the default for comparisons: the
    # seed then fixes the start of every method); independent: K draws (MGD's). pareto_mgda always
    # uses independent starts (its K models differ only there).
    init: str = choice("identical", "independent", "identical")
    ref_point: list[float] = field(default_factory=lambda: [2.0])  # HV reference; 1 value = all
    forward: str = choice("auto", "auto", "vmap", "loop")  # auto: vmap on GPU, loop on CPU
    pmtl_init_epochs: int = bounded(2, 0)  # ParetoMTL feasibility phase (≤ 2 epochs)
    eval_dev: bool = True

    @classmethod
    def prepare(cls, table: Any) -> Any:
        """The raw ``[mt2o]`` table, checked before its values are (config files, overrides):
        an old scalarisation name gets the error that names the new one."""
        if isinstance(table, dict) and isinstance(table.get("scalarization"), str):
            _refuse_renamed(table["scalarization"])
        return table

    def __post_init__(self) -> None:
        _refuse_renamed(self.scalarization)
        if self.decay_start > self.decay_end:
            raise ConfigError(
                f"mt2o.decay_start ({self.decay_start}) must be <= mt2o.decay_end "
                f"({self.decay_end})"
            )
        if not self.ref_point or any(not math.isfinite(v) for v in self.ref_point):
            raise ConfigError(f"mt2o.ref_point must be finite numbers, got {self.ref_point}")


def _refuse_renamed(name: str) -> None:
    """A one-line ConfigError naming the new name of an old scalarisation name."""
    if name in RENAMED_SCALARIZATIONS:
        new = RENAMED_SCALARIZATIONS[name]
        raise ConfigError(f"mt2o.scalarization {name!r} was renamed: use {new!r}")


def check_population(mc: MT2OConfig, names: Sequence[str], optimizer: dict[str, Any]) -> None:
    """Raise ``ValueError`` (one line) if the population settings cannot run on these tasks."""
    if len(names) < 2:
        raise ValueError(f"train.tasks: a Pareto front needs at least 2 tasks, got {list(names)}")
    check_elementwise(str(optimizer.get("name")))
    try:
        preference_vectors(len(names), mc.n_models)
    except ValueError as err:
        raise ValueError(f"mt2o.n_models: {err}") from None
    if len(mc.ref_point) not in (1, len(names)):
        raise ValueError(
            f"mt2o.ref_point has {len(mc.ref_point)} values; give 1 or one per "
            f"task ({len(names)}: {list(names)})"
        )
    if mc.ideal and len(mc.ideal) != len(names):
        raise ValueError(
            f"mt2o.ideal has {len(mc.ideal)} values; give one per task "
            f"({len(names)}: {list(names)}) or none"
        )
