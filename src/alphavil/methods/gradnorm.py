"""GradNorm: Chen, Badrinarayanan, Lee & Rabinovich, "GradNorm: Gradient Normalization for
Adaptive Loss Balancing in Deep Multitask Networks", ICML 2018 (Algorithm 1).

Per batch, with task weights w_t (initially 1) and W the last shared layer's parameters:

* G_t = ‖∇_W w_t·L_t‖ (the weighted loss's gradient norm at W), Ḡ = mean_t G_t;
* r_t = L̃_t / mean_t L̃_t with L̃_t = L_t / L_t(0), the inverse training rate;
* L_grad = Σ_t |G_t − Ḡ·r_t^α|, its target Ḡ·r_t^α held constant (the paper's §3.2);
* the model gets the gradients of Σ_t w_t·L_t (weights as constants) for the loop's optimiser,
  the weights get ∇_w L_grad and one step of the method's own optimiser;
* the weights are renormalised to Σ_t w_t = T.

α is the asymmetry: the default 1.5 is the paper's value for NYUv2 (it uses 0.12 on its
synthetic tasks). Not in the paper: before renormalising, the weights are clamped to at least
``weight_floor`` so that a large step can never make one zero or negative. L_t(0) is each task's
loss on the first batch that holds it. W defaults to the parameters of the last module (in
registration order) of ``model.encoder`` that has any; ``[gradnorm] layer`` names another one.
Balancing needs steps that hold every task: on single-task batches r_t = 1, the target is G_t
itself and the weights do not move, so the loop refuses a stream of one-task steps
(``data.stream = "joint"`` gives separate-example data a batch of every task per step).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from alphavil.config import bounded
from alphavil.methods.base import BatchMethod
from alphavil.methods.uncertainty import side_optimizer

if TYPE_CHECKING:
    from alphavil.training import Trainer


@dataclass
class GradNormConfig:
    """``[gradnorm]`` options."""

    alpha: float = bounded(1.5, 0.0)  # asymmetry α (paper: 1.5 on NYUv2, 0.12 on synthetic data)
    # Optimiser for the weights; omitted (empty) = train.optimizer without weight decay.
    optimizer: dict[str, Any] = field(default_factory=dict, metadata={"optimizer": 1})
    weight_floor: float = bounded(1e-4, 0.0, lo_open=True)  # clamp before renormalising
    layer: str = (
        ""  # module (as in model.named_modules()) whose parameters are W; "" = encoder's last
    )


def shared_layer(model: nn.Module, name: str = "") -> list[Tensor]:
    """The trainable parameters of module ``name``, or of the last module of ``model.encoder``
    (``model`` itself without one) that has trainable parameters of its own."""
    if name:
        modules = dict(model.named_modules())
        if name not in modules:
            raise ValueError(f"gradnorm.layer: the model has no module {name!r}")
        candidates = [modules[name]]
    else:
        root = getattr(model, "encoder", model)
        candidates = [m for m in root.modules() if list(m.parameters(recurse=False))][-1:]
    params = [p for m in candidates for p in m.parameters(recurse=False) if p.requires_grad]
    if not params:
        raise ValueError(f"gradnorm: no trainable shared layer found (layer = {name!r})")
    return params


class GradNorm(BatchMethod):
    """GradNorm loss weighting (Chen et al. 2018), ``[gradnorm]`` options.

    Trains every task of the run. The reported train loss is Σ_t w_t·L_t / T (equal to the
    multitask loss at w = 1); the epoch record holds the weights (``gradnorm_weights``, also
    mirrored into the loop's ``weights``) and the last batch's G_t and targets Ḡ·r_t^α.
    """

    data_parallel = False  # own per-batch state, not yet synchronised across ranks
    needs_all_tasks_per_step = True  # balancing compares the tasks of one step

    def __init__(self, loop: Trainer) -> None:
        super().__init__(loop)
        self.cfg = loop.cfg.extra.get("gradnorm") or GradNormConfig()
        self.index = {t: i for i, t in enumerate(self.trained_tasks())}
        self.weights = nn.Parameter(torch.ones(len(self.index), device=loop.device))
        self.optimizer = side_optimizer(self.cfg.optimizer, loop, [self.weights])
        self.shared = shared_layer(loop.model, self.cfg.layer)
        self.initial: dict[str, float] = {}  # L_t(0)
        self.last: dict[str, dict[str, float]] = {}

    def backward(self, losses: dict[str, Tensor]) -> float:
        names = list(losses)
        values = torch.stack(list(losses.values()))
        for t in names:
            self.initial.setdefault(t, float(losses[t].detach()))
        grad_norms = []
        for loss in losses.values():
            grads = torch.autograd.grad(loss, self.shared, retain_graph=True, allow_unused=True)
            used = [g.reshape(-1) for g in grads if g is not None]
            if not used:
                raise ValueError("gradnorm: a task loss does not depend on W; set gradnorm.layer")
            grad_norms.append(torch.linalg.vector_norm(torch.cat(used)))
        w = torch.stack([self.weights[self.index[t]] for t in names])
        norms = w * torch.stack(grad_norms)  # G_t, differentiable in w only
        initial = [max(self.initial[t], 1e-12) for t in names]
        ratios = values.detach() / values.new_tensor(initial)
        r = ratios / ratios.mean()
        target = (norms.mean() * r**self.cfg.alpha).detach()
        self.optimizer.zero_grad(set_to_none=True)
        (norms - target).abs().sum().backward()  # reaches the weights only
        total = (w.detach() * values).sum()
        total.backward()  # the model's gradients, weights as constants
        self.optimizer.step()
        with torch.no_grad():
            self.weights.clamp_(min=self.cfg.weight_floor)
            self.weights.mul_(len(self.index) / self.weights.sum())
        self.last = {
            "grad_norms": dict(zip(names, norms.detach().tolist(), strict=True)),
            "targets": dict(zip(names, target.tolist(), strict=True)),
        }
        return float(total.detach()) / len(self.index)

    def task_weights(self) -> dict[str, float]:
        """The current weights w_t (they sum to T)."""
        return dict(zip(self.index, self.weights.detach().tolist(), strict=True))

    def epoch(self) -> dict[str, Any]:
        info = super().epoch()
        self.loop.weights.update(self.task_weights())
        return info

    def epoch_info(self) -> dict[str, Any]:
        return {"gradnorm_weights": self.task_weights(), **self.last}

    def state_dict(self) -> dict[str, Any]:
        return {
            "weights": self.weights.detach().clone(),
            "optimizer": self.optimizer.state_dict(),
            "initial": dict(self.initial),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.weights.copy_(state["weights"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.initial = dict(state["initial"])
