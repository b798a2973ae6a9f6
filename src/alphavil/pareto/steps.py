"""Population methods as rows of one table: each method's step function and what else sets
it apart (transfer, the subproblem each model solves, independent starts).

:func:`~alphavil.pareto.mt2o.train_population` runs every population method with one loop that
names none of them: per mini-batch it calls ``method.step(state, inputs, targets, step, epoch)``,
which takes one optimiser step of all K models and returns their batch losses ``(K, m)``
(detached). The methods are registered by name in :data:`alphavil.methods.POPULATION`; a new
population method is a step function, a :class:`PopulationMethod` row here and a registry line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from alphavil.pareto.baselines import epo_preferences, epo_step, mgda_step
from alphavil.pareto.options import MT2OConfig
from alphavil.pareto.pmtl import pmtl_step
from alphavil.pareto.population import Population, mtgd_step
from alphavil.pareto.transfer import TransferSchedule, transfer_matrix

__all__ = [
    "EPO",
    "MT2O",
    "NO_TRANSFER",
    "PARETO_MGDA",
    "PMTL",
    "PopulationMethod",
    "Step",
    "StepState",
    "epo",
    "mtgd",
    "pareto_mgda",
    "pmtl",
]


@dataclass
class StepState:
    """What a step function reads, and the two things it may update.

    ``beta``: the transfer strength β_t of the last step (each epoch's record shows it; the
    loop resets it to the method's β at the start of every epoch). ``pmtl_init``: ParetoMTL's
    feasibility phase, per model ``(K,)`` bool.
    """

    pop: Population
    optimizer: torch.optim.Optimizer
    mc: MT2OConfig
    prefs: Tensor  # (K, m) float64 weight vectors λ^k, on the CPU
    prefs_dev: Tensor  # the same on the run's device
    ideal: Tensor | None  # z* (m,) float64, or None
    schedule: TransferSchedule
    total_steps: int
    device: torch.device
    pmtl_init: Tensor
    beta: float = 0.0


# One optimiser step of all K models on one mini-batch: (state, inputs, targets, step, epoch)
# -> the batch losses (K, m), detached. ``step`` counts the run's steps from 0, ``epoch`` from 1.
Step = Callable[[StepState, Any, Mapping[str, Tensor], int, int], Tensor]


def mtgd(
    state: StepState, inputs: Any, targets: Mapping[str, Tensor], step: int, epoch: int
) -> Tensor:
    """Multi-task gradient descent on each model's scalarised loss, with transfer when β_t > 0
    on a transfer step (MT2O; ``no_transfer`` runs it with β = 0)."""
    mc = state.mc
    state.beta = state.schedule.strength(step, state.total_steps)
    mixing = (
        transfer_matrix(state.prefs, state.beta, mc.n_neighbours, coefficients=mc.coefficients).to(
            state.device
        )
        if state.beta > 0 and state.schedule.applies(step)
        else None
    )
    return mtgd_step(
        state.pop,
        state.optimizer,
        inputs,
        targets,
        state.prefs_dev,
        scalarization=mc.scalarization,
        ideal=state.ideal,
        smooth=mc.smooth,
        mixing=mixing,
        mix_buffers=mc.mix_buffers,
    )


def pmtl(
    state: StepState, inputs: Any, targets: Mapping[str, Tensor], step: int, epoch: int
) -> Tensor:
    """A ParetoMTL step; the feasibility phase ends after ``mt2o.pmtl_init_epochs`` epochs."""
    if epoch > state.mc.pmtl_init_epochs:
        state.pmtl_init[:] = False
    losses, state.pmtl_init = pmtl_step(
        state.pop, state.optimizer, inputs, targets, state.prefs, state.pmtl_init, ideal=state.ideal
    )
    return losses


def epo(
    state: StepState, inputs: Any, targets: Mapping[str, Tensor], step: int, epoch: int
) -> Tensor:
    """An EPO step (exact Pareto optimal search towards each model's preference ray)."""
    return epo_step(state.pop, state.optimizer, inputs, targets, state.prefs, state.ideal)


def pareto_mgda(
    state: StepState, inputs: Any, targets: Mapping[str, Tensor], step: int, epoch: int
) -> Tensor:
    """An MGDA step of every model (the K models differ only in their starts)."""
    return mgda_step(state.pop, state.optimizer, inputs, targets)


@dataclass(frozen=True)
class PopulationMethod:
    """One row of the table: a population method's step and settings.

    Args:
        name: The name runs record (``summary.json``'s ``method``).
        step: The step function.
        transfer: Transfers parameters with strength ``mt2o.beta``; else β = 0.
        scalarized: Model k minimises g(θ | λ^k) with ``mt2o.scalarization`` (recorded as the
            run's scalarisation and as the subproblem of the front metrics).
        subproblem: Otherwise, the scalarisation whose optimum is model k's goal, if any.
        subproblem_prefs: Maps the weight vectors λ^k to that subproblem's weights.
        independent_init: K independent random starts whatever ``mt2o.init`` says.
    """

    name: str
    step: Step
    transfer: bool = False
    scalarized: bool = False
    subproblem: str | None = None
    subproblem_prefs: Callable[[Tensor], Tensor] | None = None
    independent_init: bool = False

    def subproblem_of(self, mc: MT2OConfig) -> str | None:
        """The subproblem each model solves under options ``mc`` (None: no single one)."""
        return mc.scalarization if self.scalarized else self.subproblem


MT2O = PopulationMethod("mt2o", mtgd, transfer=True, scalarized=True)
NO_TRANSFER = PopulationMethod("no_transfer", mtgd, scalarized=True)
PMTL = PopulationMethod("pmtl", pmtl)  # model k's goal: a sector of the front, no scalarisation
EPO = PopulationMethod("epo", epo, subproblem="tchebycheff", subproblem_prefs=epo_preferences)
PARETO_MGDA = PopulationMethod("pareto_mgda", pareto_mgda, independent_init=True)
