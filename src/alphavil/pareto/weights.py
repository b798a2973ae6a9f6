"""Preference (weight) vectors on the probability simplex: one per MT2O subproblem.

MT2O decomposes the m-objective problem with "diverse weight vectors in the objective space"
(Bai, Gupta & Ong 2024, arXiv 2403.16162, §IV-A). How they are generated is not known
[reconstructed: evenly spaced vectors including both single-task extremes for m = 2, the
Das–Dennis simplex lattice (as in MOEA/D) for m >= 3].

Every function returns a ``(K, m)`` float64 tensor whose rows are non-negative and sum to 1.
"""

from __future__ import annotations

from math import comb

import torch
from torch import Tensor

__all__ = ["das_dennis", "das_dennis_count", "evenly_spaced", "preference_vectors"]


def evenly_spaced(n_models: int) -> Tensor:
    """``K`` evenly spaced 2-task vectors λ^k = (k/(K−1), 1 − k/(K−1)), k = 0..K−1.

    The first row is (0, 1) and the last (1, 0): both single-task extremes are included
    [reconstructed: they anchor the ends of the front for the hypervolume]. ``K = 1`` gives
    the single vector (1/2, 1/2).

    Raises:
        ValueError: If ``n_models < 1``.
    """
    if n_models < 1:
        raise ValueError(f"n_models must be >= 1, got {n_models}")
    if n_models == 1:
        return torch.full((1, 2), 0.5, dtype=torch.float64)
    first = torch.linspace(0.0, 1.0, n_models, dtype=torch.float64)
    return torch.stack([first, 1.0 - first], dim=1)


def das_dennis_count(n_tasks: int, n_partitions: int) -> int:
    """Number of Das–Dennis vectors, C(H + m − 1, m − 1), for ``m`` tasks and ``H`` partitions."""
    if n_tasks < 1 or n_partitions < 0:
        raise ValueError(f"need n_tasks >= 1 and n_partitions >= 0, got {n_tasks}, {n_partitions}")
    return comb(n_partitions + n_tasks - 1, n_tasks - 1)


def das_dennis(n_tasks: int, n_partitions: int) -> Tensor:
    """The Das–Dennis lattice: all λ with λ_i ∈ {0, 1/H, …, 1} and Σ_i λ_i = 1.

    Rows are in lexicographic order of (H·λ_1, …, H·λ_m), descending in λ_1.
    Das & Dennis (1998), SIAM J. Optim. 8(3); the reference directions of MOEA/D and NSGA-III.

    Raises:
        ValueError: If ``n_tasks < 1`` or ``n_partitions < 1`` (with ``n_tasks > 1``).
    """
    if n_tasks < 1:
        raise ValueError(f"n_tasks must be >= 1, got {n_tasks}")
    if n_tasks == 1:
        return torch.ones((1, 1), dtype=torch.float64)
    if n_partitions < 1:
        raise ValueError(f"n_partitions must be >= 1, got {n_partitions}")
    rows: list[list[int]] = []

    def fill(prefix: list[int], left: int) -> None:
        if len(prefix) == n_tasks - 1:
            rows.append([*prefix, left])
            return
        for v in range(left, -1, -1):
            fill([*prefix, v], left - v)

    fill([], n_partitions)
    return torch.tensor(rows, dtype=torch.float64) / n_partitions


def preference_vectors(n_tasks: int, n_models: int) -> Tensor:
    """``n_models`` weight vectors for ``n_tasks`` tasks: :func:`evenly_spaced` for 2 tasks,
    the Das–Dennis lattice with exactly ``n_models`` points for 3 or more.

    Raises:
        ValueError: If ``n_tasks < 2`` or no Das–Dennis lattice has ``n_models`` points (the
            message lists the nearest valid counts).
    """
    if n_tasks < 2:
        raise ValueError(f"a Pareto front needs at least 2 tasks, got {n_tasks}")
    if n_tasks == 2:
        return evenly_spaced(n_models)
    counts: dict[int, int] = {}
    h = 1
    while (c := das_dennis_count(n_tasks, h)) <= max(n_models, 1) * 4 or h < 3:
        counts[c] = h
        h += 1
    if n_models not in counts:
        valid = ", ".join(str(c) for c in sorted(counts))
        raise ValueError(
            f"no Das–Dennis lattice for {n_tasks} tasks has {n_models} vectors; valid counts: "
            f"{valid} (partitions H give C(H+{n_tasks - 1}, {n_tasks - 1}) vectors)"
        )
    return das_dennis(n_tasks, counts[n_models])
