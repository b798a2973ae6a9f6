"""A small CNN with batch norm and dropout on the toy problem (16 features as a 4 × 4 image), as
a dataset spec for run configs (``data.name = "tests.bn_data:SPEC"``) and as α-fit problems."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from alphavil.data.batching import SharedInputData
from alphavil.data.toy import TASKS, ToyConfig, make_toy
from alphavil.datasets import DatasetSpec
from alphavil.deltas import delta, restore, snapshot, stack_deltas
from alphavil.models.multihead import MultiHeadModel
from alphavil.tasks import Task


def bn_cnn(tasks: Sequence[Task] = TASKS, dropout: float = 0.2) -> MultiHeadModel:
    """conv 1→4 k3, BatchNorm2d, ReLU, fc 64→8, BatchNorm1d, ReLU, dropout; a head per task."""
    encoder = nn.Sequential(
        nn.Unflatten(1, (1, 4, 4)),
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64, 8),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.Dropout(dropout),
    )
    return MultiHeadModel(encoder, {t.name: nn.Linear(8, t.num_outputs) for t in tasks})


def build(cfg: ToyConfig) -> tuple[SharedInputData, Callable[..., nn.Module]]:
    return make_toy(cfg), lambda tasks=TASKS: bn_cnn(tasks)


SPEC = DatasetSpec(config=ToyConfig, tasks=lambda cfg: list(TASKS), build=build)


def bn_problem(
    seed: int = 0, steps: int = 8
) -> tuple[nn.Module, dict[str, Tensor], dict[str, Tensor], list[Any], Task]:
    """θ (fresh batch-norm statistics), three real task deltas (``steps`` SGD steps each, in
    train mode, so the running statistics move as in epoch 1), dev chunks of the target, in
    float64."""
    torch.manual_seed(seed)
    data = make_toy(ToyConfig(n_train=256, n_dev=60, data_seed=seed))
    model = bn_cnn().double()
    theta = snapshot(model)
    x, ys = data.inputs["train"].double(), data.targets["train"]
    deltas = []
    for t in TASKS:
        restore(model, theta)
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for b in range(steps):
            rows = slice(32 * b, 32 * b + 32)
            loss = t.loss(model(x[rows], [t.name])[t.name], ys[t.name][rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
        deltas.append(delta(model, theta))
    restore(model, theta)
    xd, yd = data.inputs["dev"].double(), data.targets["dev"]["main"]
    dev = [(xd[:25], {"main": yd[:25]}), (xd[25:], {"main": yd[25:]})]
    return model, theta, stack_deltas(deltas), dev, TASKS[0]
