"""Planning a sweep: the ``[sweep]`` grid, its runs (:class:`Job`), each run's resolved config,
and whether a run folder already holds a completed run of that config.

Both backends (:mod:`alphavil.sweep.local`, :mod:`alphavil.sweep.ray`) run what this plans; see
:mod:`alphavil.sweep` for the behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alphavil.config import (
    POPULATION_METHODS,
    ConfigError,
    RunConfig,
    bounded,
    choice,
    has_target,
)
from alphavil.config import load_config as _load
from alphavil.config_diff import config_differences
from alphavil.methods import MethodImportError, get_method, method_names
from alphavil.runs import read_json


@dataclass
class SweepConfig:
    """``[sweep]`` table: the grid a sweep runs (CLI flags override it)."""

    methods: list[str] = field(default_factory=lambda: ["single", "multitask", "diw", "alphavil"])
    targets: list[str] = field(default_factory=list)  # empty: every task of the data
    seeds: list[int] = field(default_factory=lambda: [0])
    workers: int = bounded(2, 0)  # parallel processes; 0 runs in this process
    threads: int = bounded(1, 1)  # torch threads per worker
    # Named configurations instead of bare methods: name -> overrides, e.g.
    # {"single-lr0.025" = ["train.method=single", "train.optimizer.lr=0.025"]}. Each run is
    # labelled with its variant's name (the report groups by label). Empty: one per method.
    variants: dict[str, list[str]] = field(default_factory=dict)
    # Job order: "method" runs each method's seeds together; "seed" runs every method of a
    # seed before the next seed, so an interrupted sweep leaves complete paired seeds.
    order: str = choice("method", "method", "seed")


@dataclass(frozen=True)
class Job:
    """One run of a sweep."""

    name: str
    overrides: tuple[str, ...]


def _variants(sweep: SweepConfig) -> dict[str, list[str]]:
    """The sweep's named configurations: its ``variants`` or one per method."""
    allowed = (*method_names(), *POPULATION_METHODS)
    if sweep.variants:
        for name, ov in sweep.variants.items():
            if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
                raise ConfigError(
                    f"sweep.variants: name {name!r} must be letters, digits, '-', '_' or '.'"
                )
            if not isinstance(ov, list) or not all(isinstance(o, str) for o in ov):
                raise ConfigError(
                    f"sweep.variants.{name}: expected a list of key=value strings, got {ov!r}"
                )
        return {name: list(ov) for name, ov in sweep.variants.items()}
    for m in sweep.methods:
        if m not in allowed and ":" not in m:
            raise ConfigError(
                f"sweep.methods: {m!r} is not one of {', '.join(allowed)}, "
                "or an import path 'package.module:Class'"
            )
        if m not in allowed:
            try:
                get_method(m)
            except MethodImportError as err:
                raise ConfigError(f"sweep.methods: {err}") from None
    # an import path's run folders are named with '.' for ':'
    return {m.replace(":", "."): [f"train.method={m}"] for m in sweep.methods}


def plan(config: str | None, overrides: list[str], sweep: SweepConfig) -> list[Job]:
    """The runs of the grid, validated (unknown methods/targets and an empty grid raise
    :class:`ConfigError`)."""
    base = _load(config, overrides)
    tasks = list(base.train.tasks) or base.task_names()
    for key in ("methods", "targets", "seeds"):
        values = getattr(sweep, key)
        if len(set(values)) != len(values):
            raise ConfigError(f"sweep.{key}: {values} lists a value twice")
    variants = _variants(sweep)
    if not variants:
        raise ConfigError("sweep.methods: empty (and no sweep.variants); the grid has no runs")
    if not sweep.seeds:
        raise ConfigError("sweep.seeds: empty; the grid has no runs")
    targets = sweep.targets or tasks
    if not targets:
        raise ConfigError("sweep.targets: no target tasks; the grid has no runs")
    for t in targets:
        if t not in tasks:
            raise ConfigError(f"sweep.targets: {t!r} is not a task; tasks: {', '.join(tasks)}")
    jobs: list[tuple[int, int, Job]] = []
    for v_index, (variant, v_overrides) in enumerate(variants.items()):
        method = _load(config, [*overrides, *v_overrides]).train.method
        per_target = has_target(method)
        for target in targets if per_target else [targets[0]]:
            for seed in sweep.seeds:
                name = f"{variant}-{target}-s{seed}" if per_target else f"{variant}-s{seed}"
                ov = (
                    *overrides,
                    *v_overrides,
                    f"train.target={target}",
                    f"train.seed={seed}",
                    f"train.threads={sweep.threads}",
                    f"name={name}",
                )
                if sweep.variants:
                    ov = (*ov, f"label={variant}")
                _load(config, list(ov))  # validate every job before starting any
                jobs.append((seed, v_index, Job(name, ov)))
    if sweep.order == "seed":
        jobs.sort(key=lambda j: (sweep.seeds.index(j[0]), j[1]))  # stable within a variant
    return [j for _, _, j in jobs]


def job_config(config: str | None, job: Job) -> RunConfig:
    """The resolved config of ``job``, without the ``[sweep]`` table (the grid is not part of a
    run's config, so editing the grid does not make finished runs look changed)."""
    cfg = _load(config, list(job.overrides))
    cfg.extra.pop("sweep", None)
    return cfg


def run_state(
    run_dir: Path, requested: dict[str, Any], cfg: RunConfig | None = None
) -> tuple[str, list[str]]:
    """Whether ``run_dir`` holds a completed run of ``requested`` (a resolved config dict;
    ``cfg``'s defaults forgive options added since the run, see :mod:`alphavil.config_diff`).

    Returns:
        ``("done", [])``; ``("changed", ["train.epochs: 2 -> 3", ...])`` for a completed run
        of another config; ``("todo", [])`` when there is no completed run (none, unfinished,
        failed or unreadable).
    """
    try:
        summary = read_json(run_dir / "summary.json")
    except (OSError, ValueError):
        return "todo", []
    if not isinstance(summary, dict) or summary.get("status") != "completed":
        return "todo", []
    try:
        stored = read_json(run_dir / "config.json")
    except (OSError, ValueError):
        return "changed", ["config.json missing or unreadable"]
    if not isinstance(stored, dict):
        return "changed", ["config.json is not a JSON object"]
    diffs = config_differences(stored, requested, cfg)
    return ("changed" if diffs else "done"), diffs


def changed_message(changed: list[tuple[Path, list[str]]]) -> str:
    """The one-line refusal for completed runs of another config (their paths and keys)."""
    path, diffs = changed[0]
    shown = "; ".join(diffs[:3]) + (f"; {len(diffs) - 3} more keys" if len(diffs) > 3 else "")
    msg = f"{path} was run with a different config ({shown})"
    if len(changed) == 1:
        return msg + "; pass --rerun-changed to rerun it"
    names = ", ".join(p.name for p, _ in changed[1:4]) + (", ..." if len(changed) > 4 else "")
    return (
        f"{msg}, and so were {len(changed) - 1} more runs ({names}); "
        "pass --rerun-changed to rerun them"
    )
