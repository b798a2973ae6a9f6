"""Gradient aggregators from TorchJD (Quinton & Rey, "Jacobian Descent for Multi-Objective
Optimization", 2024; ``pip install "alphavil[aggregators]"``) as batch methods: thin wrappers.

Per batch, ``torchjd.autojac.mtl_backward`` gives every task head its own task's gradient (in
``.grad``) and stores the Jacobian of the task losses w.r.t. the shared encoder's parameters (one
row per task, in ``.jac``); ``torchjd.autojac.jac_to_grad`` then turns it into the encoder's
``.grad`` with the method's ``torchjd.aggregation`` aggregator, and the loop steps its optimiser.
``mtl_backward`` needs the shared features: a forward hook on ``model.encoder`` (a
:class:`~alphavil.models.MultiHeadModel`) keeps the encoder's output of the training forward pass.

The epoch record holds each task's mean weight in the aggregate (``aggregation_weights``).
On a stream of one-task batches (separate examples, ``data.stream = "interleaved"``) the
Jacobian would have one row and every aggregator would return that task's gradient, so the loop
refuses that stream (``needs_all_tasks_per_step``); ``data.stream = "joint"`` gives every step a
batch of every task.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from alphavil.config import bounded
from alphavil.methods.base import BatchMethod

if TYPE_CHECKING:
    from alphavil.training import Trainer

INSTALL = 'pip install "alphavil[aggregators]"'


@dataclass
class AggregatorConfig:
    """``[aggregator]`` options (the papers' defaults)."""

    cagrad_c: float = bounded(0.4, 0.0)  # CAGrad's c (Liu et al. 2021: 0.4 on NYUv2, Cityscapes)
    nash_max_norm: float = bounded(1.0, 0.0)  # Nash-MTL: clip ‖Jᵀα‖ to this (0 = no clipping)
    nash_update_every: int = bounded(1, 1)  # Nash-MTL: solve for α every this many batches
    nash_optim_niter: int = bounded(20, 1)  # Nash-MTL: iterations of its sequential solver
    # mtl_backward's parallel_chunk_size: Jacobian rows computed at once (0 = all, with vmap);
    # 1 avoids torch.vmap, for models it cannot handle.
    chunk_size: int = bounded(0, 0)


class Aggregated(BatchMethod):
    """Base of the TorchJD wrappers: :meth:`make` builds the aggregator."""

    data_parallel = False  # per-rank Jacobians are not combined across ranks yet
    needs_all_tasks_per_step = True  # one task per step: a one-row Jacobian, plain SGD

    def __init__(self, loop: Trainer) -> None:
        super().__init__(loop)
        self.cfg: AggregatorConfig = loop.cfg.extra.get("aggregator") or AggregatorConfig()
        try:
            from torchjd import aggregation
            from torchjd.autojac import jac_to_grad, mtl_backward

            self.aggregator = self.make(aggregation)
        except ImportError as err:  # torchjd itself, or a solver of its (cvxpy, quadprog, ...)
            missing = f" ({err.name} is missing)" if err.name else ""
            raise ImportError(
                f"{type(self).__name__} needs TorchJD and its solvers{missing}: {INSTALL}"
            ) from None
        self.mtl_backward, self.jac_to_grad = mtl_backward, jac_to_grad
        encoder, heads = getattr(loop.model, "encoder", None), getattr(loop.model, "heads", None)
        if not isinstance(encoder, nn.Module) or not isinstance(heads, nn.ModuleDict):
            raise TypeError(
                f"{type(self).__name__} needs a model with a shared `encoder` and per-task "
                "`heads` (alphavil.models.MultiHeadModel)"
            )
        self.heads = heads
        self.shared = [p for p in encoder.parameters() if p.requires_grad]
        self.features: Any = None
        self.weight_sums: dict[str, tuple[float, int]] = {}  # task -> (sum of weights, batches)
        encoder.register_forward_hook(self._keep_features)

    def make(self, aggregation: Any) -> Any:
        """The ``torchjd.aggregation`` aggregator (``aggregation`` is that module)."""
        raise NotImplementedError

    def _keep_features(self, module: nn.Module, args: Any, output: Any) -> None:
        if torch.is_grad_enabled():  # a training forward pass, not evaluation
            self.features = output

    def backward(self, losses: dict[str, Tensor]) -> float:
        features, self.features = self.features, None
        if features is None:
            raise RuntimeError(f"{type(self).__name__}: no encoder output kept for this batch")
        params = [[p for p in self.heads[t].parameters() if p.requires_grad] for t in losses]
        self.mtl_backward(
            list(losses.values()),
            features=features if isinstance(features, Tensor) else list(features),
            tasks_params=params,
            shared_params=self.shared,
            parallel_chunk_size=self.cfg.chunk_size or None,
        )
        weights = self.jac_to_grad(self.shared, self.aggregator)  # all five are weighted
        for t, v in zip(losses, weights.tolist(), strict=True):
            total, n = self.weight_sums.get(t, (0.0, 0))
            self.weight_sums[t] = (total + v, n + 1)
        return float(torch.stack([v.detach() for v in losses.values()]).mean())

    def epoch_info(self) -> dict[str, Any]:
        """The mean weight of each task's gradient in the aggregate over the epoch."""
        means = {t: total / n for t, (total, n) in self.weight_sums.items()}
        self.weight_sums = {}
        return {"aggregation_weights": means} if means else {}


class MGDA(Aggregated):
    """MGDA (Désidéri 2012; Sener & Koltun, "Multi-Task Learning as Multi-Objective
    Optimization", NeurIPS 2018): the minimum-norm point of the task gradients' convex hull."""

    def make(self, aggregation: Any) -> Any:
        return aggregation.MGDA()


class PCGrad(Aggregated):
    """PCGrad (Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020): each task
    gradient loses its component along every conflicting one (random order); their sum."""

    def make(self, aggregation: Any) -> Any:
        return aggregation.PCGrad()


class CAGrad(Aggregated):
    """CAGrad (Liu et al., "Conflict-Averse Gradient Descent for Multi-task Learning", NeurIPS
    2021): the direction maximising the worst task's improvement within a ball of radius
    c·‖ḡ‖ around the mean gradient ḡ (``aggregator.cagrad_c``)."""

    def make(self, aggregation: Any) -> Any:
        return aggregation.CAGrad(c=self.cfg.cagrad_c)


class NashMTL(Aggregated):
    """Nash-MTL (Navon et al., "Multi-Task Learning as a Bargaining Game", ICML 2022): the Nash
    bargaining solution; its number of tasks is the run's, its solver state resumes exactly."""

    def make(self, aggregation: Any) -> Any:
        c = self.cfg
        return aggregation.NashMTL(
            n_tasks=len(self.trained_tasks()),
            max_norm=c.nash_max_norm,
            update_weights_every=c.nash_update_every,
            optim_niter=c.nash_optim_niter,
        )

    def backward(self, losses: dict[str, Tensor]) -> float:
        if len(losses) != self.aggregator.n_tasks:
            raise ValueError(
                f"NashMTL needs batches holding every task ({self.aggregator.n_tasks}), got "
                f"{sorted(losses)}: use data where each input has a target for every task"
            )
        with warnings.catch_warnings():  # cvxpy: the paper's problem is not DPP (no speed-up)
            warnings.filterwarnings("ignore", message=".*not DPP", category=UserWarning)
            return super().backward(losses)

    def state_dict(self) -> dict[str, Any]:
        w = self.aggregator.weighting
        return {"prvs_alpha": torch.as_tensor(w.prvs_alpha).clone(), "step": float(w.step)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        w = self.aggregator.weighting
        w.prvs_alpha, w.step = state["prvs_alpha"].numpy(), state["step"]
        if w.step > 0:  # the solver problem is built on the first call; build it now
            w._init_optim_problem()


class UPGrad(Aggregated):
    """UPGrad (Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization", 2024): the
    mean of the task gradients each projected onto the dual cone of all of them, so the update
    conflicts with no task (non-negative inner product with every task gradient)."""

    def make(self, aggregation: Any) -> Any:
        return aggregation.UPGrad()
