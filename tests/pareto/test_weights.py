from __future__ import annotations

import pytest
import torch

from alphavil.pareto.weights import das_dennis, das_dennis_count, evenly_spaced, preference_vectors


@pytest.mark.parametrize("k", [2, 3, 5, 11])
def test_evenly_spaced_includes_extremes_and_sums_to_one(k: int) -> None:
    prefs = evenly_spaced(k)
    assert prefs.shape == (k, 2)
    assert torch.equal(prefs[0], torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert torch.equal(prefs[-1], torch.tensor([1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(prefs.sum(1), torch.ones(k, dtype=torch.float64))
    torch.testing.assert_close(
        prefs[1:, 0] - prefs[:-1, 0], torch.full((k - 1,), 1 / (k - 1), dtype=torch.float64)
    )


def test_evenly_spaced_single_model_is_the_midpoint() -> None:
    assert evenly_spaced(1).tolist() == [[0.5, 0.5]]
    with pytest.raises(ValueError, match="n_models"):
        evenly_spaced(0)


@pytest.mark.parametrize(("m", "h"), [(3, 1), (3, 4), (4, 3), (5, 2)])
def test_das_dennis_is_the_simplex_lattice(m: int, h: int) -> None:
    w = das_dennis(m, h)
    assert w.shape == (das_dennis_count(m, h), m)
    torch.testing.assert_close(w.sum(1), torch.ones(len(w), dtype=torch.float64))
    assert (w >= 0).all()
    scaled = w * h
    torch.testing.assert_close(scaled, scaled.round())
    assert len({tuple(r) for r in scaled.round().int().tolist()}) == len(w)  # all distinct


def test_das_dennis_counts() -> None:
    assert das_dennis_count(3, 4) == 15
    assert das_dennis_count(2, 4) == 5
    assert torch.equal(das_dennis(2, 4).flip(0), evenly_spaced(5))


def test_preference_vectors_dispatch_and_errors() -> None:
    assert torch.equal(preference_vectors(2, 5), evenly_spaced(5))
    assert preference_vectors(3, 15).shape == (15, 3)
    with pytest.raises(ValueError, match=r"valid counts: .*10.*15"):
        preference_vectors(3, 12)
    with pytest.raises(ValueError, match="at least 2 tasks"):
        preference_vectors(1, 3)
