"""Run configs: TOML files plus ``key=value`` overrides, validated into typed dataclasses.

A config has a ``[data]`` table (its ``name`` picks a dataset from :mod:`alphavil.datasets`, whose
dataclass validates the other keys), a ``[train]`` table and one table per method
(``[alphavil]``, ``[diw]``, ``[mt2o]``; each method's options class lives in its own module and
is registered in :data:`alphavil.methods.SECTIONS`). Every default is the paper's MultiMNIST
setting (§4.1). Errors are :class:`ConfigError` (from :mod:`alphavil.schema`, re-exported here
with the field helpers) with a one-line message naming the key and what is allowed.

Reading the text (TOML files, ``key=value`` overrides) is :mod:`alphavil.config_toml`
(``parse_override`` and ``read_toml`` are re-exported here); the ``[data]`` parts every dataset
shares (extra tasks, budget, stream) are :mod:`alphavil.config_data`.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alphavil.config_data import build_budget, build_extra_tasks, check_data_stream
from alphavil.config_toml import parse_override, read_toml, set_override
from alphavil.data.derived import ExtraTask
from alphavil.datasets import DatasetImportError, dataset_names, get_dataset
from alphavil.methods import (
    POPULATION,
    RECORDED,
    REGISTRY,
    MethodImportError,
    get_method,
    method_names,
    options_section,
)
from alphavil.methods import SECTIONS as METHOD_SECTIONS
from alphavil.methods.alphavil_options import (  # noqa: F401 - re-exported
    ALPHAVIL_PRESETS,
    AlphaVILConfig,
    with_alphavil_preset,
)
from alphavil.methods.diw_options import DIWConfig
from alphavil.schema import (  # noqa: F401 - re-exported: alphavil.config is their usual home
    ConfigError,
    _opt,
    bounded,
    build_optimizer,
    build_section,
    check_device,
    check_optimizer,
    choice,
    is_compared,
    option_before,
    resolve_device,
)

if TYPE_CHECKING:
    from alphavil.data.budget import Budget

# the population methods' names (MT2O and its baselines; alphavil.methods.POPULATION)
POPULATION_METHODS: dict[str, str] = POPULATION


@dataclass
class TrainConfig:
    """Model training shared by all methods (paper §4.1 defaults)."""

    method: str = "alphavil"  # a name in alphavil.methods.REGISTRY or a population method
    target: str = "left"  # the target task t*; ignored by multitask (which keeps a best per task)
    tasks: list[str] = field(default_factory=list)  # tasks to train on; empty = all of the data's
    epochs: int = bounded(100, 1)
    batch_size: int = bounded(256, 1)
    # Per-epoch sample of each task's training data for single/multitask (NLU study: 0.25).
    train_fraction: float = bounded(1.0, 0.0, 1.0, lo_open=True)
    eval_batch_size: int = bounded(1000, 1)
    # numpy accepts seeds < 2**32 and the loop seeds a second generator with seed + 1
    seed: int = bounded(0, 0, 2**32 - 2)
    threads: int = bounded(0, 0)  # torch threads; 0 keeps torch's default
    # "cpu", "cuda", "cuda:N" or "auto" (cuda where a GPU is visible, else cpu). "auto" is kept
    # as written in config.json and resolved where the model is placed (resolve_device), so a
    # sweep planned on a CPU machine runs on the GPU of the node that executes it.
    device: str = "cpu"
    # Mixed precision of the loop's forward passes: "bf16" runs them under
    # torch.autocast(dtype=bfloat16) (GPUs with bf16, and CPUs); losses are taken in float32.
    # The α fit's own dev passes (alphavil.alpha*) stay in float32.
    autocast: str = choice("off", "off", "bf16")
    channels_last: bool = True  # ~1.5x faster convolutions on this CPU (data-and-machine.md §4)
    optimizer: dict[str, Any] = _opt("SGD", 0.05, momentum=0.9)  # noqa: RUF009 - returns a field()
    save_checkpoints: bool = True
    save_predictions: bool = True  # test-set class probabilities at each task's best dev epoch
    # state.pt after every epoch (model, optimisers, weights, RNG): lets a killed run resume
    # bit-identically (`alphavil run ... --resume`, sweeps by default)
    save_state: bool = True
    # TensorBoard event files in RUN_DIR/tb/ after every epoch, from the metrics.jsonl record
    # (pip install "alphavil[tensorboard]"; alphavil.tensorboard); output only, not compared
    tensorboard: bool = field(default=False, metadata={"compared": False})


_check_device = check_device  # old private name (tests, scripts)

# section name -> options dataclass of the sections defined here; the others are looked up in
# alphavil.methods.SECTIONS and _LAZY_SECTIONS (imported once per path, _IMPORTED)
SECTIONS: dict[str, Any] = {"train": TrainConfig}
_IMPORTED: dict[str, Any] = {}
_LAZY_SECTIONS = {
    "mt2o": "alphavil.pareto.options:MT2OConfig",
    "sweep": "alphavil.sweep:SweepConfig",
}


@dataclass
class RunConfig:
    """A fully validated run config."""

    data: Any
    train: TrainConfig = field(default_factory=TrainConfig)
    # the sections of alphavil.methods.RECORDED, held as attributes (cfg.alphavil.<option>)
    alphavil: AlphaVILConfig = field(default_factory=AlphaVILConfig)
    diw: DIWConfig = field(default_factory=DIWConfig)
    extra: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    out_dir: str = "runs"
    label: str = ""  # what reports call this configuration (default: the method's name)
    extra_tasks: list[ExtraTask] = field(default_factory=list)  # [[data.extra_tasks]]
    budget: Budget | None = None  # [data.budget]: alphavil.data.budget
    # data.stream: "joint" = every step a batch of every task, "interleaved" = one task per
    # step (separate examples only); "auto" = joint under a budget, else the data's own
    stream: str = "auto"

    def __post_init__(self) -> None:
        if not getattr(self.data, "_name", ""):
            raise ConfigError(
                "RunConfig: the data config has no dataset name; build configs with "
                "alphavil.config.load_config / resolve, which set it from data.name"
            )

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (what ``config.json`` holds)."""
        out: dict[str, Any] = {"name": self.name, "out_dir": self.out_dir, "label": self.label}
        out["data"] = {"name": self.data_name, **dataclasses.asdict(self.data)}
        if self.extra_tasks:
            out["data"]["extra_tasks"] = [e.record() for e in self.extra_tasks]
        if self.budget is not None:
            out["data"]["budget"] = dataclasses.asdict(self.budget)
        if self.stream != "auto":
            out["data"]["stream"] = self.stream
        for key, value in self.tables().items():
            if key != "data":
                out[key] = dataclasses.asdict(value)
        return out

    def tables(self) -> dict[str, Any]:
        """Every options table by section name, in ``config.json``'s order: data, train, the
        recorded sections (:data:`alphavil.methods.RECORDED`), then the others."""
        out: dict[str, Any] = {"data": self.data, "train": self.train}
        out.update({key: getattr(self, key) for key in RECORDED})
        out.update(self.extra)
        return out

    @property
    def data_name(self) -> str:
        """The dataset name (a registered name or an import path ``package.module:SPEC``)."""
        return str(self.data._name)

    def task_names(self) -> list[str]:
        """Every task of the run's data: the dataset's own, then ``[[data.extra_tasks]]``."""
        spec = get_dataset(self.data_name)
        return [t.name for t in spec.tasks(self.data)] + [e.name for e in self.extra_tasks]


def _section_class(name: str) -> Any:
    """The options dataclass of section ``name`` (None: no such section), looked up in the
    registries on every call (so a section added or removed at run time is seen) and imported
    once per path."""
    if name in SECTIONS:
        return SECTIONS[name]
    path = METHOD_SECTIONS.get(name) or _LAZY_SECTIONS.get(name)
    if path is None:
        return None
    if path not in _IMPORTED:
        module, attr = path.split(":")
        _IMPORTED[path] = getattr(importlib.import_module(module), attr)
    return _IMPORTED[path]


def resolve(raw: dict[str, Any]) -> RunConfig:
    """Validate a raw config dict (TOML tables) into a :class:`RunConfig`."""
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    data_table = raw.pop("data", {})
    if not isinstance(data_table, dict):
        raise ConfigError("data: expected a table")
    data_table = dict(data_table)
    data_name = data_table.pop("name", "multimnist")
    extra_table = data_table.pop("extra_tasks", [])
    try:
        spec = get_dataset(str(data_name))
    except DatasetImportError as err:
        raise ConfigError(str(err)) from None
    except KeyError:
        raise ConfigError(
            f"data.name: unknown dataset {data_name!r}; allowed: {', '.join(dataset_names())}, "
            "or an import path 'package.module:SPEC'"
        ) from None
    own = {f.name for f in dataclasses.fields(spec.config)}
    budget_table = None if "budget" in own else data_table.pop("budget", None)
    stream = "auto" if "stream" in own else data_table.pop("stream", "auto")
    data = build_section(spec.config, data_table, "data")
    object.__setattr__(data, "_name", str(data_name))
    extra_tasks = build_extra_tasks(extra_table, spec.tasks(data))
    kwargs: dict[str, Any] = {"data": data, "extra": {}, "extra_tasks": extra_tasks}
    kwargs["budget"], kwargs["stream"] = build_budget(budget_table), check_data_stream(stream)
    own_sections = _import_path_sections(raw.get("train"))
    for key, value in raw.items():
        if key in ("name", "out_dir", "label"):
            if not isinstance(value, str):
                raise ConfigError(f"{key}: expected str, got {type(value).__name__} {value!r}")
            kwargs[key] = value
            continue
        cls = own_sections.get(key) or _section_class(key)
        if cls is None:
            allowed = [
                "name",
                "out_dir",
                "label",
                "data",
                "train",
                *RECORDED,
                *SECTIONS,
                *_LAZY_SECTIONS,
                *METHOD_SECTIONS,
                *own_sections,
            ]
            raise ConfigError(f"unknown key '{key}'; allowed: {', '.join(dict.fromkeys(allowed))}")
        if hasattr(cls, "prepare"):  # the options class's hook, e.g. αVIL's presets
            value = cls.prepare(value)
        section = build_section(cls, value, key)
        if key in ("train", *RECORDED):
            kwargs[key] = section
        else:
            kwargs["extra"][key] = section
    cfg = RunConfig(**kwargs)
    method = cfg.train.method
    methods = (*method_names(), *POPULATION_METHODS)
    if method not in methods and ":" not in method:
        raise ConfigError(
            f"train.method: {method!r} is not one of {', '.join(methods)}, "
            "or an import path 'package.module:Class'"
        )
    if cfg.budget is not None and method in POPULATION_METHODS:
        raise ConfigError(
            f"train.method = {method!r} needs every example labelled for every task; "
            "it does not run under a label budget (remove [data.budget])"
        )
    if method in POPULATION_METHODS and "mt2o" not in cfg.extra and _section_class("mt2o"):
        cfg.extra["mt2o"] = _section_class("mt2o")()
    section = options_section(method)
    if section is not None and section not in RECORDED and section not in cfg.extra:
        # config.json records every option in use
        cfg.extra[section] = (own_sections.get(section) or _section_class(section))()
    tasks = cfg.task_names()
    clash = sorted({t for t in tasks if tasks.count(t) > 1})
    if clash:
        raise ConfigError(f"data.extra_tasks: {clash} already exist; choose other names")
    unknown = [t for t in cfg.train.tasks if t not in tasks]
    if unknown:
        raise ConfigError(f"train.tasks: {unknown} are not tasks; tasks: {', '.join(tasks)}")
    if len(set(cfg.train.tasks)) != len(cfg.train.tasks):
        raise ConfigError(f"train.tasks: {cfg.train.tasks} lists a task twice")
    if cfg.train.tasks:
        tasks = list(cfg.train.tasks)
    check_device(cfg.train.device)
    for table in cfg.tables().values():  # each options class's own checks (cross-key rules)
        if hasattr(table, "check"):
            table.check(cfg, tasks)
    if method in POPULATION_METHODS:
        from alphavil.pareto.options import check_population

        try:
            check_population(cfg.extra["mt2o"], tasks, cfg.train.optimizer)
        except ValueError as err:
            raise ConfigError(str(err)) from None
    if (has_target(method) or cfg.budget is not None) and cfg.train.target not in tasks:
        raise ConfigError(
            f"train.target: {cfg.train.target!r} is not a task; tasks: {', '.join(tasks)}"
        )
    return cfg


def _import_path_sections(train: Any) -> dict[str, Any]:
    """``{table: options class}`` of a ``train.method`` given as an import path whose class
    names its own options table (:attr:`~alphavil.methods.base.Method.options_table`); a path
    that does not resolve is a one-line :class:`ConfigError`."""
    method = train.get("method") if isinstance(train, dict) else None
    if not isinstance(method, str) or ":" not in method or method in REGISTRY:
        return {}
    try:
        cls = get_method(method)
    except MethodImportError as err:
        raise ConfigError(str(err)) from None
    table, options = cls.options_table, cls.options_class
    if table is None:
        return {}
    taken = ("name", "out_dir", "label", "data", "train", *METHOD_SECTIONS, *_LAZY_SECTIONS)
    if table in taken:
        raise ConfigError(
            f"train.method: {method!r} names options table {table!r}, which is taken; "
            "choose another options_table"
        )
    if not dataclasses.is_dataclass(options):
        raise ConfigError(
            f"train.method: {method!r} has options_table {table!r} but its options_class "
            f"{options!r} is not a dataclass"
        )
    return {table: options}


def has_target(method: str) -> bool:
    """Whether runs of ``method`` have a target task (multitask and population methods don't)."""
    if method in POPULATION_METHODS:
        return False
    return bool(get_method(method).per_target)


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read ``path`` (or start empty), apply ``key=value`` overrides, validate.

    ``path`` is a TOML file or, where no such file exists, the name of a built-in config
    (``"quickstart"``; :mod:`alphavil.builtin_configs`).
    """
    from alphavil.builtin_configs import find_config

    parsed = [(parse_override(text), text) for text in overrides]  # syntax errors first
    raw = read_toml(find_config(path)) if path is not None else {}
    for (parts, value), text in parsed:
        set_override(raw, parts, value, text)
    return resolve(raw)
