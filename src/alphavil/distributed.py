"""Data parallelism over ``torch.distributed`` (gloo on CPU, NCCL + gloo on GPU), launched by
torchrun.

    torchrun --nproc-per-node 2 -m alphavil.cli run CONFIG [key=value ...]

Every rank builds the same data and model from the same seeds and walks the same batch order;
each rank runs its contiguous shard of every batch, scales its loss by its share of the batch and
the gradients are summed across ranks (one all-reduce per step), so a step equals the
single-process step on the whole batch up to floating-point summation order. αVIL's and DIW's
task updates are such steps; the α fit splits the dev chunks over the ranks and sums the
objective, its α gradient (T numbers) and, for Newton, the T × T Hessian. Evaluation runs on
every rank (identical results, no communication). Rank 0 alone writes the run directory.

This is data parallelism with the collectives written out, not the ``DistributedDataParallel``
wrapper: αVIL evaluates the model functionally at mixed parameters and runs only some heads per
batch, which the wrapper's hooks do not follow.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn


def world_size() -> int:
    """Number of ranks (1 without torch.distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without torch.distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Whether this process writes files and prints progress."""
    return rank() == 0


BACKEND_CUDA = "cpu:gloo,cuda:nccl"


def init_from_env(device: str) -> bool:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1); returns whether it did.

    The backend is gloo for CPU; for CUDA devices it is ``"cpu:gloo,cuda:nccl"``: NCCL for
    CUDA tensors (gradients, task deltas) and gloo for the few CPU scalars the α fit and the
    loss reports sum (NCCL alone refuses CPU tensors).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not dist.is_initialized():
        backend = BACKEND_CUDA if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
        _OWNED.append(True)
        if device.startswith("cuda"):
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


_OWNED: list[bool] = []  # whether init_from_env created the process group (then we end it)


def shutdown() -> None:
    """End the process group :func:`init_from_env` created (a gloo group left to interpreter exit
    can abort the process with "terminate called without an active exception")."""
    if _OWNED and dist.is_initialized():
        dist.destroy_process_group()
        _OWNED.clear()


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if world_size() > 1:
        dist.barrier()


def shard_slice(n: int) -> slice:
    """This rank's contiguous share of ``n`` rows (the first ``n % W`` ranks get one more)."""
    w, r = world_size(), rank()
    base, extra = divmod(n, w)
    start = r * base + min(r, extra)
    return slice(start, start + base + (1 if r < extra else 0))


def take(obj: Any, sl: slice) -> Any:
    """Rows ``sl`` of a tensor, or of every tensor in a dict / list / tuple."""
    if isinstance(obj, Tensor):
        return obj[sl]
    if isinstance(obj, dict):
        return {k: take(v, sl) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(take(v, sl) for v in obj)
    return obj


def all_sum(values: Tensor) -> Tensor:
    """The sum of ``values`` over ranks (a copy; unchanged in one process)."""
    if world_size() == 1:
        return values
    out = values.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def sum_gradients(model: nn.Module) -> None:
    """Sum every parameter's ``.grad`` over ranks, in one flat all-reduce.

    Parameters without a gradient on this rank take part with zeros so every rank sends the same
    buffer; they get a gradient only if some rank had one.
    """
    if world_size() == 1:
        return
    params = list(model.parameters())
    had = torch.tensor([p.grad is not None for p in params], dtype=torch.float32)
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([had.to(grads[0].device), *(g.reshape(-1).float() for g in grads)])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = len(params)
    for i, p in enumerate(params):
        n = p.numel()
        if flat[i] > 0:
            p.grad = flat[offset : offset + n].view_as(p).to(p.dtype).contiguous()
        offset += n


def broadcast_object(objects: list[Any], src: int) -> None:
    """Replace ``objects``' items on every rank by rank ``src``'s (picklable objects)."""
    if world_size() > 1:
        dist.broadcast_object_list(objects, src=src)
