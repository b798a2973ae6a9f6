"""Single-task training: the target head only (αVIL paper §4.1)."""

from __future__ import annotations

from typing import Any

from alphavil.methods.base import Method


class Single(Method):
    """Train the target head and the shared encoder; the other heads are never run."""

    def trained_tasks(self) -> list[str]:
        return [self.loop.target]

    def epoch(self) -> dict[str, Any]:
        loop = self.loop
        loss = loop.train_steps(
            loop.optimizer,
            [loop.target],
            {loop.target: 1.0},
            loop.cfg.train.train_fraction,
            "single",
        )
        return {"train_loss": loss}
