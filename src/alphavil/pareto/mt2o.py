"""MT2O population training (Bai, Gupta & Ong 2024, arXiv 2403.16162) and its baselines.

K models, one per weight vector λ^k (:mod:`~alphavil.pareto.weights`), each minimising its scalar
subproblem g(θ_k | λ^k) (:mod:`~alphavil.pareto.scalarize`) by multi-task gradient descent: every
step all K take a gradient step on the same mini-batch, and parameters are transferred among
neighbouring subproblems through a row-stochastic matrix M (:mod:`~alphavil.pareto.transfer`):

    θ_k ← Σ_j M_kj θ_j − η · dir_k(∇ g(θ_k | λ^k; B))          (reconstruction Eq. R4)

Methods (``train.method``): ``mt2o`` (transfer on), ``no_transfer`` (K independent runs of the
configured scalarisation, linear or Tchebycheff: the ablation MT2O's claim rests on; the old name
``ls`` is accepted and means the same), ``pmtl`` (Pareto MTL, :mod:`~alphavil.pareto.pmtl`),
``epo`` (EPO) and ``pareto_mgda`` (MGDA from K initialisations, :mod:`~alphavil.pareto.baselines`).
After every epoch (and before the first) all K models are evaluated, in eval mode, on dev and
test; the hypervolume of the K test-loss vectors w.r.t. a fixed, recorded reference point is one
convergence measure; where the analytic front is known (synthetic problems) IGD, IGD+ and each
model's distance to its own subproblem optimum (:mod:`~alphavil.pareto.metrics`) are recorded
too, and every model's scalarised test loss g(θ_k | λ^k) always is. Which parts are
reconstructed is said where they are set; see docs/mt2o.md.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from alphavil.config import ConfigError, bounded, build_optimizer, choice, resolve_device
from alphavil.data.batching import MultiTaskData, move_to
from alphavil.pareto.baselines import epo_preferences, epo_step, mgda_step
from alphavil.pareto.hypervolume import hypervolume
from alphavil.pareto.metrics import igd, igd_plus, subproblem_distance
from alphavil.pareto.pmtl import pmtl_step
from alphavil.pareto.population import Population, check_elementwise, mtgd_step
from alphavil.pareto.scalarize import SCALARIZATION_ALIASES, SCALARIZATIONS, scalarize
from alphavil.pareto.transfer import DECAYS, TransferSchedule, transfer_matrix
from alphavil.pareto.weights import preference_vectors
from alphavil.progress import Progress
from alphavil.runs import RunWriter
from alphavil.training import NonFiniteLossError

__all__ = [
    "METHODS",
    "METHOD_ALIASES",
    "MT2OConfig",
    "canonical_method",
    "epochs_to_fraction",
    "run_population",
    "train_population",
]

METHODS = ("mt2o", "no_transfer", "pmtl", "epo", "pareto_mgda")
METHOD_ALIASES = {"ls": "no_transfer"}  # old name: "ls" never meant the scalarisation


def canonical_method(method: str) -> str:
    """The method's current name (``ls`` -> ``no_transfer``); ``ValueError`` if unknown."""
    name = METHOD_ALIASES.get(method, method)
    if name not in METHODS:
        allowed = ", ".join([*METHODS, *METHOD_ALIASES])
        raise ValueError(f"unknown population method {method!r}; allowed: {allowed}")
    return name


@dataclass
class MT2OConfig:
    """The ``[mt2o]`` table: population, scalarisation, transfer and evaluation settings.

    Every [reconstructed] default is a flag (reconstruction note §5.1). ``beta`` is used by
    ``mt2o`` only; ``scalarization`` by ``mt2o`` and ``no_transfer``; ``ideal`` by those and, as
    the origin of the losses, by ``epo`` and ``pmtl``.
    """

    n_models: int = bounded(5, 1)  # K [reconstructed: 5, as ParetoMTL/EPO on MultiMNIST]
    # [reconstructed: linear default]; "ls" is accepted for "linear"
    scalarization: str = choice("linear", *SCALARIZATIONS, *SCALARIZATION_ALIASES)
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

    def __post_init__(self) -> None:
        self.scalarization = SCALARIZATION_ALIASES.get(self.scalarization, self.scalarization)
        if self.decay_start > self.decay_end:
            raise ConfigError(
                f"mt2o.decay_start ({self.decay_start}) must be <= mt2o.decay_end "
                f"({self.decay_end})"
            )
        if not self.ref_point or any(not math.isfinite(v) for v in self.ref_point):
            raise ConfigError(f"mt2o.ref_point must be finite numbers, got {self.ref_point}")


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


def epochs_to_fraction(
    hv: Sequence[float], fraction: float = 0.95, target: float | None = None
) -> int | None:
    """First epoch index e with hv[e] >= fraction · target (target: the last value).

    ``hv[e]`` is the hypervolume after epoch e (index 0 = before training). ``None`` if never.
    """
    if not hv:
        return None
    goal = fraction * (hv[-1] if target is None else target)
    return next((e for e, v in enumerate(hv) if v >= goal and v > 0), None)


def _hv(points: np.ndarray, ref: np.ndarray, *, maximize: bool = False) -> float:
    with warnings.catch_warnings():  # early epochs may dominate no point: HV 0, no warning spam
        warnings.filterwarnings("ignore", message="the reference point", category=RuntimeWarning)
        return hypervolume(points, ref, maximize=maximize)


def _split_record(loss: Tensor, acc: Tensor | None, names: list[str]) -> dict[str, Any]:
    return {
        t: {"loss": loss[:, i].tolist(), "accuracy": None if acc is None else acc[:, i].tolist()}
        for i, t in enumerate(names)
    }


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
    init = "independent" if method == "pareto_mgda" else mc.init
    torch.manual_seed(seed)
    first = make_model()
    models = [first] + [
        copy.deepcopy(first) if init == "identical" else make_model() for _ in range(k - 1)
    ]
    vectorize = mc.forward == "vmap" or (mc.forward == "auto" and dev.type == "cuda")
    pop = Population([m.to(dev) for m in models], task_list, vectorize=vectorize)
    opt = build_optimizer(opt_spec, pop.parameters())
    beta = mc.beta if method == "mt2o" else 0.0
    schedule = TransferSchedule(beta, mc.period, mc.decay, mc.decay_start, mc.decay_end)
    ideal = torch.tensor(mc.ideal, dtype=torch.float64) if mc.ideal else None
    prefs_dev = prefs.to(dev)
    # the subproblem each model solves, where it has one (pmtl: a sector; pareto_mgda: none)
    sub_scal = {"mt2o": mc.scalarization, "no_transfer": mc.scalarization, "epo": "tchebycheff"}
    subproblem = sub_scal.get(method)
    sub_prefs = (epo_preferences(prefs) if method == "epo" else prefs).numpy()
    pmtl_init = torch.ones(k, dtype=torch.bool)  # ParetoMTL feasibility phase, per model
    generator = torch.Generator().manual_seed(seed)
    n_train = data.num_examples("train", names[0])
    steps_per_epoch = math.ceil(max(1, round(train_fraction * n_train)) / batch_size)
    total_steps = epochs * steps_per_epoch
    curves: dict[str, list[Any]] = {
        "hv": [],
        "hv_dev": [],
        "igd": [],
        "igd_plus": [],
        "subproblem_distance": [],
        "subproblem_gap": [],
    }
    records: list[dict[str, Any]] = []
    step, epoch, train_seconds, start = 0, 0, 0.0, time.perf_counter()
    status, error = "completed", None

    def front_metrics(loss: Tensor) -> dict[str, Any]:
        if front is None:
            return {}
        pts = loss.numpy()
        out: dict[str, Any] = {"igd": igd(pts, front), "igd_plus": igd_plus(pts, front)}
        if subproblem is not None:
            z = None if ideal is None else ideal.numpy()
            dist, gap = subproblem_distance(pts, front, sub_prefs, subproblem, z)
            out |= {"subproblem_distance": dist.tolist(), "subproblem_gap": gap.tolist()}
        return out

    def evaluate(ep: int, extra: dict[str, Any]) -> None:
        splits = ["dev", "test"] if mc.eval_dev else ["test"]
        record: dict[str, Any] = {"epoch": ep, "hv": {}, "hv_accuracy": {}, "scalarized": {}}
        for split in splits:
            batches = data.eval_batches(split, names, batch_size=eval_batch_size)
            loss, acc = pop.evaluate(move_to(b, dev) for b in batches)  # eval mode
            if not torch.isfinite(loss).all():
                raise NonFiniteLossError(f"non-finite {split} loss {loss.tolist()}")
            record["hv"][split] = _hv(loss.numpy(), ref)
            record["scalarized"][split] = scalarize(
                loss, prefs, mc.scalarization, ideal=ideal, smooth=mc.smooth
            ).tolist()
            if acc is not None:
                record["hv_accuracy"][split] = _hv(acc.numpy(), np.zeros(len(names)), maximize=True)
            record[split] = _split_record(loss, acc, names)
            if split == "test":
                record |= front_metrics(loss)
        record.update(extra, seconds_total=time.perf_counter() - start)
        curves["hv"].append(record["hv"]["test"])
        if "dev" in record["hv"]:
            curves["hv_dev"].append(record["hv"]["dev"])
        for key in ("igd", "igd_plus", "subproblem_distance", "subproblem_gap"):
            if key in record:
                curves[key].append(record[key])
        records.append(record)
        if run:
            run.log_epoch(record)
        if progress:
            progress.end_epoch(f"hv(test) {record['hv']['test']:.4f} β {extra.get('beta', 0):.3g}")

    try:
        evaluate(0, {"beta": schedule.strength(0, total_steps)})
        for epoch in range(1, epochs + 1):
            if progress:
                progress.start_epoch(epoch)
            t0, total, batches = time.perf_counter(), torch.zeros(k, len(names)), 0
            beta_t = beta
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
                if method == "pmtl":
                    if epoch > mc.pmtl_init_epochs:
                        pmtl_init[:] = False
                    losses, pmtl_init = pmtl_step(
                        pop, opt, inputs, targets, prefs, pmtl_init, ideal=ideal
                    )
                elif method == "epo":
                    losses = epo_step(pop, opt, inputs, targets, prefs, ideal)
                elif method == "pareto_mgda":
                    losses = mgda_step(pop, opt, inputs, targets)
                else:
                    beta_t = schedule.strength(step, total_steps)
                    mixing = (
                        transfer_matrix(
                            prefs, beta_t, mc.n_neighbours, coefficients=mc.coefficients
                        ).to(dev)
                        if beta_t > 0 and schedule.applies(step)
                        else None
                    )
                    losses = mtgd_step(
                        pop,
                        opt,
                        inputs,
                        targets,
                        prefs_dev,
                        scalarization=mc.scalarization,
                        ideal=ideal,
                        smooth=mc.smooth,
                        mixing=mixing,
                        mix_buffers=mc.mix_buffers,
                    )
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
            evaluate(
                epoch,
                {
                    "beta": beta_t,
                    "train_loss": (total / max(batches, 1)).tolist(),
                    "seconds_train": t_train,
                    "seconds": time.perf_counter() - t0,
                },
            )
    except NonFiniteLossError as err:
        status, error = "diverged", str(err)
    summary = _summary(
        method,
        names,
        prefs,
        ref,
        curves,
        records[-1] if records else {},
        status,
        error,
        max(0, epoch - (status != "completed")),
        time.perf_counter() - start,
        train_seconds,
    )
    summary |= {
        "method_requested": requested,
        "scalarization": mc.scalarization if method in ("mt2o", "no_transfer") else None,
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


def _summary(
    method: str,
    names: list[str],
    prefs: Tensor,
    ref: np.ndarray,
    curves: dict[str, list[Any]],
    last: dict[str, Any],
    status: str,
    error: str | None,
    epochs_done: int,
    seconds: float,
    train_seconds: float,
) -> dict[str, Any]:
    hv_curve = curves["hv"]
    best_epoch = int(np.argmax(hv_curve)) if hv_curve else None
    extra = {f"{key}_curve": curves[key] for key in curves if key != "hv" and curves[key]}
    return {
        "method": method,
        "target": None,
        "tasks": names,
        "n_models": prefs.shape[0],
        "prefs": prefs.tolist(),
        "ref_point": ref.tolist(),
        "status": status,
        "error": error,
        "epochs_completed": epochs_done,
        "hv_test": hv_curve[-1] if hv_curve else None,
        "hv_curve": hv_curve,
        "best_hv": None
        if best_epoch is None
        else {"epoch": best_epoch, "hv_test": hv_curve[best_epoch]},
        "epochs_to_95": epochs_to_fraction(hv_curve, 0.95),
        "final": {s: last[s] for s in ("dev", "test") if s in last},
        "final_scalarized": last.get("scalarized", {}),
        **extra,
        "best": _best_models(last, names, epochs_done),
        "seconds": seconds,
        "seconds_train": train_seconds,
    }


def _best_models(last: dict[str, Any], names: list[str], epoch: int) -> dict[str, Any]:
    """Per task, the final model with the best dev accuracy (or dev loss; test if no dev)."""
    best: dict[str, Any] = {}
    sel = "dev" if "dev" in last else "test"
    for t in names:
        if sel not in last:
            break
        acc, loss = last[sel][t]["accuracy"], last[sel][t]["loss"]
        i = int(np.argmax(acc)) if acc is not None else int(np.argmin(loss))
        get = {s: last[s][t] for s in ("dev", "test") if s in last}
        best[t] = {
            "epoch": epoch,
            "model": i,
            **{
                f"{s}_{key}": (None if v[key] is None else v[key][i])
                for s, v in get.items()
                for key in ("accuracy", "loss")
            },
        }
        best[t].setdefault("dev_accuracy", None)
    return best


def format_population_summary(summary: dict[str, Any]) -> str:
    """A population run summary: final hypervolume and each model's test losses."""
    lines = [
        f"{summary['method']} (K={summary['n_models']}): {summary['status']} in "
        f"{summary['seconds']:.0f}s; test HV {summary['hv_test']:.4f} (ref "
        f"{summary['ref_point']}), epochs to 95% HV {summary['epochs_to_95']}"
    ]
    test = summary.get("final", {}).get("test", {})
    names = list(test)
    lines += [
        "| model | λ | " + " | ".join(f"{t} loss" for t in names) + " |",
        "|---" * (len(names) + 2) + "|",
    ]
    for i, pref in enumerate(summary["prefs"]):
        cells = " | ".join(f"{test[t]['loss'][i]:.4f}" for t in names)
        lines.append(f"| {i} | {', '.join(f'{v:.2f}' for v in pref)} | {cells} |")
    return "\n".join(lines)


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
