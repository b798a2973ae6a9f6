"""SGD on the sum of task gradients that keeps each task's share of the update.

SGD with momentum, dampening, Nesterov momentum and weight decay is linear in its gradients: with
one momentum buffer per task, the per-task updates u_t add up to exactly the update
``torch.optim.SGD`` makes on Σ_t g_t, and u_t is task t's share of it. Summed over an epoch of
joint steps, the shares are the task updates δ_t of αVIL's ``updates = "joint"`` (every step
holds a batch of every task, as in equal-weight multitask training, and δ_t is the part of the
realised multitask update that task t's gradients made), so θ + Σ_t δ_t is the multitask step
and the α fit weighs each task's part of it. Weight decay belongs to one task (the target's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


class ShareSGD:
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
        if n_tasks < 1:
            raise ValueError(f"need at least one task, got {n_tasks}")
        if not 0 <= decay_task < n_tasks:
            raise ValueError(f"decay_task {decay_task} is out of range for {n_tasks} tasks")
        if lr <= 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(
                f"need lr > 0, momentum >= 0, weight_decay >= 0; got lr={lr}, "
                f"momentum={momentum}, weight_decay={weight_decay}"
            )
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        self.params = list(params)
        self.n_tasks = n_tasks
        self.lr, self.momentum, self.dampening = lr, momentum, dampening
        self.nesterov, self.weight_decay, self.decay_task = nesterov, weight_decay, decay_task
        # buffers[t][j]: task t's momentum buffer of parameter j (None until its first gradient)
        self.buffers: list[list[Tensor | None]] = [
            [None] * len(self.params) for _ in range(n_tasks)
        ]
        self.shares: list[list[Tensor]] = []
        self.reset_shares()

    def reset_shares(self) -> None:
        """Start a new sum of shares (at the start of an epoch's updates)."""
        self.shares = [[torch.zeros_like(p) for p in self.params] for _ in range(self.n_tasks)]

    @torch.no_grad()
    def step(self, grads: Sequence[Sequence[Tensor | None]]) -> None:
        """One update from ``grads[t][j]`` (task t's gradient of parameter j, ``None``: zero);
        each task's share of it is added to :attr:`shares`."""
        if len(grads) != self.n_tasks:
            raise ValueError(f"expected gradients of {self.n_tasks} tasks, got {len(grads)}")
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

    @torch.no_grad()
    def scale_state(self, factors: Sequence[float]) -> None:
        """Scale each task's momentum by its factor (α: the momentum of what was taken)."""
        if len(factors) != self.n_tasks:
            raise ValueError(f"expected {self.n_tasks} factors, got {len(factors)}")
        for t, f in enumerate(factors):
            for buf in self.buffers[t]:
                if buf is not None:
                    buf.mul_(float(f))

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
