"""Optimisers on the sum of task gradients that keep each task's share of every update.

SGD with momentum, dampening, Nesterov momentum and weight decay is linear in its gradients: with
one momentum buffer per task, the per-task updates u_t add up to exactly the update
``torch.optim.SGD`` makes on Σ_t g_t, and u_t is task t's share of it. Adam and AdamW are linear
in their first moment: with one first moment per task and the second moment of the summed
gradient (the shared preconditioner), u_t = −lr · m̂_t / (√v̂ + ε) adds up to their update.
Summed over an epoch of joint steps, the shares are the task updates δ_t of αVIL's
``updates = "joint"`` (every step holds a batch of every task, as in equal-weight multitask
training, and δ_t is the part of the realised multitask update that task t's gradients made), so
θ + Σ_t δ_t is the multitask step and the α fit weighs each task's part of it. Weight decay
belongs to one task (the target's).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from alphavil.deltas import Params, delta, stack_deltas


class _ShareTracker:
    """What both trackers share: the parameters, T, the decay task, the per-epoch sums of
    shares, and the checks on gradient rows and state factors."""

    def __init__(self, params: Sequence[Tensor], n_tasks: int, decay_task: int) -> None:
        if n_tasks < 1:
            raise ValueError(f"need at least one task, got {n_tasks}")
        if not 0 <= decay_task < n_tasks:
            raise ValueError(f"decay_task {decay_task} is out of range for {n_tasks} tasks")
        self.params = list(params)
        self.n_tasks = n_tasks
        self.decay_task = decay_task
        self.shares: list[list[Tensor]] = []
        self.reset_shares()

    def reset_shares(self) -> None:
        """Start a new sum of shares (at the start of an epoch's updates)."""
        self.shares = [[torch.zeros_like(p) for p in self.params] for _ in range(self.n_tasks)]

    def _check_rows(self, rows: Sequence[Any], what: str) -> None:
        if len(rows) != self.n_tasks:
            raise ValueError(f"expected {what} of {self.n_tasks} tasks, got {len(rows)}")

    def _task_state(self, task: int) -> list[Tensor | None]:
        """The state that follows task ``task``'s own gradients (scaled by :meth:`scale_state`)."""
        raise NotImplementedError

    def task_state(self, task: int) -> list[Tensor | None]:
        """Copies of task ``task``'s own optimiser state, one per parameter (``None``: none yet)."""
        return [None if s is None else s.clone() for s in self._task_state(task)]

    def set_task_state(self, task: int, state: Sequence[Tensor | None]) -> None:
        """Replace task ``task``'s own optimiser state (as :meth:`task_state` gives it)."""
        if len(state) != len(self.params):
            raise ValueError(f"expected {len(self.params)} state tensors, got {len(state)}")
        self._set_task_state(task, [None if s is None else s.clone() for s in state])

    def _set_task_state(self, task: int, state: list[Tensor | None]) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def scale_state(self, factors: Sequence[float]) -> None:
        """Scale each task's own optimiser state (momentum, first moment) by its factor (α:
        the state of what was taken)."""
        self._check_rows(factors, "factors")
        for t, f in enumerate(factors):
            for state in self._task_state(t):
                if state is not None:
                    state.mul_(float(f))


class ShareSGD(_ShareTracker):
    """``torch.optim.SGD`` on Σ_t g_t with each task's share of every update tracked.

    Args:
        params: The parameters it updates (in a fixed order).
        n_tasks: T, the number of gradient sources.
        lr, momentum, dampening, nesterov, weight_decay: As ``torch.optim.SGD``.
        decay_task: The task whose share holds the weight-decay term.
    """

    def __init__(
        self,
        params: Sequence[Tensor],
        n_tasks: int,
        *,
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        decay_task: int = 0,
    ) -> None:
        if lr <= 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(
                f"need lr > 0, momentum >= 0, weight_decay >= 0; got lr={lr}, "
                f"momentum={momentum}, weight_decay={weight_decay}"
            )
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, n_tasks, decay_task)
        self.lr, self.momentum, self.dampening = lr, momentum, dampening
        self.nesterov, self.weight_decay = nesterov, weight_decay
        # buffers[t][j]: task t's momentum buffer of parameter j (None until its first gradient)
        self.buffers: list[list[Tensor | None]] = [
            [None] * len(self.params) for _ in range(n_tasks)
        ]

    def _task_state(self, task: int) -> list[Tensor | None]:
        return self.buffers[task]

    def _set_task_state(self, task: int, state: list[Tensor | None]) -> None:
        self.buffers[task] = state

    @torch.no_grad()
    def step(self, grads: Sequence[Sequence[Tensor | None]]) -> None:
        """One update from ``grads[t][j]`` (task t's gradient of parameter j, ``None``: zero);
        each task's share of it is added to :attr:`shares`."""
        self._check_rows(grads, "gradients")
        for j, p in enumerate(self.params):
            if all(grads[t][j] is None for t in range(self.n_tasks)):
                continue  # as torch.optim.SGD: a parameter without a gradient is left alone
            total = torch.zeros_like(p)
            for t in range(self.n_tasks):
                g = grads[t][j]
                d = torch.zeros_like(p) if g is None else g.detach().clone()
                if self.weight_decay and t == self.decay_task:
                    d.add_(p, alpha=self.weight_decay)
                if self.momentum:
                    buf = self.buffers[t][j]
                    if buf is None:
                        buf = d.clone()
                        self.buffers[t][j] = buf
                    else:
                        buf.mul_(self.momentum).add_(d, alpha=1.0 - self.dampening)
                    d = d.add(buf, alpha=self.momentum) if self.nesterov else buf.clone()
                d.mul_(-self.lr)
                self.shares[t][j].add_(d)
                total.add_(d)
            p.add_(total)

    def state_dict(self) -> dict[str, Any]:
        """The momentum buffers (for exact resume; shares are per epoch and not kept)."""
        return {"buffers": [[None if b is None else b.clone() for b in bs] for bs in self.buffers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (onto the parameters' devices)."""
        buffers = state["buffers"]
        if len(buffers) != self.n_tasks or any(len(b) != len(self.params) for b in buffers):
            raise ValueError("ShareSGD state does not match the tasks and parameters")
        self.buffers = [
            [
                None if b is None else b.to(p.device, p.dtype)
                for b, p in zip(bs, self.params, strict=True)
            ]
            for bs in buffers
        ]


class ShareAdam(_ShareTracker):
    """``torch.optim.Adam`` / ``AdamW`` on Σ_t g_t with each task's share of every update tracked
    (no AMSGrad). Same interface as :class:`ShareSGD`; ``decoupled``: AdamW's weight decay."""

    def __init__(
        self,
        params: Sequence[Tensor],
        n_tasks: int,
        *,
        lr: float = 1e-3,
        betas: Sequence[float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = False,
        decay_task: int = 0,
    ) -> None:
        b1, b2 = (float(b) for b in betas)
        if lr <= 0 or eps < 0 or weight_decay < 0 or not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(
                f"need lr > 0, eps >= 0, weight_decay >= 0, betas in [0, 1); got lr={lr}, "
                f"eps={eps}, weight_decay={weight_decay}, betas={tuple(betas)}"
            )
        super().__init__(params, n_tasks, decay_task)
        self.lr, self.beta1, self.beta2, self.eps = lr, b1, b2, eps
        self.weight_decay, self.decoupled = weight_decay, decoupled
        self.steps = [0] * len(self.params)
        self.first: list[list[Tensor]] = [
            [torch.zeros_like(p) for p in self.params] for _ in range(n_tasks)
        ]
        self.second = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self, grads: Sequence[Sequence[Tensor | None]]) -> None:
        """One update from ``grads[t][j]`` (``None``: zero); shares added to :attr:`shares`."""
        self._check_rows(grads, "gradients")
        for j, p in enumerate(self.params):
            if all(grads[t][j] is None for t in range(self.n_tasks)):
                continue  # as torch.optim.Adam: a parameter without a gradient is left alone
            self.steps[j] += 1
            k = self.steps[j]
            parts = []
            for t in range(self.n_tasks):
                g = grads[t][j]
                d = torch.zeros_like(p) if g is None else g.detach().clone()
                if self.weight_decay and not self.decoupled and t == self.decay_task:
                    d.add_(p, alpha=self.weight_decay)
                parts.append(d)
            total = torch.stack(parts).sum(0)
            self.second[j].mul_(self.beta2).addcmul_(total, total, value=1.0 - self.beta2)
            denom = (self.second[j].sqrt() / math.sqrt(1.0 - self.beta2**k)).add_(self.eps)
            size = self.lr / (1.0 - self.beta1**k)
            move = torch.zeros_like(p)
            if self.weight_decay and self.decoupled:
                decay = p * (-self.lr * self.weight_decay)
                self.shares[self.decay_task][j].add_(decay)
                move.add_(decay)
            for t in range(self.n_tasks):
                self.first[t][j].lerp_(parts[t], 1.0 - self.beta1)
                u = self.first[t][j] / denom * (-size)
                self.shares[t][j].add_(u)
                move.add_(u)
            p.add_(move)

    def _task_state(self, task: int) -> list[Tensor | None]:
        return list(self.first[task])  # the second moment is shared: not scaled

    def _set_task_state(self, task: int, state: list[Tensor | None]) -> None:
        self.first[task] = [
            torch.zeros_like(p) if s is None else s for s, p in zip(state, self.params, strict=True)
        ]

    def state_dict(self) -> dict[str, Any]:
        """Moments and step counts (for exact resume)."""
        return {
            "steps": list(self.steps),
            "first": [[m.clone() for m in ms] for ms in self.first],
            "second": [v.clone() for v in self.second],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (onto the parameters' devices)."""
        if len(state["first"]) != self.n_tasks or len(state["second"]) != len(self.params):
            raise ValueError("ShareAdam state does not match the tasks and parameters")
        self.steps = list(state["steps"])
        self.first = [
            [m.to(p.device, p.dtype) for m, p in zip(ms, self.params, strict=True)]
            for ms in state["first"]
        ]
        self.second = [
            v.to(p.device, p.dtype) for v, p in zip(state["second"], self.params, strict=True)
        ]


SHARE_OPTIONS = {
    "SGD": ("lr", "momentum", "dampening", "nesterov", "weight_decay"),
    "Adam": ("lr", "betas", "eps", "weight_decay"),
    "AdamW": ("lr", "betas", "eps", "weight_decay"),
}


def share_optimizer(
    spec: dict[str, Any], params: Sequence[Tensor], n_tasks: int, decay_task: int
) -> ShareSGD | ShareAdam:
    """The share-tracking optimiser for a ``train.optimizer`` spec (SGD, Adam or AdamW with
    the options in :data:`SHARE_OPTIONS`); ValueError names what is not supported."""
    name = spec.get("name")
    if name not in SHARE_OPTIONS:
        raise ValueError(
            f"train.optimizer.name = {name!r} cannot be split into task shares; "
            f"supported: {', '.join(SHARE_OPTIONS)}"
        )
    kw = {k: v for k, v in spec.items() if k != "name"}
    other = sorted(set(kw) - set(SHARE_OPTIONS[name]))
    if other:
        raise ValueError(
            f"train.optimizer: {name} options {', '.join(other)} cannot be split into task "
            f"shares; supported: {', '.join(SHARE_OPTIONS[name])}"
        )
    if name == "SGD":
        return ShareSGD(params, n_tasks, decay_task=decay_task, **kw)
    if name == "AdamW":
        kw.setdefault("weight_decay", 1e-2)  # torch.optim.AdamW's default
    return ShareAdam(params, n_tasks, decoupled=name == "AdamW", decay_task=decay_task, **kw)


def share_deltas(model: nn.Module, theta: Params, optimizer: ShareSGD | ShareAdam) -> Params:
    """The stacked task deltas ``(T, ...)`` of a joint pass from ``theta``: each parameter's δ_t
    is task t's share (``optimizer`` must hold ``model``'s parameters); floating-point buffers
    (batch-norm statistics) changed along the one trajectory, and every task's δ carries that
    change (mixed convexly by :func:`alphavil.deltas.mix`, so α = 1 and α = e_t both give it)."""
    moved = delta(model, theta)
    names = {id(p): k for k, p in model.named_parameters()}
    missing = [i for i, p in enumerate(optimizer.params) if id(p) not in names]
    if missing:
        raise ValueError(f"optimizer parameters {missing[:3]} are not the model's parameters")
    out = []
    for shares in optimizer.shares:
        d = dict(moved)
        for p, s in zip(optimizer.params, shares, strict=True):
            d[names[id(p)]] = s.clone()
        out.append(d)
    return stack_deltas(out)
