"""Synthetic multi-objective problems with known Pareto fronts, as a registered dataset.

Two-objective problems with the anchors a_{1,2} = ±(1/√n)·1 in R^n (n = ``dim``; ‖a_1 − a_2‖² = 4):

* ``convex``: f_i(x) = ‖x − a_i‖² / 4. The linear-scalarisation minimiser for λ is
  x*(λ) = λ_1 a_1 + λ_2 a_2 with f(x*) = (λ_2², λ_1²): the front √f_1 + √f_2 = 1 is convex and
  linear scalarisation recovers every point of it (our addition, so the transfer speed-up and the
  1e-3 acceptance check have an analytic answer).
* ``concave``: f_i(x) = 1 − exp(−‖x − a_i‖²), the ParetoMTL/EPO toy problem (Lin et al. 2019,
  n = 20, x₀ ~ U(−0.5, 0.5)^n). Its front is concave, so linear scalarisation collapses to the
  two extremes and weighted Tchebycheff is needed to spread out.

Box-constrained benchmark problems, x ∈ [0, 1]^n, x₀ ~ U(0, 1)^n, implemented by us from their
definitions (the population trainer projects x back into the box after every step, i.e.
projected gradient descent):

* ``zdt1``/``zdt2``/``zdt3`` (Zitzler, Deb & Thiele, Evol. Comput. 8(2), 2000; n = 30 by
  default): f_1 = x_1, g = 1 + 9/(n−1) Σ_{i≥2} x_i, f_2 = g·h(f_1, g) with h = 1 − √(f_1/g)
  (convex front f_2 = 1 − √f_1), 1 − (f_1/g)² (concave, 1 − f_1²), and
  1 − √(f_1/g) − (f_1/g) sin(10π f_1) (disconnected; the non-dominated part of g = 1).
  √v is evaluated as √(v + 1e-6) − 1e-3 (within 1e-3 of √v) so that the slope at f_1 = 0 is
  finite and non-zero; the attainable front therefore lies within 1e-3·g of the analytic one.
* ``dtlz1``/``dtlz2`` (Deb, Thiele, Laumanns & Zitzler, CEC 2002; M = ``n_objectives``
  objectives, n = M + k − 1 with k = 5 resp. 10 by default): DTLZ1 has g = 100(k + Σ (x_i−½)² −
  cos(20π(x_i−½))) (11^k − 1 local fronts) and the linear front Σ f_i = ½; DTLZ2 has
  g = Σ (x_i − ½)² and the front Σ f_i² = 1 (positive orthant of the unit sphere).

The "model" is the point x itself (:class:`PointModel`); its heads output the objective values and
:class:`ObjectiveTask` uses them as losses. The data are dummy rows: one optimiser step per train
row with ``train.batch_size = 1`` (``steps_per_epoch`` rows per epoch); dev and test are one row,
so per-epoch "test losses" are exactly f(x). :func:`pareto_front` samples each analytic front
densely (for IGD/IGD+ and the subproblem distance of :mod:`alphavil.pareto.metrics`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
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
    "default_dim",
    "front_for",
    "n_objectives",
    "objectives",
    "pareto_front",
]

PROBLEMS = ("convex", "concave", "zdt1", "zdt2", "zdt3", "dtlz1", "dtlz2")
BOX_PROBLEMS = ("zdt1", "zdt2", "zdt3", "dtlz1", "dtlz2")
DEFAULT_DIM = {"convex": 20, "concave": 20, "zdt1": 30, "zdt2": 30, "zdt3": 30}
DTLZ_K = {"dtlz1": 5, "dtlz2": 10}
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


def _check_problem(problem: str) -> None:
    if problem not in PROBLEMS:
        raise ValueError(f"unknown problem {problem!r}; allowed: {', '.join(PROBLEMS)}")


SQRT_EPS = 1e-6


def _sqrt(v: Tensor) -> Tensor:
    """√(v + ε) − √ε with ε = 1e-6: equals √v within 1e-3, with a finite, non-zero slope at
    v = 0 (a clamp would have slope 0 there and freeze a projected x_1 = 0)."""
    return torch.sqrt(v + SQRT_EPS) - math.sqrt(SQRT_EPS)


def _zdt(x: Tensor, problem: str) -> Tensor:
    n = x.shape[-1]
    if n < 2:
        raise ValueError(f"{problem} needs dim >= 2, got {n}")
    f1 = x[..., 0]
    g = 1.0 + 9.0 / (n - 1) * x[..., 1:].sum(-1)
    r = f1 / g
    if problem == "zdt1":
        h = 1.0 - _sqrt(r)
    elif problem == "zdt2":
        h = 1.0 - r**2
    else:
        h = 1.0 - _sqrt(r) - r * torch.sin(10 * math.pi * f1)
    return torch.stack([f1, g * h], dim=-1)


def _dtlz(x: Tensor, problem: str, m: int) -> Tensor:
    k = x.shape[-1] - m + 1
    if k < 1:
        raise ValueError(f"{problem} with {m} objectives needs dim >= {m}, got {x.shape[-1]}")
    xm = x[..., m - 1 :]
    if problem == "dtlz1":
        g = 100 * (k + ((xm - 0.5) ** 2 - torch.cos(20 * math.pi * (xm - 0.5))).sum(-1))
        base = 0.5 * (1 + g)
        out = []
        for i in range(m):  # f_i = ½(1+g) Π_{j < m−1−i} x_j · (1 − x_{m−1−i} if i > 0)
            f = base * torch.prod(x[..., : m - 1 - i], dim=-1)
            out.append(f if i == 0 else f * (1 - x[..., m - 1 - i]))
        return torch.stack(out, dim=-1)
    g = ((xm - 0.5) ** 2).sum(-1)
    ang = 0.5 * math.pi * x[..., : m - 1]
    out = []
    for i in range(m):  # f_i = (1+g) Π_{j < m−1−i} cos(θ_j) · (sin θ_{m−1−i} if i > 0)
        f = (1 + g) * torch.prod(torch.cos(ang[..., : m - 1 - i]), dim=-1)
        out.append(f if i == 0 else f * torch.sin(ang[..., m - 1 - i]))
    return torch.stack(out, dim=-1)


def objectives(x: Tensor, problem: str, n_obj: int = 3) -> Tensor:
    """Objective values for ``x (..., n)``: shape ``(..., 2)``, or ``(..., n_obj)`` for DTLZ."""
    _check_problem(problem)
    if problem.startswith("zdt"):
        return _zdt(x, problem)
    if problem.startswith("dtlz"):
        return _dtlz(x, problem, n_obj)
    a1, a2 = anchors(x.shape[-1], x.dtype)
    d = torch.stack([((x - a1) ** 2).sum(-1), ((x - a2) ** 2).sum(-1)], dim=-1)
    if problem == "convex":
        return d / 4.0
    return 1.0 - torch.exp(-d)


def n_objectives(problem: str, n_obj: int = 3) -> int:
    """Number of objectives: 2, or ``n_obj`` for DTLZ."""
    _check_problem(problem)
    return n_obj if problem.startswith("dtlz") else 2


def default_dim(problem: str, n_obj: int = 3) -> int:
    """n used when ``data.dim = 0``: 20 (convex/concave), 30 (ZDT), M + k − 1 (DTLZ)."""
    _check_problem(problem)
    return DEFAULT_DIM.get(problem) or n_obj + DTLZ_K[problem] - 1


def _simplex_lattice(m: int, h: int) -> np.ndarray:
    from alphavil.pareto.weights import das_dennis

    return das_dennis(m, h).numpy()


def pareto_front(problem: str, n_obj: int = 3, resolution: int = 0) -> np.ndarray:
    """A dense sample of the analytic Pareto front, ``(r, m)`` float64, non-dominated.

    ``resolution``: points per unit of the front parameter (2-objective problems; default
    20,001 points) or Das–Dennis partitions (DTLZ; default 150 for 3 objectives).
    """
    _check_problem(problem)
    if problem.startswith("dtlz"):
        h = resolution or (150 if n_obj == 3 else 20 if n_obj == 4 else 10)
        lat = _simplex_lattice(n_obj, h)
        if problem == "dtlz1":
            return 0.5 * lat
        return lat / np.linalg.norm(lat, axis=1, keepdims=True)
    t = np.linspace(0.0, 1.0, resolution or 20_001)
    if problem == "convex":
        return np.stack([t**2, (1 - t) ** 2], axis=1)
    if problem == "concave":
        return concave_front(len(t)).numpy()
    if problem == "zdt1":
        return np.stack([t, 1 - np.sqrt(t)], axis=1)
    if problem == "zdt2":
        return np.stack([t, 1 - t**2], axis=1)
    pts = np.stack([t, 1 - np.sqrt(t) - t * np.sin(10 * np.pi * t)], axis=1)
    from alphavil.pareto.hypervolume import nondominated_mask

    return pts[nondominated_mask(pts)]


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


def task_names(m: int) -> tuple[str, ...]:
    """``("f1", …, "fm")``."""
    return tuple(f"f{i + 1}" for i in range(m))


class PointModel(nn.Module):
    """The decision vector x ∈ R^n as a model; heads f1..fm output (B, 1) objective values.

    Args:
        dim: n.
        problem: One of :data:`PROBLEMS`.
        init_scale: convex/concave: x₀ ~ U(−s, s)^n; box problems: x₀ ~ U(0, 1)^n (ignored).
            Drawn from torch's global generator (seeded by the run).
        n_obj: Number of objectives of DTLZ problems.

    ``box`` is (0, 1) for the box-constrained problems (the population projects onto it).
    """

    def __init__(self, dim: int, problem: str, init_scale: float = 0.5, n_obj: int = 3) -> None:
        super().__init__()
        _check_problem(problem)
        self.problem = problem
        self.n_obj = n_objectives(problem, n_obj)
        self.box: tuple[float, float] | None = (0.0, 1.0) if problem in BOX_PROBLEMS else None
        if self.box is not None:
            self.x = nn.Parameter(torch.rand(dim))
        else:
            self.x = nn.Parameter((torch.rand(dim) * 2 - 1) * init_scale)
        objectives(self.x.detach(), problem, self.n_obj)  # validates dim

    def forward(self, inputs: Tensor) -> dict[str, Tensor]:
        """``{"f1": (B, 1), …}``, each row f_i(x)."""
        f = objectives(self.x, self.problem, self.n_obj)  # (m,)
        ones = inputs.new_ones(inputs.shape[0], 1).to(f.dtype)
        return {name: ones * f[i] for i, name in enumerate(task_names(self.n_obj))}


@dataclass
class SyntheticConfig:
    """``[data]`` table of ``name = "synthetic"``."""

    problem: str = choice("convex", *PROBLEMS)
    dim: int = bounded(20, 0)  # 0: the problem's default (default_dim)
    steps_per_epoch: int = bounded(10, 1)  # train rows; one step each with batch_size 1
    init_scale: float = bounded(0.5, 0.0)
    n_objectives: int = bounded(3, 2)  # DTLZ only


def synthetic_tasks(cfg: SyntheticConfig) -> list[Task]:
    """The objectives as tasks ``f1``, ``f2`` (…, ``fm`` for DTLZ)."""
    m = n_objectives(cfg.problem, cfg.n_objectives)
    return [ObjectiveTask(name, 1, "regression") for name in task_names(m)]


def front_for(cfg: Any) -> np.ndarray | None:
    """The dense analytic front of a ``[data]`` config, or None if it is not synthetic."""
    if not isinstance(cfg, SyntheticConfig):
        return None
    return pareto_front(cfg.problem, cfg.n_objectives)


def build_synthetic(cfg: SyntheticConfig) -> tuple[SharedInputData, Callable[[], nn.Module]]:
    """Dummy shared-input data and a :class:`PointModel` factory."""
    tasks = synthetic_tasks(cfg)
    sizes = {"train": cfg.steps_per_epoch, "dev": 1, "test": 1}
    inputs = {s: torch.zeros(n, 1) for s, n in sizes.items()}
    targets = {s: {t.name: torch.zeros(n) for t in tasks} for s, n in sizes.items()}

    dim = cfg.dim or default_dim(cfg.problem, cfg.n_objectives)

    def make_model() -> nn.Module:
        return PointModel(dim, cfg.problem, cfg.init_scale, cfg.n_objectives)

    return SharedInputData(tasks, inputs, targets), make_model


SPEC = DatasetSpec(config=SyntheticConfig, tasks=synthetic_tasks, build=build_synthetic)
