"""Label budgets: a target task with few labels, auxiliary tasks labelled on many other examples.

A ``[data.budget]`` table turns any built dataset into that regime (:func:`apply_budget`)::

    [data.budget]
    target = 1000   # N labelled training examples of the target
    dev = 200       # M target dev examples (default N // 5): the only dev data anything reads
    aux = 10000     # auxiliary-pool examples (default: all the rest)

From one random permutation of the training split (seeded by the data seed), the first N
examples are the target's training set, the next M its dev set and the next ``aux`` the
auxiliary pool, labelled for every auxiliary task and not for the target. The dataset's own dev
split is dropped (nothing can read it) and auxiliary tasks have no dev split; the test split
stays whole, labelled for every task. Data whose tasks have their own examples keeps N + M of
the target's training examples the same way, and the first ``aux`` (shuffled) of each
auxiliary task's. The result is a :class:`~alphavil.data.batching.SeparateInputData` whose
training stream by default gives every step a batch of every task (``"joint"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from alphavil.config import ConfigError, bounded, choice
from alphavil.data.batching import MultiTaskData, SeparateInputData, SharedInputData

_KEY = 0xB0D6E7  # keeps the budget's permutation apart from other draws of the same data seed


@dataclass(frozen=True)
class Budget:
    """``[data.budget]``: how many labels the target and the auxiliary tasks get."""

    target: int = bounded(1, 1)  # N: labelled training examples of the target
    dev: int = bounded(0, 0)  # M: target dev examples; 0 = N // 5
    aux: int = bounded(0, 0)  # auxiliary-pool examples; 0 = all the rest
    seed: int = bounded(-1, -1, 2**32 - 1)  # -1 = the dataset's data_seed (0 without one)
    # "train_seed": draw the pools from train.seed instead, so that every training seed of a
    # sweep is also a fresh draw of the labelled examples (paired across methods); the
    # few-label study runs this way because at N = 1,000 the draw moves accuracy by points
    draw: str = choice("data_seed", "data_seed", "train_seed")

    def dev_size(self) -> int:
        """M, the target's dev examples."""
        return self.dev or self.target // 5

    def check(self) -> None:
        """One-line :class:`ConfigError` for sizes that are bad whatever the data."""
        if self.dev_size() < 1:
            raise ConfigError(
                f"data.budget.dev: target = {self.target} leaves target // 5 = 0 dev examples; "
                "set data.budget.dev >= 1"
            )


def permutation(n: int, seed: int, task: str = "") -> Tensor:
    """A random order of ``range(n)``, fixed per (seed, task)."""
    key = [seed, _KEY, *task.encode()]
    return torch.from_numpy(np.random.default_rng(np.random.SeedSequence(key)).permutation(n))


def apply_budget(
    data: MultiTaskData, budget: Budget, target: str, seed: int, stream: str = "joint"
) -> SeparateInputData:
    """``data`` under ``budget`` with ``target`` as the target task, drawn from ``seed``.

    Raises:
        ConfigError: ``target`` is not a task, the budget asks for more examples than the
            training split has, or ``data`` is of a layout this does not know.
    """
    budget.check()
    names = [t.name for t in data.tasks]
    if target not in names:
        raise ConfigError(f"data.budget: target {target!r} is not a task; tasks: {names}")
    if isinstance(data, SharedInputData):
        return _shared(data, budget, target, seed, stream)
    if isinstance(data, SeparateInputData):
        return _separate(data, budget, target, seed, stream)
    raise ConfigError(
        f"data.budget: {type(data).__name__} is neither SharedInputData nor SeparateInputData"
    )


def _sizes(budget: Budget, n: int, has_aux: bool) -> tuple[int, int, int]:
    """(N, M, aux) for a shared training split of ``n`` examples; one-line error if they do
    not fit."""
    big, small = budget.target, budget.dev_size()
    aux = budget.aux or (n - big - small if has_aux else 0)
    if big + small + aux <= n and (aux >= 1 or not has_aux):
        return big, small, aux
    asked = f"target + dev = {big} + {small}"
    if has_aux or budget.aux:
        asked = f"target + dev + aux = {big} + {small} + {budget.aux or 'the rest (0)'}"
    raise ConfigError(f"data.budget: {asked}, but the data has {n} training examples")


def _shared(
    data: SharedInputData, budget: Budget, target: str, seed: int, stream: str
) -> SeparateInputData:
    x, ys = data.inputs["train"], data.targets["train"]
    aux_tasks = [t.name for t in data.tasks if t.name != target]
    big, small, aux = _sizes(budget, len(x), bool(aux_tasks))
    perm = permutation(len(x), seed)
    pools = {"train": perm[:big], "dev": perm[big : big + small]}
    pool = perm[big + small : big + small + aux]
    pool_x = x[pool]  # one tensor shared by every auxiliary task
    examples: dict[str, dict[str, Any]] = {}
    labels: dict[str, dict[str, Tensor]] = {}
    for t in data.tasks:
        test = {"test": data.inputs["test"]}
        if t.name == target:
            examples[t.name] = {s: x[idx] for s, idx in pools.items()} | test
            labels[t.name] = {s: ys[t.name][idx] for s, idx in pools.items()}
        else:
            examples[t.name] = {"train": pool_x, "dev": x[:0]} | test
            labels[t.name] = {"train": ys[t.name][pool], "dev": ys[t.name][:0]}
        labels[t.name]["test"] = data.targets["test"][t.name]
    return SeparateInputData(data.tasks, examples, labels, stream=stream)


def _take(xs: Any, idx: Tensor) -> Any:
    """Examples ``idx`` of a tensor or a list of examples."""
    return xs[idx] if isinstance(xs, Tensor) else [xs[int(i)] for i in idx]


def _separate(
    data: SeparateInputData, budget: Budget, target: str, seed: int, stream: str
) -> SeparateInputData:
    examples: dict[str, dict[str, Any]] = {}
    labels: dict[str, dict[str, Tensor]] = {}
    for t in data.tasks:
        own, y = data.examples[t.name], data.labels[t.name]
        n = data.num_examples("train", t.name)
        perm = permutation(n, seed, t.name)
        if t.name == target:
            big, small = budget.target, budget.dev_size()
            if big + small > n:
                raise ConfigError(
                    f"data.budget: target + dev = {big} + {small}, but task {target!r} has {n} "
                    "training examples"
                )
            pools = {"train": perm[:big], "dev": perm[big : big + small]}
        else:  # at most `aux` examples of each auxiliary task's own
            pools = {"train": perm[: budget.aux or n], "dev": perm[:0]}
        examples[t.name] = {s: _take(own["train"], idx) for s, idx in pools.items()}
        labels[t.name] = {s: y["train"][idx] for s, idx in pools.items()}
        if "test" in own:
            examples[t.name]["test"], labels[t.name]["test"] = own["test"], y["test"]
    return SeparateInputData(data.tasks, examples, labels, data.collate, stream=stream)
