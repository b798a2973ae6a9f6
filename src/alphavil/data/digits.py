"""A small real tabular problem with several heads: scikit-learn's digits (``name = "digits"``).

1,797 images of handwritten digits as 64 features (8 × 8 pixels, 0-16), shipped inside the
scikit-learn wheel (``pip install "alphavil[tabular]"``; no download). Three tasks read the same
inputs through one shared MLP:

* ``digit``: which digit (10 classes), the natural target;
* ``parity``: the digit is odd (2 classes), a related auxiliary task;
* ``high``: the digit is 5 or more (2 classes), another related auxiliary task.

Add a harmful auxiliary task with ``[[data.extra_tasks]]`` (``labels = "random"``). The split into
train / dev / test is random from ``data_seed`` (stratified by digit), 60 / 20 / 20 % by default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from alphavil.config import ConfigError, bounded
from alphavil.data.batching import SharedInputData
from alphavil.datasets import DatasetSpec
from alphavil.models.multihead import MultiHeadModel
from alphavil.tasks import Task

TASKS = (Task("digit", 10), Task("parity", 2), Task("high", 2))


@dataclass
class DigitsConfig:
    """``[data]`` table for ``name = "digits"``."""

    data_seed: int = bounded(0, 0, 2**32 - 1)  # fixes the split
    dev_fraction: float = bounded(0.2, 0.0, 0.5, lo_open=True)
    test_fraction: float = bounded(0.2, 0.0, 0.5, lo_open=True)
    hidden: int = bounded(64, 1)  # width of the shared hidden layer


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(features ``(1797, 64)`` float32 in [0, 1], digits ``(1797,)`` int64) from scikit-learn."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ConfigError(
            'data.name = "digits" needs scikit-learn: pip install "alphavil[tabular]"'
        ) from None
    bunch = load_digits()
    return (bunch.data / 16.0).astype(np.float32), bunch.target.astype(np.int64)


def split_indices(labels: np.ndarray, dev: float, test: float, seed: int) -> dict[str, np.ndarray]:
    """A stratified random split of the example indices into train / dev / test."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "dev": [], "test": []}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_dev, n_test = round(dev * len(idx)), round(test * len(idx))
        parts["dev"].append(idx[:n_dev])
        parts["test"].append(idx[n_dev : n_dev + n_test])
        parts["train"].append(idx[n_dev + n_test :])
    return {k: np.sort(np.concatenate(v)) for k, v in parts.items()}


def mlp(tasks: Sequence[Task], hidden: int = 64, features: int = 64) -> MultiHeadModel:
    """One shared hidden layer (ReLU) and a linear head per task."""
    encoder = nn.Sequential(nn.Linear(features, hidden), nn.ReLU())
    return MultiHeadModel(encoder, {t.name: nn.Linear(hidden, t.num_outputs) for t in tasks})


def build(cfg: DigitsConfig) -> tuple[SharedInputData, Callable[..., nn.Module]]:
    """The three splits and a factory for the shared MLP with one head per task."""
    if cfg.dev_fraction + cfg.test_fraction >= 0.9:
        raise ConfigError(
            "data.dev_fraction + data.test_fraction must leave >= 10% for training, got "
            f"{cfg.dev_fraction} + {cfg.test_fraction}"
        )
    x, digit = load_digits_arrays()
    parts = split_indices(digit, cfg.dev_fraction, cfg.test_fraction, cfg.data_seed)
    inputs, targets = {}, {}
    for split, idx in parts.items():
        y = torch.from_numpy(digit[idx])
        inputs[split] = torch.from_numpy(x[idx])
        targets[split] = {"digit": y, "parity": y % 2, "high": (y >= 5).long()}
    data = SharedInputData(TASKS, inputs, targets)
    return data, lambda tasks=TASKS: mlp(tasks, cfg.hidden)


SPEC = DatasetSpec(config=DigitsConfig, tasks=lambda cfg: list(TASKS), build=build)
