"""Equal-weight multitask training (αVIL paper §4.1: the heads' updates are averaged)."""

from __future__ import annotations

from typing import Any

from alphavil.methods.base import Method


class Multitask(Method):
    """All heads trained jointly on the mean of the task losses; one best snapshot per task."""

    per_target = False

    def epoch(self) -> dict[str, Any]:
        loop = self.loop
        scales = {t: 1.0 / len(loop.tasks) for t in loop.tasks}
        loss = loop.train_steps(
            loop.optimizer, loop.tasks, scales, loop.cfg.train.train_fraction, "multitask"
        )
        return {"train_loss": loss}
