"""Gradient-similarity gating of auxiliary losses: Du, Czarnecki, Jayakumar, Farajtabar, Pascanu
& Lakshminarayanan, "Adapting Auxiliary Losses Using Gradient Similarity" (arXiv 1812.02224, 2018).

:func:`cosine_backward` is the functional form; the per-task gradient helpers it uses live in
:mod:`~alphavil.methods.gradients`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from alphavil.config import choice
from alphavil.methods.base import BatchMethod
from alphavil.methods.gradients import (
    Grads,
    inner,
    target_reference,
    task_gradients,
    write_gradients,
)

if TYPE_CHECKING:
    from alphavil.training import Trainer


@dataclass
class CosineConfig:
    """``[cosine]`` options (Du et al. 2018)."""

    # "unweighted": add an auxiliary gradient on the shared parameters iff cos > 0 (the paper's
    # unweighted version); "weighted": add max(0, cos) times it (its weighted version)
    variant: str = choice("unweighted", "unweighted", "weighted")


def gated(
    params: Sequence[Tensor],
    grads: Mapping[str, Grads],
    reference: Grads | None,
    target: str,
    variant: str = "unweighted",
) -> dict[str, tuple[float, float]]:
    """Write Du et al.'s update into ``.grad``; returns each auxiliary task's (cos, gate).

    Shared parameters (reached by ``reference``, the target's gradient, and by task t) get
    g_target + Σ_t m_t g_t with m_t = 1[cos > 0] ("unweighted") or max(0, cos) ("weighted"),
    cos = cos(g_target, g_t) over the shared parameters; every other parameter (a task's own
    head) gets its own task's gradient. Without a reference, auxiliary tasks get no update.
    """
    terms: list[tuple[Grads, Any]] = [(grads[target], 1.0)] if target in grads else []
    info = {}
    for t, g in grads.items():
        if t == target:
            continue
        if reference is None:  # nothing to compare with: skip the task's update
            info[t] = (0.0, 0.0)
            continue
        ab, aa, bb = inner(reference, g)
        cos = ab / (aa * bb) ** 0.5 if aa > 0 and bb > 0 else 0.0
        m = max(0.0, cos) if variant == "weighted" else float(cos > 0)
        terms.append((g, [1.0 if r is None else m for r in reference]))
        info[t] = (cos, m)
    write_gradients(params, terms)
    return info


def cosine_backward(
    model: nn.Module, losses: Mapping[str, Tensor], target: str, variant: str = "unweighted"
) -> dict[str, tuple[float, float]]:
    """Fill ``.grad`` from one batch's task losses by Du et al.'s rule; (cos, gate) per aux task."""
    params, grads = task_gradients(model, losses)
    return gated(params, grads, grads.get(target), target, variant)


class Cosine(BatchMethod):
    """Du et al. 2018: per batch, an auxiliary gradient is added on the shared parameters only
    where it points the target's way (``[cosine]`` options). Costs one backward pass per task.

    The training loop gives it steps holding every task (shared inputs, or
    ``data.stream = "joint"``); called directly with one-task batches, the reference is the
    target's gradient from its most recent batch (kept in the state) and auxiliary batches
    before the first are skipped. ``train_loss`` is the mean of the task losses, as multitask
    reports it; the update sums the gradients (the paper's), so use about 1/T of multitask's
    learning rate.
    """

    data_parallel = False  # per-task gradients are combined non-linearly, per rank
    needs_all_tasks_per_step = True  # compares the target's gradient with each auxiliary one

    def __init__(self, loop: Trainer) -> None:
        super().__init__(loop)
        self.opts: CosineConfig = loop.cfg.extra.get("cosine") or CosineConfig()
        self.aux = [t for t in loop.tasks if t != loop.target]
        self.keep_reference = not getattr(loop.data, "all_tasks_per_step", True)
        self.reference: Grads | None = None
        self.stats: dict[str, list[float]] = {}
        self.loop.weights = dict.fromkeys(loop.tasks, 1.0)

    def epoch(self) -> dict[str, Any]:
        self.stats = {t: [0.0, 0.0, 0.0] for t in self.aux}  # Σ gate, Σ cos, batches
        return super().epoch()

    def backward(self, losses: dict[str, Tensor]) -> float:
        params, grads = task_gradients(self.loop.model, losses)
        target = self.loop.target
        reference, self.reference = target_reference(
            grads, target, self.reference, self.keep_reference
        )
        for t, (cos, m) in gated(params, grads, reference, target, self.opts.variant).items():
            s = self.stats.setdefault(t, [0.0, 0.0, 0.0])
            s[0], s[1], s[2] = s[0] + m, s[1] + cos, s[2] + 1
        return sum(float(v.detach()) for v in losses.values()) / len(losses)

    def epoch_info(self) -> dict[str, Any]:
        gate = {t: s[0] / s[2] for t, s in self.stats.items() if s[2]}
        self.loop.weights = {self.loop.target: 1.0, **{t: gate.get(t, 0.0) for t in self.aux}}
        return {
            "aux_weights": gate,  # mean gate over the epoch's batches
            "aux_cosine": {t: s[1] / s[2] for t, s in self.stats.items() if s[2]},
        }

    def state_dict(self) -> dict[str, Any]:
        return {"reference": self.reference}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reference = state.get("reference")
