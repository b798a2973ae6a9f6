"""Synthetic two-objective problems with known Pareto fronts, as a registered dataset.

Both use the anchors a_{1,2} = ±(1/√n)·1 in R^n (n = ``dim``; ‖a_1 − a_2‖² = 4):

* ``convex``: f_i(x) = ‖x − a_i‖² / 4. The linear-scalarisation minimiser for λ is
  x*(λ) = λ_1 a_1 + λ_2 a_2 with f(x*) = (λ_2², λ_1²): the front √f_1 + √f_2 = 1 is convex and
  linear scalarisation recovers every point of it (our addition, so the transfer speed-up and the
  1e-3 acceptance check have an analytic answer).
* ``concave``: f_i(x) = 1 − exp(−‖x − a_i‖²), the ParetoMTL/EPO toy problem (Lin et al. 2019,
  n = 20, x₀ ~ U(−0.5, 0.5)^n). Its front is concave, so linear scalarisation collapses to the
  two extremes and weighted Tchebycheff is needed to spread out.

The "model" is the point x itself (:class:`PointModel`); its heads output the objective values and
:class:`ObjectiveTask` uses them as losses. The data are dummy rows: one optimiser step per train
row with ``train.batch_size = 1`` (``steps_per_epoch`` rows per epoch); dev and test are one row,
so per-epoch "test losses" are exactly f(x).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from alphavil.config import bounded, choice
from alphavil.data.batching import SharedInputData
from alphavil.datasets import DatasetSpec
from alphavil.tasks import Task

__all__ = [
    "SPEC",
    "ObjectiveTask",
    "PointModel",
    "SyntheticConfig",
    "anchors",
    "concave_front",
    "convex_front",
    "convex_optimum",
    "objectives",
]

PROBLEMS = ("convex", "concave")
TASK_NAMES = ("f1", "f2")


@dataclass(frozen=True)
class ObjectiveTask(Task):
    """A task whose head outputs its loss value directly: loss = mean of the outputs."""

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Mean of ``outputs`` (``targets`` are ignored)."""
        return outputs.mean()

    def loss_sum(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Sum of ``outputs``."""
        return outputs.sum()


def anchors(dim: int, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """a_1 = +(1/√n)·1 and a_2 = −(1/√n)·1, each ``(n,)``."""
    a = torch.full((dim,), 1.0 / math.sqrt(dim), dtype=dtype)
    return a, -a


def objectives(x: Tensor, problem: str) -> Tensor:
    """(f_1(x), f_2(x)) for ``x (..., n)``, shape ``(..., 2)``."""
    a1, a2 = anchors(x.shape[-1], x.dtype)
    d = torch.stack([((x - a1) ** 2).sum(-1), ((x - a2) ** 2).sum(-1)], dim=-1)
    if problem == "convex":
        return d / 4.0
    if problem == "concave":
        return 1.0 - torch.exp(-d)
    raise ValueError(f"unknown problem {problem!r}; allowed: {', '.join(PROBLEMS)}")


def convex_optimum(prefs: Tensor, dim: int) -> Tensor:
    """LS minimisers x*(λ^k) = λ^k_1 a_1 + λ^k_2 a_2 of the convex problem, ``(K, n)``."""
    a1, a2 = anchors(dim, prefs.dtype)
    return prefs[:, :1] * a1 + prefs[:, 1:2] * a2


def convex_front(prefs: Tensor) -> Tensor:
    """Objective values f(x*(λ^k)) = (λ_2², λ_1²) of the LS minimisers, ``(K, 2)``."""
    return torch.stack([prefs[:, 1] ** 2, prefs[:, 0] ** 2], dim=1)


def concave_front(n_points: int = 101) -> Tensor:
    """Points of the concave problem's Pareto front (x on the segment a_2 → a_1), ``(n, 2)``."""
    t = torch.linspace(0.0, 1.0, n_points, dtype=torch.float64)
    return torch.stack([1 - torch.exp(-4 * (1 - t) ** 2), 1 - torch.exp(-4 * t**2)], dim=1)


class PointModel(nn.Module):
    """The decision vector x ∈ R^n as a model; heads f1, f2 output (B, 1) objective values.

    Args:
        dim: n.
        problem: ``"convex"`` or ``"concave"``.
        init_scale: x₀ ~ U(−s, s)^n from torch's global generator (seeded by the run).
    """

    def __init__(self, dim: int, problem: str, init_scale: float = 0.5) -> None:
        super().__init__()
        if problem not in PROBLEMS:
            raise ValueError(f"unknown problem {problem!r}; allowed: {', '.join(PROBLEMS)}")
        self.problem = problem
        self.x = nn.Parameter((torch.rand(dim) * 2 - 1) * init_scale)

    def forward(self, inputs: Tensor) -> dict[str, Tensor]:
        """``{"f1": (B, 1), "f2": (B, 1)}``, each row f_i(x)."""
        f = objectives(self.x, self.problem)  # (2,)
        ones = inputs.new_ones(inputs.shape[0], 1).to(f.dtype)
        return {name: ones * f[i] for i, name in enumerate(TASK_NAMES)}


@dataclass
class SyntheticConfig:
    """``[data]`` table of ``name = "synthetic"``."""

    problem: str = choice("convex", *PROBLEMS)
    dim: int = bounded(20, 1)
    steps_per_epoch: int = bounded(10, 1)  # train rows; one step each with batch_size 1
    init_scale: float = bounded(0.5, 0.0)


def synthetic_tasks(cfg: SyntheticConfig) -> list[Task]:
    """The two objectives as tasks ``f1``, ``f2``."""
    del cfg
    return [ObjectiveTask(name, 1, "regression") for name in TASK_NAMES]


def build_synthetic(cfg: SyntheticConfig) -> tuple[SharedInputData, Callable[[], nn.Module]]:
    """Dummy shared-input data and a :class:`PointModel` factory."""
    tasks = synthetic_tasks(cfg)
    sizes = {"train": cfg.steps_per_epoch, "dev": 1, "test": 1}
    inputs = {s: torch.zeros(n, 1) for s, n in sizes.items()}
    targets = {s: {t.name: torch.zeros(n) for t in tasks} for s, n in sizes.items()}

    def make_model() -> nn.Module:
        return PointModel(cfg.dim, cfg.problem, cfg.init_scale)

    return SharedInputData(tasks, inputs, targets), make_model


SPEC = DatasetSpec(config=SyntheticConfig, tasks=synthetic_tasks, build=build_synthetic)
