"""MT2O population training (Bai, Gupta & Ong 2024, arXiv 2403.16162) and its baselines.

K models, one per weight vector λ^k (:mod:`~alphavil.pareto.weights`), each minimising its scalar
subproblem g(θ_k | λ^k) (:mod:`~alphavil.pareto.scalarize`) by multi-task gradient descent: every
step all K take a gradient step on the same mini-batch, and parameters are transferred among
neighbouring subproblems through a row-stochastic matrix M (:mod:`~alphavil.pareto.transfer`):

    θ_k ← Σ_j M_kj θ_j − η · dir_k(∇ g(θ_k | λ^k; B))          (reconstruction Eq. R4)

Methods (``train.method``): ``mt2o`` (transfer on), ``no_transfer`` (K independent runs of the
configured scalarisation, linear or Tchebycheff: the ablation MT2O's claim rests on; the old name
``ls`` is accepted and means the same), ``pmtl`` (Pareto MTL, :mod:`~alphavil.pareto.pmtl`),
``epo`` (EPO) and ``pareto_mgda`` (MGDA from K initialisations, :mod:`~alphavil.pareto.baselines`),
each a row of the step-function table (:mod:`~alphavil.pareto.steps`, registered in
:data:`alphavil.methods.POPULATION`); the one loop here names none of them.
After every epoch (and before the first) all K models are evaluated, in eval mode, on dev and
test; the hypervolume of the K test-loss vectors w.r.t. a fixed, recorded reference point is one
convergence measure; where the analytic front is known (synthetic problems) IGD, IGD+ and each
model's distance to its own subproblem optimum (:mod:`~alphavil.pareto.metrics`) are recorded
too, and every model's scalarised test loss g(θ_k | λ^k) always is
(:mod:`~alphavil.pareto.evaluation`). The ``[mt2o]`` options are in
:mod:`~alphavil.pareto.options`, the summary in :mod:`~alphavil.pareto.summary`. Which parts are
reconstructed is said where they are set; see docs/mt2o.md.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from alphavil.data.batching import MultiTaskData, move_to
from alphavil.methods import POPULATION, get_population_method
from alphavil.pareto.evaluation import EpochRecords
from alphavil.pareto.options import MT2OConfig, check_population
from alphavil.pareto.population import Population
from alphavil.pareto.steps import PopulationMethod, StepState
from alphavil.pareto.summary import (
    epochs_to_fraction,
    format_population_summary,
    population_summary,
)
from alphavil.pareto.transfer import TransferSchedule
from alphavil.pareto.weights import preference_vectors
from alphavil.progress import Progress
from alphavil.runs import RunWriter
from alphavil.schema import build_optimizer, resolve_device
from alphavil.training import NonFiniteLossError

__all__ = [
    "METHODS",
    "METHOD_ALIASES",
    "MT2OConfig",
    "canonical_method",
    "check_population",
    "epochs_to_fraction",
    "format_population_summary",
    "run_population",
    "train_population",
]

METHOD_ALIASES = {"ls": "no_transfer"}  # old name: "ls" never meant the scalarisation
METHODS = tuple(name for name in POPULATION if name not in METHOD_ALIASES)  # the built-in ones


def canonical_method(method: str) -> str:
    """The method's current name (``ls`` -> ``no_transfer``); ``ValueError`` if it is not in
    :data:`alphavil.methods.POPULATION` (read on every call)."""
    name = METHOD_ALIASES.get(method, method)
    if name not in POPULATION or name in METHOD_ALIASES:
        current = [n for n in POPULATION if n not in METHOD_ALIASES]
        allowed = ", ".join([*current, *METHOD_ALIASES])
        raise ValueError(f"unknown population method {method!r}; allowed: {allowed}")
    return name


def train_population(
    data: MultiTaskData,
    make_model: Callable[[], nn.Module],
    mc: MT2OConfig,
    *,
    method: str = "mt2o",
    epochs: int = 10,
    batch_size: int = 256,
    optimizer: dict[str, Any] | None = None,
    seed: int = 0,
    device: str = "cpu",
    train_fraction: float = 1.0,
    eval_batch_size: int = 1000,
    tasks: Sequence[str] = (),
    run: RunWriter | None = None,
    progress: Progress | None = None,
    save_checkpoints: bool = True,
    front: np.ndarray | None = None,
) -> dict[str, Any]:
    """Train K models with ``method`` (see :data:`METHODS`; ``ls`` = ``no_transfer``).

    ``front``: a dense sample of the analytic Pareto front ``(r, m)`` (synthetic problems); if
    given, IGD, IGD+ and the per-model subproblem distance/gap are recorded every epoch.
    Writes one ``metrics.jsonl`` record per epoch (epoch 0 = initial models) and
    ``summary.json`` (and ``population.pt`` if ``save_checkpoints``) to ``run`` if given;
    returns the summary.
    """
    requested = method
    method = canonical_method(method)
    spec: PopulationMethod = get_population_method(method)
    opt_spec = dict(optimizer or {"name": "SGD", "lr": 0.05, "momentum": 0.9})
    names = list(tasks) or [t.name for t in data.tasks]
    data.check_tasks(names)
    check_population(mc, names, opt_spec)
    task_list = [data.task_map[n] for n in names]
    prefs = preference_vectors(len(names), mc.n_models)  # (K, m) float64
    k = prefs.shape[0]
    ref = np.broadcast_to(np.asarray(mc.ref_point, dtype=float), (len(names),)).copy()
    if front is not None and front.shape[1] != len(names):
        raise ValueError(f"front has {front.shape[1]} objectives, the run has {len(names)} tasks")
    dev = resolve_device(device)
    init = "independent" if spec.independent_init else mc.init
    torch.manual_seed(seed)
    first = make_model()
    models = [first] + [
        copy.deepcopy(first) if init == "identical" else make_model() for _ in range(k - 1)
    ]
    vectorize = mc.forward == "vmap" or (mc.forward == "auto" and dev.type == "cuda")
    pop = Population([m.to(dev) for m in models], task_list, vectorize=vectorize)
    opt = build_optimizer(opt_spec, pop.parameters())
    beta = mc.beta if spec.transfer else 0.0
    n_train = data.num_examples("train", names[0])
    steps_per_epoch = math.ceil(max(1, round(train_fraction * n_train)) / batch_size)
    total_steps = epochs * steps_per_epoch
    state = StepState(
        pop,
        opt,
        mc,
        prefs,
        prefs.to(dev),
        torch.tensor(mc.ideal, dtype=torch.float64) if mc.ideal else None,
        TransferSchedule(beta, mc.period, mc.decay, mc.decay_start, mc.decay_end),
        total_steps,
        dev,
        pmtl_init=torch.ones(k, dtype=torch.bool),  # ParetoMTL feasibility phase, per model
    )
    # the subproblem each model solves, where it has one (pmtl: a sector; pareto_mgda: none)
    subproblem = spec.subproblem_of(mc)
    sub_prefs = spec.subproblem_prefs(prefs) if spec.subproblem_prefs else prefs
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    records = EpochRecords(
        pop,
        data,
        names,
        mc,
        prefs=prefs,
        ref=ref,
        ideal=state.ideal,
        device=dev,
        eval_batch_size=eval_batch_size,
        front=front,
        subproblem=subproblem,
        subproblem_prefs=sub_prefs.numpy(),
        run=run,
        progress=progress,
        start=start,
    )
    step, epoch, train_seconds = 0, 0, 0.0
    status, error = "completed", None
    try:
        records.evaluate(0, {"beta": state.schedule.strength(0, total_steps)})
        for epoch in range(1, epochs + 1):
            if progress:
                progress.start_epoch(epoch)
            t0, total, batches = time.perf_counter(), torch.zeros(k, len(names)), 0
            state.beta = beta
            for inputs, targets in data.train_batches(
                names, batch_size=batch_size, generator=generator, fraction=train_fraction
            ):
                if set(targets) != set(names):
                    raise ValueError(
                        "population methods need shared-input data (every batch "
                        f"labelled for all of {names}); got a batch for "
                        f"{sorted(targets)}"
                    )
                inputs, targets = move_to(inputs, dev), move_to(targets, dev)
                losses = spec.step(state, inputs, targets, step, epoch)
                pop.project_()  # box-constrained problems: projected gradient descent
                if not torch.isfinite(losses).all():
                    raise NonFiniteLossError(
                        f"non-finite training loss at step {step}: {losses.tolist()}"
                    )
                total += losses.double().cpu()
                batches += 1
                step += 1
            t_train = time.perf_counter() - t0
            train_seconds += t_train
            records.evaluate(
                epoch,
                {
                    "beta": state.beta,
                    "train_loss": (total / max(batches, 1)).tolist(),
                    "seconds_train": t_train,
                    "seconds": time.perf_counter() - t0,
                },
            )
    except NonFiniteLossError as err:
        status, error = "diverged", str(err)
    summary = population_summary(
        method,
        names,
        prefs,
        ref,
        records.curves,
        records.records[-1] if records.records else {},
        status,
        error,
        max(0, epoch - (status != "completed")),
        time.perf_counter() - start,
        train_seconds,
    )
    summary |= {
        "method_requested": requested,
        "scalarization": mc.scalarization if spec.scalarized else None,
        "subproblem": subproblem,
        "init": init,
        "optimizer": opt_spec,
    }
    if run and save_checkpoints and status == "completed":
        run.save(
            "population.pt",
            {
                "population": pop.state_dict(),
                "optimizer": opt.state_dict(),
                "prefs": prefs,
                "epoch": epoch,
                "method": method,
            },
        )
    if run:
        run.write_summary(summary)
    if error:
        raise NonFiniteLossError(error)
    return summary


def run_population(
    cfg: Any,
    data: MultiTaskData,
    make_model: Callable[[], nn.Module],
    run: RunWriter | None,
    progress: Progress | None,
) -> dict[str, Any]:
    """Entry point for :func:`alphavil.runner.execute` (``train.method`` in :data:`METHODS`)."""
    from alphavil.pareto.problems import front_for

    tc = cfg.train
    mc = cfg.extra.get("mt2o") or MT2OConfig()
    return train_population(
        data,
        make_model,
        mc,
        method=tc.method,
        epochs=tc.epochs,
        batch_size=tc.batch_size,
        optimizer=tc.optimizer,
        seed=tc.seed,
        device=tc.device,
        train_fraction=tc.train_fraction,
        eval_batch_size=tc.eval_batch_size,
        tasks=tc.tasks,
        run=run,
        progress=progress,
        save_checkpoints=tc.save_checkpoints,
        front=front_for(cfg.data),
    )
