"""Run one config end to end: build data and model, train, write the run directory."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path
from typing import Any

import torch

from alphavil.config import POPULATION_METHODS, RunConfig
from alphavil.datasets import get_dataset
from alphavil.progress import Progress
from alphavil.runs import RunWriter
from alphavil.training import Trainer


class RunExistsError(FileExistsError):
    """The run directory already holds a finished run."""


def default_run_name(cfg: RunConfig) -> str:
    """``<data>-<method>[-<target>]-s<seed>``, e.g. ``multimnist-alphavil-left-s0``."""
    tc = cfg.train
    parts = [cfg.data_name, tc.method]
    if tc.method not in ("multitask", *POPULATION_METHODS):
        parts.append(tc.target)
    return "-".join([*parts, f"s{tc.seed}"])


def run_dir_for(cfg: RunConfig) -> Path:
    """Where ``cfg``'s run directory goes: ``out_dir/name``."""
    return Path(cfg.out_dir) / (cfg.name or default_run_name(cfg))


def execute(
    cfg: RunConfig,
    run_dir: str | Path | None = None,
    *,
    overwrite: bool = False,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Train ``cfg`` and write its run directory; returns the summary.

    Raises:
        RunExistsError: ``run_dir`` already has a ``summary.json`` and ``overwrite`` is false.
    """
    path = Path(run_dir) if run_dir is not None else run_dir_for(cfg)
    if (path / "summary.json").exists() and not overwrite:
        raise RunExistsError(
            f"{path} already holds a finished run; pass --overwrite or choose another name"
        )
    if path.exists():
        looks_like_run = any((path / f).exists() for f in ("config.json", "metrics.jsonl"))
        if not looks_like_run and any(path.iterdir()):
            raise RunExistsError(
                f"{path} exists and is not a run directory; refusing to "
                "overwrite it, choose another --run-dir or name"
            )
        shutil.rmtree(path)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    spec = get_dataset(cfg.data_name)
    data, make_model = spec.build(cfg.data)
    torch.manual_seed(cfg.train.seed)
    model = make_model()
    run = RunWriter(path)
    run.write_config(cfg.to_dict())
    progress = Progress(path.name, cfg.train.epochs, enabled=show_progress)
    if cfg.train.method in POPULATION_METHODS:
        module = importlib.import_module(POPULATION_METHODS[cfg.train.method])
        result: dict[str, Any] = module.run_population(cfg, data, make_model, run, progress)
        return result
    return Trainer(cfg, data, model, run, progress).fit()
