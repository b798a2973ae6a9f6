"""OL-AUX: Lin, Baweja, Kantor & Held, "Adaptive Auxiliary Task Weighting for Reinforcement
Learning" (NeurIPS 2019), Algorithm 1, on a supervised target task.

The loss is L_target + Σ_t w_t L_t. Over a horizon of N steps the model moves by
θ_{j+1} = θ_j − α ∇_θ(L_target + Σ_t w_t L_t)(θ_j), so to first order

    ∂L_target(θ_{j+N}) / ∂w_t ≈ −α Σ_{j<N} ⟨∇_θ L_target(θ_j), ∇_θ L_t(θ_j)⟩

(the paper's approximation: each step's gradients taken at the θ_j it was computed at), and
every N steps the weights take one gradient step on the target loss:
w_t ← w_t + β α Σ_j ⟨∇L_target, ∇L_t⟩. α is the joint optimiser's learning rate (its first
parameter group's ``lr``); with momentum or Adam the real step differs and β absorbs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import Tensor

from alphavil.config import bounded
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
class OLAuxConfig:
    """``[olaux]`` options (Lin et al. 2019, Algorithm 1).

    ``horizon`` N = 5 is the value public OL-AUX reimplementations use; the paper's own N and β
    could not be checked here, so β = 1 (Δw = α Σ⟨·,·⟩, the first-order decrease of the target
    loss per unit weight over the horizon) is our choice. Weights start at 1 (the plain sum of
    the losses) and are unconstrained as in the paper's update; ``nonnegative`` clips them at 0
    (a negative weight ascends that task's loss, which diverges for cross-entropy).
    """

    horizon: int = bounded(5, 1)  # N: steps between weight updates
    lr: float = bounded(1.0, 0.0)  # β: learning rate of the weights
    init_weight: float = 1.0  # w_t at the start
    nonnegative: bool = False  # clip the weights at 0 after every update


class OLAux(BatchMethod):
    """Auxiliary weights learnt online by gradient descent on the target loss' decrease
    (``[olaux]`` options). Costs one backward pass per task per batch.

    The target's weight stays 1. The training loop gives it steps holding every task (shared
    inputs, or ``data.stream = "joint"``); called directly with one-task batches, an auxiliary
    batch's inner product is taken with the target's gradient from its most recent batch (kept
    in the state) and auxiliary batches before the first contribute no inner product.
    ``train_loss`` is the mean of the task losses, as multitask reports it; the update uses their
    weighted **sum** (the paper's), so use about 1/T of multitask's learning rate.
    """

    data_parallel = False  # per-task gradients are combined non-linearly, per rank
    needs_all_tasks_per_step = True  # compares the target's gradient with each auxiliary one

    def __init__(self, loop: Trainer) -> None:
        super().__init__(loop)
        self.opts: OLAuxConfig = loop.cfg.extra.get("olaux") or OLAuxConfig()
        self.aux = [t for t in loop.tasks if t != loop.target]
        self.w = dict.fromkeys(self.aux, float(self.opts.init_weight))
        self.sums = dict.fromkeys(self.aux, 0.0)  # α Σ_j ⟨∇L_target, ∇L_t⟩ in this horizon
        self.steps = 0  # batches seen (the horizon runs across epochs)
        self.updates = 0  # weight updates in the current epoch
        self.keep_reference = not getattr(loop.data, "all_tasks_per_step", True)
        self.reference: Grads | None = None
        self._publish()

    def _publish(self) -> None:
        self.loop.weights = {self.loop.target: 1.0, **self.w}

    def epoch(self) -> dict[str, Any]:
        self.updates = 0
        return super().epoch()

    def backward(self, losses: dict[str, Tensor]) -> float:
        params, grads = task_gradients(self.loop.model, losses)
        target = self.loop.target
        reference, self.reference = target_reference(
            grads, target, self.reference, self.keep_reference
        )
        write_gradients(params, [(g, 1.0 if t == target else self.w[t]) for t, g in grads.items()])
        alpha = float(self.loop.optimizer.param_groups[0]["lr"])
        for t, g in grads.items():
            if t != target and reference is not None:
                self.sums[t] += alpha * inner(reference, g)[0]
        self.steps += 1
        if self.steps % self.opts.horizon == 0:
            self.update()
        return sum(float(v.detach()) for v in losses.values()) / len(losses)

    def update(self) -> None:
        """w_t ← w_t − β ∂L_target/∂w_t = w_t + β α Σ_j ⟨∇L_target, ∇L_t⟩; the sums restart."""
        for t in self.aux:
            w = self.w[t] + self.opts.lr * self.sums[t]
            self.w[t] = max(w, 0.0) if self.opts.nonnegative else w
            self.sums[t] = 0.0
        self.updates += 1
        self._publish()

    def epoch_info(self) -> dict[str, Any]:
        self._publish()
        return {"aux_weights": dict(self.w), "weight_updates": self.updates}

    def state_dict(self) -> dict[str, Any]:
        return {
            "weights": dict(self.w),
            "sums": dict(self.sums),
            "steps": self.steps,
            "reference": self.reference,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.w = {t: float(v) for t, v in state["weights"].items()}
        self.sums = {t: float(v) for t, v in state["sums"].items()}
        self.steps = int(state["steps"])
        self.reference = state.get("reference")
        self._publish()
