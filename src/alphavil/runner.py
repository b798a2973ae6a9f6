"""Run one config end to end: build data and model, train, write the run directory."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from alphavil import distributed as dist
from alphavil.config import POPULATION_METHODS, ConfigError, RunConfig, has_target
from alphavil.config_diff import config_differences
from alphavil.data.batching import MultiTaskData, SeparateInputData
from alphavil.data.budget import apply_budget
from alphavil.data.derived import add_extra_tasks
from alphavil.datasets import build_model, get_dataset
from alphavil.progress import Progress
from alphavil.runs import MARKER, STATE_FILE, RunWriter, load_checkpoint, read_json
from alphavil.training import Trainer, check_stream


class RunExistsError(FileExistsError):
    """The run directory already holds a finished run."""


def default_run_name(cfg: RunConfig) -> str:
    """``<data>-<method>[-<target>]-s<seed>``, e.g. ``multimnist-alphavil-left-s0``."""
    tc = cfg.train
    parts = [cfg.data_name, tc.method]
    if has_target(tc.method):
        parts.append(tc.target)
    return "-".join([*parts, f"s{tc.seed}"])


def run_dir_for(cfg: RunConfig) -> Path:
    """Where ``cfg``'s run directory goes: ``out_dir/name``."""
    return Path(cfg.out_dir) / (cfg.name or default_run_name(cfg))


def load_data(cfg: RunConfig) -> tuple[MultiTaskData, Callable[[], nn.Module]]:
    """The run's data (the dataset plus its ``[[data.extra_tasks]]``, under its
    ``[data.budget]``, with its ``data.stream``) and a factory for a fresh model with one head
    per task."""
    data, factory = get_dataset(cfg.data_name).build(cfg.data)
    seed = int(getattr(cfg.data, "data_seed", 0))
    try:
        data = add_extra_tasks(data, cfg.extra_tasks, seed)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if cfg.budget is not None:
        stream = "joint" if cfg.stream == "auto" else cfg.stream
        budget_seed = cfg.budget.seed if cfg.budget.seed >= 0 else seed
        if cfg.budget.draw == "train_seed":
            budget_seed = cfg.train.seed
        data = apply_budget(data, cfg.budget, cfg.train.target, budget_seed, stream)
    elif cfg.stream != "auto":
        data = with_stream(data, cfg.stream)
    tasks = list(data.tasks)
    return data, lambda: build_model(factory, tasks)


def with_stream(data: MultiTaskData, stream: str) -> MultiTaskData:
    """``data`` with training stream ``stream`` (``data.stream``); shared-input batches already
    hold every task, so there ``"joint"`` changes nothing and ``"interleaved"`` is refused."""
    if isinstance(data, SeparateInputData):
        data.stream = stream
    elif stream != "joint":
        raise ConfigError(
            f"data.stream = \"{stream}\": this data's examples carry every task's label, so "
            'each batch holds every task; only "joint" (or "auto") applies'
        )
    return data


def owned(path: Path) -> bool:
    """Whether ``path`` is a run directory alphavil created (it holds the marker file)."""
    return (path / MARKER).is_file()


def _check_preparable(path: Path) -> None:
    """Refuse a ``path`` that :func:`_prepare` may not use (a file, or a folder not ours)."""
    if path.exists() and not path.is_dir():
        raise RunExistsError(f"{path} exists and is not a directory; choose another --run-dir")
    if path.exists() and not owned(path) and any(path.iterdir()):
        raise RunExistsError(
            f"{path} exists and was not created by alphavil (no {MARKER} file); refusing to "
            "touch it, choose another --run-dir or name"
        )


def _prepare(path: Path) -> None:
    """Make ``path`` an empty run directory with the ownership marker. Deletes only folders
    that hold the marker; an existing folder without it must be empty."""
    _check_preparable(path)
    if path.exists() and owned(path):
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    # not atomic on purpose: the marker's existence is what counts, and a kill between the two
    # steps must not leave a temporary file that makes the folder look like someone else's
    (path / MARKER).write_bytes(b"alphavil run directory\n")


def execute(
    cfg: RunConfig,
    run_dir: str | Path | None = None,
    *,
    overwrite: bool = False,
    resume: bool = False,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Train ``cfg`` and write its run directory; returns the summary.

    Ownership: alphavil writes a marker file (``.alphavil-run``) into every run directory it
    creates and never deletes or reuses a folder without it (an empty folder is fine).

    * ``resume``: an unfinished run of the same config continues after its last whole epoch
      (bit-identical to an uninterrupted run; needs ``train.save_state``); a finished one is
      returned as it is. A run of a different config is refused unless ``overwrite``.
    * ``overwrite``: a finished run (or one of another config) is deleted and run again.
    * Neither: a finished run is refused; an unfinished one is started again from scratch.

    Raises:
        RunExistsError: the folder is not ours, or holds a finished run / another config and
            ``overwrite`` is false.
    """
    path = Path(run_dir) if run_dir is not None else run_dir_for(cfg)
    wanted = cfg.to_dict()
    parallel = dist.init_from_env(cfg.train.device)  # under torchrun: join the process group
    try:
        return _execute(cfg, path, wanted, parallel, overwrite, resume, show_progress)
    finally:
        if parallel:
            dist.shutdown()


def _execute(
    cfg: RunConfig,
    path: Path,
    wanted: dict[str, Any],
    parallel: bool,
    overwrite: bool,
    resume: bool,
    show_progress: bool,
) -> dict[str, Any]:
    """:func:`execute` once the process group (if any) is set up."""
    if parallel and cfg.train.method in POPULATION_METHODS:
        raise ConfigError(
            f"train.method = {cfg.train.method!r} runs in one process; launch it without torchrun"
        )
    state = None
    if path.exists() and path.is_dir() and owned(path):
        summary = _read_or_none(path / "summary.json")
        stored = _read_or_none(path / "config.json")
        differs = (
            config_differences(stored, wanted, cfg) if isinstance(stored, dict) else ["config"]
        )
        finished = isinstance(summary, dict) and summary.get("status") == "completed"
        if resume and differs and not overwrite and (finished or (path / STATE_FILE).exists()):
            raise RunExistsError(
                f"{path} holds a run of another config ({'; '.join(differs[:3])}); pass "
                "--overwrite to replace it"
            )
        if finished and not overwrite:
            if resume:
                return dict(summary)
            raise RunExistsError(
                f"{path} already holds a finished run; pass --overwrite or choose another name"
            )
        if resume and not differs and not finished and (path / STATE_FILE).exists():
            state = load_checkpoint(path / STATE_FILE)
    if state is None:
        _check_preparable(path)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    if cfg.train.tensorboard:  # a missing package: one line before anything is written
        from alphavil.tensorboard import require

        require()
    data, make_model = load_data(cfg)  # before touching the folder: bad data leaves no trace
    if cfg.train.method not in POPULATION_METHODS:
        check_stream(cfg.train.method, data, list(cfg.train.tasks) or [t.name for t in data.tasks])
    main = dist.is_main()  # rank 0 alone writes the run directory
    dist.barrier()  # every rank has checked the folder before rank 0 changes it
    if state is None and main:
        _prepare(path)
    dist.barrier()
    torch.manual_seed(cfg.train.seed)
    model = make_model()
    run: RunWriter | None = None
    if main:
        if cfg.train.tensorboard:
            from alphavil.tensorboard import TensorBoardRunWriter

            run = TensorBoardRunWriter(path)
        else:
            run = RunWriter(path)
    progress = Progress(path.name, cfg.train.epochs, enabled=show_progress and main)
    if cfg.train.method in POPULATION_METHODS:
        assert run is not None
        run.write_config(wanted)
        from alphavil.pareto.mt2o import run_population

        result: dict[str, Any] = run_population(cfg, data, make_model, run, progress)
        return result
    if run is not None and state is None:
        run.write_config(wanted)
    elif run is not None and state is not None:
        run.truncate(int(state["epoch"]))
        (path / "summary.json").unlink(missing_ok=True)
    return Trainer(cfg, data, model, run, progress).fit(resume=state)


def _read_or_none(path: Path) -> Any:
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None
