"""Line 9 of Algorithm 1 with α kept in a box: argmin of the dev loss over α ∈ [lo, hi]^T.

On a small dev set the unconstrained argmin is noisy: with a 200-example dev set it stretched
the target's own update by α ≈ 4.5 and gave auxiliary updates α ≈ −5 (docs/fewlabel). The box
[0, 1] keeps what the α mix can mean: each task's realised update is taken in part or not at
all, never stretched or reversed. The solve is a thin wrapper of SciPy's L-BFGS-B (Byrd, Lu,
Nocedal & Zhu 1995) on the exact chunked objective of
:func:`alphavil.alpha.target_loss_and_grad`, started from the best of the box-clipped start
candidates and never returning an α worse than that start (non-finite objectives count as +∞).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from alphavil.alpha import AlphaFit, ValueAndGrad
from alphavil.alpha_exact import Value, best_start, finite_or_inf


class _Stop(Exception):
    """Raised inside the objective to end the solve (budget spent or non-finite value)."""


def solve_alpha_box(
    value_and_grad: ValueAndGrad,
    starts: Sequence[Tensor],
    *,
    value: Value,
    lo: float = 0.0,
    hi: float = 1.0,
    tol: float = 1e-6,
    max_passes: int = 30,
    fixed: dict[int, float] | None = None,
) -> AlphaFit:
    """Minimise the α objective over the box [lo, hi]^T with L-BFGS-B.

    Args:
        value_and_grad: α -> (objective, gradient); one call = one forward+backward dev pass.
        starts: Candidate starting points ``(T,)``, clipped into the box and ranked by ``value``.
        value: α -> objective, forward only (one pass per candidate; outside the budget).
        lo, hi: The box; ``lo < hi``.
        tol: L-BFGS-B's relative decrease tolerance (``ftol``) and projected-gradient tolerance.
        max_passes: Budget of forward+backward passes; a hard limit.
        fixed: Coordinates held at a value instead of boxed (e.g. ``{target: 1.0}``: the
            target's own update always taken whole).

    Returns:
        The best α evaluated (inside the box) with its cost and objectives, as
        :func:`alphavil.alpha_exact.solve_alpha`.
    """
    from scipy.optimize import minimize

    if not starts:
        raise ValueError("need at least one starting point")
    if not lo < hi:
        raise ValueError(f"the box needs lo < hi, got [{lo}, {hi}]")
    if max_passes < 1:
        raise ValueError(f"max_passes must be >= 1, got {max_passes}")
    n = len(starts[0])
    lows = torch.full((n,), float(lo), dtype=torch.float64)
    highs = torch.full((n,), float(hi), dtype=torch.float64)
    for i, v in (fixed or {}).items():
        if not 0 <= i < n:
            raise ValueError(f"fixed coordinate {i} is out of range for {n} tasks")
        lows[i] = highs[i] = float(v)
    clipped = [s.detach().to(torch.float64).clamp(lows, highs) for s in starts]
    unique = [c for i, c in enumerate(clipped) if not any(torch.equal(c, o) for o in clipped[:i])]
    start, start_loss = best_start(value, unique)
    best: dict[str, object] = {"loss": start_loss, "alpha": start.clone()}
    losses: list[float] = []

    def objective(a: np.ndarray) -> tuple[float, np.ndarray]:
        if len(losses) >= max_passes:
            raise _Stop
        alpha = torch.from_numpy(np.clip(a, lows.numpy(), highs.numpy())).to(torch.float64)
        loss, grad = value_and_grad(alpha)
        f = float(loss)
        losses.append(f)
        if not (math.isfinite(f) and bool(torch.isfinite(grad).all())):
            raise _Stop
        if f < finite_or_inf(best["loss"]):  # type: ignore[arg-type]
            best["loss"], best["alpha"] = f, alpha.clone()
        return f, grad.detach().double().numpy()

    with contextlib.suppress(_Stop):  # the budget is a hard limit; non-finite = +∞, stop
        minimize(
            objective,
            start.numpy(),
            jac=True,
            method="L-BFGS-B",
            bounds=list(zip(lows.tolist(), highs.tolist(), strict=True)),
            options={"maxfun": max_passes, "ftol": tol, "gtol": tol},
        )
    return AlphaFit(
        alphas=best["alpha"],  # type: ignore[arg-type]
        losses=losses,
        passes=len(losses),
        forward_passes=len(unique),
        start=start,
        start_loss=start_loss,
        final_loss=best["loss"],  # type: ignore[arg-type]
    )
