"""Auto-Lambda: Liu, Li, Kuang, Johns & Davison, "Auto-Lambda: Disentangling Dynamic Task
Relationships" (TMLR 2022), in its auxiliary-learning mode: the target is the primary task.

Each meta step looks one SGD step ahead on the training batch, θ' = θ − α (Σ_t λ_t ∇L_t(θ) + c)
(c: the joint optimiser's momentum and weight-decay terms, constant in λ), and moves λ by the
meta optimiser on ∇_λ L_target(θ'; dev batch). Since θ' is linear in λ this gradient is exactly
−α ⟨∇_θ L_target(θ'), ∇_θ L_t(θ)⟩; we compute it by autograd through the one step
(:func:`lookahead_loss`), where the paper's code approximates the same inner product by central
differences of L_t at θ ± ε ∇L_target(θ'). The model then steps on Σ_t λ_t L_t with the new λ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from alphavil.alpha import evaluation_mode
from alphavil.config import bounded, build_optimizer
from alphavil.methods.base import BatchMethod
from alphavil.methods.gradients import Grads, task_gradients, write_gradients
from alphavil.tasks import Task

if TYPE_CHECKING:
    from alphavil.training import Trainer


@dataclass
class AutoLambdaConfig:
    """``[autolambda]`` options; defaults are the paper's (official code ``lorenmt/auto-lambda``,
    ``trainer_dense.py``): λ = 0.1 for every task, Adam with lr 1e-4 on λ (NYUv2/CityScapes;
    3e-4 for CIFAR-100), a meta step every iteration, λ unconstrained."""

    init_weight: float = 0.1  # λ_t at the start, every task (the target included)
    meta_optimizer: dict[str, Any] = field(
        default_factory=lambda: {"name": "Adam", "lr": 1e-4}, metadata={"optimizer": 1}
    )
    every: int = bounded(1, 1)  # meta step every k training steps
    nonnegative: bool = False  # clip λ at 0 after every meta step (not in the paper)


def lookahead_loss(
    model: nn.Module,
    grads: Mapping[str, Grads],
    lambdas: Mapping[str, Tensor],
    lr: float,
    batch: tuple[Any, dict[str, Tensor]],
    task: Task,
    shift: Sequence[Tensor | None] | None = None,
) -> Tensor:
    """Mean loss of ``task`` on ``batch`` at θ' = θ − lr (Σ_t λ_t g_t + shift), differentiable in
    the λ tensors (exact autograd through the one step; θ, g and shift are constants).
    Parameters no task's gradient reaches stay at θ (the optimiser skips them).

    ``grads`` are per-task gradients over ``model``'s trainable parameters in order
    (:func:`~alphavil.methods.cosine.task_gradients`). Evaluated in eval mode, functionally.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    point = {}
    for i, (name, p) in enumerate(named):
        step = None
        for t, g in grads.items():
            gi = g[i]
            if gi is not None:
                term = lambdas[t].to(gi) * gi
                step = term if step is None else step + term
        if step is None:  # no gradient: the optimiser leaves the parameter alone
            continue
        c = shift[i] if shift is not None else None
        point[name] = p.detach() - lr * (step if c is None else step + c)
    inputs, targets = batch
    with evaluation_mode(model):
        out = functional_call(model, point, (inputs, [task.name]))
    return task.loss(out[task.name], targets[task.name])


class AutoLambda(BatchMethod):
    """λ for every task by one-step look-ahead meta-gradients of the target's dev loss
    (``[autolambda]`` options). A meta step costs one backward pass per task on the training
    batch plus a forward and backward pass on a target dev batch (``train.batch_size`` rows of
    a seeded shuffled pass over the dev split, restarted every epoch).
    ``train_loss`` is the mean of the task losses, as multitask reports it.
    """

    data_parallel = False  # per-task gradients are combined non-linearly, per rank

    def __init__(self, loop: Trainer) -> None:
        super().__init__(loop)
        self.opts: AutoLambdaConfig = loop.cfg.extra.get("autolambda") or AutoLambdaConfig()
        self.tasks = list(loop.tasks)
        init = torch.full((len(self.tasks),), float(self.opts.init_weight), device=loop.device)
        self.lam = init.requires_grad_(True)
        self.meta_opt = build_optimizer(self.opts.meta_optimizer, [self.lam])
        self.steps = 0  # training steps seen (across epochs, for ``every``)
        self.meta_steps = 0  # in the current epoch
        self._dev: Any = None
        self._publish()

    def _publish(self) -> None:
        self.loop.weights = dict(zip(self.tasks, self.lam.tolist(), strict=True))

    def epoch(self) -> dict[str, Any]:
        self._dev, self.meta_steps = None, 0  # a fresh dev pass each epoch: resumable
        return super().epoch()

    def dev_batch(self) -> tuple[Any, dict[str, Tensor]]:
        """The next batch of a seeded shuffled pass over the target's dev split."""
        loop = self.loop
        for _ in range(2):
            if self._dev is None:
                batches = loop.data.eval_batches(
                    "dev", [loop.target], batch_size=loop.cfg.train.batch_size,
                    generator=loop.dev_generator,
                )  # fmt: skip
                self._dev = iter(batches)
            batch = next(self._dev, None)
            if batch is not None:
                return loop.inputs(batch)
            self._dev = None
        raise ValueError(f"task {loop.target!r} has no dev examples")

    def shift(self, params: Sequence[Tensor]) -> list[Tensor | None]:
        """The joint optimiser's λ-independent step terms: momentum · buffer + weight decay · θ."""
        opt = self.loop.optimizer
        wd, mu = opt.param_groups[0].get("weight_decay", 0), opt.param_groups[0].get("momentum", 0)
        out: list[Tensor | None] = []
        for p in params:
            c = wd * p.detach() if wd else None
            buf = opt.state.get(p, {}).get("momentum_buffer") if mu else None
            if buf is not None:
                c = mu * buf if c is None else c + mu * buf
            out.append(c)
        return out

    def meta_step(self, params: list[Tensor], grads: dict[str, Grads]) -> None:
        lam = self.lam.detach().clone().requires_grad_(True)
        lambdas = {t: lam[self.tasks.index(t)] for t in grads}
        lr = float(self.loop.optimizer.param_groups[0]["lr"])
        task = self.loop.task_map[self.loop.target]
        loss = lookahead_loss(
            self.loop.model, grads, lambdas, lr, self.dev_batch(), task, self.shift(params)
        )
        (self.lam.grad,) = torch.autograd.grad(loss, lam)
        self.meta_opt.step()
        self.meta_opt.zero_grad(set_to_none=True)
        if self.opts.nonnegative:
            with torch.no_grad():
                self.lam.clamp_(min=0.0)
        self.meta_steps += 1

    def backward(self, losses: dict[str, Tensor]) -> float:
        if self.steps % self.opts.every == 0:
            params, grads = task_gradients(self.loop.model, losses)
            self.meta_step(params, grads)
            write_gradients(params, [(g, self.weight(t)) for t, g in grads.items()])
        else:
            total = torch.stack([self.weight(t) * v for t, v in losses.items()]).sum()
            total.backward()
        self.steps += 1
        return sum(float(v.detach()) for v in losses.values()) / len(losses)

    def weight(self, task: str) -> float:
        """λ of ``task`` now."""
        return float(self.lam.detach()[self.tasks.index(task)])

    def epoch_info(self) -> dict[str, Any]:
        self._publish()
        lam = self.loop.weights
        aux = {t: w for t, w in lam.items() if t != self.loop.target}
        target = lam[self.loop.target]
        return {"aux_weights": aux, "target_weight": target, "meta_steps": self.meta_steps}

    def state_dict(self) -> dict[str, Any]:
        lam = self.lam.detach().clone()
        return {"lambda": lam, "meta_optimizer": self.meta_opt.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.lam.copy_(state["lambda"])
        self.meta_opt.load_state_dict(state["meta_optimizer"])
        self.steps = int(state["steps"])
        self._publish()
