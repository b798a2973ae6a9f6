"""Task specifications and per-task losses and metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch.nn.functional as F
from torch import Tensor

TaskKind = Literal["classification", "regression"]


@dataclass(frozen=True)
class Task:
    """One task of a multitask problem.

    Args:
        name: Task name; also the name of its head in :class:`~alphavil.models.MultiHeadModel`.
        num_outputs: Output units of the head (number of classes for classification).
        kind: ``"classification"`` (cross-entropy, accuracy) or ``"regression"`` (MSE).
    """

    name: str
    num_outputs: int
    kind: TaskKind = "classification"

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"task name {self.name!r} is invalid; use letters, digits, '_' or '-'")
        if self.num_outputs < 1:
            raise ValueError(
                f"task {self.name!r}: num_outputs must be >= 1, got {self.num_outputs}"
            )
        if self.kind not in ("classification", "regression"):
            raise ValueError(
                f"task {self.name!r}: kind {self.kind!r} is not one of classification, regression"
            )

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Mean loss over the batch: cross-entropy or mean squared error."""
        if self.kind == "classification":
            return F.cross_entropy(outputs, targets)
        return F.mse_loss(outputs.reshape(targets.shape), targets)

    def loss_sum(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Summed (not averaged) loss, for exact averages over chunked evaluation."""
        if self.kind == "classification":
            return F.cross_entropy(outputs, targets, reduction="sum")
        return F.mse_loss(outputs.reshape(targets.shape), targets, reduction="sum")

    def correct(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Number of correct predictions in the batch (classification only)."""
        return (outputs.argmax(dim=-1) == targets).sum()


def mean_loss(
    tasks: dict[str, Task],
    outputs: dict[str, Tensor],
    targets: dict[str, Tensor],
    scales: dict[str, float],
) -> Tensor:
    """Σ_t scale_t · L_t over the tasks present in ``targets`` and ``scales``.

    With ``scales = w_t / Σ w`` this is the weighted objective of the paper's Eq. 1.
    """
    total: Tensor | None = None
    for name, y in targets.items():
        scale = scales.get(name, 0.0)
        if scale == 0.0:
            continue
        term = scale * tasks[name].loss(outputs[name], y)
        total = term if total is None else total + term
    if total is None:
        raise ValueError(f"no task of {sorted(targets)} has a non-zero loss scale in {scales}")
    return total
