"""DIW's options (the ``[diw]`` table), kept apart from :mod:`alphavil.methods.diw` (which
imports the training loop) so that the config layer loads them without an import cycle.
Registered in :data:`alphavil.methods.SECTIONS`; every run config records the table
(:data:`alphavil.methods.RECORDED`), so ``cfg.diw.<option>`` is always there.
"""

from __future__ import annotations

from dataclasses import dataclass

from alphavil.schema import bounded, choice


@dataclass
class DIWConfig:
    """Discriminative Importance Weighting as the αVIL paper runs it (§4.1)."""

    rho: float = bounded(1.0, 0.0, 1.0, lo_open=True)
    lr: float = bounded(0.1, 0.0)  # weight update learning rate
    patience: int = bounded(10, 1)  # re-weighting tries per epoch (paper footnote 2)
    weight_floor: float = bounded(1e-6, 0.0, lo_open=True)
    # Unit of the accuracy difference: 1 = fraction (default), 100 = percent points. With
    # percent, lr 0.1 moved weights by up to 4 per try on MultiMNIST and sent even the target's
    # weight to the floor (both at 1e-6 = equal weighting); see docs/choices.md.
    score_scale: float = bounded(1.0, 0.0, lo_open=True)
    task_optimizer: str = choice("per_task", "per_task", "fresh")
