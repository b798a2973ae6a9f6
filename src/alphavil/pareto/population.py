"""K models as one stack: per-model task losses on a shared batch, gradients, transfer, steps.

The K models of MT2O (one per weight vector) share an architecture, so their parameters are
stacked with :func:`torch.func.stack_module_state` into leaf tensors of shape ``(K, ...)`` and
evaluated together with :func:`torch.func.functional_call` under :func:`torch.func.vmap` (one
batched forward and backward instead of a Python loop over K models; convolutions become grouped
convolutions). ``vectorize=False`` loops over the K slices instead (same numbers; for models
vmap cannot batch, e.g. batch norm updating running statistics).

Optimiser: ONE ``torch.optim`` optimiser over the stacked leaves. Since model k's loss depends
only on slice k, the gradient of Σ_k g_k w.r.t. a stacked leaf is the stack of the K per-model
gradients, and for an element-wise optimiser (SGD with momentum, Adam, ...) the state of slice k
is exactly what a separate optimiser of model k would hold: K optimiser states, never mixed.
Optimisers that couple elements (LBFGS, Adafactor, global-norm clipping) would couple models
and are rejected by :func:`check_elementwise`.

Modes: :meth:`Population.losses` (training) runs the architecture in train mode (dropout on,
batch norm on batch statistics, running statistics updated); :meth:`Population.sums` and
:meth:`Population.evaluate` (every evaluation) run it in eval mode (dropout off, batch norm on
its running statistics, which stay untouched), as ``model.eval()`` would for K separate models.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from alphavil.pareto.scalarize import scalarize
from alphavil.pareto.transfer import mix
from alphavil.tasks import Task

__all__ = ["ELEMENTWISE_OPTIMIZERS", "Population", "check_elementwise", "mtgd_step"]

ELEMENTWISE_OPTIMIZERS = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adamax", "NAdam", "RAdam")


def check_elementwise(name: str) -> None:
    """Raise ``ValueError`` unless optimiser ``name`` updates each element independently."""
    if name not in ELEMENTWISE_OPTIMIZERS:
        raise ValueError(
            f"optimizer {name!r} may couple the stacked models; population methods allow "
            f"{', '.join(ELEMENTWISE_OPTIMIZERS)}"
        )


class Population:
    """K models of one architecture, stacked.

    Args:
        models: The K initialised models (same architecture); ``model(inputs)`` must return a
            dict task name -> outputs. Their parameters are copied, the models are not kept.
        tasks: The m tasks whose losses form the objective vector, in this order.
        vectorize: Evaluate with ``vmap`` (default) or with a Python loop over the K models.
    """

    def __init__(
        self, models: Sequence[nn.Module], tasks: Sequence[Task], *, vectorize: bool = True
    ) -> None:
        if not models:
            raise ValueError("a population needs at least one model")
        if not tasks:
            raise ValueError("a population needs at least one task")
        params, buffers = stack_module_state(list(models))
        self.params: dict[str, Tensor] = params  # name -> (K, ...) leaf, requires_grad
        self.buffers: dict[str, Tensor] = buffers
        self.tasks = tuple(tasks)
        self.vectorize = vectorize
        self._base = copy.deepcopy(models[0]).to("meta")  # architecture only, no storage
        # Box constraint of the parameters (synthetic problems): projected after every step.
        self.box: tuple[float, float] | None = getattr(models[0], "box", None)

    @property
    def n_models(self) -> int:
        """K."""
        return next(iter(self.params.values())).shape[0]

    def parameters(self) -> list[Tensor]:
        """The stacked leaf tensors, each ``(K, ...)``: what the optimiser updates."""
        return list(self.params.values())

    def _map(self, fn: Callable[[dict[str, Tensor], dict[str, Tensor]], Any]) -> Any:
        """``fn(params_k, buffers_k)`` for every k, stacked on a new leading dimension."""
        if self.vectorize:
            return vmap(fn, randomness="different")(self.params, self.buffers)
        outs = [
            fn(
                {n: p[k] for n, p in self.params.items()},
                {n: b[k] for n, b in self.buffers.items()},
            )
            for k in range(self.n_models)
        ]
        return torch.utils._pytree.tree_map(lambda *xs: torch.stack(xs), *outs)

    def _outputs(
        self, params: dict[str, Tensor], buffers: dict[str, Tensor], inputs: Any
    ) -> dict[str, Tensor]:
        out: dict[str, Tensor] = functional_call(self._base, (params, buffers), (inputs,))
        return out

    def losses(self, inputs: Any, targets: Mapping[str, Tensor]) -> Tensor:
        """Per-model mean task losses on one shared batch, ``(K, m)``, differentiable.

        Train mode: dropout active, batch norm normalises with batch statistics and updates
        each model's running statistics.
        """
        self._base.train()

        def one(params: dict[str, Tensor], buffers: dict[str, Tensor]) -> Tensor:
            out = self._outputs(params, buffers, inputs)
            return torch.stack([t.loss(out[t.name], targets[t.name]) for t in self.tasks])

        result: Tensor = self._map(one)
        return result

    def sums(self, inputs: Any, targets: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Summed task losses and numbers of correct predictions on a batch, each ``(K, m)``.

        ``correct`` is 0 for regression tasks. No autograd graph is built. Eval mode: no
        dropout, batch norm uses (and never updates) the running statistics.
        """

        def one(params: dict[str, Tensor], buffers: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
            out = self._outputs(params, buffers, inputs)
            loss = torch.stack([t.loss_sum(out[t.name], targets[t.name]) for t in self.tasks])
            correct = torch.stack(
                [
                    t.correct(out[t.name], targets[t.name]).to(loss.dtype)
                    if t.kind == "classification"
                    else loss.new_zeros(())
                    for t in self.tasks
                ]
            )
            return loss, correct

        was_training = self._base.training
        self._base.eval()
        try:
            with torch.no_grad():
                loss, correct = self._map(one)
        finally:
            self._base.train(was_training)
        return loss, correct

    def evaluate(
        self, batches: Iterable[tuple[Any, Mapping[str, Tensor]]]
    ) -> tuple[Tensor, Tensor | None]:
        """Mean task losses ``(K, m)`` over all ``batches`` and accuracies ``(K, m)`` (None
        unless every task is a classification task), float64 on the CPU."""
        loss_sum = correct = None
        n = 0
        for inputs, targets in batches:
            ls, cs = self.sums(inputs, targets)
            loss_sum = ls if loss_sum is None else loss_sum + ls
            correct = cs if correct is None else correct + cs
            n += len(targets[self.tasks[0].name])
        if loss_sum is None or correct is None:
            raise ValueError("no evaluation batches")
        classify = all(t.kind == "classification" for t in self.tasks)
        acc = (correct / n).double().cpu() if classify else None
        return (loss_sum / n).double().cpu(), acc

    def task_jacobian(self, losses: Tensor) -> Tensor:
        """Per-model gradients of each task loss, flattened: ``(K, m, P)``.

        ``losses`` is the ``(K, m)`` output of :meth:`losses`; its graph is retained.
        """
        params = self.parameters()
        rows = []
        for i in range(losses.shape[1]):
            grads = torch.autograd.grad(
                losses[:, i].sum(), params, retain_graph=True, allow_unused=True
            )
            rows.append(
                torch.cat(
                    [
                        (g if g is not None else torch.zeros_like(p)).reshape(p.shape[0], -1)
                        for g, p in zip(grads, params, strict=True)
                    ],
                    dim=1,
                )
            )
        return torch.stack(rows, dim=1)

    def set_grads(self, flat: Tensor) -> None:
        """Write per-model flat gradients ``(K, P)`` into the stacked leaves' ``.grad``."""
        offset = 0
        for p in self.parameters():
            n = p[0].numel()
            p.grad = flat[:, offset : offset + n].reshape(p.shape).to(p.dtype).clone()
            offset += n
        if offset != flat.shape[1]:
            raise ValueError(f"flat gradients have {flat.shape[1]} columns, expected {offset}")

    @torch.no_grad()
    def project_(self) -> None:
        """Clip every parameter into :attr:`box` (projected gradient descent); no-op if None."""
        if self.box is not None:
            for p in self.parameters():
                p.clamp_(*self.box)

    @torch.no_grad()
    def mix_(self, mixing: Tensor, *, buffers: bool = True) -> None:
        """Transfer in place: θ_k ← Σ_j M_kj θ_j for every stacked parameter.

        With ``buffers`` also floating-point buffers (batch-norm running statistics)
        [reconstructed: reconstruction note §5.5]; integer buffers (``num_batches_tracked``)
        stay per model.
        """
        for p in self.parameters():
            p.copy_(mix(p, mixing))
        if buffers:
            for b in self.buffers.values():
                if b.is_floating_point():
                    b.copy_(mix(b, mixing))

    def state_dict(self) -> dict[str, dict[str, Tensor]]:
        """Stacked parameters and buffers (detached) for checkpoints."""
        return {
            "params": {n: p.detach().clone() for n, p in self.params.items()},
            "buffers": {n: b.clone() for n, b in self.buffers.items()},
        }

    @torch.no_grad()
    def load_state_dict(self, state: Mapping[str, Mapping[str, Tensor]]) -> None:
        """Copy stacked tensors from :meth:`state_dict` output into this population."""
        for n, p in self.params.items():
            p.copy_(state["params"][n])
        for n, b in self.buffers.items():
            b.copy_(state["buffers"][n])

    def export(self, k: int, model: nn.Module) -> nn.Module:
        """Load model k's parameters and buffers into ``model`` (same architecture)."""
        state = {n: p[k].detach() for n, p in self.params.items()}
        state |= {n: b[k] for n, b in self.buffers.items()}
        model.load_state_dict(state)
        return model


def mtgd_step(
    pop: Population,
    optimizer: torch.optim.Optimizer,
    inputs: Any,
    targets: Mapping[str, Tensor],
    prefs: Tensor,
    *,
    scalarization: str = "linear",
    ideal: Tensor | None = None,
    smooth: float = 0.0,
    mixing: Tensor | None = None,
    mix_buffers: bool = True,
) -> Tensor:
    """One multi-task gradient descent step (reconstruction Eq. R4), for all K models at once.

        G_k = ∇ g(θ_k | λ^k; B)  at the pre-mix θ_k,   θ̃ = M θ,   θ_k ← θ̃_k − η·dir_k(G_k)

    the order of MGD's ``MSGD`` (gradient, mix, step); ``mixing=None`` skips the transfer
    (K independent steps). Returns the batch losses ``(K, m)``, detached.
    """
    optimizer.zero_grad(set_to_none=True)
    losses = pop.losses(inputs, targets)  # (K, m)
    scalarize(losses, prefs, scalarization, ideal=ideal, smooth=smooth).sum().backward()
    if mixing is not None:
        pop.mix_(mixing, buffers=mix_buffers)
    optimizer.step()
    return losses.detach()
