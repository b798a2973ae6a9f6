"""The bottom of the config layer: :class:`ConfigError`, the field helpers that option
dataclasses use (:func:`choice`, :func:`bounded`, :func:`option_before`), the generic table
validator (:func:`build_section`) and the optimiser and device spec checks.

It imports nothing from alphavil, so every module (method options included) can use it without
an import cycle; :mod:`alphavil.config` re-exports all of it.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import typing
from dataclasses import field
from typing import Any

import torch


class ConfigError(ValueError):
    """A config problem; the message is one line naming the key and what is allowed."""


def _opt(name: str, lr: float, **kw: Any) -> Any:
    """An optimiser-spec field (checked by :func:`check_optimizer`) defaulting to
    ``{name, lr, **kw}``."""
    return field(default_factory=lambda: {"name": name, "lr": lr, **kw}, metadata={"optimizer": 1})


def choice(default: str, *choices: str, before: str | None = None, compared: bool = True) -> Any:
    """A string field restricted to ``choices`` (``before``: see :func:`option_before`;
    ``compared``: see :func:`is_compared`)."""
    meta: dict[str, Any] = {"choices": choices}
    if before is not None:
        meta["before"] = before
    if not compared:
        meta["compared"] = False
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


def is_compared(f: dataclasses.Field[Any]) -> bool:
    """Whether option ``f`` changes what a run computes, so that a stored run and a request
    that differ in it are different runs (:mod:`alphavil.config_diff`). False (field metadata
    ``compared``) for keys that only say where other values came from (``alphavil.preset``)
    or what is written beside the results (``train.tensorboard``)."""
    return bool(f.metadata.get("compared", True))


def bounded(
    default: float,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    before: float | None = None,
) -> Any:
    """A numeric field restricted to [lo, hi] (or (lo, hi] with ``lo_open``; ``before``: see
    :func:`option_before`)."""
    meta: dict[str, Any] = {"lo": lo, "hi": hi, "lo_open": lo_open}
    if before is not None:
        meta["before"] = before
    return field(default=default, metadata=meta)


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


def check_device(name: str) -> None:
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
