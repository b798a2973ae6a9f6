"""αVIL's second joint trajectory (``alphavil.second_scale``): the greedy merge also chooses the
joint pass's loss scale.

With joint updates the multitask step depends on how the task losses are scaled: on the summed
losses (``loss_scale = "target"``: the target at single-task scale, each auxiliary task added at
its relative weight) the step is T times the step on their mean (``"mean"``: equal weighting,
each task at 1/T). Which is the better one depends on the problem (docs/fewlabel, twelfth
round: the summed losses help on scikit-learn's digits and are level or worse on MultiMNIST and
MultiFashion). With a second scale the same batches are replayed from θ a third time, as a joint
pass at that scale, and the stacked deltas hold three trajectories::

    [δ_1 .. δ_T  (joint, loss_scale),  δ_alone  (target branch),  δ'_1 .. δ'_T  (joint, second)]

so that the greedy merge (ForkMerge's, Jiang et al., NeurIPS 2023; :mod:`alphavil.alpha_greedy`)
chooses among whole updates of all three on the target's dev score, and the dev set picks the
scale at every fit. A merged point gives the target a total factor of one (each candidate holds
one whole target update); what line 11 moves the weights on is :func:`summary_point`: the
branch's share c and each auxiliary task's total factor over both joint trajectories.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["combine_states", "scale_candidates", "summary_point", "taken_states"]


def scale_candidates(n_tasks: int, target: int) -> list[tuple[str, Tensor]]:
    """The whole updates the merge chooses among, as factors ``(2T + 1,)`` of the stacked
    deltas above: the first joint pass, the target alone, (with two or more auxiliary tasks)
    the target's first-pass share with one auxiliary share, then the same joint and pair
    updates of the second pass. The first joint pass comes first (ties keep this order)."""
    size = 2 * n_tasks + 1
    aux = [i for i in range(n_tasks) if i != target]

    def point(rows: Sequence[int]) -> Tensor:
        out = torch.zeros(size, dtype=torch.float64)
        out[list(rows)] = 1.0
        return out

    second = n_tasks + 1  # the second trajectory's first row
    out = [("joint", point(range(n_tasks))), ("alone", point([n_tasks]))]
    pairs = len(aux) >= 2
    if pairs:
        out += [(f"pair {a}", point([target, a])) for a in aux]
    out.append(("second joint", point(range(second, size))))
    if pairs:
        out += [(f"second pair {a}", point([second + target, second + a])) for a in aux]
    return out


def summary_point(factors: Tensor, n_tasks: int, target: int) -> Tensor:
    """The target branch's fit variables z ``(T,)`` of ``factors`` ``(2T + 1,)``: the branch's
    factor c in the target's coordinate, each auxiliary task's factors over both joint passes
    summed (what line 11 moves its weight on)."""
    if factors.shape != (2 * n_tasks + 1,):
        raise ValueError(f"expected {2 * n_tasks + 1} factors, got shape {tuple(factors.shape)}")
    z = factors[:n_tasks] + factors[n_tasks + 1 :]
    z[target] = factors[n_tasks]
    return z


@torch.no_grad()
def combine_states(terms: Sequence[tuple[float, Sequence[Tensor | None]]]) -> list[Tensor | None]:
    """Σ weight · state over ``terms`` (weight, one task's optimiser state per parameter); a
    missing buffer counts as zero, and a parameter missing in every term stays missing."""
    if not terms:
        raise ValueError("no states to combine")
    out: list[Tensor | None] = []
    for j in range(len(terms[0][1])):
        held = [(w, s[j]) for w, s in terms if s[j] is not None]
        if not held:
            out.append(None)
            continue
        total = torch.zeros_like(held[0][1])  # type: ignore[arg-type]
        for w, s in held:
            total.add_(s, alpha=float(w))  # type: ignore[arg-type]
        out.append(total)
    return out


def taken_states(
    first: Sequence[Sequence[Tensor | None]],
    alone: Sequence[Tensor | None],
    second: Sequence[Sequence[Tensor | None]],
    factors: Tensor,
    target: int,
) -> list[list[Tensor | None]]:
    """Each task's optimiser state after the merge (the state of what was taken): task t's
    state on the first and the second joint pass (``first[t]``, ``second[t]``) weighted by its
    factors there, plus for the target the branch's state ``alone`` weighted by c. All three
    trajectories continue from these (the branch from the target's)."""
    n = len(first)
    f = factors.tolist()
    out = []
    for t in range(n):
        terms = [(f[t], first[t]), (f[n + 1 + t], second[t])]
        if t == target:
            terms.append((f[n], alone))
        out.append(combine_states(terms))
    return out
