"""The second joint trajectory's pieces (:mod:`alphavil.second_scale`): the merge's candidates,
the fit variables they map to, and the optimiser state of what was taken."""

from __future__ import annotations

import pytest
import torch

from alphavil.alpha_greedy import merge_candidates
from alphavil.second_scale import combine_states, scale_candidates, summary_point, taken_states
from alphavil.target_branch import blend_states, full_alphas


@pytest.mark.parametrize(("n", "target", "count"), [(2, 0, 3), (2, 1, 3), (3, 1, 7), (4, 0, 9)])
def test_every_candidate_takes_one_whole_target_update(n: int, target: int, count: int) -> None:
    cands = scale_candidates(n, target)
    assert len(cands) == count
    assert cands[0][0] == "joint"
    for name, f in cands:
        assert f.shape == (2 * n + 1,) and f.dtype == torch.float64
        assert float(f[target] + f[n] + f[n + 1 + target]) == 1.0, name
        assert set(f.tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize(("n", "target"), [(2, 0), (3, 1), (4, 3)])
def test_the_first_trajectorys_candidates_are_the_default_merges(n: int, target: int) -> None:
    """On the first joint pass and the branch the candidates map to the default merge's points,
    and each second-pass candidate to the same point as its first-pass twin."""
    ours = dict(scale_candidates(n, target))
    for name, z in merge_candidates(n, target):
        torch.testing.assert_close(summary_point(ours[name], n, target), z)
        if name != "alone":
            twin = summary_point(ours[f"second {name}"], n, target)
            torch.testing.assert_close(twin, z)


def test_the_summary_is_linear_and_adds_each_tasks_two_shares() -> None:
    n, target = 3, 2
    f = torch.tensor([0.2, 0.1, 0.3, 0.25, 0.4, 0.0, 0.45], dtype=torch.float64)
    z = summary_point(f, n, target)
    torch.testing.assert_close(z, torch.tensor([0.6, 0.1, 0.25], dtype=torch.float64))
    g = torch.rand(7, dtype=torch.float64)
    torch.testing.assert_close(
        summary_point(0.3 * f + 0.7 * g, n, target),
        0.3 * z + 0.7 * summary_point(g, n, target),
    )


def test_a_summary_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="expected 5 factors, got shape"):
        summary_point(torch.zeros(4, dtype=torch.float64), 2, 0)


def test_states_combine_linearly_and_missing_buffers_count_as_zero() -> None:
    a = [torch.tensor([1.0, 2.0]), None, None]
    b = [torch.tensor([10.0, 20.0]), torch.tensor([3.0]), None]
    out = combine_states([(0.5, a), (0.25, b)])
    torch.testing.assert_close(out[0], torch.tensor([3.0, 6.0]))
    torch.testing.assert_close(out[1], torch.tensor([0.75]))
    assert out[2] is None
    with pytest.raises(ValueError, match="no states"):
        combine_states([])


def _states(n: int, seed: int) -> list[list[torch.Tensor | None]]:
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(3, generator=gen, dtype=torch.float64), None] for _ in range(n)]


def test_without_the_second_pass_the_state_is_the_default_merges() -> None:
    """Factors that take nothing of the second pass give the default's state of what was taken:
    each auxiliary task's state times α_a, the target's the blend of its joint and branch
    states by c."""
    n, target = 3, 1
    first, second = _states(n, 0), _states(n, 1)
    alone = _states(1, 2)[0]
    z = torch.tensor([0.4, 0.3, 0.8], dtype=torch.float64)
    factors = torch.cat([full_alphas(z, target), torch.zeros(n, dtype=torch.float64)])
    out = taken_states(first, alone, second, factors, target)
    for t in range(n):
        if t == target:
            want = blend_states(first[t], alone, float(z[target]))
        else:
            want = [None if s is None else float(z[t]) * s for s in first[t]]
        for got, w in zip(out[t], want, strict=True):
            assert (got is None) == (w is None)
            if w is not None:
                torch.testing.assert_close(got, w)


def test_the_second_joint_update_whole_takes_its_state() -> None:
    n, target = 2, 0
    first, second = _states(n, 0), _states(n, 1)
    factors = dict(scale_candidates(n, target))["second joint"]
    out = taken_states(first, _states(1, 2)[0], second, factors, target)
    for t in range(n):
        torch.testing.assert_close(out[t][0], second[t][0])
        assert out[t][1] is None
