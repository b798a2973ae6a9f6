"""Tiny shared-input problems for the population tests (float64, CPU, milliseconds)."""

from __future__ import annotations

import torch
from torch import nn

from alphavil.data.batching import SharedInputData
from alphavil.models.multihead import MultiHeadModel
from alphavil.tasks import Task

TASKS = (Task("a", 3), Task("b", 3))


def tiny_data(n_train: int = 48, n_eval: int = 16, dim: int = 4, seed: int = 0) -> SharedInputData:
    """Two 3-class tasks on the same random inputs, labels from two different linear rules."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(2, dim, 3, generator=g, dtype=torch.float64)
    inputs, targets = {}, {}
    for split, n in (("train", n_train), ("dev", n_eval), ("test", n_eval)):
        x = torch.randn(n, dim, generator=g, dtype=torch.float64)
        inputs[split] = x
        targets[split] = {t.name: (x @ w[i]).argmax(dim=1) for i, t in enumerate(TASKS)}
    return SharedInputData(TASKS, inputs, targets)


def tiny_model(dim: int = 4, hidden: int = 8) -> nn.Module:
    """A float64 shared encoder with one head per task."""
    enc = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh())
    heads = {t.name: nn.Linear(hidden, t.num_outputs) for t in TASKS}
    return MultiHeadModel(enc, heads).double()
