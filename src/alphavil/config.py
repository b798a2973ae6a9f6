"""Run configs: TOML files plus ``key=value`` overrides, validated into typed dataclasses.

A config has a ``[data]`` table (its ``name`` picks a dataset from :mod:`alphavil.datasets`, whose
dataclass validates the other keys), a ``[train]`` table and one table per method
(``[alphavil]``, ``[diw]``, ``[mt2o]``). Every default is the paper's MultiMNIST setting (§4.1).
Errors are :class:`ConfigError` with a one-line message naming the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from alphavil.data.derived import ExtraTask
from alphavil.datasets import DatasetImportError, dataset_names, get_dataset
from alphavil.methods import SECTIONS as METHOD_SECTIONS
from alphavil.methods import get_method, method_names, options_section
from alphavil.task_weights import WEIGHT_RULES
from alphavil.tasks import Task

if TYPE_CHECKING:
    from alphavil.data.budget import Budget

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(ValueError):
    """A config problem; the message is one line naming the key and what is allowed."""


def _opt(name: str, lr: float, **kw: Any) -> Any:
    return field(default_factory=lambda: {"name": name, "lr": lr, **kw}, metadata={"optimizer": 1})


def choice(default: str, *choices: str, before: str | None = None) -> Any:
    """A string field restricted to ``choices`` (``before``: see :func:`option_before`)."""
    meta: dict[str, Any] = {"choices": choices}
    if before is not None:
        meta["before"] = before
    return field(default=default, metadata=meta)


def option_before(f: dataclasses.Field[Any]) -> Any:
    """The value that reproduces runs made before option ``f`` existed or had its current
    default (field metadata ``before``; else its default). A stored run config that lacks the
    key is the same run as a request with this value (:mod:`alphavil.config_diff`)."""
    if "before" in f.metadata:
        return f.metadata["before"]
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def bounded(
    default: float, lo: float | None = None, hi: float | None = None, lo_open: bool = False
) -> Any:
    """A numeric field restricted to [lo, hi] (or (lo, hi] with ``lo_open``)."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "lo_open": lo_open})


TARGET_METHODS = method_names()  # alphavil.methods.REGISTRY
POPULATION_METHODS: dict[str, str] = {
    "mt2o": "alphavil.pareto.mt2o",
    "no_transfer": "alphavil.pareto.mt2o",
    "ls": "alphavil.pareto.mt2o",  # old name of no_transfer
    "pmtl": "alphavil.pareto.mt2o",
    "epo": "alphavil.pareto.mt2o",
    "pareto_mgda": "alphavil.pareto.mt2o",  # `mgda` is the aggregator
}


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
    # (pip install "alphavil[tensorboard]"; alphavil.tensorboard)
    tensorboard: bool = False


# `alphavil.preset = "paper"`: the paper's settings (§4.1) for every [alphavil] key the table does
# not set. The defaults are the configuration measured best on few target labels (docs/fewlabel).
ALPHAVIL_PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "paper": {
        "alpha_solver": "sgd",
        "weight_rule": "additive",
        "alpha_bounds": [],
        "updates": "separate",
        "target_alpha": "fit",
    },
}


@dataclass
class AlphaVILConfig:
    """αVIL (Algorithm 1) settings: the measured-best defaults (docs/fewlabel); the paper's §4.1
    settings with ``preset = "paper"``."""

    # "default" or "paper": the values of the keys this table does not set (ALPHAVIL_PRESETS)
    preset: str = choice("default", *ALPHAVIL_PRESETS)

    rho: float = bounded(1.0, 0.0, 1.0, lo_open=True)  # ratio of each task's data per epoch
    # Lines 3-6: "separate" = each task's update from the same θ on its own data (the paper);
    # "joint" = one pass of multitask steps (every task's loss w_t/Σw · L_t in each step, as
    # data.stream gives them), δ_t = task t's share of that update (alphavil.task_shares; SGD),
    # so α = 1 is the multitask step.
    updates: str = choice("joint", "separate", "joint", before="separate")
    # "fit": α_target is fitted with the rest; "one": the target's own update is always taken
    # whole and only the auxiliary α are fitted (alpha_solver = "lbfgs" with alpha_bounds).
    target_alpha: str = choice("one", "fit", "one", before="fit")
    steps: int = bounded(10, 0)  # s, α tuning steps
    optimizer: dict[str, Any] = _opt("SGD", 0.005, momentum=0.5)  # noqa: RUF009 - returns a field()
    dev_fraction: float = bounded(1.0, 0.0, 1.0, lo_open=True)  # of the target dev set for α
    weight_floor: float = bounded(1e-6, 0.0, lo_open=True)
    # Model optimiser state for the task updates: one persistent optimiser per task, or a fresh
    # one for every update. The paper is silent; see alphavil.training.
    task_optimizer: str = choice("per_task", "per_task", "fresh")
    # Line 9: "sgd" = `steps` steps of `optimizer` (the paper); "lbfgs" / "newton" = solve for
    # the argmin (alphavil.alpha_exact), stopping when a step gains less than `solver_tol` or
    # after `solver_passes` gradient (L-BFGS) or gradient+Hessian (Newton) dev passes.
    alpha_solver: str = choice("lbfgs", "sgd", "lbfgs", "newton", before="sgd")
    # "lbfgs" only: α kept in the box [lo, hi]^T (SciPy's L-BFGS-B, alphavil.alpha_box); []
    # = unbounded. The default [0, 1] takes each task's update in part or not at all.
    alpha_bounds: list[float] = field(default_factory=lambda: [0.0, 1.0], metadata={"before": []})
    solver_tol: float = bounded(1e-6, 0.0)
    solver_passes: int = bounded(30, 1)
    # α's starting point: "sum" = 1 (θ + Σ δ_t), "mean" = 1/T (the average update).
    alpha_start: str = choice("sum", "sum", "mean")
    # Line 11: "additive" = w_t + α_t − 1 (the paper); "relative" = w_t + α_t/α_target − 1 with
    # the target's weight fixed and auxiliary weights capped at weight_cap × the target's
    # (alphavil.task_weights).
    # "average" = w_t moves a step `weight_step` towards clip(α_t/α_target, 0, weight_cap) × the
    # target's weight (an exponential average of the evidence; never stuck at the floor).
    weight_rule: str = choice("average", *WEIGHT_RULES, before="additive")
    weight_cap: float = bounded(1.0, 0.0, lo_open=True)
    weight_step: float = bounded(0.3, 0.0, 1.0, lo_open=True)
    # Under torchrun: collect the task deltas in parallel (task i on rank i mod W) instead of
    # sharding every batch over the ranks (alphavil.methods.alphavil.AlphaVIL.collect_deltas)
    parallel_deltas: bool = False
    # Diagnostic, off by default: for T <= 3, also evaluate the α objective on a grid of
    # grid_points^T points over grid_range and log the gap of the fit to the grid's best.
    grid_points: int = bounded(0, 0)
    grid_range: list[float] = field(default_factory=lambda: [-0.5, 1.5])


@dataclass
class DIWConfig:
    """Discriminative Importance Weighting as the αVIL paper runs it (§4.1)."""

    rho: float = bounded(1.0, 0.0, 1.0, lo_open=True)
    lr: float = bounded(0.1, 0.0)  # weight update learning rate
    patience: int = bounded(10, 1)  # re-weighting tries per epoch (paper footnote 2)
    weight_floor: float = bounded(1e-6, 0.0, lo_open=True)
    # Unit of the accuracy difference: 1 = fraction (default), 100 = percent points. With
    # percent, lr 0.1 moved weights by up to 4 per try on MultiMNIST and sent even the target's
    # weight to the floor (both at 1e-6 = equal weighting); see docs/choices.md.
    score_scale: float = bounded(1.0, 0.0, lo_open=True)
    task_optimizer: str = choice("per_task", "per_task", "fresh")


SECTIONS: dict[str, Any] = {"train": TrainConfig, "alphavil": AlphaVILConfig, "diw": DIWConfig}
_LAZY_SECTIONS = {"mt2o": "alphavil.pareto.mt2o:MT2OConfig", "sweep": "alphavil.sweep:SweepConfig"}


@dataclass
class RunConfig:
    """A fully validated run config."""

    data: Any
    train: TrainConfig = field(default_factory=TrainConfig)
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
        for key in ("train", "alphavil", "diw"):
            out[key] = dataclasses.asdict(getattr(self, key))
        for key, value in self.extra.items():
            out[key] = dataclasses.asdict(value)
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
    if name in SECTIONS:
        return SECTIONS[name]
    if name in METHOD_SECTIONS:
        module, attr = METHOD_SECTIONS[name].split(":")
        SECTIONS[name] = getattr(importlib.import_module(module), attr)
        return SECTIONS[name]
    if name in _LAZY_SECTIONS:
        module, attr = _LAZY_SECTIONS[name].split(":")
        SECTIONS[name] = getattr(importlib.import_module(module), attr)
        return SECTIONS[name]
    return None


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _check_value(path: str, f: dataclasses.Field[Any], tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if f.metadata.get("optimizer"):
        return check_optimizer(path, value)
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
        if ok and not math.isfinite(value):
            raise ConfigError(f"{path}: must be a finite number, got {value}")
    elif tp is str:
        ok = isinstance(value, str)
    elif origin is list:
        (item,) = typing.get_args(tp)
        if item is float and isinstance(value, list):  # TOML [2, 2] means floats here
            value = [
                float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value
            ]
        ok = isinstance(value, list) and all(isinstance(v, item) for v in value)
        if ok and item is float and not all(math.isfinite(v) for v in value):
            raise ConfigError(f"{path}: must hold finite numbers, got {value}")
    elif origin is dict:
        ok = isinstance(value, dict)
    else:  # Any or unions: accept
        ok = True
    if not ok:
        raise ConfigError(
            f"{path}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}"
        )
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{path}: {value!r} is not one of {', '.join(choices)}")
    lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
    if lo is not None and (value < lo or (f.metadata.get("lo_open") and value == lo)):
        op = ">" if f.metadata.get("lo_open") else ">="
        raise ConfigError(f"{path}: must be {op} {lo}, got {value}")
    if hi is not None and value > hi:
        raise ConfigError(f"{path}: must be <= {hi}, got {value}")
    return value


def build_section(cls: Any, table: Any, path: str) -> Any:
    """Validate a TOML table against dataclass ``cls``: known keys, right types, allowed values."""
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: expected a table, got {type(table).__name__} {table!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.name.startswith("_")}
    hints = typing.get_type_hints(cls)
    for key in table:
        if key not in fields:
            raise ConfigError(f"unknown key '{path}.{key}'; allowed: {', '.join(fields)}")
    values = {k: _check_value(f"{path}.{k}", fields[k], hints[k], v) for k, v in table.items()}
    return cls(**values)


def check_optimizer(path: str, spec: Any) -> dict[str, Any]:
    """Validate ``{name = <torch.optim class>, lr = ..., <its keyword options>}``."""
    if not isinstance(spec, dict):
        raise ConfigError(f'{path}: expected a table like {{name = "SGD", lr = 0.05}}')
    spec = dict(spec)
    name = spec.get("name")
    cls = getattr(torch.optim, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        allowed = sorted(
            n
            for n, c in vars(torch.optim).items()
            if isinstance(c, type) and issubclass(c, torch.optim.Optimizer) and n != "Optimizer"
        )
        raise ConfigError(
            f"{path}.name: {name!r} is not a torch.optim optimizer; allowed: {', '.join(allowed)}"
        )
    if name in ("LBFGS", "SparseAdam"):
        raise ConfigError(
            f"{path}.name: {name} is not supported (LBFGS needs a closure, "
            "SparseAdam sparse gradients); use e.g. SGD, Adam, AdamW"
        )
    if spec.get("differentiable"):
        raise ConfigError(f"{path}.differentiable: must be false here")
    params = [p for p in inspect.signature(cls).parameters if p != "params"]
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    for key in kwargs:
        if key not in params:
            raise ConfigError(
                f"unknown key '{path}.{key}' for {name}; allowed: {', '.join(params)}"
            )
    for key, value in kwargs.items():  # torch accepts lr = nan or inf without a word
        if not _all_finite(value):
            what = "hold finite numbers" if isinstance(value, (list, tuple)) else "be finite"
            raise ConfigError(f"{path}.{key}: must {what}, got {value}")
    try:
        cls([torch.zeros(1, requires_grad=True)], **kwargs)
    except Exception as err:  # any construction failure is a config error
        raise ConfigError(f"{path}: {name}({kwargs}) is invalid: {err}") from None
    return spec


def _all_finite(value: Any) -> bool:
    """Whether every number in ``value`` (a number or a nested list/tuple) is finite."""
    if isinstance(value, (list, tuple)):
        return all(_all_finite(v) for v in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return math.isfinite(value)
    return True


def build_optimizer(spec: dict[str, Any], params: Any) -> torch.optim.Optimizer:
    """Instantiate a validated optimizer spec over ``params``."""
    cls = getattr(torch.optim, spec["name"])
    optimizer: torch.optim.Optimizer = cls(params, **{k: v for k, v in spec.items() if k != "name"})
    return optimizer


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.epochs=5"`` -> (["train", "epochs"], 5); values are TOML, else bare strings."""
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not key.strip() or any(not p.strip() for p in parts):
        raise ConfigError(f"malformed override {text!r}: expected key=value, e.g. train.epochs=10")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return [p.strip() for p in parts], value


def _set(raw: dict[str, Any], parts: list[str], value: Any, text: str) -> None:
    node = raw
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {text!r}: '{p}' is a value, not a table")
        node = nxt
    node[parts[-1]] = value


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file, turning I/O and syntax errors into :class:`ConfigError`."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {str(path)!r} is a directory, not a TOML file") from None
    except OSError as err:
        raise ConfigError(f"config file {str(path)!r}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {err.start}); TOML files must be UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None


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
    extra_tasks = _extra_tasks(extra_table, spec.tasks(data))
    kwargs: dict[str, Any] = {"data": data, "extra": {}, "extra_tasks": extra_tasks}
    kwargs["budget"], kwargs["stream"] = _budget(budget_table), _stream(stream)
    for key, value in raw.items():
        if key in ("name", "out_dir", "label"):
            if not isinstance(value, str):
                raise ConfigError(f"{key}: expected str, got {type(value).__name__} {value!r}")
            kwargs[key] = value
            continue
        cls = _section_class(key)
        if cls is None:
            allowed = [
                "name",
                "out_dir",
                "label",
                "data",
                *SECTIONS,
                *_LAZY_SECTIONS,
                *METHOD_SECTIONS,
            ]
            raise ConfigError(f"unknown key '{key}'; allowed: {', '.join(dict.fromkeys(allowed))}")
        if key == "alphavil":
            value = with_alphavil_preset(value)
        section = build_section(cls, value, key)
        if key in ("train", "alphavil", "diw"):
            kwargs[key] = section
        else:
            kwargs["extra"][key] = section
    cfg = RunConfig(**kwargs)
    method = cfg.train.method
    methods = (*method_names(), *POPULATION_METHODS)
    if method not in methods:
        raise ConfigError(f"train.method: {method!r} is not one of {', '.join(methods)}")
    if cfg.budget is not None and method in POPULATION_METHODS:
        raise ConfigError(
            f"train.method = {method!r} needs every example labelled for every task; "
            "it does not run under a label budget (remove [data.budget])"
        )
    if method in POPULATION_METHODS and "mt2o" not in cfg.extra and _section_class("mt2o"):
        cfg.extra["mt2o"] = SECTIONS["mt2o"]()
    section = options_section(method)
    if section is not None and section not in cfg.extra:  # config.json records every option in use
        cfg.extra[section] = _section_class(section)()
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
    _check_device(cfg.train.device)
    _check_alphavil(cfg.alphavil, tasks)
    if method == "alphavil" and cfg.alphavil.updates == "joint":
        _check_share_optimizer(cfg.train.optimizer)
    if method in POPULATION_METHODS:
        module = importlib.import_module(POPULATION_METHODS[method])
        try:
            module.check_population(cfg.extra["mt2o"], tasks, cfg.train.optimizer)
        except ValueError as err:
            raise ConfigError(str(err)) from None
    if (has_target(method) or cfg.budget is not None) and cfg.train.target not in tasks:
        raise ConfigError(
            f"train.target: {cfg.train.target!r} is not a task; tasks: {', '.join(tasks)}"
        )
    return cfg


def _budget(table: Any) -> Budget | None:
    """Validate ``[data.budget]`` (None: no budget)."""
    if table is None:
        return None
    from alphavil.data.budget import Budget

    if isinstance(table, dict) and "target" not in table:
        raise ConfigError(
            "data.budget.target: missing; the number of labelled target training examples"
        )
    budget: Budget = build_section(Budget, table, "data.budget")
    budget.check()
    return budget


def _stream(value: Any) -> str:
    allowed = ("auto", "joint", "interleaved")
    if value not in allowed:
        raise ConfigError(f"data.stream: {value!r} is not one of {', '.join(allowed)}")
    return str(value)


def _extra_tasks(value: Any, known: list[Task]) -> list[ExtraTask]:
    """Validate ``[[data.extra_tasks]]``: name, labels ("random", "coarse" or an import
    path), classes; ``known`` are the dataset's own tasks (what a coarse task may coarsen)."""
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(
            "data.extra_tasks: expected a list of tables like "
            '{name = "noise", labels = "random", classes = 10}'
        )
    tasks = {t.name: t for t in known}
    out = []
    for i, table in enumerate(value):
        if "name" not in table:
            raise ConfigError(f"data.extra_tasks[{i}]: needs a name")
        entry = build_section(ExtraTask, table, f"data.extra_tasks[{i}]")
        if entry.labels == "coarse":
            entry = _coarse(entry, "classes" in table, tasks, i)
        elif "of" in table or "by" in table:
            raise ConfigError(f'data.extra_tasks[{i}]: of and by are for labels = "coarse"')
        try:
            tasks[entry.name] = entry.task()
        except ValueError as err:
            raise ConfigError(f"data.extra_tasks[{i}]: {err}") from None
        if entry.labels not in ("random", "coarse") and ":" not in entry.labels:
            raise ConfigError(
                f'data.extra_tasks[{i}].labels: {entry.labels!r}; use "random", "coarse" or an '
                "import path 'package.module:function'"
            )
        if entry.labels == "random" and (entry.classes < 2 or entry.kind != "classification"):
            raise ConfigError(
                f"data.extra_tasks[{i}]: a random-label task is a classification task with "
                f">= 2 classes, got {entry.kind} with {entry.classes}"
            )
        out.append(entry)
    return out


def _coarse(entry: ExtraTask, has_classes: bool, tasks: dict[str, Task], i: int) -> ExtraTask:
    """A coarse-label entry checked against the tasks before it, its classes filled in."""
    where = f"data.extra_tasks[{i}]"
    source = tasks.get(entry.of)
    if source is None:
        raise ConfigError(f"{where}.of: {entry.of!r} is not a task; tasks: {', '.join(tasks)}")
    if source.kind != "classification" or entry.kind != "classification":
        raise ConfigError(f"{where}: coarse labels are classes of a classification task")
    if entry.by < 1:
        raise ConfigError(f"{where}.by: must be >= 1, got {entry.by}")
    need = math.ceil(source.num_outputs / entry.by)
    if not has_classes:
        return dataclasses.replace(entry, classes=need)
    if entry.classes < need:
        raise ConfigError(
            f"{where}.classes: {entry.of} // {entry.by} takes {need} values, got {entry.classes}"
        )
    return entry


def with_alphavil_preset(table: Any) -> Any:
    """The ``[alphavil]`` table with its preset's values for the keys it does not set. A table
    that picks a solver other than L-BFGS and says nothing of bounds gets none (bounds are an
    L-BFGS option)."""
    if not isinstance(table, dict):
        return table
    name = table.get("preset", "default")
    if name not in ALPHAVIL_PRESETS:
        raise ConfigError(
            f"alphavil.preset: {name!r} is not one of {', '.join(map(repr, ALPHAVIL_PRESETS))}"
        )
    out = {**ALPHAVIL_PRESETS[name], **table}
    if out.get("alpha_solver", "lbfgs") != "lbfgs" and "alpha_bounds" not in table:
        out["alpha_bounds"] = []
    if "target_alpha" not in table and out.get("alpha_bounds") == []:
        out["target_alpha"] = "fit"  # a fixed target α is a box option
    return out


def _check_share_optimizer(spec: dict[str, Any]) -> None:
    """αVIL's joint updates split each optimiser step into task shares (alphavil.task_shares)."""
    from alphavil.task_shares import share_optimizer

    try:
        share_optimizer(spec, [torch.zeros(1)], 1, 0)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"alphavil.updates = 'joint': {err}; or set alphavil.updates = 'separate'"
        ) from None


def _check_alphavil(av: AlphaVILConfig, tasks: list[str]) -> None:
    bounds = av.alpha_bounds
    if bounds and (len(bounds) != 2 or not bounds[0] < bounds[1]):
        raise ConfigError(
            f"alphavil.alpha_bounds: expected [] or [lo, hi] with lo < hi, got {bounds}"
        )
    if bounds and av.alpha_solver != "lbfgs":
        raise ConfigError(
            f"alphavil.alpha_bounds: bounds are for alpha_solver = 'lbfgs', got "
            f"{av.alpha_solver!r}; set alpha_bounds = [] or alpha_solver = 'lbfgs'"
        )
    if av.target_alpha == "one" and not (av.alpha_solver == "lbfgs" and bounds):
        raise ConfigError(
            "alphavil.target_alpha: 'one' is an option of the box fit (alpha_solver = 'lbfgs' "
            f"with alpha_bounds), got alpha_solver = {av.alpha_solver!r}, alpha_bounds = "
            f"{bounds}; set target_alpha = 'fit'"
        )
    lo_hi = av.grid_range
    if len(lo_hi) != 2 or not lo_hi[0] < lo_hi[1]:
        raise ConfigError(f"alphavil.grid_range: expected [lo, hi] with lo < hi, got {lo_hi}")
    if av.grid_points == 1:
        raise ConfigError("alphavil.grid_points: must be 0 (off) or >= 2, got 1")
    if av.grid_points and len(tasks) > 3:
        raise ConfigError(
            f"alphavil.grid_points: the grid diagnostic is for <= 3 tasks, got {len(tasks)}; "
            "set it to 0 or restrict train.tasks"
        )


def has_target(method: str) -> bool:
    """Whether runs of ``method`` have a target task (multitask and population methods don't)."""
    if method in POPULATION_METHODS:
        return False
    return bool(get_method(method).per_target)


def _check_device(name: str) -> None:
    """Only devices this machine can train on: cpu, auto, and cuda[:N] where CUDA is available."""
    if name == "auto":  # resolved where it is used: cuda if available there, else cpu
        return
    n_cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    allowed = "cpu, auto" + (f", cuda, cuda:0..{n_cuda - 1}" if n_cuda else "")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device: {name!r} is not a device; allowed: {allowed}") from None
    if device.type == "cuda" and not n_cuda:
        raise ConfigError(
            f"train.device: {name!r} but this torch build or machine has no CUDA; use cpu "
            "(or auto: cuda where the run finds a GPU)"
        )
    if device.type == "cuda" and device.index is not None and device.index >= n_cuda:
        raise ConfigError(
            f"train.device: {name!r} but this machine has {n_cuda} CUDA device(s); "
            f"allowed: {allowed}"
        )
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"train.device: {name!r} is not supported; allowed: {allowed}")


def resolve_device(name: str) -> torch.device:
    """The torch device of a checked ``train.device``: ``"auto"`` is cuda when this process
    sees a CUDA device, else cpu; other names as they are."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read ``path`` (or start empty), apply ``key=value`` overrides, validate.

    ``path`` is a TOML file or, where no such file exists, the name of a built-in config
    (``"quickstart"``; :mod:`alphavil.builtin_configs`).
    """
    from alphavil.builtin_configs import find_config

    parsed = [(parse_override(text), text) for text in overrides]  # syntax errors first
    raw = read_toml(find_config(path)) if path is not None else {}
    for (parts, value), text in parsed:
        _set(raw, parts, value, text)
    return resolve(raw)
