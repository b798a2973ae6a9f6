"""A small synthetic multitask problem for tests, docs and quick experiments (``name = "toy"``).

Inputs are Gaussian vectors; task ``main`` labels are a linear read-out of the input, task
``helper`` reads a correlated direction (a related auxiliary task), and task ``noise`` has random
labels (a harmful auxiliary task: it only teaches the shared encoder to memorise).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from alphavil.config import bounded
from alphavil.data.batching import SharedInputData
from alphavil.datasets import DatasetSpec
from alphavil.models.multihead import MultiHeadModel
from alphavil.tasks import Task

TASKS = (Task("main", 2), Task("helper", 2), Task("noise", 2))


@dataclass
class ToyConfig:
    """``[data]`` table for ``name = "toy"``."""

    n_train: int = bounded(512, 1)
    n_dev: int = bounded(256, 1)
    n_test: int = bounded(256, 1)
    dim: int = bounded(16, 2)
    hidden: int = bounded(32, 1)
    data_seed: int = 0
    relatedness: float = bounded(0.9, 0.0, 1.0)  # cosine between the main and helper directions


def make_toy(cfg: ToyConfig) -> SharedInputData:
    """Generate the three splits deterministically from ``cfg.data_seed``."""
    g = torch.Generator().manual_seed(cfg.data_seed)
    u = torch.nn.functional.normalize(torch.randn(cfg.dim, generator=g), dim=0)
    v = torch.nn.functional.normalize(torch.randn(cfg.dim, generator=g), dim=0)
    v = torch.nn.functional.normalize(v - (v @ u) * u, dim=0)
    r = cfg.relatedness
    w = r * u + (1 - r * r) ** 0.5 * v
    inputs, targets = {}, {}
    for split, n in (("train", cfg.n_train), ("dev", cfg.n_dev), ("test", cfg.n_test)):
        x = torch.randn(n, cfg.dim, generator=g)
        inputs[split] = x
        targets[split] = {
            "main": (x @ u > 0).long(),
            "helper": (x @ w > 0).long(),
            "noise": torch.randint(0, 2, (n,), generator=g),
        }
    return SharedInputData(TASKS, inputs, targets)


def toy_model(dim: int = 16, hidden: int = 32, tasks: Sequence[Task] = TASKS) -> MultiHeadModel:
    """A one-hidden-layer MLP encoder with a linear head per task."""
    encoder = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU())
    return MultiHeadModel(encoder, {t.name: nn.Linear(hidden, t.num_outputs) for t in tasks})


def build(cfg: ToyConfig) -> tuple[SharedInputData, Callable[..., nn.Module]]:
    """Data and model factory (one head per task it is given) for the registry."""
    return make_toy(cfg), lambda tasks=TASKS: toy_model(cfg.dim, cfg.hidden, tasks)


SPEC = DatasetSpec(config=ToyConfig, tasks=lambda cfg: list(TASKS), build=build)
