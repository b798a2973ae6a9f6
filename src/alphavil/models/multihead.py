"""A shared encoder with named task heads: the architecture of every study in the paper."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn


class MultiHeadModel(nn.Module):
    """Shared encoder followed by one head per task (paper Figures 2 and 4).

    The encoder runs once per batch; only the heads named in ``tasks`` run on its output, so a
    single-task run (the paper's "heads disabled" baseline) never touches the other heads.

    Args:
        encoder: Maps a batch of inputs to features ``(B, d)``.
        heads: Task name -> head mapping ``(B, d)`` to outputs ``(B, k)``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> m = MultiHeadModel(nn.Linear(4, 3), {"a": nn.Linear(3, 2), "b": nn.Linear(3, 5)})
        >>> {k: tuple(v.shape) for k, v in m(torch.zeros(7, 4), ["b"]).items()}
        {'b': (7, 5)}
    """

    def __init__(self, encoder: nn.Module, heads: Mapping[str, nn.Module]) -> None:
        super().__init__()
        if not heads:
            raise ValueError("MultiHeadModel needs at least one head")
        self.encoder = encoder
        self.heads = nn.ModuleDict(dict(heads))

    @property
    def task_names(self) -> list[str]:
        """Names of the heads, in insertion order."""
        return list(self.heads.keys())

    def forward(self, inputs: Any, tasks: Sequence[str] | None = None) -> dict[str, Tensor]:
        """Outputs of the heads named in ``tasks`` (all heads when ``None``)."""
        names = self.task_names if tasks is None else list(tasks)
        unknown = [t for t in names if t not in self.heads]
        if unknown:
            raise KeyError(f"unknown task head(s) {unknown}; the model has {self.task_names}")
        features = self.encoder(inputs)
        return {t: self.heads[t](features) for t in names}
